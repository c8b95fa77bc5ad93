import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import { Counter, Gauge } from 'prom-client';
import type { RunningController } from '../../src/main.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import {
  condition,
  createBudget,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  installCrds,
  type PolicyView,
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { morePasses } from './support/suite.js';

// FillToBudget end to end on the real API server and the real Prometheus: two pods of one
// Deployment (maxSurge 0: one pod serves during a rollout) export the app's pool metrics; the
// ConnectionBudget leaves 97 PostgreSQL connections, 48 per pod.

/**
 * Creates ConnectionBudget `db` (PostgreSQL 100, 3 reserved: 97 usable) in `namespace` and waits
 * until Prometheus has the checked-out series of `pods` pods, so the operator's first look finds them.
 */
async function budgetAndScrapes(kc: KubeConfig, namespace: string, pods: number): Promise<void> {
  await createBudget(kc, namespace, 'db', { postgres: { maxConnections: 100, reserved: 3 } });
  await eventually(
    async () =>
      (await queryVector(`count(shop_db_pool_checked_out{namespace="${namespace}"})`))[0]?.value[1] === String(pods)
        ? true
        : undefined,
    30000,
    `Prometheus to scrape ${pods} pods`,
  );
}

interface Pod {
  readonly target: ScrapeTarget;
  readonly checkedOut: Gauge;
  readonly waiters: Gauge;
  readonly timeouts: Counter;
  readonly utilization: Gauge;
}

describe('FillToBudget', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let rollouts: ReturnType<typeof simulateRollouts>;
  const pods: Pod[] = [];

  async function startPod(name: string): Promise<Pod> {
    const target = await startScrapeTarget(`${namespace}-${name}`, { namespace, pod: name });
    const registers = [target.registry];
    const pod = {
      target,
      checkedOut: new Gauge({ name: 'shop_db_pool_checked_out', help: 'in use', registers }),
      waiters: new Gauge({ name: 'shop_db_pool_waiters', help: 'waiting', registers }),
      timeouts: new Counter({ name: 'shop_db_pool_timeouts_total', help: 'timeouts', registers }),
      utilization: new Gauge({ name: 'shop_db_pool_utilization_percent', help: 'utilization', registers }),
    };
    pods.push(pod);
    return pod;
  }

  /** Every pod reports `inUse` checked-out connections (and `waiters`) from now on. */
  function demand(inUse: number, waiters = 0): void {
    for (const pod of pods) {
      pod.checkedOut.set(inUse);
      pod.waiters.set(waiters);
      pod.utilization.set(Math.min(100, (100 * inUse) / 48));
    }
  }

  async function settings(): Promise<{ pool: number; overflow: number; generation: number }> {
    const deployment = await getDeployment(kc, namespace, 'api');
    const env = envOf(deployment, 'app');
    return {
      pool: Number(env.DB_POOL_SIZE),
      overflow: Number(env.DB_MAX_OVERFLOW),
      generation: deployment.metadata?.generation ?? 0,
    };
  }

  const limitedReason = (p: PolicyView): string | undefined => condition(p, 'Limited')?.reason;

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'fill');
    rollouts = simulateRollouts(kc, namespace);
    const manifest = deploymentManifest('api', [
      {
        name: 'app',
        env: [
          { name: 'DB_POOL_SIZE', value: '10' },
          { name: 'DB_MAX_OVERFLOW', value: '20' },
        ],
      },
    ]);
    if (manifest.spec) {
      manifest.spec.replicas = 2;
      manifest.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
    }
    await createDeployment(kc, namespace, manifest);
    await startPod('api-5c6d7f8b9-x2x9q');
    await startPod('api-5c6d7f8b9-fghjk');
    demand(2);
    // Prometheus has both pods' series before the operator looks.
    await budgetAndScrapes(kc, namespace, 2);
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await Promise.all(pods.map((p) => p.target.stop()));
    await deleteTestNamespace(kc, namespace);
  });

  it('fills capacity to the budget share in one rollout, defers a pool change the rollout could not carry, then follows demand once it falls, never shrinking while waiters are seen', async () => {
    await createPolicy(kc, namespace, 'api', {
      targetRef: { name: 'api' },
      metricsPrefix: 'shop_',
      budgetRef: { name: 'db' },
      interval: '1s',
      database: { poolSize: { min: 5, max: 40 }, maxOverflow: { mode: 'FillToBudget', min: 0, max: 80 } },
      thresholds: { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 },
      behavior: { scaleUpStabilization: '2s', scaleDownStabilization: '3s', minChangeInterval: '0s' },
    });

    // Light demand: capacity 30 → 48 per pod (97 / 2) at once, poolSize to its min; one rollout.
    await eventually(
      async () => ((await settings()).overflow === 43 ? true : undefined),
      60000,
      'capacity to fill the share',
    );
    expect(await settings()).toEqual({ pool: 5, overflow: 43, generation: 2 });
    // The Deployment is written before the status that explains it: wait for that status.
    const filled = await eventually(
      async () => {
        const reason = (await getPolicy(kc, namespace, 'api')).status?.lastChange?.reason;
        return reason?.includes('capacity 30→48') ? reason : undefined;
      },
      30000,
      'the status to record the fill',
    );
    expect(filled).toMatch(/capacity 30→48 per process.*in one rollout/);
    // increase() over the timeouts counter needs two scrapes; at the first pass there may be one.
    expect(filled).toContain('signals: db_pool_checked_out, db_pool_waiters');
    await morePasses(operator, 5);
    expect(await settings()).toEqual({ pool: 5, overflow: 43, generation: 2 });

    // Peak demand, 40 per pod: poolSize would follow, but during the rollout one pod would carry
    // 80 connections on 48: deferred, nothing written.
    demand(40);
    const deferred = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'api');
        return limitedReason(p) === 'RestartDeferred' ? p : undefined;
      },
      60000,
      'RestartDeferred',
    );
    expect(condition(deferred, 'Limited')?.message).toContain('would leave 1 of 2 processes');
    await morePasses(operator, 5);
    expect(await settings()).toEqual({ pool: 5, overflow: 43, generation: 2 });

    // Demand falls to 12 per pod: safe to roll; poolSize follows typical demand, capacity stays 48.
    demand(12);
    await eventually(async () => ((await settings()).pool > 5 ? true : undefined), 60000, 'poolSize to follow demand');
    const followed = await settings();
    expect(followed.pool + followed.overflow).toBe(48);
    expect(followed.generation).toBe(3);
    const followedChange = await eventually(
      async () => {
        const reason = (await getPolicy(kc, namespace, 'api')).status?.lastChange?.reason;
        return reason?.includes(`poolSize 5→${followed.pool}`) ? reason : undefined;
      },
      30000,
      'the status to record the change that followed demand',
    );
    expect(followedChange).toContain('signals: db_pool_checked_out, db_pool_waiters, db_pool_timeouts_total');
    expect(limitedReason(await getPolicy(kc, namespace, 'api'))).not.toBe('RestartDeferred');

    // Demand drops to 1 while waiters are reported: no shrink.
    demand(1, 3);
    const saturated = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'api');
        return limitedReason(p) === 'Saturated' ? p : undefined;
      },
      60000,
      'Saturated',
    );
    expect(condition(saturated, 'Limited')?.message).toContain('waiters or timeouts were seen');
    await morePasses(operator, 5);
    expect((await settings()).pool).toBe(followed.pool);
  });
});

describe('FillToBudget: two apps on one budget share it by demand', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let rollouts: ReturnType<typeof simulateRollouts>;
  const targets: ScrapeTarget[] = [];
  const checkedOut = new Map<string, Gauge[]>();

  async function app(name: string, hash: string): Promise<void> {
    const manifest = deploymentManifest(name, [
      {
        name: 'app',
        env: [
          { name: 'DB_POOL_SIZE', value: '10' },
          { name: 'DB_MAX_OVERFLOW', value: '14' },
        ],
      },
    ]);
    if (manifest.spec) {
      manifest.spec.replicas = 2;
      manifest.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } };
    }
    await createDeployment(kc, namespace, manifest);
    const gauges: Gauge[] = [];
    for (const suffix of ['x2x9q', 'k8s4w']) {
      const target = await startScrapeTarget(`${namespace}-${name}-${suffix}`, {
        namespace,
        pod: `${name}-${hash}-${suffix}`,
      });
      targets.push(target);
      gauges.push(new Gauge({ name: 'shop_db_pool_checked_out', help: 'in use', registers: [target.registry] }));
      new Gauge({ name: 'shop_db_pool_utilization_percent', help: 'utilization', registers: [target.registry] }).set(
        10,
      );
    }
    checkedOut.set(name, gauges);
  }

  const demand = (name: string, inUse: number): void => {
    for (const g of checkedOut.get(name) ?? []) g.set(inUse);
  };

  /** Connections both apps' pools may open: 2 replicas × (pool + overflow) each. */
  async function capacities(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const name of ['orders', 'reports']) {
      const env = envOf(await getDeployment(kc, namespace, name), 'app');
      out[name] = Number(env.DB_POOL_SIZE) + Number(env.DB_MAX_OVERFLOW);
    }
    return out;
  }

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'share');
    rollouts = simulateRollouts(kc, namespace);
    await app('orders', '7c9d5b6f4');
    await app('reports', '5b8f9c7d2');
    demand('orders', 4);
    demand('reports', 4);
    await budgetAndScrapes(kc, namespace, 4);
  });

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await Promise.all(targets.map((t) => t.stop()));
    await deleteTestNamespace(kc, namespace);
  });

  it('splits evenly while demand is even, moves capacity to the app at its peak, and never holds more than the budget', async () => {
    const database = { poolSize: { min: 5, max: 40 }, maxOverflow: { mode: 'FillToBudget', min: 0, max: 80 } };
    const common = {
      metricsPrefix: 'shop_',
      budgetRef: { name: 'db' },
      interval: '1s',
      database,
      behavior: { scaleUpStabilization: '1s', scaleDownStabilization: '2s', minChangeInterval: '0s' },
    };
    await createPolicy(kc, namespace, 'orders', { targetRef: { name: 'orders' }, ...common });
    await createPolicy(kc, namespace, 'reports', { targetRef: { name: 'reports' }, ...common });
    // A budget counts the pools of the policies that draw from it: both exist before the first pass
    // (an app without a policy yet is not counted, and the first policy would take its share).
    operator = await startOperator(namespace);

    const observed: number[] = [];
    const total = async (): Promise<Record<string, number>> => {
      const c = await capacities();
      observed.push(2 * ((c.orders ?? 0) + (c.reports ?? 0)));
      return c;
    };
    // Even demand: 97 usable over four processes, 24 each.
    await eventually(
      async () => {
        const c = await total();
        return c.orders === 24 && c.reports === 24 ? true : undefined;
      },
      60000,
      'an even split of 24 per process',
    );

    // orders at its peak, reports idle: the capacity follows the demand.
    demand('orders', 40);
    demand('reports', 2);
    const moved = await eventually(
      async () => {
        const c = await total();
        return (c.orders ?? 0) >= 36 && (c.reports ?? 0) <= 12 ? c : undefined;
      },
      60000,
      'capacity to move to orders',
    );
    expect(2 * ((moved.orders ?? 0) + (moved.reports ?? 0))).toBeLessThanOrEqual(97);
    for (let i = 0; i < 8; i++) await total();
    expect(Math.max(...observed)).toBeLessThanOrEqual(97);
  });
});
