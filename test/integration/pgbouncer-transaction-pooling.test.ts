/**
 * PgBouncer in transaction pooling, as `DEMO_PATH=pgbouncer make demo` runs it, with the utilization
 * query of deploy/samples/demo/poolpolicy-pgbouncer.yaml, on real components: the demo's
 * PostgreSQL, a real PgBouncer (pool_mode = transaction), Debian's prometheus-pgbouncer-exporter
 * scraped by the real Prometheus, the operator against the real API server, and Python clients
 * (psycopg2, as the demo app) that keep connections open the way a SQLAlchemy QueuePool does.
 *
 * - Idle client connections are not load: Debian's exporter counts them as active clients (SHOW
 *   POOLS cl_active, which the built-in query reads), but the sample's query (queries in PgBouncer,
 *   from total_query_time, plus waiting clients) reads them as nothing, and the pool stays.
 * - The exporter down while queries queue for a server connection: the sample's query returns
 *   nothing (MetricsAvailable=False/NoData) and nothing is written; once it is back the queue reads
 *   above 100 % and default_pool_size grows.
 * Needs the Debian packages pgbouncer, postgresql, postgresql-client, redis-server,
 * prometheus-pgbouncer-exporter and python3-psycopg2 (`make install`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { RunningController } from '../../src/main.js';
import { startDemoBackends, type DemoBackends } from './support/demo-backends.js';
import { startPgbouncerExporter, type RunningExporter } from './support/exporters.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import {
  condition,
  createPolicy,
  getPolicy,
  installCrds,
  loadSample,
  operatorMetric,
  startOperator,
  type PolicyView,
} from './support/operator.js';
import { tearDown } from './support/process.js';
import { appPgbouncerIni, startPgbouncer, type RunningPgbouncer } from './support/pgbouncer.js';
import { eventually, registerScrapeTarget } from './support/prometheus.js';
import { FAST, morePasses, policyWhen } from './support/suite.js';

const THRESHOLDS = { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 };

/**
 * `n` client connections to database app through PgBouncer, as the demo app's pools hold them.
 * idle: each runs one transaction, then stays connected and idle. busy: each runs
 * `SELECT pg_sleep(0.3)` transactions back to back. Prints "ready" once all are connected.
 */
const CLIENTS_PY = `
import sys, threading, time, psycopg2
port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conns = [psycopg2.connect(host="127.0.0.1", port=port, user="admin", dbname="app") for _ in range(n)]
def idle(c):
    c.cursor().execute("SELECT 1"); c.commit()
def busy(c):
    while True:
        c.cursor().execute("SELECT pg_sleep(0.3)"); c.commit()
for c in conns:
    if mode == "idle":
        idle(c)
    else:
        threading.Thread(target=busy, args=(c,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
`;

describe('PgBouncer in transaction pooling, read with the demo policy query', () => {
  let kc: KubeConfig;
  let namespace: string;
  let backends: DemoBackends;
  let bouncer: RunningPgbouncer;
  let exporter: RunningExporter;
  let operator: RunningController;
  const clients: ChildProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];

  async function startClients(mode: 'idle' | 'busy', n: number): Promise<void> {
    const child = spawn('/usr/bin/python3', ['-c', CLIENTS_PY, String(bouncer.port), mode, String(n)], {
      env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    clients.push(child);
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('ready')) resolve();
      });
      child.stderr.on('data', (chunk: string) => {
        output += chunk;
      });
      child.once('exit', (code) => {
        reject(new Error(`clients exited ${String(code)}: ${output}`));
      });
    });
    await ready;
  }

  /** PgBouncer's SHOW POOLS for database app. */
  async function appPool(): Promise<{ clientsActive: number; serversActive: number; waiting: number }> {
    const row = (await bouncer.adminQuery('SHOW POOLS')).find((r) => r.get('database') === 'app');
    return {
      clientsActive: Number(row?.get('cl_active') ?? 0),
      serversActive: Number(row?.get('sv_active') ?? 0),
      waiting: Number(row?.get('cl_waiting') ?? 0),
    };
  }

  const configMapVersion = async (): Promise<string> =>
    (await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'pgbouncer-config', namespace })).metadata
      ?.resourceVersion ?? '';

  const webWhen = (predicate: (p: PolicyView) => boolean, what: string): Promise<PolicyView> =>
    policyWhen(kc, namespace, 'web', predicate, what, 60_000);

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'pgbtx');
    backends = startDemoBackends();
    cleanups.push(() => {
      backends.stop();
    });
    bouncer = await startPgbouncer(
      appPgbouncerIni(backends.env.PG_PORT ?? '', [
        'pool_mode = transaction',
        'default_pool_size = 4',
        'max_client_conn = 100',
      ]),
    );
    cleanups.push(() => bouncer.stop());
    exporter = await startPgbouncerExporter(bouncer.port, 'admin');
    cleanups.push(() => exporter.stop());
    cleanups.push(
      registerScrapeTarget(`${namespace}-pgbouncer-exporter`, exporter.address, {
        namespace,
        pod: 'pgbouncer-exporter-7c9d8-fghjk',
      }),
    );
    operator = await startOperator(namespace);
    cleanups.push(() => operator.stop());
  });

  afterAll(async () => {
    await tearDown(clients, cleanups);
    await deleteTestNamespace(kc, namespace);
  });

  it("idle client connections: the exporter counts them as active clients, the sample's query as no load; the pool stays", async () => {
    await startClients('idle', 6);
    const pool = await appPool();
    // PgBouncer itself: 6 logged-in clients, none holding a server connection.
    expect(pool).toEqual({ clientsActive: 6, serversActive: 0, waiting: 0 });
    await eventually(
      async () =>
        (await exporter.metrics()).includes('pgbouncer_active_clients{database="app",user="app"} 6.0')
          ? true
          : undefined,
      20_000,
      'the exporter to count the 6 idle clients as active',
    );

    await createDeployment(kc, namespace, deploymentManifest('web', [{ name: 'app', env: [] }]));
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace,
      body: {
        metadata: { name: 'pgbouncer-config' },
        data: {
          'pgbouncer.ini': '[databases]\napp = host=postgres dbname=app\n\n[pgbouncer]\ndefault_pool_size = 4\n',
        },
      },
    });
    const sample = loadSample('demo/poolpolicy-pgbouncer.yaml').spec.pgbouncer as { utilization: string };
    await createPolicy(kc, namespace, 'web', {
      targetRef: { name: 'web' },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { min: 4, max: 20 },
        utilization: sample.utilization,
      },
      thresholds: THRESHOLDS,
      ...FAST,
    });
    const read = await webWhen(
      (x) => condition(x, 'MetricsAvailable')?.status === 'True' && x.status?.observed?.pgbouncer !== undefined,
      'MetricsAvailable=True with a PgBouncer reading',
    );
    // No query ran in the last 10 s and nobody waits: 0 %, where cl_active / pool_size reads 150 %.
    expect(read.status?.observed?.pgbouncer).toBe(0);
    await morePasses(operator, 3);
    expect((await getPolicy(kc, namespace, 'web')).status?.current).toEqual({ default_pool_size: 4 });
  });

  it('the exporter down while queries queue: MetricsAvailable=False (NoData), several passes, no write', async () => {
    const versionBefore = await configMapVersion();
    await exporter.stop();
    const down = await webWhen(
      (x) => condition(x, 'MetricsAvailable')?.status === 'False',
      'MetricsAvailable=False with the exporter down',
    );
    const reason = condition(down, 'MetricsAvailable')?.reason ?? '';
    expect(reason).toBe('NoData');
    // 8 clients back to back on a pool of 4: 4 run, 4 wait. With data the operator would grow it.
    await startClients('busy', 8);
    await eventually(
      async () => ((await appPool()).waiting > 0 ? true : undefined),
      20_000,
      'clients waiting in PgBouncer',
    );
    // Three of the operator's passes without data (its readings counter, not the clock)...
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
    expect((await getPolicy(kc, namespace, 'web')).status?.current).toEqual({ default_pool_size: 4 });
  });

  it('the exporter back: queries queueing for a server connection read above 100 % and default_pool_size grows', async () => {
    await exporter.start();
    const grown = await webWhen(
      (x) => (x.status?.current?.default_pool_size ?? 0) > 4,
      'default_pool_size raised from 4 once the exporter is back',
    );
    expect(condition(grown, 'MetricsAvailable')?.status).toBe('True');
    // 4 running and 4 waiting on a pool PgBouncer still runs at 4 (nothing syncs the ConfigMap here).
    expect(Number(grown.status?.observed?.pgbouncer)).toBeGreaterThan(100);
  });
});
