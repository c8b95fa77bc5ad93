/**
 * `make bench` part 2: what the operator costs with many policies, at a realistic shape.
 *
 * N PoolPolicies and their N Deployments spread over BENCH_NAMESPACES namespaces in the local
 * (real) API server, utilization for all of them in the local Prometheus (one exporter per
 * namespace, one series per Deployment), the operator as a child process watching all
 * namespaces. Three phases, each reported:
 *
 * 1. first start: start → every status written, then idle intervals (reconcile and Prometheus
 *    numbers, API requests, RSS, heap, CPU) and a utilization breach → patched Deployment;
 * 2. BENCH_UNMANAGED Deployments and ConfigMaps that no policy names are created (half each)
 *    while it runs: its RSS and heap after they arrived;
 * 3. a restart with all of it in place: start → every policy reconciled, then idle intervals.
 *
 * Numbers only: nothing here passes or fails; the issue-14 targets are written as met / not met.
 *
 *   BENCH_POLICIES (1000), BENCH_NAMESPACES (100), BENCH_UNMANAGED (20000), BENCH_INTERVAL_S (10),
 *   BENCH_CREATE_CONCURRENCY (32), BENCH_WORKERS (the operator's --workers; its default when unset),
 *   BENCH_OPERATOR_NODE_OPTIONS, BENCH_HEAP_SNAPSHOT=1,
 *   BENCH_CONTAINER_LIMITS (`deploy`: the operator runs in a cgroup with the memory and CPU limits
 *   of deploy/core/deployment.yaml, as in its Pod, when this machine allows it (root, cgroup v1);
 *   `512Mi,1`: those limits instead; `none`: without limits)
 */
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { adminKubeConfig, createTestNamespace, deploymentManifest } from '../test/integration/support/kube.js';
import { readLocalEnv } from '../test/integration/support/local-env.js';
import { completeRollout, envOf, installCrds } from '../test/integration/support/operator.js';
import { spawnOperator, type OperatorProcess } from '../test/integration/support/process.js';
import { startScrapeTarget, type ScrapeTarget } from '../test/integration/support/prometheus.js';
import { benchContainer } from './container-limits.js';
import { freePort, inBatches, log, operatorNodeFlags, processStats, scrape, sleep, stopOperator } from './harness.js';
import { histogramQuantile, sumSamples, type MetricSample } from './metrics-text.js';
import { machineDescription, report } from './results.js';

const N = Number(process.env.BENCH_POLICIES ?? 1000);
const NAMESPACES = Math.min(N, Number(process.env.BENCH_NAMESPACES ?? 100));
const UNMANAGED = Number(process.env.BENCH_UNMANAGED ?? 20_000);
const INTERVAL_S = Number(process.env.BENCH_INTERVAL_S ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CREATE_CONCURRENCY ?? 32);
/** --workers of the operator; its default when unset. */
const WORKERS = process.env.BENCH_WORKERS;
const WINDOW_S = 5;
const IDLE_INTERVALS = 3;
const POLICY_API = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies' } as const;

interface App {
  readonly namespace: string;
  readonly name: string;
}

interface PolicyItem {
  metadata: { managedFields?: Array<{ manager?: string; subresource?: string; time?: string }> };
  status?: { conditions?: Array<{ type: string; reason: string }> };
}

/** Every policy of the bench's namespaces, page by page. */
async function listPolicies(kc: KubeConfig, namespaces: readonly string[]): Promise<PolicyItem[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const items: PolicyItem[] = [];
  for (const namespace of namespaces) {
    const list = (await custom.listNamespacedCustomObject({ ...POLICY_API, namespace })) as { items: PolicyItem[] };
    items.push(...list.items);
  }
  return items;
}

/** The latest time poolpilot wrote any of these statuses (managedFields, second precision). */
function lastStatusWrite(policies: readonly PolicyItem[]): number {
  let latest = 0;
  for (const p of policies)
    for (const entry of p.metadata.managedFields ?? [])
      if (entry.manager === 'poolpilot' && entry.subresource === 'status' && entry.time)
        latest = Math.max(latest, Date.parse(entry.time));
  return latest;
}

function operatorArgs(kubeconfig: string, prometheusUrl: string, metricsPort: number): string[] {
  return [
    'run',
    '--kubeconfig',
    kubeconfig,
    '--prometheus-url',
    prometheusUrl,
    '--metrics-addr',
    `127.0.0.1:${metricsPort}`,
    '--health-addr',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    ...(WORKERS === undefined ? [] : ['--workers', WORKERS]),
  ];
}

/** What the operator's metrics and process say over a span of idle intervals. */
interface IdleNumbers {
  readonly reconciles: number;
  readonly reconcileP50: number;
  readonly reconcileP99: number;
  readonly ownP50: number;
  readonly ownP99: number;
  readonly queryP50: number;
  readonly queryP99: number;
  readonly readings: number;
  readonly roundTrips: number;
  readonly apiRequestsPerSecond: number;
  readonly apiWrites: number;
  readonly cpuPercent: number;
  readonly rssMiB: number;
  readonly heapMiB: number;
  /** Objects the operator's Deployment and ConfigMap caches hold at the end. */
  readonly cached: { readonly deployments: number; readonly configMaps: number };
}

const heapUsedMiB = (samples: readonly MetricSample[]): number =>
  sumSamples(samples, 'poolpilot_nodejs_heap_size_used_bytes') / 2 ** 20;
const apiRequests = (samples: readonly MetricSample[]): number =>
  sumSamples(samples, 'poolpilot_kube_api_requests_total');
const apiWrites = (samples: readonly MetricSample[]): number =>
  apiRequests(samples) - sumSamples(samples, 'poolpilot_kube_api_requests_total', { method: 'GET' });

/**
 * A scrape and when its counters were read, taken as the middle of the request: at 10,000 policies
 * rendering the metrics takes about a second, which a span of nominal length would count as part
 * of the idle intervals (and with it another namespace's revisits).
 */
async function timedScrape(port: number): Promise<{ samples: MetricSample[]; atMs: number }> {
  const started = performance.now();
  const samples = await scrape(port);
  return { samples, atMs: (started + performance.now()) / 2 };
}

async function idle(operator: OperatorProcess, metricsPort: number): Promise<IdleNumbers> {
  const first = await timedScrape(metricsPort);
  const before = first.samples;
  const statsBefore = processStats(operator.pid);
  await sleep(IDLE_INTERVALS * INTERVAL_S * 1000);
  const last = await timedScrape(metricsPort);
  const after = last.samples;
  const statsAfter = processStats(operator.pid);
  const seconds = (last.atMs - first.atMs) / 1000;
  const intervals = seconds / INTERVAL_S;
  const delta = (get: (s: readonly MetricSample[]) => number): number => get(after) - get(before);
  const q = (quantile: number, histogram: string): number => histogramQuantile(quantile, before, after, histogram);
  return {
    reconciles: delta((s) => sumSamples(s, 'poolpilot_reconciles_total')) / intervals,
    reconcileP50: q(0.5, 'poolpilot_reconcile_duration_seconds'),
    reconcileP99: q(0.99, 'poolpilot_reconcile_duration_seconds'),
    ownP50: q(0.5, 'poolpilot_reconcile_own_duration_seconds'),
    ownP99: q(0.99, 'poolpilot_reconcile_own_duration_seconds'),
    queryP50: q(0.5, 'poolpilot_prometheus_query_duration_seconds'),
    queryP99: q(0.99, 'poolpilot_prometheus_query_duration_seconds'),
    readings: delta((s) => sumSamples(s, 'poolpilot_prometheus_queries_total')) / intervals,
    roundTrips: delta((s) => sumSamples(s, 'poolpilot_prometheus_requests_total')) / intervals,
    apiRequestsPerSecond: delta(apiRequests) / seconds,
    apiWrites: delta(apiWrites),
    cpuPercent: (100 * (statsAfter.cpuSeconds - statsBefore.cpuSeconds)) / seconds,
    rssMiB: statsAfter.rssMiB,
    heapMiB: heapUsedMiB(after),
    cached: {
      deployments: sumSamples(after, 'poolpilot_cached_objects', { resource: 'deployments' }),
      configMaps: sumSamples(after, 'poolpilot_cached_objects', { resource: 'configmaps' }),
    },
  };
}

const ms = (seconds: number, digits = 1): string => (seconds * 1000).toFixed(digits);
const verdict = (met: boolean): string => (met ? 'met' : 'not met');

async function main(): Promise<void> {
  const env = readLocalEnv();
  const kc = adminKubeConfig();
  installCrds();
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  // The operator watches every namespace, as it ships: any other PoolPolicy would be reconciled
  // and counted too (a namespace deleted on the bare plane keeps its objects: no namespace controller).
  const others = (await custom.listClusterCustomObject({ ...POLICY_API, limit: 1 })) as {
    items: unknown[];
    metadata?: { remainingItemCount?: number };
  };
  if (others.items.length > 0)
    throw new Error(
      `the control plane already holds ${String(others.items.length + (others.metadata?.remainingItemCount ?? 0))} PoolPolicies, which the benchmark's operator would reconcile too; start from a fresh plane: make local-down local-up`,
    );
  const namespaces: string[] = [];
  for (let i = 0; i < NAMESPACES; i++) namespaces.push(await createTestNamespace(kc, 'bench'));
  const namespaceOf = (i: number): string => namespaces[i % NAMESPACES] ?? '';
  const managed: App[] = Array.from({ length: N }, (_, i) => ({ namespace: namespaceOf(i), name: `app-${i}` }));
  log(`${N} Deployments and PoolPolicies in ${NAMESPACES} namespaces, interval ${INTERVAL_S}s`);

  const targets: ScrapeTarget[] = [];
  const gauges = new Map<string, Gauge>();
  for (const namespace of namespaces) {
    const target = await startScrapeTarget(`bench-${namespace}`, { namespace });
    targets.push(target);
    gauges.set(
      namespace,
      new Gauge({
        name: 'bench_db_pool_utilization_percent',
        help: 'utilization',
        labelNames: ['pod'],
        registers: [target.registry],
      }),
    );
  }
  for (const app of managed) gauges.get(app.namespace)?.set({ pod: `${app.name}-7d9f8-x2x9q` }, 60);

  let started = Date.now();
  await inBatches(managed, CONCURRENCY, async ({ namespace, name }) => {
    await apps.createNamespacedDeployment({
      namespace,
      body: deploymentManifest(name, [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    });
    await completeRollout(kc, namespace, name);
    await custom.createNamespacedCustomObject({
      ...POLICY_API,
      namespace,
      body: {
        apiVersion: 'poolpilot.io/v1alpha1',
        kind: 'PoolPolicy',
        metadata: { name },
        spec: {
          targetRef: { name },
          metricsPrefix: 'bench_',
          interval: `${INTERVAL_S}s`,
          database: { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
          behavior: {
            maxStepPercent: 20,
            scaleUpStabilization: `${WINDOW_S}s`,
            scaleDownStabilization: '30m',
            minChangeInterval: '0s',
          },
        },
      },
    });
  });
  const createSeconds = (Date.now() - started) / 1000;
  log(`created in ${createSeconds.toFixed(1)}s (${CONCURRENCY} at a time)`);

  const metricsPort = await freePort();
  const args = operatorArgs(env.KUBECONFIG, env.PROMETHEUS_URL, metricsPort);
  const container = benchContainer('poolpilot-bench');
  const exitedWhy = (): string => `operator exited: ${operator.stderr()}${container.exitNote()}`;
  let operator = spawnOperator(args, {}, operatorNodeFlags(), container.launcher);
  try {
    // Phase 1: first start.
    started = Date.now();
    let policies: PolicyItem[] = [];
    for (;;) {
      await sleep(N > 2000 ? 5000 : 2000);
      if (operator.hasExited()) throw new Error(exitedWhy());
      policies = await listPolicies(kc, namespaces);
      const settled = policies.filter((p) =>
        p.status?.conditions?.some((c) => c.type === 'Limited' && c.reason === 'DeadBand'),
      ).length;
      log(
        `${settled} of ${N} statuses written after ${((Date.now() - started) / 1000).toFixed(0)}s; operator RSS ${processStats(operator.pid).rssMiB.toFixed(0)} MiB`,
      );
      if (settled === N) break;
    }
    const settleSeconds = Math.max(0, (lastStatusWrite(policies) - started) / 1000);
    const startScrape = await scrape(metricsPort);
    const startApiRate = apiRequests(startScrape) / ((Date.now() - started) / 1000);
    log(`all ${N} statuses written ${settleSeconds.toFixed(0)}s after the start`);
    await sleep(INTERVAL_S * 1000); // let the first wave of writes leave the caches
    const first = await idle(operator, metricsPort);

    const breachApp = managed[0] ?? { namespace: '', name: '' };
    gauges.get(breachApp.namespace)?.set({ pod: `${breachApp.name}-7d9f8-x2x9q` }, 95);
    started = Date.now();
    for (;;) {
      const d = await apps.readNamespacedDeployment(breachApp);
      if (envOf(d, 'app').DB_POOL_SIZE !== '20') break;
      await sleep(200);
    }
    const breachSeconds = (Date.now() - started) / 1000;
    const expectedBound = INTERVAL_S + WINDOW_S + INTERVAL_S + 1;

    // Phase 2: objects no policy names arrive while it runs.
    started = Date.now();
    const others = Array.from({ length: UNMANAGED }, (_, i) => ({
      namespace: namespaceOf(i),
      name: `other-${i}`,
      kind: i % 2 === 0 ? 'Deployment' : 'ConfigMap',
    }));
    await inBatches(others, CONCURRENCY, async ({ namespace, name, kind }) => {
      if (kind === 'Deployment')
        await apps.createNamespacedDeployment({
          namespace,
          body: deploymentManifest(name, [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]),
        });
      else
        await core.createNamespacedConfigMap({
          namespace,
          body: { metadata: { name }, data: { 'pgbouncer.ini': '[pgbouncer]\ndefault_pool_size = 20\n' } },
        });
    });
    const unmanagedSeconds = (Date.now() - started) / 1000;
    log(`${UNMANAGED} unmanaged objects created in ${unmanagedSeconds.toFixed(1)}s`);
    await sleep(INTERVAL_S * 1000);
    const withOthers = await idle(operator, metricsPort);

    // Phase 3: a restart with everything in place.
    await stopOperator(operator);
    operator = spawnOperator(args, {}, operatorNodeFlags(), container.launcher);
    started = Date.now();
    let restartSeconds = Number.NaN;
    for (;;) {
      await sleep(1000);
      if (operator.hasExited()) throw new Error(exitedWhy());
      const samples = await scrape(metricsPort).catch(() => []);
      if (sumSamples(samples, 'poolpilot_reconciles_total') >= N) {
        restartSeconds = (Date.now() - started) / 1000;
        break;
      }
    }
    const restartScrape = await scrape(metricsPort);
    const restartWrites = apiWrites(restartScrape);
    const restartApiRate = apiRequests(restartScrape) / restartSeconds;
    log(`restarted: every policy reconciled after ${restartSeconds.toFixed(1)}s`);
    await sleep(INTERVAL_S * 1000);
    const restarted = await idle(operator, metricsPort);
    if (process.env.BENCH_HEAP_SNAPSHOT === '1') {
      // Needs --heapsnapshot-signal=SIGUSR2 in BENCH_OPERATOR_NODE_OPTIONS; written to the operator's cwd.
      process.kill(operator.pid, 'SIGUSR2');
      await sleep(30_000);
    }

    const rssTarget = N >= 10_000 ? 250 : 150;
    const unmanagedGrowth = (100 * (restarted.rssMiB - first.rssMiB)) / first.rssMiB;
    const templates = 1; // the bench's policies use the built-in database query only
    const rows: Array<[string, string]> = [
      ['policies / Deployments / namespaces', `${N} / ${N} / ${NAMESPACES}`],
      ['operator flags beyond the defaults', WORKERS === undefined ? 'none' : `--workers ${WORKERS}`],
      ['operator container limits', container.describe()],
      ['create N Deployments + N policies (API)', `${createSeconds.toFixed(1)} s (${CONCURRENCY} requests at a time)`],
      [
        'first start → every status written',
        `${settleSeconds.toFixed(0)} s (target at 10,000: < 60 s; ${verdict(settleSeconds < 60)})`,
      ],
      ['API requests per second during that start', startApiRate.toFixed(0)],
      ['reconciles per interval (idle)', first.reconciles.toFixed(0)],
      ['reconcile p50 / p99 (incl. Prometheus)', `${ms(first.reconcileP50)} / ${ms(first.reconcileP99)} ms`],
      [
        'reconcile p50 / p99 excluding Prometheus time',
        `${ms(first.ownP50, 2)} / ${ms(first.ownP99, 2)} ms (target p99 < 50 ms: ${verdict(first.ownP99 < 0.05)})`,
      ],
      ['Prometheus round trip p50 / p99', `${ms(first.queryP50)} / ${ms(first.queryP99)} ms`],
      ['utilization readings per interval', first.readings.toFixed(0)],
      [
        'Prometheus round trips per interval',
        `${first.roundTrips.toFixed(1)}, each a query pair returning ${(N / NAMESPACES).toFixed(0)} series (target ≤ ${NAMESPACES} namespaces × ${templates} template: ${verdict(first.roundTrips <= NAMESPACES * templates)})`,
      ],
      [
        `API requests per second / writes in ${IDLE_INTERVALS} idle intervals`,
        `${first.apiRequestsPerSecond.toFixed(2)} / ${first.apiWrites} (target 0 writes: ${verdict(first.apiWrites === 0)})`,
      ],
      [
        'operator RSS / V8 heap used',
        `${first.rssMiB.toFixed(0)} / ${first.heapMiB.toFixed(0)} MiB (target < ${rssTarget} MiB: ${verdict(first.rssMiB < rssTarget)})`,
      ],
      ['operator CPU (idle intervals)', `${first.cpuPercent.toFixed(1)} % of one core`],
      [
        'utilization breach → patched Deployment',
        `${breachSeconds.toFixed(1)} s (bound: interval ${INTERVAL_S}s + window ${WINDOW_S}s + interval + scrape 1s = ${expectedBound}s)`,
      ],
      [
        `${UNMANAGED} unmanaged Deployments + ConfigMaps created while it runs`,
        `${unmanagedSeconds.toFixed(1)} s; then RSS / heap ${withOthers.rssMiB.toFixed(0)} / ${withOthers.heapMiB.toFixed(0)} MiB, CPU ${withOthers.cpuPercent.toFixed(1)} % idle`,
      ],
      [
        'Deployments / ConfigMaps the operator caches, of those that exist',
        `${withOthers.cached.deployments} of ${N + Math.ceil(UNMANAGED / 2)} / ${withOthers.cached.configMaps} of ${Math.floor(UNMANAGED / 2)}`,
      ],
      [
        'restart with all of it in place → every policy reconciled',
        `${restartSeconds.toFixed(1)} s; ${restartWrites} API writes, ${restartApiRate.toFixed(0)} requests per second`,
      ],
      [
        'after the restart: RSS / heap, CPU idle, writes idle',
        `${restarted.rssMiB.toFixed(0)} / ${restarted.heapMiB.toFixed(0)} MiB, ${restarted.cpuPercent.toFixed(1)} %, ${restarted.apiWrites}`,
      ],
      [
        'RSS added by the unmanaged objects (restart vs first start)',
        `${unmanagedGrowth.toFixed(1)} % (target < 10 %: ${verdict(unmanagedGrowth < 10)})`,
      ],
      [
        'reconcile p50 / p99 after the restart (own time)',
        `${ms(restarted.reconcileP50)} / ${ms(restarted.reconcileP99)} ms (${ms(restarted.ownP50, 2)} / ${ms(restarted.ownP99, 2)} ms)`,
      ],
    ];
    report(
      `Operator cost at ${N.toLocaleString('en')} policies`,
      `Measured ${new Date().toISOString().slice(0, 10)} by \`make bench\` (bench/operator-cost.ts, BENCH_POLICIES=${N}) on ${machineDescription()}.`,
      rows,
    );
  } catch (error) {
    // A failed scrape or read may be the operator's death (an OOM kill under its limits): say so.
    await Promise.race([operator.exited, sleep(2000)]);
    throw operator.hasExited() ? new Error(exitedWhy(), { cause: error }) : error;
  } finally {
    await stopOperator(operator);
    container.remove();
    for (const target of targets) await target.stop();
    // No namespace controller runs on the local plane: delete the objects themselves, or they
    // stay in etcd and slow every later watch.
    await inBatches(namespaces, 8, async (namespace) => {
      await custom.deleteCollectionNamespacedCustomObject({ ...POLICY_API, namespace });
      await apps.deleteCollectionNamespacedDeployment({ namespace });
      await core.deleteCollectionNamespacedConfigMap({ namespace });
      await core.deleteNamespace({ name: namespace });
    });
  }
}

await main();
