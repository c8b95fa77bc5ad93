import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import axios from 'axios';
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
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  installCrds,
  startOperator,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { FAST } from './support/suite.js';

// Issue 10, item 5: Deployments whose names begin alike (api / api-worker, web / web-canary) side
// by side in one namespace. Each policy's built-in query must read only its own Deployment's
// pods: with the old `pod=~"<deployment>-.*"` selection, api's policy read api-worker's 97 % and
// grew api's pool (20 → 46 in 14 s) while api itself was at 55–60 %. The operator runs in this
// process against the real API server and Prometheus; the pods are prom-client exporters named as
// Kubernetes names pods.

const METRIC = 'voiceassist_db_pool_utilization_percent';
/** Any reading above 80 % would grow the pool at once (no stabilization, no minimum interval). */
const THRESHOLDS = { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 };

/** Pod → utilization: api and web are in their dead band, their look-alikes far above it. */
const PODS: Readonly<Record<string, number>> = {
  'api-7c9b8d6f54-x2x9q': 55,
  'api-7c9b8d6f54-b6m4z': 60,
  'api-worker-5f6d8b7c9-x2x9q': 97,
  'web-6d4cf56db6-9xg8k': 50,
  'web-canary-7b5d4c8f9-k2j4x': 95,
  // Not a Deployment's pod name (a StatefulSet's): Deployment `batch` has no pods here.
  'batch-0': 50,
};

describe("each policy reads only its own Deployment's pods", () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController | undefined;
  const targets: ScrapeTarget[] = [];

  /** The operator's own count of utilization readings that were valid. */
  async function validReadings(): Promise<number> {
    const { data } = await axios.get<string>(`http://127.0.0.1:${String(operator?.metricsPort)}/metrics`, {
      responseType: 'text',
    });
    const line = data.split('\n').find((l) => l.startsWith('poolpilot_prometheus_queries_total{result="ok"}'));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  }

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'pods');
    for (const [pod, percent] of Object.entries(PODS)) {
      const target = await startScrapeTarget(`pods-${namespace}-${pod}`, { namespace, pod });
      targets.push(target);
      new Gauge({ name: METRIC, help: 'pool utilization', registers: [target.registry] }).set(percent);
    }
    // Every pod in Prometheus before any policy reads: a wrong match cannot hide behind a missing series.
    await eventually(
      async () =>
        (await queryVector(`${METRIC}{namespace="${namespace}"}`)).length === Object.keys(PODS).length
          ? true
          : undefined,
      30_000,
      'all pods scraped',
    );
    for (const name of ['api', 'api-worker', 'web', 'web-canary', 'batch']) {
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
    }
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator?.stop();
    for (const target of targets) await target.stop();
    await deleteTestNamespace(kc, namespace);
  });

  const policyFor = (name: string): Promise<void> =>
    createPolicy(kc, namespace, name, {
      targetRef: { name, container: 'app' },
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 60 }, maxOverflow: { ratio: 2, min: 0, max: 120 } },
      thresholds: THRESHOLDS,
      ...FAST,
    });

  it("api reads 60 % (not api-worker's 97 %), web 50 % (not web-canary's 95 %), and neither pool moves", async () => {
    for (const name of ['api', 'web']) await policyFor(name);
    const observed = async (name: string): Promise<unknown> =>
      eventually(
        async () => (await getPolicy(kc, namespace, name)).status?.observed?.database,
        30_000,
        `${name}'s first reading`,
      );
    expect(await observed('api')).toBe(60);
    expect(await observed('web')).toBe(50);

    // Five more valid readings per policy: a pass that read a look-alike's pods would have grown the pool.
    const start = await validReadings();
    await eventually(
      async () => ((await validReadings()) >= start + 10 ? true : undefined),
      30_000,
      'ten more valid readings',
    );
    for (const name of ['api', 'web']) {
      const policy = await getPolicy(kc, namespace, name);
      expect([name, policy.status?.observed?.database, policy.status?.lastChange]).toEqual([
        name,
        name === 'api' ? 60 : 50,
        undefined,
      ]);
      expect([name, envOf(await getDeployment(kc, namespace, name), 'app').DB_POOL_SIZE]).toEqual([name, '20']);
    }
  });

  it('a Deployment whose pods are named otherwise: NoData saying which names were looked for', async () => {
    await policyFor('batch');
    const policy = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'batch');
        return condition(p, 'MetricsAvailable')?.status === 'False' ? p : undefined;
      },
      30_000,
      'MetricsAvailable=False for batch',
    );
    expect(condition(policy, 'MetricsAvailable')).toMatchObject({
      reason: 'NoData',
      message: expect.stringContaining('the pods of deployment batch (named batch-<pod-template-hash>-<5 characters>)'),
    });
  });
});
