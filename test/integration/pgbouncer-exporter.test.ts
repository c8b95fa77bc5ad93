/**
 * The PgBouncer loop on real metrics: a real PgBouncer in front of the demo's real PostgreSQL,
 * clients holding real server connections through it, Debian's prometheus-pgbouncer-exporter and
 * prometheus-postgres-exporter scraped by the real local Prometheus, and the operator against the
 * real API server. A PoolPolicy whose pgbouncer section has no `utilization` uses the built-in
 * query over the PgBouncer exporter's names; a ConnectionBudget takes PostgreSQL's
 * max_connections from `pg_settings_max_connections`. With the exporter down the policy says
 * MetricsAvailable=False and writes nothing, even while PgBouncer's pool is saturated; once the
 * exporter is back it sees the saturation and raises default_pool_size. Then the loop is closed:
 * what poolpilot writes to the ConfigMap is copied into PgBouncer's own ini and RELOADed (as the
 * kubelet and a reload sidecar would), the exporter reports the new pool size, and growth stops
 * once the utilization PgBouncer reports is inside the band.
 * Needs the Debian packages pgbouncer, postgresql, postgresql-client, redis-server,
 * prometheus-postgres-exporter and prometheus-pgbouncer-exporter (`make install`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { readPgbouncerSettings, setPgbouncerSettings } from '../../src/domain/pgbouncer-ini.js';
import type { RunningController } from '../../src/main.js';
import { startDemoBackends, type DemoBackends } from './support/demo-backends.js';
import { startPgbouncerExporter, startPostgresExporter, type RunningExporter } from './support/exporters.js';
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
  getPolicy,
  installCrds,
  operatorMetric,
  type PolicyView,
  startOperator,
} from './support/operator.js';
import { tearDown } from './support/process.js';
import { appPgbouncerIni, startPgbouncer, PSQL_BIN, type RunningPgbouncer } from './support/pgbouncer.js';
import { eventually, queryVector, registerScrapeTarget } from './support/prometheus.js';
import { FAST, morePasses, policyWhen } from './support/suite.js';

const budgetApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'connectionbudgets' } as const;
const THRESHOLDS = { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 };
const OWNED = ['default_pool_size', 'max_client_conn'];

/** The [pgbouncer] settings poolpilot owns; the ConfigMap and the real PgBouncer start with them. */
const POOLER = 'default_pool_size = 4\nmax_client_conn = 100\n';

interface BudgetView {
  status?: { postgres?: { capacity: number } };
}

describe('PgBouncer and PostgreSQL exporters, scraped by the real Prometheus, drive the operator', () => {
  let kc: KubeConfig;
  let namespace: string;
  let backends: DemoBackends;
  let bouncer: RunningPgbouncer;
  let pgbouncerExporter: RunningExporter;
  let postgresExporter: RunningExporter;
  let operator: RunningController;
  const clients: ChildProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];

  /** A client of database `app` through PgBouncer that holds a server connection for `seconds`. */
  function holdConnection(seconds: number): void {
    const client = spawn(
      PSQL_BIN,
      [
        '-X',
        '-w',
        '-h',
        '127.0.0.1',
        '-p',
        String(bouncer.port),
        '-U',
        'admin',
        '-d',
        'app',
        '-qAtc',
        `SELECT pg_sleep(${seconds})`,
      ],
      {
        env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
        stdio: 'ignore',
      },
    );
    clients.push(client);
  }

  /** PgBouncer's SHOW POOLS for database app: active server connections and waiting clients. */
  async function appPool(): Promise<{ active: number; waiting: number }> {
    const row = (await bouncer.adminQuery('SHOW POOLS')).find((r) => r.get('database') === 'app');
    return { active: Number(row?.get('sv_active') ?? 0), waiting: Number(row?.get('cl_waiting') ?? 0) };
  }

  const webWhen = (predicate: (p: PolicyView) => boolean, what: string): Promise<PolicyView> =>
    policyWhen(kc, namespace, 'web', predicate, what, 60_000);

  /**
   * Stands in for the kubelet's ConfigMap sync plus a reload sidecar, every 250 ms until the
   * returned function is called: when the owned settings in the ConfigMap differ from PgBouncer's
   * ini, writes them into the ini and RELOADs.
   */
  function syncPgbouncerFromConfigMap(): () => void {
    let busy = false;
    const sync = async (): Promise<void> => {
      const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
      const wanted = readPgbouncerSettings(cm.data?.['pgbouncer.ini'] ?? '', OWNED);
      if (!wanted.ok) throw new Error(`the ConfigMap's pgbouncer.ini: ${wanted.message}`);
      const edited = setPgbouncerSettings(await readFile(bouncer.iniPath, 'utf8'), wanted.values);
      if (!edited.ok) throw new Error(`PgBouncer's ini: ${edited.message}`);
      if (edited.changed) {
        await writeFile(bouncer.iniPath, edited.text);
        await bouncer.reload();
      }
    };
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      sync()
        .catch((err: unknown) => {
          syncErrors.push(String(err));
        })
        .finally(() => {
          busy = false;
        });
    }, 250);
    return () => {
      clearInterval(timer);
    };
  }
  const syncErrors: string[] = [];
  let stopSync: () => void = () => undefined;

  const configMapVersion = async (): Promise<string> =>
    (await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'pgbouncer-config', namespace })).metadata
      ?.resourceVersion ?? '';

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'pgbexp');
    backends = startDemoBackends();
    cleanups.push(() => {
      backends.stop();
    });
    // A forced server user: clients log in as the admin user PgBouncer's userlist knows, PgBouncer
    // logs in to PostgreSQL as role app.
    bouncer = await startPgbouncer(appPgbouncerIni(backends.env.PG_PORT ?? '', [POOLER]));
    cleanups.push(() => bouncer.stop());
    pgbouncerExporter = await startPgbouncerExporter(bouncer.port, 'admin');
    cleanups.push(() => pgbouncerExporter.stop());
    postgresExporter = await startPostgresExporter(Number(backends.env.PG_PORT));
    cleanups.push(() => postgresExporter.stop());
    cleanups.push(
      registerScrapeTarget(`${namespace}-pgbouncer-exporter`, pgbouncerExporter.address, {
        namespace,
        pod: 'pgbouncer-5d8f9-abcde',
      }),
    );
    cleanups.push(
      registerScrapeTarget(`${namespace}-postgres-exporter`, postgresExporter.address, {
        namespace,
        pod: 'postgres-exporter-0',
      }),
    );
    operator = await startOperator(namespace);
    cleanups.push(() => operator.stop());
  });

  afterAll(async () => {
    await tearDown(clients, cleanups);
    await deleteTestNamespace(kc, namespace);
  });

  it('the exporters are real: the PgBouncer exporter reports the pool PgBouncer has, postgres_exporter max_connections', async () => {
    holdConnection(600);
    holdConnection(600);
    await eventually(
      async () => ((await appPool()).active === 2 ? true : undefined),
      20_000,
      'two server connections active in PgBouncer',
    );
    const text = await eventually(
      async () => {
        const t = await pgbouncerExporter.metrics();
        // Debian's exporter prints every value as a float.
        return t.includes('pgbouncer_active_clients{database="app",user="app"} 2.0') ? t : undefined;
      },
      20_000,
      'the PgBouncer exporter to report 2 clients holding server connections',
    );
    expect(text).toMatch(/^pgbouncer_pool_size\{database="app"\} 4\.0$/m);
    expect(text).toMatch(/^pgbouncer_waiting_clients\{database="app",user="app"\} 0\.0$/m);
    expect(await postgresExporter.metrics()).toMatch(/^pg_settings_max_connections\{[^}]*\} 100$/m);
    // What the operator will read: the real Prometheus has scraped both.
    await eventually(
      async () =>
        (await queryVector(`pgbouncer_active_clients{namespace="${namespace}",database="app"} == 2`)).length === 1
          ? true
          : undefined,
      20_000,
      'Prometheus to have scraped 2 active clients',
    );
    await eventually(
      async () =>
        (await queryVector(`pg_settings_max_connections{namespace="${namespace}"}`)).length === 1 ? true : undefined,
      20_000,
      'Prometheus to have scraped max_connections',
    );
  });

  it('built-in PgBouncer query: MetricsAvailable=True at the utilization PgBouncer has; the budget reads max_connections from postgres_exporter', async () => {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest('web', [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '10' }] }]),
    );
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace,
      body: {
        metadata: { name: 'pgbouncer-config' },
        data: { 'pgbouncer.ini': `[databases]\napp = host=postgres dbname=app\n\n[pgbouncer]\n${POOLER}` },
      },
    });
    stopSync = syncPgbouncerFromConfigMap();
    cleanups.push(() => {
      stopSync();
    });
    await createBudget(kc, namespace, 'app-db', {
      postgres: { maxConnectionsQuery: `max(pg_settings_max_connections{namespace="${namespace}"})`, reserved: 3 },
    });
    await createPolicy(kc, namespace, 'web', {
      targetRef: { name: 'web' },
      budgetRef: { name: 'app-db' },
      // No `utilization`: the built-in query over the PgBouncer exporter's metrics.
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { min: 4, max: 20 },
        maxClientConn: { min: 100, max: 100, ratio: 5 },
      },
      thresholds: THRESHOLDS,
      ...FAST,
    });
    // 2 active clients (each holding a server connection), 0 waiting, pool size 4: 50 %, inside the
    // 40–80 band: no change. (The admin console's own pool, database "pgbouncer", does not count.)
    const p = await webWhen(
      (x) => condition(x, 'MetricsAvailable')?.status === 'True' && x.status?.observed?.pgbouncer !== undefined,
      'MetricsAvailable=True with a PgBouncer reading',
    );
    expect(p.status?.observed?.pgbouncer).toBe(50);
    expect(p.status?.current).toMatchObject({ default_pool_size: 4 });
    const budget = await eventually(
      async () => {
        const b = (await kc
          .makeApiClient(CustomObjectsApi)
          .getNamespacedCustomObject({ ...budgetApi, namespace, name: 'app-db' })) as BudgetView;
        return b.status?.postgres?.capacity === undefined ? undefined : b;
      },
      30_000,
      'the budget status to show its PostgreSQL capacity',
    );
    // max_connections 100 from pg_settings_max_connections − 3 reserved.
    expect(budget.status?.postgres?.capacity).toBe(97);
  });

  it('exporter down: MetricsAvailable=False and no write while the pool saturates; back up: default_pool_size rises', async () => {
    const versionBefore = await configMapVersion();
    await pgbouncerExporter.stop();
    const down = await webWhen(
      (x) => condition(x, 'MetricsAvailable')?.status === 'False',
      'MetricsAvailable=False with the exporter down',
    );
    const reason = condition(down, 'MetricsAvailable')?.reason ?? '';
    // Saturate PgBouncer's pool (4 active, 2 waiting): with data the operator would grow it.
    for (let i = 0; i < 4; i++) holdConnection(600);
    await eventually(
      async () => {
        const pool = await appPool();
        return pool.active === 4 && pool.waiting === 2 ? true : undefined;
      },
      20_000,
      'PgBouncer pool saturated (4 active, 2 waiting)',
    );
    // Several of the operator's own passes see no data (its readings counter, not the clock)...
    const readings = await operatorMetric(operator, 'poolpilot_prometheus_queries_total', { result: reason });
    await eventually(
      async () =>
        (await operatorMetric(operator, 'poolpilot_prometheus_queries_total', { result: reason })) >= readings + 3
          ? true
          : undefined,
      30_000,
      'three more passes without data',
    );
    // ...and none of them wrote.
    expect(await configMapVersion()).toBe(versionBefore);
    expect((await getPolicy(kc, namespace, 'web')).status?.current).toMatchObject({ default_pool_size: 4 });

    await pgbouncerExporter.start();
    const grown = await webWhen(
      (x) => (x.status?.current?.default_pool_size ?? 0) > 4,
      'default_pool_size raised once the exporter is back',
    );
    expect(condition(grown, 'MetricsAvailable')?.status).toBe('True');
    // The raise is in the ConfigMap. The pool stays saturated until PgBouncer runs the new size, so
    // the next pass may raise it again between two reads: compare the policy's current size with
    // the ConfigMap read right after it, until one pair agrees.
    const written = await eventually(
      async () => {
        const current = (await getPolicy(kc, namespace, 'web')).status?.current?.default_pool_size;
        const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
        return cm.data?.['pgbouncer.ini']?.includes(`default_pool_size = ${String(current)}\n`) === true
          ? current
          : undefined;
      },
      30_000,
      'the ConfigMap to hold the default_pool_size the policy reports',
    );
    expect(written).toBeGreaterThan(4);
  });

  it('closed loop: PgBouncer runs what poolpilot wrote, the exporter reports it, growth stops inside the band below max', async () => {
    // 6 clients hold server connections; the pool grows until 6 active of default_pool_size is
    // ≤ 80 %. Each raise waits until the exporter reports that PgBouncer runs the size written
    // before (samples of the old pool would raise it again for the same load), so growth stops at
    // the first size inside the band: 8 (6 / 7 is 86 %).
    const settled = await eventually(
      async () => {
        const size = Number((await bouncer.showConfig()).get('default_pool_size'));
        const pool = await appPool();
        const exported = await pgbouncerExporter.metrics();
        const policy = await getPolicy(kc, namespace, 'web');
        const observed = policy.status?.observed?.pgbouncer;
        // The operator has read the utilization of the size PgBouncer runs: 6 active / size.
        const exportedSize = exported
          .split('\n')
          .find((line) => line.startsWith('pgbouncer_pool_size{database="app"}'));
        const current =
          pool.active === 6 &&
          pool.waiting === 0 &&
          exportedSize === `pgbouncer_pool_size{database="app"} ${size.toFixed(1)}` &&
          policy.status?.current?.default_pool_size === size &&
          observed === Math.round((1000 * 6) / size) / 10 &&
          observed <= THRESHOLDS.scaleUpAbove;
        if (!current)
          // Thrown, not returned, so that a timeout names the last state seen.
          throw new Error(
            `PgBouncer runs ${String(size)} with ${String(pool.active)} active and ${String(pool.waiting)} waiting; ` +
              `exporter: ${exportedSize ?? 'no app pool size'}; policy: current ${String(policy.status?.current?.default_pool_size)}, observed ${String(observed)}; ` +
              `ConfigMap sync errors: ${String(syncErrors.length)}${syncErrors.length > 0 ? ` (last: ${String(syncErrors.at(-1))})` : ''}`,
          );
        return { size, observed };
      },
      90_000,
      'PgBouncer running the size poolpilot chose, all 6 clients served, and the operator reading that inside the band',
    );
    // The first size inside the band: no overshoot towards the section's max of 20.
    expect(settled).toEqual({ size: 8, observed: 75 });
    // Three more of the operator's passes change nothing.
    await morePasses(operator, 3);
    expect((await getPolicy(kc, namespace, 'web')).status?.current?.default_pool_size).toBe(settled.size);
    expect(syncErrors).toEqual([]);
  });

  it('PgBouncer not reloaded: one write, then DeliveryPending naming what PgBouncer runs, no more writes; reloaded: growth resumes', async () => {
    stopSync();
    // 4 more clients: 10 want a server connection from a pool of 8 (125 %).
    for (let i = 0; i < 4; i++) holdConnection(600);
    const raised = await webWhen((x) => (x.status?.current?.default_pool_size ?? 0) > 8, 'one raise above 8');
    const written = raised.status?.current?.default_pool_size ?? 0;
    const pending = await webWhen(
      (x) => condition(x, 'Limited')?.reason === 'DeliveryPending',
      'the PgBouncer section held as DeliveryPending',
    );
    expect(condition(pending, 'Limited')?.message).toContain(
      `holding until PgBouncer runs the last write: PgBouncer does not run default_pool_size ${String(written)} `,
    );
    expect(condition(pending, 'Limited')?.message).toContain('its exporter reports pool sizes: app 8)');
    // Saturated all along, yet the passes that follow write nothing: no retry storm.
    const version = await configMapVersion();
    await morePasses(operator, 5);
    expect(await configMapVersion()).toBe(version);
    expect((await getPolicy(kc, namespace, 'web')).status?.current?.default_pool_size).toBe(written);
    expect(Number((await bouncer.showConfig()).get('default_pool_size'))).toBe(8);

    stopSync = syncPgbouncerFromConfigMap();
    await webWhen(
      (x) => (x.status?.current?.default_pool_size ?? 0) > written,
      'growth to resume once PgBouncer runs the written size',
    );
    expect(syncErrors).toEqual([]);
  });
});
