import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  budgetsOf,
  GenerationChangedPredicate,
  NamedObjects,
  ownKey,
  type HoldingCache,
  policiesOfBudget,
  policiesReferring,
  watch,
  whenDeleted,
  withBudgetPeers,
  type KeyQueues,
  type PolicyKey,
  type WatchSource,
} from '../../../src/controllers/poolpolicy/watches.js';
import { MemoryStore } from '../../support/memory-store.js';
import { configMapsNamedBy, deploymentsNamedBy } from '../../../src/controllers/indexes.js';
import { flushMicrotasks } from '../../support/fake-clock.js';

const policy = (
  name: string,
  spec: Record<string, unknown>,
  meta: { uid?: string; generation?: number; namespace?: string } = {},
): KubernetesObject & { spec: unknown } => ({
  apiVersion: 'poolpilot.io/v1alpha1',
  kind: 'PoolPolicy',
  metadata: {
    name,
    namespace: meta.namespace ?? 'ns',
    uid: meta.uid ?? `uid-${name}`,
    generation: meta.generation ?? 1,
  },
  spec,
});

const API = policy('api', { targetRef: { name: 'api' }, budgetRef: { name: 'db' } });
const WORKER = policy('worker', { targetRef: { name: 'worker' }, budgetRef: { name: 'db' } });
const WEB = policy('web', {
  targetRef: { name: 'web' },
  pgbouncer: { configMapRef: { name: 'pgb' }, rolloutRef: { name: 'pgbouncer' } },
});
/** The policies as the operator's cache holds them (looked up by index). */
const POLICIES = new MemoryStore([API, WORKER, WEB]);

describe('GenerationChangedPredicate', () => {
  it('passes a new policy, not its status-only updates, then each new generation', () => {
    const generations = new GenerationChangedPredicate();
    expect(generations.test(API)).toBe(true);
    expect(generations.test({ ...API, status: { current: { DB_POOL_SIZE: 24 } } } as KubernetesObject)).toBe(false);
    expect(generations.test(policy('api', {}, { generation: 2 }))).toBe(true);
    expect(generations.test(policy('api', {}, { generation: 2 }))).toBe(false);
  });

  it('passes a policy recreated under the same name (a new uid), and one seen again after forget', () => {
    const generations = new GenerationChangedPredicate();
    generations.test(API);
    expect(generations.test(policy('api', {}, { uid: 'uid-recreated' }))).toBe(true);
    generations.forget('ns/api');
    expect(generations.test(policy('api', {}, { uid: 'uid-recreated' }))).toBe(true);
  });

  it('keeps policies apart by namespace/name', () => {
    const generations = new GenerationChangedPredicate();
    generations.test(API);
    expect(generations.test(policy('api', {}, { namespace: 'other' }))).toBe(true);
  });
});

describe('key mappers', () => {
  it('a Deployment wakes the policies targeting it or rolling PgBouncer with it, and their budget peers', () => {
    const deployment = (name: string): KubernetesObject => ({ metadata: { name, namespace: 'ns' } });
    expect(withBudgetPeers(POLICIES, policiesReferring(POLICIES, deployment('api'), 'Deployment'))).toEqual([
      'ns/api',
      'ns/worker',
    ]);
    expect(withBudgetPeers(POLICIES, policiesReferring(POLICIES, deployment('pgbouncer'), 'Deployment'))).toEqual([
      'ns/web',
    ]);
    expect(policiesReferring(POLICIES, { metadata: { name: 'api', namespace: 'other' } }, 'Deployment')).toEqual([]);
  });

  it('a ConfigMap wakes the policies that edit it: PgBouncer config or pool delivery', () => {
    const configMap = (name: string): KubernetesObject => ({ metadata: { name, namespace: 'ns' } });
    const delivered = policy('reports', {
      targetRef: { name: 'reports' },
      delivery: { mode: 'ConfigMap', configMapRef: { name: 'reports-pools' } },
    });
    const policies = new MemoryStore([API, WORKER, WEB, delivered]);
    expect(policiesReferring(policies, configMap('pgb'), 'ConfigMap')).toEqual(['ns/web']);
    expect(policiesReferring(policies, configMap('reports-pools'), 'ConfigMap')).toEqual(['ns/reports']);
    expect(policiesReferring(policies, configMap('unrelated'), 'ConfigMap')).toEqual([]);
  });

  it('names the budgets of the woken policies', () => {
    expect(budgetsOf(POLICIES, ['ns/worker'])).toEqual(['ns/db']);
    expect(budgetsOf(POLICIES, ['ns/web'])).toEqual([]);
  });

  it('a budget wakes the policies drawing from it', () => {
    expect(policiesOfBudget(POLICIES, { metadata: { name: 'db', namespace: 'ns' } })).toEqual(['ns/api', 'ns/worker']);
    expect(policiesOfBudget(POLICIES, { metadata: { name: 'db', namespace: 'other' } })).toEqual([]);
  });
});

/** A source whose changes the test fires by hand. */
class ManualSource implements WatchSource<KubernetesObject> {
  private readonly handlers: Array<(object: KubernetesObject) => void> = [];
  onChange(handler: (object: KubernetesObject) => void): void {
    this.handlers.push(handler);
  }
  fire(object: KubernetesObject): void {
    for (const handler of this.handlers) handler(object);
  }
}

function recordingQueues(): KeyQueues & { added: Record<keyof KeyQueues, PolicyKey[]> } {
  const added: Record<keyof KeyQueues, PolicyKey[]> = { policies: [], budgets: [] };
  return {
    added,
    policies: { add: (key) => added.policies.push(key) },
    budgets: { add: (key) => added.budgets.push(key) },
  };
}

describe('watch', () => {
  it('queues the mapped keys of a change that passes the predicate, in the queue current at the change', () => {
    const source = new ManualSource();
    let queues = recordingQueues();
    const first = queues;
    watch({
      source,
      predicate: (o) => o.metadata?.name !== 'ignored',
      keys: (o) => [`ns/${o.metadata?.name ?? ''}`],
      queue: 'budgets',
    }).connect(() => queues);
    source.fire({ metadata: { name: 'db' } });
    source.fire({ metadata: { name: 'ignored' } });
    queues = recordingQueues();
    source.fire({ metadata: { name: 'cache' } });
    expect(first.added).toEqual({ policies: [], budgets: ['ns/db'] });
    expect(queues.added).toEqual({ policies: [], budgets: ['ns/cache'] });
  });
});

describe('whenDeleted', () => {
  it('forgets only the objects a change shows gone from the cache', () => {
    const source = new ManualSource();
    const forgotten: PolicyKey[] = [];
    whenDeleted(
      source,
      (o) => o.metadata?.name === 'api',
      (key) => forgotten.push(key),
    );
    source.fire(API);
    source.fire(WORKER);
    expect(forgotten).toEqual(['ns/worker']);
  });
});

describe('watch with before', () => {
  it('queues the keys only once `before` has resolved', async () => {
    const source = new ManualSource();
    const queues = recordingQueues();
    let release: () => void = () => undefined;
    watch({
      source,
      before: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
      keys: ownKey,
      queue: 'policies',
    }).connect(() => queues);
    source.fire(API);
    await flushMicrotasks();
    expect(queues.added.policies).toEqual([]);
    release();
    await flushMicrotasks();
    expect(queues.added.policies).toEqual(['ns/api']);
  });
});

describe('NamedObjects', () => {
  /** Records holds and releases; `wanted` as the index would say after the change. */
  function recordingCache(): HoldingCache & { held: string[]; released: string[] } {
    const held: string[] = [];
    const released: string[] = [];
    return {
      held,
      released,
      hold: (namespace, name) => {
        held.push(`${namespace}/${name}`);
        return Promise.resolve();
      },
      release: (namespace, name) => {
        released.push(`${namespace}/${name}`);
      },
    };
  }
  const setup = () => {
    const caches = { deployments: recordingCache(), configMaps: recordingCache() };
    const named = new NamedObjects(caches, (p) => ({
      deployments: deploymentsNamedBy(p),
      configMaps: configMapsNamedBy(p),
    }));
    return { caches, named };
  };

  it('holds what a policy names: target, PgBouncer rollout and ConfigMap', async () => {
    const { caches, named } = setup();
    await named.hold(WEB);
    expect(caches.deployments.held).toEqual(['ns/web', 'ns/pgbouncer']);
    expect(caches.configMaps.held).toEqual(['ns/pgb']);
  });

  it('releases what a changed or deleted policy no longer names', () => {
    const { caches, named } = setup();
    named.onPolicyChange(WEB, true);
    named.onPolicyChange(policy('web', { targetRef: { name: 'web-v2' } }), true);
    expect(caches.deployments.released).toEqual(['ns/web', 'ns/pgbouncer']);
    expect(caches.configMaps.released).toEqual(['ns/pgb']);
    named.onPolicyChange(policy('web', { targetRef: { name: 'web-v2' } }), false);
    expect(caches.deployments.released).toEqual(['ns/web', 'ns/pgbouncer', 'ns/web-v2']);
  });
});
