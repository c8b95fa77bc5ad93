import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { pino } from 'pino';
import { parsePoolPolicySpec } from '../../../src/api/v1alpha1/poolpolicy.js';
import { AppliedLedger } from '../../../src/controllers/connectionbudget/facts.js';
import { PoolPolicyReconciler, type PolicyWriter } from '../../../src/controllers/poolpolicy/reconciler.js';
import type { ObjectStore } from '../../../src/runtime/informer.js';
import { FakeClock } from '../../support/fake-clock.js';
import { MemoryStore } from '../../support/memory-store.js';

// A PoolPolicy can only reach objects in its own namespace: its refs have no namespace field (the
// schema refuses one, and 'other/api' is no name), and a reconcile reads and writes only there,
// even when another namespace holds objects of the same names.

/** Records the namespace of every cache read. */
class SpyStore<T extends KubernetesObject> implements ObjectStore<T> {
  readonly namespaces: Array<string | undefined> = [];
  constructor(private readonly inner: MemoryStore<T>) {}
  get(name: string, namespace?: string): T | undefined {
    this.namespaces.push(namespace);
    return this.inner.get(name, namespace);
  }
  list(namespace?: string): readonly T[] {
    this.namespaces.push(namespace);
    return this.inner.list(namespace);
  }
  /** Index values are `namespace/name`: the read is in that namespace. */
  byIndex(index: string, value: string): readonly T[] {
    this.namespaces.push(value.slice(0, value.indexOf('/')));
    return this.inner.byIndex(index, value);
  }
}

class NamespaceWriter implements PolicyWriter {
  readonly namespaces: string[] = [];
  applyContainerEnv(namespace: string): Promise<unknown> {
    this.namespaces.push(namespace);
    return Promise.resolve(undefined);
  }
  applyConfigMapData(namespace: string): Promise<unknown> {
    this.namespaces.push(namespace);
    return Promise.resolve(undefined);
  }
  applyPodTemplateAnnotation(namespace: string): Promise<unknown> {
    this.namespaces.push(namespace);
    return Promise.resolve(undefined);
  }
  annotatePods(namespace: string): Promise<number> {
    this.namespaces.push(namespace);
    return Promise.resolve(0);
  }
  applyStatus(_resource: unknown, namespace: string): Promise<void> {
    this.namespaces.push(namespace);
    return Promise.resolve();
  }
  emitEvent(ref: { namespace?: string }): Promise<void> {
    this.namespaces.push(ref.namespace ?? '(none)');
    return Promise.resolve();
  }
}

const SPEC = {
  targetRef: { name: 'api', container: 'app' },
  interval: '30s',
  database: { poolSize: { min: 10, max: 50 } },
  pgbouncer: {
    configMapRef: { name: 'pgbouncer' },
    format: 'env',
    defaultPoolSize: { min: 5, max: 40 },
    rolloutRef: { name: 'pgbouncer' },
  },
  budgetRef: { name: 'shared' },
  behavior: { scaleUpStabilization: '0s', minChangeInterval: '0s' },
};

function objectsIn(namespace: string): {
  policy: KubernetesObject;
  deployments: V1Deployment[];
  configMap: V1ConfigMap;
  budget: KubernetesObject;
  hpa: V2HorizontalPodAutoscaler;
} {
  const deployment = (name: string): V1Deployment => ({
    metadata: { name, namespace, generation: 1 },
    spec: {
      replicas: 1,
      selector: {},
      template: { spec: { containers: [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }] } },
    },
    status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
  });
  return {
    policy: {
      apiVersion: 'poolpilot.io/v1alpha1',
      kind: 'PoolPolicy',
      metadata: {
        name: 'api',
        namespace,
        generation: 1,
        uid: `uid-${namespace}`,
        creationTimestamp: new Date('2026-01-01T00:00:00Z'),
      },
      spec: SPEC,
    } as KubernetesObject,
    deployments: [deployment('api'), deployment('pgbouncer')],
    configMap: {
      metadata: { name: 'pgbouncer', namespace, resourceVersion: '1' },
      data: { DEFAULT_POOL_SIZE: '10', MAX_CLIENT_CONN: '100' },
    },
    budget: {
      apiVersion: 'poolpilot.io/v1alpha1',
      kind: 'ConnectionBudget',
      metadata: { name: 'shared', namespace },
      spec: { postgres: { maxConnections: 1000 } },
    } as KubernetesObject,
    hpa: {
      metadata: { name: 'api', namespace },
      spec: { maxReplicas: 3, scaleTargetRef: { kind: 'Deployment', name: 'api', apiVersion: 'apps/v1' } },
    },
  };
}

describe('a PoolPolicy reaches only its own namespace', () => {
  it('has no way to name another namespace: no namespace field, and "other/api" is no name', () => {
    for (const ref of ['targetRef', 'budgetRef']) {
      const withNamespace = parsePoolPolicySpec({ ...SPEC, [ref]: { name: 'api', namespace: 'other' } });
      expect(withNamespace).toMatchObject({ ok: false });
      if (!withNamespace.ok) expect(withNamespace.message).toContain(`spec.${ref}.namespace: unknown field`);
      const slashed = parsePoolPolicySpec({ ...SPEC, [ref]: { name: 'other/api' } });
      expect(slashed).toMatchObject({ ok: false });
      if (!slashed.ok)
        expect(slashed.message).toContain(`spec.${ref}.name: must be a lowercase DNS-1123 subdomain name`);
    }
    expect(
      parsePoolPolicySpec({ ...SPEC, pgbouncer: { ...SPEC.pgbouncer, configMapRef: { name: 'other/pgbouncer' } } }),
    ).toMatchObject({ ok: false });
    expect(
      parsePoolPolicySpec({
        ...SPEC,
        pgbouncer: { ...SPEC.pgbouncer, rolloutRef: { name: 'pgbouncer', namespace: 'other' } },
      }),
    ).toMatchObject({ ok: false });
  });

  it('reads every cache and writes every object in its own namespace only, with same-named objects next door', async () => {
    const a = objectsIn('team-a');
    const b = objectsIn('team-b');
    const policies = new SpyStore(new MemoryStore<KubernetesObject>([a.policy, b.policy]));
    const deployments = new SpyStore(new MemoryStore<V1Deployment>([...a.deployments, ...b.deployments]));
    const configMaps = new SpyStore(new MemoryStore<V1ConfigMap>([a.configMap, b.configMap]));
    const budgets = new SpyStore(new MemoryStore<KubernetesObject>([a.budget, b.budget]));
    const hpas = new SpyStore(new MemoryStore<V2HorizontalPodAutoscaler>([a.hpa, b.hpa]));
    const writer = new NamespaceWriter();
    const samples: Array<{ namespace: string }> = [];
    const capacityNamespaces: string[] = [];
    const reconciler = new PoolPolicyReconciler({
      stores: { policies, deployments, configMaps, budgets, hpas },
      writer,
      utilization: {
        sample: (request) => {
          samples.push(request);
          return Promise.resolve({ valid: true, percent: 95, sampledAt: new Date('2026-03-01T12:00:00Z') });
        },
      },
      clock: new FakeClock(new Date('2026-03-01T12:00:00Z')),
      log: pino({ level: 'silent' }),
      budget: {
        ledger: new AppliedLedger(),
        query: (_q, _p, namespace) => {
          capacityNamespaces.push(namespace);
          return Promise.resolve({ valid: true, percent: 1000, sampledAt: new Date() });
        },
      },
    });

    const outcome = await reconciler.reconcile('team-a/api');
    expect(outcome.report?.changes).toContain('DB_POOL_SIZE 20→24');

    for (const store of [policies, deployments, configMaps, budgets, hpas]) {
      expect(store.namespaces.length).toBeGreaterThan(0);
      expect(new Set(store.namespaces)).toEqual(new Set(['team-a']));
    }
    expect(new Set(writer.namespaces)).toEqual(new Set(['team-a']));
    expect(writer.namespaces.length).toBeGreaterThan(2);
    expect(new Set(samples.map((s) => s.namespace))).toEqual(new Set(['team-a']));
    expect(capacityNamespaces.every((n) => n === 'team-a')).toBe(true);
  });
});
