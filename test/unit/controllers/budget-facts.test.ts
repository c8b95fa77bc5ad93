import { describe, expect, it } from '@jest/globals';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { parsePoolPolicySpec, type PoolPolicySpec } from '../../../src/api/v1alpha1/poolpolicy.js';
import { MemoryStore } from '../../support/memory-store.js';
import {
  AppliedLedger,
  readBudgetFacts,
  replicasOf,
  type CapacityQuery,
} from '../../../src/controllers/connectionbudget/facts.js';
import type { ClusterStores } from '../../../src/controllers/stores.js';
import { sectionBudgetsOf } from '../../../src/domain/budget.js';

function spec(raw: unknown): PoolPolicySpec {
  const parsed = parsePoolPolicySpec(raw);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.spec;
}

/** Without a surge, so the arithmetic below is about replicas; the surge has its own table. */
const deployment = (
  name: string,
  replicas: number,
  strategy: NonNullable<V1Deployment['spec']>['strategy'] = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0 } },
): V1Deployment => ({ metadata: { name, namespace: 'ns' }, spec: { replicas, selector: {}, template: {}, strategy } });
const hpa = (target: string, maxReplicas: number): V2HorizontalPodAutoscaler => ({
  metadata: { name: target, namespace: 'ns' },
  spec: { scaleTargetRef: { kind: 'Deployment', name: target }, maxReplicas },
});
const budget = (specBody: unknown): KubernetesObject => ({
  apiVersion: 'poolpilot.io/v1alpha1',
  kind: 'ConnectionBudget',
  metadata: { name: 'db', namespace: 'ns' },
  ...{ spec: specBody },
});

/** PoolPolicy `web` on budget `db` (database 5–50, overflow ratio 1), with `spec` added and `status`. */
const webPolicy = (spec: Record<string, unknown>, status: Record<string, unknown>) => ({
  apiVersion: 'poolpilot.io/v1alpha1',
  kind: 'PoolPolicy',
  metadata: { name: 'web', namespace: 'ns' },
  spec: {
    targetRef: { name: 'web' },
    budgetRef: { name: 'db' },
    database: { poolSize: { min: 5, max: 50 }, maxOverflow: { ratio: 1, min: 0, max: 50 } },
    ...spec,
  },
  status,
});

function stores(over: Partial<ClusterStores> = {}): ClusterStores {
  return {
    budgets: new MemoryStore([budget({ postgres: { maxConnections: 100, reserved: 10 } })]),
    policies: new MemoryStore(),
    deployments: new MemoryStore([deployment('api', 2)]),
    hpas: new MemoryStore<V2HorizontalPodAutoscaler>(),
    configMaps: new MemoryStore<V1ConfigMap>(),
    ...over,
  };
}

const failingQuery: CapacityQuery = () =>
  Promise.resolve({ valid: false, problem: 'NoData', message: 'returned no series' });
const SELF = {
  policy: 'ns/api',
  namespace: 'ns',
  spec: spec({
    targetRef: { name: 'api' },
    budgetRef: { name: 'db' },
    database: { poolSize: { min: 5, max: 50 }, maxOverflow: { ratio: 1, min: 0, max: 50 } },
  }),
  wanted: { DB_POOL_SIZE: 40 },
  current: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 10 },
};

describe('replicasOf', () => {
  it.each([
    ['the Deployment alone', [], 2],
    ['an HPA that may run more', [hpa('api', 6)], 6],
    ['an HPA that runs fewer than spec says', [hpa('api', 1)], 2],
    ['an HPA on another Deployment', [hpa('web', 9)], 2],
  ])('counts %s', (_label, hpas, expected) => {
    expect(replicasOf(stores({ hpas: new MemoryStore(hpas) }), 'ns', 'api')).toBe(expected);
  });
});

describe('replicasOf: the surge of a rolling update counts while a rollout runs (no status yet: one is running)', () => {
  it.each([
    ['the default 25 % of 4, rounded up', undefined, 4, 5],
    ['25 % of 2, rounded up', undefined, 2, 3],
    ['maxSurge 2', { type: 'RollingUpdate', rollingUpdate: { maxSurge: 2 } }, 4, 6],
    ['maxSurge "50%"', { type: 'RollingUpdate', rollingUpdate: { maxSurge: '50%' } }, 4, 6],
    ['Recreate', { type: 'Recreate' }, 4, 4],
  ])('%s', (_label, strategy, replicas, expected) => {
    const d: V1Deployment = {
      metadata: { name: 'api', namespace: 'ns' },
      spec: { replicas, selector: {}, template: {}, ...(strategy ? { strategy } : {}) },
    };
    expect(replicasOf(stores({ deployments: new MemoryStore([d]) }), 'ns', 'api')).toBe(expected);
    expect(replicasOf(stores({ deployments: new MemoryStore([d]) }), 'ns', 'api', 'withoutSurge')).toBe(replicas);
  });
});

describe('replicasOf: no surge once the rollout completed', () => {
  const completed = { observedGeneration: 3, replicas: 4, updatedReplicas: 4, availableReplicas: 4 };
  it.each([
    ['rollout complete: the surge pods are gone', completed, 4],
    ['a new generation not yet observed: surge counts', { ...completed, observedGeneration: 2 }, 5],
    ['old pods still running beside the new ones: surge counts', { ...completed, replicas: 5 }, 5],
  ])('%s', (_label, status, expected) => {
    const d: V1Deployment = {
      metadata: { name: 'api', namespace: 'ns', generation: 3 },
      spec: { replicas: 4, selector: {}, template: {} },
      status,
    };
    expect(replicasOf(stores({ deployments: new MemoryStore([d]) }), 'ns', 'api')).toBe(expected);
  });
});

/** What a reconcile does: read the facts, then the pure arithmetic. */
async function sectionBudgets(
  s: ClusterStores,
  ledger: AppliedLedger,
  query: CapacityQuery,
  self: typeof SELF,
): Promise<ReturnType<typeof sectionBudgetsOf> | undefined> {
  const facts = await readBudgetFacts(s, ledger, query, self);
  return facts && sectionBudgetsOf(facts, self);
}

describe('readBudgetFacts + sectionBudgetsOf', () => {
  it('caps the database section at what 2 replicas × (pool + overflow) may hold within 90', async () => {
    const result = await sectionBudgets(stores(), new AppliedLedger(), failingQuery, SELF);
    expect(result?.database).toEqual({
      kind: 'cap',
      backend: 'PostgreSQL',
      cap: 22,
      fair: 22,
      limit: 22,
      needs: 160,
      free: 90,
      minimumsFit: true,
    });
  });

  it('allows no growth when the capacity query returns nothing', async () => {
    const s = stores({
      budgets: new MemoryStore([
        budget({ postgres: { maxConnectionsQuery: 'pg_settings_max_connections', reserved: 3 } }),
      ]),
    });
    const result = await sectionBudgets(s, new AppliedLedger(), failingQuery, SELF);
    expect(result?.database).toMatchObject({ kind: 'unknown', reason: 'BudgetQueryFailed' });
    expect(result?.database?.kind === 'unknown' ? result.database.message : '').toMatch(
      /capacity query failed \(NoData\)/,
    );
  });

  it('reports a missing budget by name', async () => {
    const result = await sectionBudgets(
      stores({ budgets: new MemoryStore() }),
      new AppliedLedger(),
      failingQuery,
      SELF,
    );
    expect(result?.database).toMatchObject({ kind: 'unknown', reason: 'BudgetNotFound' });
  });

  it('counts a peer at the larger of its status and what this process just applied', async () => {
    const peer = webPolicy(
      {},
      { current: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 10 }, recommended: { DB_POOL_SIZE: 10 } },
    );
    const s = stores({
      policies: new MemoryStore<KubernetesObject>([peer]),
      deployments: new MemoryStore([deployment('api', 2), deployment('web', 2)]),
    });
    const ledger = new AppliedLedger();
    expect((await sectionBudgets(s, ledger, failingQuery, SELF))?.database).toMatchObject({ free: 50 });
    ledger.record('ns/web', { DB_POOL_SIZE: 15, DB_MAX_OVERFLOW: 15 });
    expect((await sectionBudgets(s, ledger, failingQuery, SELF))?.database).toMatchObject({ free: 30 });
  });

  it("counts what an Env peer's replaced values hold above its new ones while old pods remain, not after", async () => {
    const peer = webPolicy(
      {},
      {
        current: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 10 },
        lastChange: {
          time: '2026-11-25T10:00:00Z',
          reason: 'ScaledDown',
          changes: [
            { setting: 'DB_POOL_SIZE', from: 15, to: 10 },
            { setting: 'DB_MAX_OVERFLOW', from: 15, to: 10 },
          ],
        },
      },
    );
    const web = (status: V1Deployment['status']): V1Deployment => ({
      metadata: { name: 'web', namespace: 'ns', generation: 2 },
      spec: deployment('web', 2).spec,
      status,
    });
    const at = (status: V1Deployment['status']) =>
      stores({
        policies: new MemoryStore<KubernetesObject>([peer]),
        deployments: new MemoryStore([deployment('api', 2), web(status)]),
      });
    // An old pod remains: each process may still hold 15 + 15, 5 + 5 above the new values: 90 − 2 × 20 − 2 × 10.
    const rolling = { observedGeneration: 2, replicas: 2, updatedReplicas: 1, availableReplicas: 1 };
    expect((await sectionBudgets(at(rolling), new AppliedLedger(), failingQuery, SELF))?.database).toMatchObject({
      free: 30,
    });
    // A scale-up (a new pod not available yet) leaves no old pod: nothing extra.
    const scaling = { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2 };
    expect((await sectionBudgets(at(scaling), new AppliedLedger(), failingQuery, SELF))?.database).toMatchObject({
      free: 50,
    });
    const done = { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 };
    expect((await sectionBudgets(at(done), new AppliedLedger(), failingQuery, SELF))?.database).toMatchObject({
      free: 50,
    });
  });

  it('counts a Paused peer at the values its app runs: its pools stay open', async () => {
    const peer = webPolicy({ mode: 'Paused' }, { current: { DB_POOL_SIZE: 15, DB_MAX_OVERFLOW: 15 } });
    const web = (env: Array<{ name: string; value: string }>): V1Deployment => ({
      metadata: { name: 'web', namespace: 'ns' },
      spec: {
        replicas: 2,
        selector: {},
        template: { spec: { containers: [{ name: 'app', env }] } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0 } },
      },
    });
    const free = async (object: KubernetesObject & { status: unknown }, env: Array<{ name: string; value: string }>) =>
      (
        await sectionBudgets(
          stores({
            policies: new MemoryStore<KubernetesObject>([object]),
            deployments: new MemoryStore([deployment('api', 2), web(env)]),
          }),
          new AppliedLedger(),
          failingQuery,
          SELF,
        )
      )?.database;
    // Its status: 90 − 2 × (15 + 15).
    expect(await free(peer, [])).toMatchObject({ free: 30 });
    // Paused without a status, its env set by hand: 90 − 2 × (20 + 20).
    const env = [
      { name: 'DB_POOL_SIZE', value: '20' },
      { name: 'DB_MAX_OVERFLOW', value: '20' },
    ];
    expect(await free({ ...peer, status: {} }, env)).toMatchObject({ free: 10 });
  });

  it("counts a ConfigMap peer's old pools whole when it swaps them, their excess when it resizes in place", async () => {
    const peer = (reload: string) =>
      webPolicy(
        { delivery: { mode: 'ConfigMap', configMapRef: { name: 'web-pools' }, reload } },
        {
          current: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 10 },
          delivery: {
            configMap: 'web-pools',
            key: 'pools.env',
            writtenAt: '2026-11-25T10:00:00Z',
            written: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 10 },
            replaced: { DB_POOL_SIZE: 15, DB_MAX_OVERFLOW: 15 },
          },
        },
      );
    const free = async (reload: string) =>
      (
        await sectionBudgets(
          stores({
            policies: new MemoryStore<KubernetesObject>([peer(reload)]),
            deployments: new MemoryStore([deployment('api', 2), deployment('web', 2)]),
          }),
          new AppliedLedger(),
          failingQuery,
          SELF,
        )
      )?.database;
    // Swap: 90 − 2 × (10 + 10) − 2 × (15 + 15). Resize: 90 − 2 × (10 + 10) − 2 × (5 + 5).
    expect(await free('Swap')).toMatchObject({ free: -10 });
    expect(await free('Resize')).toMatchObject({ free: 30 });
  });

  it('is undefined for a policy without budgetRef', async () => {
    expect(
      await sectionBudgets(stores(), new AppliedLedger(), failingQuery, {
        ...SELF,
        spec: spec({ targetRef: { name: 'api' }, database: { poolSize: { min: 5, max: 50 } } }),
      }),
    ).toBeUndefined();
  });
});

describe('AppliedLedger', () => {
  it('forgets a value once the stored status shows it', () => {
    const ledger = new AppliedLedger();
    ledger.record('ns/a', { X: 30 });
    expect(ledger.currentOf('ns/a', { X: 20 })).toEqual({ X: 30 });
    expect(ledger.currentOf('ns/a', { X: 30 })).toEqual({ X: 30 });
    expect(ledger.currentOf('ns/a', { X: 20 })).toEqual({ X: 20 }); // forgotten: the store is the truth again
  });
});
