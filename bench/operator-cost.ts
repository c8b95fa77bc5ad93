/**
 * `make bench` part 2: what the operator costs with many policies.
 *
 * N PoolPolicies and N Deployments in the local (real) API server, utilization for all of them
 * in the local Prometheus (one exporter, one series per Deployment), and the operator as a child
 * process. Reports reconcile and Prometheus-query latency, queries per interval, API writes
 * during idle intervals, the operator's RSS and CPU, and the time from a utilization breach to
 * the patched Deployment. Numbers only: nothing here passes or fails on time.
 *
 *   BENCH_POLICIES (default 1000), BENCH_INTERVAL_S (default 10)
 */
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { adminKubeConfig, createTestNamespace, deploymentManifest } from '../test/integration/support/kube.js';
import { readLocalEnv } from '../test/integration/support/local-env.js';
import { completeRollout, envOf, installCrds } from '../test/integration/support/operator.js';
import { spawnOperator } from '../test/integration/support/process.js';
import { startScrapeTarget } from '../test/integration/support/prometheus.js';
import { freePort, inBatches, log, operatorNodeOptions, processStats, scrape, sleep, stopOperator } from './harness.js';
import { histogramQuantile, sumSamples } from './metrics-text.js';
import { machineDescription, report } from './results.js';
import { BATCH_REUSE_MS } from '../src/controllers/poolpolicy/utilization.js';

const N = Number(process.env.BENCH_POLICIES ?? 1000);
const INTERVAL_S = Number(process.env.BENCH_INTERVAL_S ?? 10);
const WINDOW_S = 5;
async function resourceVersions(kc: KubeConfig, namespace: string): Promise<Map<string, string>> {
  const versions = new Map<string, string>();
  for (const d of (await kc.makeApiClient(AppsV1Api).listNamespacedDeployment({ namespace })).items)
    versions.set(`deployment/${d.metadata?.name ?? ''}`, d.metadata?.resourceVersion ?? '');
  const policies = (await kc
    .makeApiClient(CustomObjectsApi)
    .listNamespacedCustomObject({ group: 'poolpilot.io', version: 'v1alpha1', namespace, plural: 'poolpolicies' })) as {
    items: Array<{ metadata: { name: string; resourceVersion: string } }>;
  };
  for (const p of policies.items) versions.set(`poolpolicy/${p.metadata.name}`, p.metadata.resourceVersion);
  return versions;
}

async function main(): Promise<void> {
  const env = readLocalEnv();
  const kc = adminKubeConfig();
  installCrds();
  const namespace = await createTestNamespace(kc, 'bench');
  const names = Array.from({ length: N }, (_, i) => `app-${i}`);
  log(`${N} Deployments and PoolPolicies in namespace ${namespace}, interval ${INTERVAL_S}s`);

  const target = await startScrapeTarget(`bench-${namespace}`, { namespace });
  const gauge = new Gauge({
    name: 'bench_db_pool_utilization_percent',
    help: 'utilization',
    labelNames: ['pod'],
    registers: [target.registry],
  });
  for (const name of names) gauge.set({ pod: `${name}-7d9f8-x2x9q` }, 60);

  let started = Date.now();
  const apps = kc.makeApiClient(AppsV1Api);
  await inBatches(names, 16, async (name) => {
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
  });
  const custom = kc.makeApiClient(CustomObjectsApi);
  await inBatches(names, 16, (name) =>
    custom.createNamespacedCustomObject({
      group: 'poolpilot.io',
      version: 'v1alpha1',
      namespace,
      plural: 'poolpolicies',
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
    }),
  );
  const createSeconds = (Date.now() - started) / 1000;
  log(`created in ${createSeconds.toFixed(1)}s`);

  const metricsPort = await freePort();
  const operator = spawnOperator(
    [
      'run',
      '--kubeconfig',
      env.KUBECONFIG,
      '--namespace',
      namespace,
      '--prometheus-url',
      env.PROMETHEUS_URL,
      '--metrics-addr',
      `127.0.0.1:${metricsPort}`,
      '--health-addr',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    operatorNodeOptions(),
  );
  try {
    started = Date.now();
    for (;;) {
      const list = (await custom.listNamespacedCustomObject({
        group: 'poolpilot.io',
        version: 'v1alpha1',
        namespace,
        plural: 'poolpolicies',
      })) as { items: Array<{ status?: { conditions?: Array<{ type: string; reason: string }> } }> };
      const settled = list.items.filter((p) =>
        p.status?.conditions?.some((c) => c.type === 'Limited' && c.reason === 'DeadBand'),
      ).length;
      if (settled === N) break;
      if (operator.hasExited()) throw new Error(`operator exited: ${operator.stderr()}`);
      await sleep(1000);
    }
    const settleSeconds = (Date.now() - started) / 1000;
    log(`all ${N} policies settled (status written) in ${settleSeconds.toFixed(1)}s`);
    await sleep(INTERVAL_S * 1000); // let the first wave of writes leave the caches

    const idleIntervals = 3;
    const before = await scrape(metricsPort);
    const versionsBefore = await resourceVersions(kc, namespace);
    const statsBefore = processStats(operator.pid);
    await sleep(idleIntervals * INTERVAL_S * 1000);
    const after = await scrape(metricsPort);
    const versionsAfter = await resourceVersions(kc, namespace);
    const statsAfter = processStats(operator.pid);
    const idleWrites = [...versionsAfter].filter(([key, rv]) => versionsBefore.get(key) !== rv).length;
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      sumSamples(after, name, labels) - sumSamples(before, name, labels);
    const reconciles = delta('poolpilot_reconciles_total');
    const readings = delta('poolpilot_prometheus_queries_total');
    const queries = delta('poolpilot_prometheus_requests_total');
    const reconcileP50 = histogramQuantile(0.5, before, after, 'poolpilot_reconcile_duration_seconds');
    const reconcileP99 = histogramQuantile(0.99, before, after, 'poolpilot_reconcile_duration_seconds');
    const queryP50 = histogramQuantile(0.5, before, after, 'poolpilot_prometheus_query_duration_seconds');
    const queryP99 = histogramQuantile(0.99, before, after, 'poolpilot_prometheus_query_duration_seconds');
    const ownP50 = histogramQuantile(0.5, before, after, 'poolpilot_reconcile_own_duration_seconds');
    const ownP99 = histogramQuantile(0.99, before, after, 'poolpilot_reconcile_own_duration_seconds');
    const cpuPercent = (100 * (statsAfter.cpuSeconds - statsBefore.cpuSeconds)) / (idleIntervals * INTERVAL_S);

    // Breach → patched Deployment, for one policy.
    gauge.set({ pod: 'app-0-7d9f8-x2x9q' }, 95);
    started = Date.now();
    for (;;) {
      const d = await apps.readNamespacedDeployment({ name: 'app-0', namespace });
      if (envOf(d, 'app').DB_POOL_SIZE !== '20') break;
      await sleep(200);
    }
    const breachSeconds = (Date.now() - started) / 1000;
    if (process.env.BENCH_HEAP_SNAPSHOT === '1') {
      // Needs --heapsnapshot-signal=SIGUSR2 in BENCH_OPERATOR_NODE_OPTIONS; written to the operator's cwd.
      process.kill(operator.pid, 'SIGUSR2');
      await sleep(20_000);
    }
    const expectedBound = INTERVAL_S + WINDOW_S + INTERVAL_S + 1;

    const rows: Array<[string, string]> = [
      ['policies / Deployments', String(N)],
      ['create N Deployments + N policies (API)', `${createSeconds.toFixed(1)} s`],
      ['operator start → every status written', `${settleSeconds.toFixed(1)} s`],
      ['reconciles per interval (idle)', (reconciles / idleIntervals).toFixed(0)],
      [
        'reconcile p50 / p99 (incl. Prometheus)',
        `${(reconcileP50 * 1000).toFixed(1)} / ${(reconcileP99 * 1000).toFixed(1)} ms`,
      ],
      [
        'reconcile p50 / p99 excluding Prometheus time',
        `${(ownP50 * 1000).toFixed(2)} / ${(ownP99 * 1000).toFixed(2)} ms`,
      ],
      ['Prometheus round trip p50 / p99', `${(queryP50 * 1000).toFixed(1)} / ${(queryP99 * 1000).toFixed(1)} ms`],
      ['utilization readings per interval', (readings / idleIntervals).toFixed(0)],
      [
        'Prometheus round trips per interval',
        `${(queries / idleIntervals).toFixed(1)} (goal: one per distinct query template; the built-in queries are asked once per namespace and reused for ${BATCH_REUSE_MS} ms)`,
      ],
      [`API writes during ${idleIntervals} idle intervals`, `${idleWrites} (goal 0)`],
      ['operator RSS', `${statsAfter.rssMiB.toFixed(0)} MiB`],
      ['operator CPU (idle intervals)', `${cpuPercent.toFixed(1)} % of one core`],
      [
        'utilization breach → patched Deployment',
        `${breachSeconds.toFixed(1)} s (bound: interval ${INTERVAL_S}s + window ${WINDOW_S}s + interval + scrape 1s = ${expectedBound}s)`,
      ],
    ];
    report(
      'Operator cost',
      `Measured ${new Date().toISOString().slice(0, 10)} by \`make bench\` (bench/operator-cost.ts) on ${machineDescription()}.`,
      rows,
    );
  } finally {
    await stopOperator(operator);
    await target.stop();
    // No namespace controller runs on the local plane: delete the objects themselves, or they
    // stay in etcd and slow every later watch.
    await custom.deleteCollectionNamespacedCustomObject({
      group: 'poolpilot.io',
      version: 'v1alpha1',
      namespace,
      plural: 'poolpolicies',
    });
    await apps.deleteCollectionNamespacedDeployment({ namespace });
    await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace });
  }
}

await main();
