/**
 * `make bench` part 3: policy churn. Up to BENCH_POLICIES (1000) PoolPolicies are created,
 * updated and deleted at BENCH_CHURN_RATE (10) operations per second for BENCH_CHURN_SECONDS
 * (300) against the operator as a child process. Reports whether every surviving policy's
 * latest generation was reconciled (no reconcile missed), the reconcile errors (no error
 * storm), and the operator's RSS before, at the peak and after everything was deleted.
 * The operator runs with its Pod's limits as BENCH_CONTAINER_LIMITS says (bench/container-limits.ts).
 */
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { adminKubeConfig, createTestNamespace, deploymentManifest } from '../test/integration/support/kube.js';
import { readLocalEnv } from '../test/integration/support/local-env.js';
import { completeRollout, installCrds } from '../test/integration/support/operator.js';
import { spawnOperator } from '../test/integration/support/process.js';
import { startScrapeTarget } from '../test/integration/support/prometheus.js';
import { benchContainer } from './container-limits.js';
import { freePort, inBatches, log, operatorNodeFlags, processStats, scrape, sleep } from './harness.js';
import { sumSamples } from './metrics-text.js';
import { machineDescription, report } from './results.js';

const N = Number(process.env.BENCH_POLICIES ?? 1000);
const RATE = Number(process.env.BENCH_CHURN_RATE ?? 10);
const SECONDS = Number(process.env.BENCH_CHURN_SECONDS ?? 300);
/**
 * RSS is also read this far into the churn: 10 s after its start the operator has run no reconcile
 * yet (no code compiled for it, no heap grown for it), so growth from then on is warm-up as much
 * as churn. Both are reported.
 */
const WARMUP_SECONDS = Number(process.env.BENCH_CHURN_WARMUP_SECONDS ?? 60);
const policyApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies' } as const;

interface PolicyItem {
  metadata: { name: string; generation: number };
  status?: { observedGeneration?: number };
}

/**
 * With BENCH_HEAP_SNAPSHOT=1 (and --heapsnapshot-signal=SIGUSR2 in BENCH_OPERATOR_NODE_OPTIONS),
 * a heap snapshot of the operator (written to its cwd): what is live, after a full GC.
 */
async function heapSnapshot(pid: number): Promise<void> {
  if (process.env.BENCH_HEAP_SNAPSHOT !== '1') return;
  process.kill(pid, 'SIGUSR2');
  await sleep(20_000);
}

async function main(): Promise<void> {
  const env = readLocalEnv();
  const kc = adminKubeConfig();
  installCrds();
  const namespace = await createTestNamespace(kc, 'churn');
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const names = Array.from({ length: N }, (_, i) => `app-${i}`);
  log(`${N} Deployments in ${namespace}; churning PoolPolicies at ${RATE}/s for ${SECONDS}s`);
  const target = await startScrapeTarget(`churn-${namespace}`, { namespace });
  const gauge = new Gauge({
    name: 'churn_db_pool_utilization_percent',
    help: 'utilization',
    labelNames: ['pod'],
    registers: [target.registry],
  });
  for (const name of names) gauge.set({ pod: `${name}-7d9f8-x2x9q` }, 60);
  await inBatches(names, 16, async (name) => {
    await apps.createNamespacedDeployment({
      namespace,
      body: deploymentManifest(name, [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]),
    });
    await completeRollout(kc, namespace, name);
  });

  const metricsPort = await freePort();
  const container = benchContainer('poolpilot-churn');
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
    {},
    operatorNodeFlags(),
    container.launcher,
  );
  try {
    await sleep(10_000);
    const rssBefore = processStats(operator.pid).rssMiB;
    await heapSnapshot(operator.pid);
    const metricsBefore = await scrape(metricsPort);
    const live = new Set<string>();
    let peakRss = rssBefore;
    let warm: { rss: number; metrics: Awaited<ReturnType<typeof scrape>> } | undefined;
    const counts = { create: 0, update: 0, delete: 0, failed: 0 };
    const spec = (name: string, step: number): Record<string, unknown> => ({
      targetRef: { name },
      metricsPrefix: 'churn_',
      interval: '10s',
      database: { poolSize: { min: 10, max: 50 } },
      behavior: { maxStepPercent: step },
    });
    const started = Date.now();
    let op = 0;
    while (Date.now() - started < SECONDS * 1000) {
      const tick = Date.now();
      const name = names[Math.floor(Math.random() * N)] ?? 'app-0';
      try {
        if (!live.has(name)) {
          await custom.createNamespacedCustomObject({
            ...policyApi,
            namespace,
            body: { apiVersion: 'poolpilot.io/v1alpha1', kind: 'PoolPolicy', metadata: { name }, spec: spec(name, 20) },
          });
          live.add(name);
          counts.create++;
        } else if (op % 3 === 0) {
          await custom.deleteNamespacedCustomObject({ ...policyApi, namespace, name });
          live.delete(name);
          counts.delete++;
        } else {
          const current = (await custom.getNamespacedCustomObject({ ...policyApi, namespace, name })) as {
            metadata: Record<string, unknown>;
          };
          await custom.replaceNamespacedCustomObject({
            ...policyApi,
            namespace,
            name,
            body: {
              apiVersion: 'poolpilot.io/v1alpha1',
              kind: 'PoolPolicy',
              metadata: current.metadata,
              spec: spec(name, 10 + (op % 50)),
            },
          });
          counts.update++;
        }
      } catch {
        counts.failed++;
      }
      op++;
      if (warm === undefined && Date.now() - started >= WARMUP_SECONDS * 1000)
        warm = { rss: processStats(operator.pid).rssMiB, metrics: await scrape(metricsPort) };
      if (op % (RATE * 10) === 0) {
        peakRss = Math.max(peakRss, processStats(operator.pid).rssMiB);
        log(`${op} operations, ${live.size} policies live, RSS ${processStats(operator.pid).rssMiB.toFixed(0)} MiB`);
      }
      await sleep(Math.max(0, 1000 / RATE - (Date.now() - tick)));
    }

    // No reconcile missed: every surviving policy's latest generation gets observed.
    const settleStarted = Date.now();
    let unobserved = live.size;
    while (Date.now() - settleStarted < 120_000) {
      const list = (await custom.listNamespacedCustomObject({ ...policyApi, namespace })) as { items: PolicyItem[] };
      unobserved = list.items.filter((p) => p.status?.observedGeneration !== p.metadata.generation).length;
      if (unobserved === 0) break;
      await sleep(2000);
    }
    const settleSeconds = (Date.now() - settleStarted) / 1000;
    const metricsAfter = await scrape(metricsPort);
    const errors =
      sumSamples(metricsAfter, 'poolpilot_reconciles_total', { result: 'error' }) -
      sumSamples(metricsBefore, 'poolpilot_reconciles_total', { result: 'error' });
    const reconciles =
      sumSamples(metricsAfter, 'poolpilot_reconciles_total') - sumSamples(metricsBefore, 'poolpilot_reconciles_total');

    await custom.deleteCollectionNamespacedCustomObject({ ...policyApi, namespace });
    await sleep(30_000);
    const rssAfter = processStats(operator.pid).rssMiB;
    await heapSnapshot(operator.pid);
    const metricsIdle = await scrape(metricsPort);
    const queueDepth = sumSamples(metricsIdle, 'poolpilot_workqueue_depth');
    // RSS rarely shrinks (V8 keeps its heap pages); the live heap says whether anything leaked.
    const heapMiB = (samples: typeof metricsIdle): number =>
      sumSamples(samples, 'poolpilot_nodejs_heap_size_used_bytes') / 2 ** 20;
    const growth = (from: number): string =>
      `${(((rssAfter - from) / from) * 100).toFixed(1)} % (goal within 10 %: ${Math.abs(rssAfter - from) <= 0.1 * from ? 'met' : 'not met'})`;

    const rows: Array<[string, string]> = [
      [
        'operations (create / update / delete / failed)',
        `${counts.create} / ${counts.update} / ${counts.delete} / ${counts.failed} in ${SECONDS}s`,
      ],
      ['operator container limits', container.describe()],
      ['policies live at the end of the churn', String(live.size)],
      ['latest generation not reconciled', `${unobserved} (after ${settleSeconds.toFixed(0)}s; goal 0)`],
      ['reconciles during the churn', String(reconciles)],
      ['reconcile errors during the churn', String(errors)],
      ['work-queue depth after deleting all', String(queueDepth)],
      [
        `V8 heap used before / after ${WARMUP_SECONDS} s of churn / 30 s after deleting all`,
        `${heapMiB(metricsBefore).toFixed(0)} / ${warm ? heapMiB(warm.metrics).toFixed(0) : '–'} / ${heapMiB(metricsIdle).toFixed(0)} MiB`,
      ],
      [
        `operator RSS before / after ${WARMUP_SECONDS} s of churn / peak / 30 s after deleting all`,
        `${rssBefore.toFixed(0)} / ${warm ? warm.rss.toFixed(0) : '–'} / ${peakRss.toFixed(0)} / ${rssAfter.toFixed(0)} MiB`,
      ],
      ['RSS 30 s after deleting all vs before (10 s after start, no reconcile yet)', growth(rssBefore)],
      [
        `RSS 30 s after deleting all vs after ${WARMUP_SECONDS} s of churn`,
        warm ? growth(warm.rss) : `not measured (the churn ran less than ${WARMUP_SECONDS} s)`,
      ],
    ];
    report(
      'Policy churn',
      `Measured ${new Date().toISOString().slice(0, 10)} by \`make bench\` (bench/churn.ts) on ${machineDescription()}: ${N} Deployments, PoolPolicies created, updated and deleted at ${RATE}/s.`,
      rows,
    );
  } finally {
    operator.child.kill('SIGKILL');
    await operator.exited;
    container.remove();
    await target.stop();
    await custom.deleteCollectionNamespacedCustomObject({ ...policyApi, namespace });
    await apps.deleteCollectionNamespacedDeployment({ namespace });
    await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace });
  }
}

await main();
