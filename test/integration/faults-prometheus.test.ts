import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import axios from 'axios';
import { Gauge } from 'prom-client';
import { deploymentPods, escapePromqlString } from '../../src/adapters/prometheus-queries.js';
import type { RunningController } from '../../src/main.js';
import { startFaultProxy, type Fault, type FaultProxy } from './support/fault-proxy.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import { readLocalEnv } from './support/local-env.js';
import {
  completeRollout,
  condition,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  installCrds,
  startOperator,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget } from './support/prometheus.js';
import { FAST, policyWhen } from './support/suite.js';

// Prometheus faults, on the real components: the operator keeps running, never writes the
// Deployment on bad data, says why in MetricsAvailable, counts it in its own metrics, and backs
// off per policy while every sample is bad. Faults at the HTTP level come from a proxy in front
// of the real Prometheus; bad data (NaN, +Inf, no series, several series, an old sample) comes
// from the real Prometheus scraping real targets.

const PREFIX = 'voiceassist_';
const METRIC = `${PREFIX}db_pool_utilization_percent`;
const DATABASE = { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } };

/** Utilization-query passes the proxy saw (the freshness query of a pass, `…timestamp(…)`, is not counted). */
function passes(proxy: FaultProxy): number {
  return proxy.requests.filter(
    (r) => r.path === '/api/v1/query' && r.query !== undefined && !r.query.includes('timestamp('),
  ).length;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Prometheus faults: hold, explain, count, back off', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  const cleanups: Array<() => Promise<void>> = [];

  /** The operator's own poolpilot_prometheus_queries_total{result}. */
  async function queriesCounted(result: string): Promise<number> {
    const { data } = await axios.get<string>(`http://127.0.0.1:${operator.metricsPort}/metrics`, {
      responseType: 'text',
    });
    const line = data.split('\n').find((l) => l.startsWith(`poolpilot_prometheus_queries_total{result="${result}"}`));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  }

  /** An exporter for one pod of `deployment` (`suffix`: its generateName suffix) serving `value` of the utilization gauge. */
  async function exporter(deployment: string, suffix: string, value: number): Promise<void> {
    const target = await startScrapeTarget(`${namespace}-${deployment}-${suffix}`, {
      namespace,
      pod: `${deployment}-7c9b8d6f54-${suffix}`,
    });
    cleanups.push(() => target.stop());
    new Gauge({ name: METRIC, help: 'utilization', registers: [target.registry] }).set(value);
  }

  /** A target that serves the gauge with an explicit timestamp (Prometheus keeps it, old). */
  async function oldSample(deployment: string, value: number, takenAtMs: number): Promise<void> {
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(`${METRIC} ${value} ${takenAtMs}\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const file = join(readLocalEnv().PROMETHEUS_TARGETS_DIR, `${namespace}-${deployment}-old.json`);
    writeFileSync(
      file,
      JSON.stringify([
        {
          targets: [`127.0.0.1:${(server.address() as AddressInfo).port}`],
          labels: { namespace, pod: `${deployment}-6d4cf56db6-k2j4x` },
        },
      ]),
    );
    cleanups.push(async () => {
      rmSync(file, { force: true });
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    });
  }

  /** Waits until the real Prometheus returns `count` series for the deployment's pods. */
  async function seriesVisible(deployment: string, count: number): Promise<void> {
    await eventually(
      async () =>
        (
          await queryVector(
            `${METRIC}{namespace="${namespace}",pod=~"${escapePromqlString(deploymentPods(deployment).regex)}"}`,
          )
        ).length === count
          ? true
          : undefined,
      30_000,
      `${count} series of ${deployment}`,
    );
  }

  async function proxy(fault: Fault): Promise<FaultProxy> {
    const p = await startFaultProxy(readLocalEnv().PROMETHEUS_URL, fault);
    cleanups.push(() => p.stop());
    return p;
  }

  async function workload(name: string): Promise<string> {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest(name, [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    );
    await completeRollout(kc, namespace, name);
    return (await getDeployment(kc, namespace, name)).metadata?.resourceVersion ?? '';
  }

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'faults-prom');
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator.stop();
    for (const cleanup of cleanups) await cleanup();
    await deleteTestNamespace(kc, namespace);
  });

  interface Case {
    /** Prepares the data and returns the policy's extra spec (address, timeout, overrides). */
    readonly setup: (name: string) => Promise<{ spec: Record<string, unknown>; proxy?: FaultProxy }>;
    readonly reason: string;
    readonly message: RegExp;
  }

  /** A healthy 90 % exporter (a valid sample would grow the pool) behind a faulty proxy. */
  const behindProxy =
    (fault: Fault, timeout = '2s') =>
    async (name: string): Promise<{ spec: Record<string, unknown>; proxy: FaultProxy }> => {
      await exporter(name, 'x2x9q', 90);
      await seriesVisible(name, 1);
      const p = await proxy(fault);
      return { spec: { prometheus: { address: p.url, timeout } }, proxy: p };
    };
  /** Real data from the real Prometheus, through a pass-through proxy that counts the queries. */
  const realData =
    (prepare: (name: string) => Promise<void>, spec: Record<string, unknown> = {}) =>
    async (name: string): Promise<{ spec: Record<string, unknown>; proxy: FaultProxy }> => {
      await prepare(name);
      const p = await proxy({ kind: 'pass' });
      return { spec: { ...spec, prometheus: { address: p.url, timeout: '2s' } }, proxy: p };
    };

  const cases: Array<[string, Case]> = [
    [
      'Prometheus down (closed port)',
      {
        setup: () => Promise.resolve({ spec: { prometheus: { address: 'http://127.0.0.1:9', timeout: '1s' } } }),
        reason: 'QueryFailed',
        message: /Prometheus at http:\/\/127\.0\.0\.1:9: .*(ECONNREFUSED|connect)/,
      },
    ],
    [
      'slower than spec.prometheus.timeout',
      {
        setup: behindProxy({ kind: 'delay', ms: 3000 }, '300ms'),
        reason: 'QueryFailed',
        message: /no reply within 300ms/,
      },
    ],
    [
      'HTTP 500',
      {
        setup: behindProxy({ kind: 'status', status: 500, body: 'upstream exploded' }),
        reason: 'QueryFailed',
        message: /HTTP 500/,
      },
    ],
    [
      'a garbage body (an HTML login page)',
      {
        setup: behindProxy({
          kind: 'status',
          status: 200,
          body: '<html>Grafana login</html>',
          contentType: 'text/html',
        }),
        reason: 'QueryFailed',
        message: /not JSON \(HTTP 200 OK, starts with "<html>Grafana login<\/html>"\)/,
      },
    ],
    [
      'JSON that is not a Prometheus reply',
      {
        setup: behindProxy({ kind: 'status', status: 200, body: '{"hello":"world"}', contentType: 'application/json' }),
        reason: 'QueryFailed',
        message: /JSON that is not a Prometheus query reply/,
      },
    ],
    [
      'NaN',
      {
        setup: realData(async (name) => {
          await exporter(name, 'x2x9q', Number.NaN);
          await seriesVisible(name, 1);
        }),
        reason: 'NaN',
        message: /returned NaN/,
      },
    ],
    [
      '+Inf',
      {
        setup: realData(async (name) => {
          await exporter(name, 'x2x9q', Number.POSITIVE_INFINITY);
          await seriesVisible(name, 1);
        }),
        reason: 'Infinite',
        message: /returned \+Inf/,
      },
    ],
    [
      'an empty vector',
      {
        setup: realData(() => Promise.resolve(), { metricsPrefix: 'nosuchapp_' }),
        reason: 'NoData',
        message: /returned no series/,
      },
    ],
    [
      'several series (an override query without aggregation)',
      {
        setup: realData(
          async (name) => {
            await exporter(name, 'x2x9q', 90);
            await exporter(name, 'b6m4z', 85);
            await seriesVisible(name, 2);
          },
          { database: { ...DATABASE, utilization: `${METRIC}{namespace="$namespace",pod=~"$pods"}` } },
        ),
        reason: 'MultipleSeries',
        message: /returned 2 series \(pods .*-x2x9q, .*-b6m4z|returned 2 series \(pods .*-b6m4z, .*-x2x9q/,
      },
    ],
    [
      'a sample older than 2 × interval',
      {
        setup: realData(async (name) => {
          await oldSample(name, 90, Date.now() - 20_000);
          await seriesVisible(name, 1);
        }),
        reason: 'Stale',
        message: /the newest sample behind the utilization query is \d+(\.\d+)?s old .*more than the allowed 2s/,
      },
    ],
  ];

  it.each(cases)(
    '%s: the Deployment is not written, MetricsAvailable=False says why, the operator counts it',
    async (_label, c) => {
      const name = `p${cases.findIndex(([label]) => label === _label)}`;
      const resourceVersion = await workload(name);
      const { spec, proxy: p } = await c.setup(name);
      const countedBefore = await queriesCounted(c.reason);
      await createPolicy(kc, namespace, name, {
        targetRef: { name },
        metricsPrefix: PREFIX,
        database: DATABASE,
        ...FAST,
        ...spec,
      });

      const policy = await policyWhen(
        kc,
        namespace,
        name,
        (x) => condition(x, 'MetricsAvailable')?.reason === c.reason,
        `MetricsAvailable reason ${c.reason}`,
      );
      expect(condition(policy, 'MetricsAvailable')).toMatchObject({ status: 'False', reason: c.reason });
      expect(condition(policy, 'MetricsAvailable')?.message).toMatch(c.message);
      expect(await queriesCounted(c.reason)).toBeGreaterThan(countedBefore);

      // Several intervals later: still not written, still the same reason, still the pool it had.
      const passesBefore = p ? passes(p) : 0;
      await sleep(3500);
      const deployment = await getDeployment(kc, namespace, name);
      expect(deployment.metadata?.resourceVersion).toBe(resourceVersion);
      expect(envOf(deployment, 'app')).toEqual({ DB_POOL_SIZE: '20', DB_MAX_OVERFLOW: '40' });
      const later = await getPolicy(kc, namespace, name);
      expect(condition(later, 'MetricsAvailable')).toMatchObject({ status: 'False', reason: c.reason });
      expect(later.status?.history ?? []).toEqual([]);
      // A failing policy is revisited at most once per interval (backoff makes it fewer), never
      // in a loop, e.g. one driven by its own status writes.
      if (p) expect(passes(p) - passesBefore).toBeLessThanOrEqual(4);
    },
  );

  it('per-policy exponential backoff: a failing policy asks Prometheus less and less often, and resumes when it recovers', async () => {
    const name = 'backoff';
    await workload(name);
    await exporter(name, 'x2x9q', 90);
    await seriesVisible(name, 1);
    const p = await proxy({ kind: 'status', status: 500, body: 'down for maintenance' });
    await createPolicy(kc, namespace, name, {
      targetRef: { name },
      metricsPrefix: PREFIX,
      database: DATABASE,
      ...FAST,
      prometheus: { address: p.url, timeout: '2s' },
    });
    await policyWhen(
      kc,
      namespace,
      name,
      (x) => condition(x, 'MetricsAvailable')?.reason === 'QueryFailed',
      'MetricsAvailable QueryFailed',
    );
    // After a few failed passes (1 s, 2 s, 4 s apart) …
    await eventually(() => Promise.resolve(passes(p) >= 3 ? true : undefined), 30_000, 'three failed passes');
    // … a window of 8 intervals holds fewer than one pass per two intervals (8+ without backoff).
    const before = passes(p);
    await sleep(8000);
    const inWindow = passes(p) - before;
    expect(inWindow).toBeGreaterThanOrEqual(1);
    expect(inWindow).toBeLessThan(4);
    expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
      DB_POOL_SIZE: '20',
      DB_MAX_OVERFLOW: '40',
    });

    // A restart does not reset it: the failure count comes from the status. The new process
    // asks once at start, then waits as long as before (from scratch: 1, 2, 4 s → 4 passes).
    await operator.stop();
    operator = await startOperator(namespace);
    const afterRestart = passes(p);
    await sleep(8000);
    expect(passes(p) - afterRestart).toBeGreaterThanOrEqual(1);
    expect(passes(p) - afterRestart).toBeLessThanOrEqual(2);

    // Prometheus recovers: the next (backed-off) pass, at most 5 min later, sees it; a spec
    // change wakes the policy at once, without waiting for the backoff.
    p.setFault({ kind: 'pass' });
    await kc.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject(
      {
        group: 'poolpilot.io',
        version: 'v1alpha1',
        plural: 'poolpolicies',
        namespace,
        name,
        body: [{ op: 'replace', path: '/spec/behavior/maxStepPercent', value: 25 }],
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    // The first pass that sees Prometheus again may be the backed-off revisit (old spec: a 20 %
    // step to 24) or the one the spec change woke (25 % → 25); either way exactly one step, and
    // then the rollout gate holds (no rollout completes in this test).
    const resumed = await policyWhen(
      kc,
      namespace,
      name,
      (x) => condition(x, 'MetricsAvailable')?.status === 'True' && (x.status?.current?.DB_POOL_SIZE ?? 20) > 20,
      'recovered metrics and one step',
      20_000,
    );
    expect([
      { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
      { DB_POOL_SIZE: 25, DB_MAX_OVERFLOW: 50 },
    ]).toContainEqual(resumed.status?.current);
    // Three more passes of this policy (its queries through the proxy) later, still that one step.
    const passesResumed = passes(p);
    await eventually(
      () => Promise.resolve(passes(p) >= passesResumed + 3 ? true : undefined),
      30_000,
      'three more passes of the policy',
    );
    const settled = await getPolicy(kc, namespace, name);
    expect(settled.status?.history).toHaveLength(1);
    expect(settled.status?.current).toEqual(resumed.status?.current);
  });
});
