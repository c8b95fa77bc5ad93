import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { KubeError } from '../../src/adapters/kube.js';
import type { PolicyWriter } from '../../src/controllers/poolpolicy/reconciler.js';
import type { RunningController } from '../../src/main.js';
import { createDeployment, deploymentManifest } from './support/kube.js';
import {
  completeRollout,
  condition,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { cacheHas, startReconciler, type ReconcilerHarness } from './support/reconciler.js';
import { FAST, openTestNamespace, type TestNamespace } from './support/suite.js';

// Write conflicts with a person, on the real API server: poolpilot's writes never revert a
// concurrent human edit. The races are forced deterministically by a writer that lets the
// "human" edit right before poolpilot's write goes out (the reconciler has read already).

describe('write conflicts: a human edit is never reverted', () => {
  let kc: KubeConfig;
  let namespace: string;
  let scope: TestNamespace;
  const targets: ScrapeTarget[] = [];
  const stops: Array<() => Promise<void>> = [];

  async function gauge(name: string, pod: string, value: number): Promise<void> {
    const target = await startScrapeTarget(`${namespace}-${name}`, { namespace, pod });
    targets.push(target);
    new Gauge({ name, help: 'utilization', registers: [target.registry] }).set(value);
    await eventually(
      async () => ((await queryVector(`${name}{namespace="${namespace}"}`)).length === 1 ? true : undefined),
      30_000,
      `${name} in Prometheus`,
    );
  }

  /** Wraps one writer method: `before` runs (once) right before the real call. */
  function editBefore(
    kube: PolicyWriter,
    method: 'applyContainerEnv' | 'applyConfigMapData',
    before: () => Promise<void>,
  ): PolicyWriter {
    let done = false;
    return new Proxy(kube, {
      get: (obj, prop): unknown => {
        const value: unknown = Reflect.get(obj, prop, obj);
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]): Promise<unknown> => {
          if (prop === method && !done) {
            done = true;
            await before();
          }
          return Reflect.apply(value, obj, args) as unknown;
        };
      },
    });
  }

  beforeAll(async () => {
    scope = await openTestNamespace('faults-writes');
    ({ kc, namespace } = scope);
  });

  afterAll(async () => {
    await scope.close(...stops, () => Promise.all(targets.map((t) => t.stop())));
  });

  it("a human's concurrent edit of other Deployment fields (annotation, another env var, the image) survives poolpilot's env writes", async () => {
    const name = 'api';
    await createDeployment(
      kc,
      namespace,
      deploymentManifest(name, [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
            { name: 'LOG_LEVEL', value: 'info' },
          ],
        },
      ]),
    );
    await completeRollout(kc, namespace, name);
    await gauge('writes_api_utilization', `${name}-7c9b8d6f54-x2x9q`, 90);
    await createPolicy(kc, namespace, name, {
      targetRef: { name },
      database: {
        poolSize: { min: 10, max: 50 },
        maxOverflow: { ratio: 2, min: 0, max: 100 },
        utilization: 'max(writes_api_utilization{namespace="$namespace"})',
      },
      ...FAST,
    });

    const apps = kc.makeApiClient(AppsV1Api);
    const humanEdit = async (): Promise<void> => {
      await apps.patchNamespacedDeployment(
        {
          name,
          namespace,
          fieldManager: 'kubectl-edit',
          body: {
            metadata: { annotations: { 'example.com/owner': 'payments' } },
            spec: {
              template: {
                spec: {
                  containers: [
                    { name: 'app', image: 'example.invalid/app:2', env: [{ name: 'LOG_LEVEL', value: 'debug' }] },
                  ],
                },
              },
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
    };
    const harness: ReconcilerHarness = await startReconciler(namespace, (kube) =>
      editBefore(kube, 'applyContainerEnv', humanEdit),
    );
    stops.push(() => harness.stop());
    await cacheHas(harness.policies, namespace, name, () => true);
    await cacheHas(
      harness.deployments,
      namespace,
      name,
      (d) => (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1),
    );

    // The reconciler read 20/40 and the old image; the human's edit lands before its write.
    const outcome = await harness.reconciler.reconcile(`${namespace}/${name}`);
    expect(outcome.report?.changes).toBe('DB_POOL_SIZE 20→24, DB_MAX_OVERFLOW 40→48');
    const expectHumanKept = async (): Promise<Record<string, string | undefined>> => {
      const d = await getDeployment(kc, namespace, name);
      expect(d.metadata?.annotations?.['example.com/owner']).toBe('payments');
      expect(d.spec?.template.spec?.containers[0]?.image).toBe('example.invalid/app:2');
      const env = envOf(d, 'app');
      expect(env.LOG_LEVEL).toBe('debug');
      return env;
    };
    expect(await expectHumanKept()).toEqual({ DB_POOL_SIZE: '24', DB_MAX_OVERFLOW: '48', LOG_LEVEL: 'debug' });
    await harness.stop();

    // The running operator keeps stepping (each rollout completes) up to max, and still never
    // reverts them.
    const rollouts = simulateRollouts(kc, namespace);
    const operator: RunningController = await startOperator(namespace);
    try {
      await eventually(
        async () => ((await getPolicy(kc, namespace, name)).status?.current?.DB_POOL_SIZE === 50 ? true : undefined),
        30_000,
        'steps up to max 50',
      );
    } finally {
      await operator.stop();
      rollouts.stop();
    }
    expect(await expectHumanKept()).toEqual({ DB_POOL_SIZE: '50', DB_MAX_OVERFLOW: '100', LOG_LEVEL: 'debug' });
    expect((await getPolicy(kc, namespace, name)).status?.history?.length).toBeGreaterThanOrEqual(3);
    // Only poolpilot's own entries are owned by its field manager.
    const managed = (await getDeployment(kc, namespace, name)).metadata?.managedFields?.find(
      (f) => f.manager === 'poolpilot' && f.operation === 'Apply',
    );
    const owned = JSON.stringify(managed?.fieldsV1);
    expect(owned).toContain('DB_POOL_SIZE');
    expect(owned).not.toContain('LOG_LEVEL');
    expect(owned).not.toContain('image');
    expect(owned).not.toContain('example.com/owner');
  });

  it('a pgbouncer.ini edit between read and write: 409, and the next attempt starts from a fresh read and keeps the edit', async () => {
    const ini = [
      '[databases]',
      'app = host=postgres dbname=app',
      '',
      '[pgbouncer]',
      'pool_mode = transaction',
      'default_pool_size = 20',
      'max_client_conn = 400',
      '',
    ].join('\n');
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'pgbouncer-config' }, data: { 'pgbouncer.ini': ini } },
    });
    await createDeployment(kc, namespace, deploymentManifest('web', [{ name: 'app' }]));
    await gauge('writes_pgbouncer_utilization', 'pgbouncer-1', 90);
    await createPolicy(kc, namespace, 'web', {
      targetRef: { name: 'web' },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000, ratio: 20 },
        utilization: 'max(writes_pgbouncer_utilization{namespace="$namespace"})',
      },
      ...FAST,
    });

    // The human's edit: another setting and a comment, written through a full update.
    const humanIni = ini.replace('pool_mode = transaction', '; switched for the batch jobs\npool_mode = session');
    const humanEdit = async (): Promise<void> => {
      const cm = await core.readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
      cm.data = { ...cm.data, 'pgbouncer.ini': humanIni };
      await core.replaceNamespacedConfigMap({ name: 'pgbouncer-config', namespace, body: cm });
    };
    const harness = await startReconciler(namespace, (kube) => editBefore(kube, 'applyConfigMapData', humanEdit));
    stops.push(() => harness.stop());
    await cacheHas(harness.policies, namespace, 'web', () => true);
    const read = await cacheHas(harness.configMaps, namespace, 'pgbouncer-config', () => true);

    const first = harness.reconciler.reconcile(`${namespace}/web`);
    await expect(first).rejects.toBeInstanceOf(KubeError);
    await expect(first).rejects.toMatchObject({ code: 409 });
    let cm = await core.readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
    expect(cm.data?.['pgbouncer.ini']).toBe(humanIni); // nothing of poolpilot's stale edit landed

    // The retry reads afresh (the cache has the human's version) and edits on top of it.
    await cacheHas(
      harness.configMaps,
      namespace,
      'pgbouncer-config',
      (c) => c.metadata?.resourceVersion !== read.metadata?.resourceVersion,
    );
    const second = await harness.reconciler.reconcile(`${namespace}/web`);
    expect(second.report?.changes).toBe('default_pool_size 20→24, max_client_conn 400→480');
    cm = await core.readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
    expect(cm.data?.['pgbouncer.ini']).toBe(
      humanIni
        .replace('default_pool_size = 20', 'default_pool_size = 24')
        .replace('max_client_conn = 400', 'max_client_conn = 480'),
    );
    const policy = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'web');
        return p.status?.current?.default_pool_size === 24 ? p : undefined;
      },
      10_000,
      'status current 24',
    );
    expect(condition(policy, 'Ready')?.status).toBe('True');
    expect(policy.status?.history).toHaveLength(1);
  });
});
