import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AutoscalingV2Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
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
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';

// Connection budgets end to end: two PoolPolicies on a real API server draw from one
// ConnectionBudget while their utilization (scraped by the real Prometheus) asks for far more
// than PostgreSQL accepts. An HPA's maxReplicas is what the budget multiplies by.

const FAST = {
  interval: '1s',
  behavior: { maxStepPercent: 50, scaleUpStabilization: '1s', scaleDownStabilization: '1h', minChangeInterval: '0s' },
};
const budgetApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'connectionbudgets' } as const;

interface BudgetView {
  status?: {
    postgres?: {
      capacity: number;
      allocated: number;
      headroom: number;
      shares: Array<{ policy: string; replicas: number; connections: number }>;
    };
  };
}

describe('ConnectionBudget', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let rollouts: ReturnType<typeof simulateRollouts>;
  const targets: ScrapeTarget[] = [];

  async function app(name: string, replicas: number, pool: number, percent: number, maxSurge?: number): Promise<void> {
    const manifest = deploymentManifest(name, [
      {
        name: 'app',
        env: [
          { name: 'DB_POOL_SIZE', value: String(pool) },
          { name: 'DB_MAX_OVERFLOW', value: String(pool) },
        ],
      },
    ]);
    if (manifest.spec) {
      manifest.spec.replicas = replicas;
      if (maxSurge !== undefined)
        manifest.spec.strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge, maxUnavailable: 1 } };
    }
    await createDeployment(kc, namespace, manifest);
    const target = await startScrapeTarget(`${namespace}-${name}`, { namespace, pod: `${name}-5c6d7-x2x9q` });
    targets.push(target);
    new Gauge({ name: 'shop_db_pool_utilization_percent', help: 'utilization', registers: [target.registry] }).set(
      percent,
    );
  }

  async function hpa(name: string, maxReplicas: number): Promise<void> {
    const autoscaling = kc.makeApiClient(AutoscalingV2Api);
    const body = {
      metadata: { name },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicas: 1,
        maxReplicas,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
        ],
      },
    };
    try {
      const existing = await autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace });
      existing.spec.maxReplicas = maxReplicas;
      await autoscaling.replaceNamespacedHorizontalPodAutoscaler({ name, namespace, body: existing });
    } catch {
      await autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace, body });
    }
  }

  /** Connections the pools of both apps may open: max(replicas, HPA max) × (pool + overflow). */
  async function possibleConnections(maxReplicas: Record<string, number>): Promise<number> {
    let total = 0;
    for (const [name, replicas] of Object.entries(maxReplicas)) {
      const env = envOf(await getDeployment(kc, namespace, name), 'app');
      total += replicas * (Number(env.DB_POOL_SIZE) + Number(env.DB_MAX_OVERFLOW));
    }
    return total;
  }

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'budget');
    rollouts = simulateRollouts(kc, namespace);
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await Promise.all(targets.map((t) => t.stop()));
    await deleteTestNamespace(kc, namespace);
  });

  it('two policies under sustained 90 % never allocate more than maxConnections − reserved over HPA maxReplicas, and a maxReplicas rise shrinks them to fit', async () => {
    await app('cart', 2, 5, 90);
    await app('search', 2, 5, 90);
    await hpa('cart', 3);
    await createBudget(kc, namespace, 'orders-db', { postgres: { maxConnections: 100, reserved: 10 } });
    const database = { poolSize: { min: 5, max: 50 }, maxOverflow: { ratio: 1, min: 0, max: 50 } };
    await createPolicy(kc, namespace, 'cart', {
      targetRef: { name: 'cart' },
      metricsPrefix: 'shop_',
      budgetRef: { name: 'orders-db' },
      database,
      ...FAST,
    });
    await createPolicy(kc, namespace, 'search', {
      targetRef: { name: 'search' },
      metricsPrefix: 'shop_',
      budgetRef: { name: 'orders-db' },
      database,
      ...FAST,
    });

    // Watch the applied values for a while: the sum must stay inside the budget at every moment.
    const observed: number[] = [];
    const both = await eventually(
      async () => {
        observed.push(await possibleConnections({ cart: 3, search: 2 }));
        const [cart, search] = await Promise.all([
          getPolicy(kc, namespace, 'cart'),
          getPolicy(kc, namespace, 'search'),
        ]);
        const limited = (p: typeof cart): boolean => condition(p, 'Limited')?.reason === 'BudgetLimited';
        return limited(cart) && limited(search) ? { cart, search } : undefined;
      },
      60000,
      'both policies to be BudgetLimited',
    );
    for (let i = 0; i < 12; i++) {
      observed.push(await possibleConnections({ cart: 3, search: 2 }));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(Math.max(...observed)).toBeLessThanOrEqual(90);
    expect(Math.max(...observed)).toBeGreaterThan(50); // they did grow from 5/5 (50 connections)
    expect(condition(both.cart, 'Limited')?.message).toMatch(/needs \d+ of \d+ free PostgreSQL connections/);
    expect(condition(both.cart, 'PgBouncerRecommended')).toMatchObject({ status: 'True' });
    expect(condition(both.cart, 'PgBouncerRecommended')?.message).toMatch(/short/);

    const budget = await eventually(
      async () => {
        const b = (await kc
          .makeApiClient(CustomObjectsApi)
          .getNamespacedCustomObject({ ...budgetApi, namespace, name: 'orders-db' })) as BudgetView;
        return b.status?.postgres?.shares.length === 2 ? b : undefined;
      },
      30000,
      'the budget status to list both shares',
    );
    expect(budget.status?.postgres).toMatchObject({ capacity: 90 });
    expect(budget.status?.postgres?.allocated).toBeLessThanOrEqual(90);
    expect(budget.status?.postgres?.headroom).toBe(90 - (budget.status?.postgres?.allocated ?? 0));
    // HPA maxReplicas 3. The rolling update's 25 % surge counts only while a rollout runs, so once
    // the last one completed the share is 3 pods.
    await eventually(
      async () => {
        const b = (await kc
          .makeApiClient(CustomObjectsApi)
          .getNamespacedCustomObject({ ...budgetApi, namespace, name: 'orders-db' })) as BudgetView;
        return b.status?.postgres?.shares.find((s) => s.policy === 'cart')?.replicas === 3 ? true : undefined;
      },
      30000,
      'cart to count 3 replicas once no rollout runs',
    );

    // The HPA may now run 6 cart replicas: the pools must come back inside within a pass.
    await hpa('cart', 6);
    // With 6 cart pods the pools no longer fit: they are brought back at once, and the event says
    // it went faster than the normal step.
    await eventually(
      async () => {
        const events = await kc
          .makeApiClient(CoreV1Api)
          .listNamespacedEvent({ namespace, fieldSelector: 'reason=PoolResized' });
        return events.items.some((e) => /faster than the normal step/.test(e.message ?? '')) ? true : undefined;
      },
      30000,
      'a budget correction event',
    );
    await eventually(
      async () => ((await possibleConnections({ cart: 6, search: 2 })) <= 90 ? true : undefined),
      30000,
      'the pools to fit 6 cart replicas',
    );
    for (const name of ['cart', 'search']) {
      expect(Number(envOf(await getDeployment(kc, namespace, name), 'app').DB_POOL_SIZE)).toBeGreaterThanOrEqual(5);
    }
  });

  it('a missing budget holds growth (BudgetNotFound) until it exists', async () => {
    await app('lonely', 1, 10, 95);
    await createPolicy(kc, namespace, 'lonely', {
      targetRef: { name: 'lonely' },
      metricsPrefix: 'shop_',
      budgetRef: { name: 'nowhere' },
      database: { poolSize: { min: 5, max: 50 } },
      ...FAST,
    });
    const p = await eventually(
      async () => {
        const x = await getPolicy(kc, namespace, 'lonely');
        return condition(x, 'Limited')?.reason === 'BudgetNotFound' ? x : undefined;
      },
      30000,
      'Limited=BudgetNotFound',
    );
    expect(condition(p, 'Limited')?.message).toMatch(/ConnectionBudget nowhere not found/);
    expect(envOf(await getDeployment(kc, namespace, 'lonely'), 'app').DB_POOL_SIZE).toBe('10');
  });

  it('PgBouncer mode: the app side counts against max_client_conn, the server side against PostgreSQL', async () => {
    // No surge here, so the arithmetic below is about replicas alone.
    await app('web', 3, 20, 60, 0);
    const pgbouncerManifest = deploymentManifest('pgbouncer', [{ name: 'pgbouncer' }]);
    if (pgbouncerManifest.spec) pgbouncerManifest.spec.strategy = { type: 'Recreate' };
    await createDeployment(kc, namespace, pgbouncerManifest);
    const ini =
      '[databases]\nweb = host=pg dbname=web\n\n[pgbouncer]\ndefault_pool_size = 20\nmax_client_conn = 100\nreserve_pool_size = 5\n';
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'pgbouncer-config' }, data: { 'pgbouncer.ini': ini } },
    });
    const pgTarget = await startScrapeTarget(`${namespace}-pgb`, { namespace, pod: 'pgbouncer-1' });
    targets.push(pgTarget);
    new Gauge({ name: 'web_pgbouncer_utilization', help: 'utilization', registers: [pgTarget.registry] }).set(95);
    await createBudget(kc, namespace, 'web-db', { postgres: { maxConnections: 33, reserved: 3 } });
    await createPolicy(kc, namespace, 'web', {
      targetRef: { name: 'web' },
      metricsPrefix: 'shop_',
      budgetRef: { name: 'web-db' },
      database: { poolSize: { min: 5, max: 50 }, maxOverflow: { ratio: 1, min: 0, max: 50 } },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 100, ratio: 5 },
        utilization: 'max(web_pgbouncer_utilization{namespace="$namespace"})',
        rolloutRef: { name: 'pgbouncer' },
      },
      ...FAST,
    });
    // App side: 3 replicas × (pool + overflow) ≤ max_client_conn 100 × 1 PgBouncer → pool ≤ 16,
    // though 3 × 40 = 120 app connections would never fit the 30-connection PostgreSQL budget.
    // Server side: default_pool_size + reserve 5 ≤ 30 → default_pool_size ≤ 25 while 95 % asks for more.
    const p = await eventually(
      async () => {
        const x = await getPolicy(kc, namespace, 'web');
        return x.status?.current?.DB_POOL_SIZE === 16 && x.status.current.default_pool_size === 25 ? x : undefined;
      },
      60000,
      'DB_POOL_SIZE 16 and default_pool_size 25',
    );
    expect(p.status?.current).toMatchObject({ DB_POOL_SIZE: 16, DB_MAX_OVERFLOW: 16, default_pool_size: 25 });
    const reasons = ((p.status?.history ?? []) as Array<{ reason: string }>).map((h) => h.reason);
    expect(reasons).toContainEqual(expect.stringMatching(/DB_POOL_SIZE 20→16.*PgBouncer client/));
    expect(reasons).toContainEqual(expect.stringMatching(/default_pool_size \d+→25.*PostgreSQL/));
    expect(condition(p, 'PgBouncerRecommended')).toBeUndefined();
  });
  it('PgBouncer FillToBudget: one PgBouncer fills the budget alone, and gives half back when a second one claims it', async () => {
    await createBudget(kc, namespace, 'shared-pgbouncers', { postgres: { maxConnections: 43, reserved: 3 } });
    const pgbouncerFor = async (name: string): Promise<void> => {
      await createDeployment(kc, namespace, deploymentManifest(name, [{ name: 'app' }]));
      await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
        namespace,
        body: {
          metadata: { name: `${name}-pgbouncer` },
          data: { 'pgbouncer.ini': `[pgbouncer]\ndefault_pool_size = 10\nmax_client_conn = 100\n` },
        },
      });
      const target = await startScrapeTarget(`${namespace}-${name}-pgb`, { namespace, pod: `${name}-pgbouncer-1` });
      targets.push(target);
      // Low utilization: a FillToBudget pool fills its share whatever the load; the sample only gates it.
      new Gauge({ name: 'fill_pgbouncer_utilization', help: 'utilization', registers: [target.registry] }).set(10);
      await createPolicy(kc, namespace, name, {
        targetRef: { name },
        budgetRef: { name: 'shared-pgbouncers' },
        pgbouncer: {
          configMapRef: { name: `${name}-pgbouncer` },
          defaultPoolSize: { mode: 'FillToBudget', min: 10, max: 40 },
          maxClientConn: { min: 100, max: 400, ratio: 5 },
          utilization: `max(fill_pgbouncer_utilization{namespace="$namespace",pod="${name}-pgbouncer-1"})`,
        },
        ...FAST,
      });
    };
    const poolSizes = async (): Promise<Record<string, unknown>> => {
      const sizes: Record<string, unknown> = {};
      for (const name of ['fill-a', 'fill-b']) {
        const map = await kc
          .makeApiClient(CoreV1Api)
          .readNamespacedConfigMap({ name: `${name}-pgbouncer`, namespace })
          .catch(() => undefined);
        sizes[name] = map?.data?.['pgbouncer.ini']?.match(/default_pool_size = (\d+)/)?.[1];
      }
      return sizes;
    };

    // Alone: 40 usable, all of it within max 40, in one change; max_client_conn follows × 5.
    await pgbouncerFor('fill-a');
    await eventually(
      async () => ((await poolSizes())['fill-a'] === '40' ? true : undefined),
      60000,
      'fill-a at default_pool_size 40',
    );
    const alone = await getPolicy(kc, namespace, 'fill-a');
    expect(alone.status?.current).toMatchObject({ default_pool_size: 40, max_client_conn: 200 });
    expect(((alone.status?.history ?? []) as Array<{ reason: string }>).map((h) => h.reason)).toContainEqual(
      expect.stringMatching(/default_pool_size 10→40.*per server pool: the PostgreSQL budget's share/),
    );

    // A second one: the fair share is 10 + (40 − 20) / 2 = 20 each; fill-a comes down at once,
    // fill-b grows into what it gave back, and together they never stay above the 40.
    await pgbouncerFor('fill-b');
    await eventually(
      async () => {
        const sizes = await poolSizes();
        return sizes['fill-a'] === '20' && sizes['fill-b'] === '20' ? true : undefined;
      },
      60000,
      'fill-a and fill-b at default_pool_size 20',
    );
    const [a, b] = await Promise.all([getPolicy(kc, namespace, 'fill-a'), getPolicy(kc, namespace, 'fill-b')]);
    expect(a.status?.current).toMatchObject({ default_pool_size: 20, max_client_conn: 100 });
    expect(b.status?.current).toMatchObject({ default_pool_size: 20, max_client_conn: 100 });
    expect(((a.status?.history ?? []) as Array<{ reason: string }>).map((h) => h.reason)).toContainEqual(
      expect.stringMatching(/default_pool_size 40→20/),
    );
  });
});
