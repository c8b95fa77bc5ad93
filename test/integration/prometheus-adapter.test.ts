import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Gauge } from 'prom-client';
import { PrometheusClient } from '../../src/adapters/prometheus.js';
import {
  databaseUtilizationQuery,
  deploymentPods,
  namespaceUtilizationQuery,
  overrideUtilizationQuery,
  pgbouncerUtilizationQuery,
  redisUtilizationQuery,
} from '../../src/adapters/prometheus-queries.js';
import type { UtilizationSample } from '../../src/domain/decide.js';
import { readLocalEnv } from './support/local-env.js';
import { eventually, startScrapeTarget } from './support/prometheus.js';

// PrometheusClient and the built-in queries against the real local Prometheus (2.42,
// scrape_interval 1s, file_sd). Every test labels its series with a namespace of its own, so
// tests never see each other's series (nor those of earlier runs: the TSDB persists).

const PREFIX = 'voiceassist_';
const DEPLOYMENT = 'api';
const POD = 'api-7c9b8d6f54-x2x9q';

let prometheus: PrometheusClient;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => {
  prometheus = new PrometheusClient({ baseUrl: readLocalEnv().PROMETHEUS_URL, timeoutMs: 5000, now: () => new Date() });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function uniqueNamespace(): string {
  return `pa-${randomBytes(5).toString('hex')}`;
}

/** A prom-client exporter for one pod, stopped after the test (unless the test stops it). */
async function exporter(
  namespace: string,
  pod: string,
): Promise<{ gauge: (name: string, value: number) => void; stop: () => Promise<void> }> {
  const target = await startScrapeTarget(`pa-${namespace}-${pod}`, { namespace, pod });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await target.stop();
  };
  cleanups.push(stop);
  return {
    gauge: (name, value) => {
      const existing = target.registry.getSingleMetric(name);
      const gauge =
        existing instanceof Gauge ? existing : new Gauge({ name, help: 'test gauge', registers: [target.registry] });
      gauge.set(value);
    },
    stop,
  };
}

/**
 * A target serving fixed exposition text (which prom-client cannot: explicit sample
 * timestamps), registered through file_sd like startScrapeTarget does.
 */
async function staticTarget(name: string, labels: Readonly<Record<string, string>>, body: string): Promise<void> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const file = join(readLocalEnv().PROMETHEUS_TARGETS_DIR, `${name}.json`);
  writeFileSync(file, JSON.stringify([{ targets: [address], labels }]));
  cleanups.push(async () => {
    rmSync(file, { force: true });
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
  });
}

/** Polls until `done` accepts a sample; returns that sample (the last one seen on timeout: fails). */
async function until(
  query: Parameters<PrometheusClient['utilization']>[0],
  maxAgeMs: number,
  done: (s: UtilizationSample) => boolean,
  what: string,
  client = prometheus,
): Promise<UtilizationSample> {
  let last: UtilizationSample | undefined;
  try {
    return await eventually(
      async () => {
        last = await client.utilization(query, maxAgeMs);
        return done(last) ? last : undefined;
      },
      30000,
      what,
    );
  } catch (err) {
    throw new Error(`${String(err)}; last sample: ${JSON.stringify(last)}`);
  }
}

const isValid = (s: UtilizationSample): boolean => s.valid;

describe('PrometheusClient against the real Prometheus', () => {
  it('default database query: the exported value with a fresh sampledAt', async () => {
    const namespace = uniqueNamespace();
    const pod = await exporter(namespace, POD);
    pod.gauge(`${PREFIX}db_pool_utilization_percent`, 42.5);
    const query = databaseUtilizationQuery(PREFIX, { namespace, deployment: DEPLOYMENT });
    const sample = await until(query, 30_000, isValid, 'the exported utilization');
    expect(sample).toEqual({ valid: true, percent: 42.5, sampledAt: expect.any(Date) });
    if (sample.valid) {
      const age = Date.now() - sample.sampledAt.getTime();
      expect(age).toBeGreaterThanOrEqual(-1000);
      expect(age).toBeLessThan(10_000);
    }
  });

  it('two pods: an unaggregated override is MultipleSeries naming both; the default takes the max', async () => {
    const namespace = uniqueNamespace();
    const a = await exporter(namespace, 'api-7c9b8d6f54-x2x9q');
    const b = await exporter(namespace, 'api-7c9b8d6f54-b6m4z');
    a.gauge(`${PREFIX}db_pool_utilization_percent`, 30);
    b.gauge(`${PREFIX}db_pool_utilization_percent`, 70);
    const values = { namespace, deployment: DEPLOYMENT };
    const sample = await until(
      databaseUtilizationQuery(PREFIX, values),
      30_000,
      (s) => s.valid && s.percent === 70,
      'the max of both pods',
    );
    expect(sample).toMatchObject({ valid: true, percent: 70 });

    const raw = overrideUtilizationQuery(
      `${PREFIX}db_pool_utilization_percent{namespace="$namespace",pod=~"$pods"}`,
      values,
    );
    // The max reaches 70 as soon as pod def is scraped; wait until Prometheus has both pods.
    const multiple = await until(
      raw,
      30_000,
      (s) => !s.valid && s.problem === 'MultipleSeries',
      'both pods in the unaggregated query',
    );
    expect(multiple).toMatchObject({ valid: false, problem: 'MultipleSeries' });
    if (!multiple.valid) {
      expect(multiple.message).toMatch(
        /^the utilization query returned 2 series \(pods api-7c9b8d6f54-(x2x9q|b6m4z), api-7c9b8d6f54-(x2x9q|b6m4z)\); aggregate it to one, e\.g\. max\(\.\.\.\)$/,
      );
    }
  });

  it('escapes the values: a dotted deployment matches only its own pods, a quoted namespace only itself', async () => {
    const namespace = `${uniqueNamespace()}"\\x`;
    const own = await exporter(namespace, 'api.v2-7c9b8d6f54-x2x9q');
    const lookalike = await exporter(namespace, 'apixv2-7c9b8d6f54-x2x9q');
    own.gauge(`${PREFIX}db_pool_utilization_percent`, 10);
    lookalike.gauge(`${PREFIX}db_pool_utilization_percent`, 90);
    // Wait until both are scraped, so a wrong match could not hide behind a missing series.
    const both = overrideUtilizationQuery(`count(${PREFIX}db_pool_utilization_percent{namespace="$namespace"})`, {
      namespace,
      deployment: 'x',
    });
    await until(both, 30_000, (s) => s.valid && s.percent === 2, 'both pods scraped');
    const sample = await prometheus.utilization(
      databaseUtilizationQuery(PREFIX, { namespace, deployment: 'api.v2' }),
      30_000,
    );
    expect(sample).toMatchObject({ valid: true, percent: 10 });
  });

  it('Deployments side by side (api / api-worker, web / web-canary): each reads only its own pods, per Deployment and batched per namespace', async () => {
    const namespace = uniqueNamespace();
    const pods: Record<string, number> = {
      'api-7c9b8d6f54-x2x9q': 55,
      'api-7c9b8d6f54-b6m4z': 60,
      'api-worker-5f6d8b7c9-x2x9q': 97,
      'web-6d4cf56db6-9xg8k': 30,
      'web-canary-7b5d4c8f9-k2j4x': 95,
    };
    for (const [pod, percent] of Object.entries(pods))
      (await exporter(namespace, pod)).gauge(`${PREFIX}db_pool_utilization_percent`, percent);
    // Wait until every pod is scraped, so a wrong match could not hide behind a missing series.
    const all = overrideUtilizationQuery(`count(${PREFIX}db_pool_utilization_percent{namespace="$namespace"})`, {
      namespace,
      deployment: 'x',
    });
    await until(all, 30_000, (s) => s.valid && s.percent === 5, 'all five pods scraped');

    const expected = { api: 60, 'api-worker': 97, web: 30, 'web-canary': 95 };
    const batch = await prometheus.podSamples(namespaceUtilizationQuery('database', PREFIX, namespace), 30_000);
    for (const [deployment, percent] of Object.entries(expected)) {
      expect([
        deployment,
        await prometheus.utilization(databaseUtilizationQuery(PREFIX, { namespace, deployment }), 30_000),
      ]).toMatchObject([deployment, { valid: true, percent }]);
      expect([deployment, batch.forPods(deploymentPods(deployment))]).toMatchObject([
        deployment,
        { valid: true, percent },
      ]);
    }
  });

  it('default Redis query: in use over max, in percent', async () => {
    const namespace = uniqueNamespace();
    const pod = await exporter(namespace, POD);
    pod.gauge(`${PREFIX}redis_pool_in_use`, 15);
    pod.gauge(`${PREFIX}redis_pool_max_connections`, 50);
    const sample = await until(
      redisUtilizationQuery(PREFIX, { namespace, deployment: DEPLOYMENT }),
      30_000,
      isValid,
      'the Redis utilization',
    );
    expect(sample).toMatchObject({ valid: true, percent: 30 });
  });

  it('default PgBouncer query: the worst database of (active + waiting) / pool size', async () => {
    const namespace = uniqueNamespace();
    // prometheus-community's pgbouncer_exporter's label sets: pools by (database, user), databases by (name, database, ...).
    const body = [
      'pgbouncer_pools_server_active_connections{database="app",user="app"} 6',
      'pgbouncer_pools_server_active_connections{database="app",user="admin"} 2',
      'pgbouncer_pools_client_waiting_connections{database="app",user="app"} 2',
      'pgbouncer_pools_client_waiting_connections{database="app",user="admin"} 0',
      'pgbouncer_pools_server_active_connections{database="reports",user="app"} 3',
      'pgbouncer_pools_client_waiting_connections{database="reports",user="app"} 0',
      'pgbouncer_databases_pool_size{name="app",database="app",host="db",port="5432"} 20',
      'pgbouncer_databases_pool_size{name="reports",database="reports",host="db",port="5432"} 10',
      '',
    ].join('\n');
    await staticTarget(`pa-${namespace}-pgbouncer`, { namespace, pod: 'pgbouncer-0' }, body);
    const sample = await until(
      pgbouncerUtilizationQuery({ namespace, deployment: DEPLOYMENT }),
      30_000,
      isValid,
      'the PgBouncer utilization',
    );
    // app: (6 + 2 + 2 + 0) / 20 = 50 %; reports: 3 / 10 = 30 %.
    expect(sample).toMatchObject({ valid: true, percent: 50 });
  });

  it("default PgBouncer query over Debian's exporter: the admin console, always half busy, does not count", async () => {
    const namespace = uniqueNamespace();
    // Debian's prometheus-pgbouncer-exporter's label sets and float values; database "pgbouncer" is
    // the admin console, holding the exporter's own connection (1 of its pool size 2).
    const body = [
      'pgbouncer_active_clients{database="app",user="app"} 3.0',
      'pgbouncer_waiting_clients{database="app",user="app"} 0.0',
      'pgbouncer_active_clients{database="pgbouncer",user="pgbouncer"} 1.0',
      'pgbouncer_waiting_clients{database="pgbouncer",user="pgbouncer"} 0.0',
      'pgbouncer_pool_size{database="app"} 10.0',
      'pgbouncer_pool_size{database="pgbouncer"} 2.0',
      '',
    ].join('\n');
    await staticTarget(`pa-${namespace}-pgbouncer`, { namespace, pod: 'pgbouncer-0' }, body);
    const sample = await until(
      pgbouncerUtilizationQuery({ namespace, deployment: DEPLOYMENT }),
      30_000,
      isValid,
      'the PgBouncer utilization',
    );
    // app: 3 / 10 = 30 %, below the admin console's 50 %.
    expect(sample).toMatchObject({ valid: true, percent: 30 });
  });

  it('a NaN gauge: NaN', async () => {
    const namespace = uniqueNamespace();
    const pod = await exporter(namespace, POD);
    pod.gauge(`${PREFIX}db_pool_utilization_percent`, Number.NaN);
    const sample = await until(
      databaseUtilizationQuery(PREFIX, { namespace, deployment: DEPLOYMENT }),
      30_000,
      (s) => !s.valid && s.problem !== 'NoData',
      'the NaN sample',
    );
    expect(sample).toMatchObject({ valid: false, problem: 'NaN' });
  });

  it('no target: NoData', async () => {
    const sample = await prometheus.utilization(
      databaseUtilizationQuery(PREFIX, { namespace: uniqueNamespace(), deployment: DEPLOYMENT }),
      30_000,
    );
    expect(sample).toMatchObject({ valid: false, problem: 'NoData' });
  });

  it('a query Prometheus rejects: QueryFailed with its parse error', async () => {
    const sample = await prometheus.utilization({ expr: 'max(' }, 30_000);
    expect(sample).toMatchObject({ valid: false, problem: 'QueryFailed' });
    if (!sample.valid) expect(sample.message).toMatch(/HTTP 400 Bad Request, bad_data\): .*unclosed left parenthesis/);
  });

  it('a closed port: QueryFailed naming the address', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    );
    const closed = new PrometheusClient({
      baseUrl: `http://127.0.0.1:${port}`,
      timeoutMs: 5000,
      now: () => new Date(),
    });
    const sample = await closed.utilization({ expr: 'vector(1)' }, 30_000);
    expect(sample).toMatchObject({ valid: false, problem: 'QueryFailed' });
    if (!sample.valid) {
      expect(sample.message).toBe(
        `Prometheus at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}; check spec.prometheus.address or --prometheus-url`,
      );
    }
  });

  it('a server that never answers: QueryFailed after the timeout; one that answers HTML: QueryFailed', async () => {
    const silent = createServer(() => undefined);
    const html = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html>Grafana login</html>');
    });
    for (const s of [silent, html]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      silent.closeAllConnections();
      for (const s of [silent, html])
        await new Promise<void>((resolve) =>
          s.close(() => {
            resolve();
          }),
        );
    });
    const at = (s: Server, timeoutMs: number): PrometheusClient =>
      new PrometheusClient({
        baseUrl: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
        timeoutMs,
        now: () => new Date(),
      });

    const started = Date.now();
    const timedOut = await at(silent, 300).utilization({ expr: 'vector(1)' }, 30_000);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(timedOut).toMatchObject({ valid: false, problem: 'QueryFailed' });
    if (!timedOut.valid) expect(timedOut.message).toContain('no reply within 300ms');

    const login = await at(html, 5000).utilization({ expr: 'vector(1)' }, 30_000);
    expect(login).toMatchObject({ valid: false, problem: 'QueryFailed' });
    if (!login.valid)
      expect(login.message).toContain('not JSON (HTTP 200 OK, starts with "<html>Grafana login</html>")');
  });

  it('Stale, deterministically: a sample with an explicit old timestamp stays queryable but is old', async () => {
    const namespace = uniqueNamespace();
    const takenAtMs = Date.now() - 20_000;
    await staticTarget(
      `pa-${namespace}-old`,
      { namespace, pod: POD },
      `${PREFIX}db_pool_utilization_percent 55 ${takenAtMs}\n`,
    );
    const query = databaseUtilizationQuery(PREFIX, { namespace, deployment: DEPLOYMENT });
    const fresh = await until(query, 60_000, isValid, 'the timestamped sample');
    expect(fresh).toEqual({ valid: true, percent: 55, sampledAt: new Date(takenAtMs) });
    const stale = await prometheus.utilization(query, 2000);
    expect(stale).toMatchObject({ valid: false, problem: 'Stale' });
    if (!stale.valid)
      expect(stale.message).toMatch(/^the newest sample behind the utilization query is 2\d(\.\d+)?s old \(taken /);
  });

  it('a stopped exporter: NoData (Prometheus writes staleness markers), or Stale', async () => {
    const namespace = uniqueNamespace();
    const pod = await exporter(namespace, POD);
    pod.gauge(`${PREFIX}db_pool_utilization_percent`, 20);
    const query = databaseUtilizationQuery(PREFIX, { namespace, deployment: DEPLOYMENT });
    await until(query, 2000, isValid, 'the exported utilization');
    await pod.stop();
    const gone = await until(query, 2000, (s) => !s.valid, 'the stopped exporter to be noticed');
    // Observed with Prometheus 2.42: NoData. A failed scrape or a target dropped from file_sd
    // gets staleness markers at once, so the series vanishes from instant queries before it
    // is 2 s old. Stale is what a series that stays in the 5 m lookback yields (see above).
    expect(gone).toMatchObject({ valid: false, problem: expect.stringMatching(/^(NoData|Stale)$/) });
    console.info(`stopped exporter observed as ${gone.valid ? 'valid' : gone.problem}`);
  });
});
