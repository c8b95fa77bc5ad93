import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
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
  loadSample,
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';

// The PoolPolicy controller end to end: the operator (in this process) against the real
// kube-apiserver and Prometheus; utilization comes from a prom-client exporter that Prometheus
// scrapes; a test loop stands in for the deployment controller and completes each rollout.

/** Fast windows so a test sees several steps in seconds; the decision logic is the same. */
const FAST_BEHAVIOR = {
  maxStepPercent: 20,
  scaleUpStabilization: '1s',
  scaleDownStabilization: '2s',
  minChangeInterval: '0s',
};

describe('PoolPolicy controller', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let exporter: ScrapeTarget;
  let utilization: Gauge;
  let rollouts: ReturnType<typeof simulateRollouts>;

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'pp');
    rollouts = simulateRollouts(kc, namespace);
    exporter = await startScrapeTarget(`pp-${namespace}`, { namespace, pod: 'api-5d8c7-x2x9q' });
    utilization = new Gauge({
      name: 'voiceassist_db_pool_utilization_percent',
      help: 'pool utilization',
      registers: [exporter.registry],
    });
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await exporter.stop();
    await deleteTestNamespace(kc, namespace);
  });

  it('grows DB_POOL_SIZE by at most 20 % per change up to max at 90 %, shrinks to min at 20 %, and touches nothing else', async () => {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest('api', [
        {
          name: 'api',
          env: [
            { name: 'LOG_FORMAT', value: 'json' },
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
            { name: 'DB_POOL_TIMEOUT', value: '30' },
          ],
        },
        { name: 'sidecar', env: [{ name: 'DB_POOL_SIZE', value: '5' }] },
      ]),
    );
    utilization.set(90);
    const sample = loadSample('poolpolicy-medium.yaml');
    await createPolicy(kc, namespace, 'api', {
      ...sample.spec,
      targetRef: { name: 'api', container: 'api' },
      redis: undefined,
      interval: '1s',
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 30 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: FAST_BEHAVIOR,
    });

    const grown = await eventually(
      async () => {
        const env = envOf(await getDeployment(kc, namespace, 'api'), 'api');
        return env.DB_POOL_SIZE === '30' ? env : undefined;
      },
      60000,
      'DB_POOL_SIZE to reach max 30',
    );
    expect(grown).toEqual({ LOG_FORMAT: 'json', DB_POOL_SIZE: '30', DB_MAX_OVERFLOW: '60', DB_POOL_TIMEOUT: '30' });

    const deployment = await getDeployment(kc, namespace, 'api');
    expect(envOf(deployment, 'sidecar')).toEqual({ DB_POOL_SIZE: '5' });
    expect(deployment.metadata?.managedFields?.map((f) => f.manager)).toContain('poolpilot');

    const atMax = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'api');
        return condition(p, 'Limited')?.reason === 'AtMax' ? p : undefined;
      },
      30000,
      'Limited=AtMax',
    );
    const steps = (atMax.status?.history ?? []) as Array<{
      changes: Array<{ setting: string; from: number; to: number }>;
    }>;
    const poolSteps = steps.flatMap((h) => h.changes.filter((c) => c.setting === 'DB_POOL_SIZE'));
    expect(poolSteps.map((c) => [c.from, c.to])).toEqual([
      [20, 24],
      [24, 28],
      [28, 30],
    ]);
    for (const step of poolSteps)
      expect(step.to - step.from).toBeLessThanOrEqual(Math.max(1, Math.floor(step.from * 0.2)));
    expect(atMax.status?.current).toEqual({ DB_POOL_SIZE: 30, DB_MAX_OVERFLOW: 60 });
    expect(condition(atMax, 'Ready')).toMatchObject({
      status: 'True',
      reason: 'Reconciled',
      observedGeneration: atMax.metadata.generation,
    });
    expect(condition(atMax, 'MetricsAvailable')).toMatchObject({ status: 'True' });

    const events = await kc
      .makeApiClient(CoreV1Api)
      .listNamespacedEvent({ namespace, fieldSelector: 'involvedObject.name=api,reason=PoolResized' });
    expect(events.items.map((e) => e.message)).toContainEqual(expect.stringMatching(/DB_POOL_SIZE 20→24.*90% > 80%/));

    utilization.set(20);
    const shrunk = await eventually(
      async () => {
        const env = envOf(await getDeployment(kc, namespace, 'api'), 'api');
        return env.DB_POOL_SIZE === '10' ? env : undefined;
      },
      90000,
      'DB_POOL_SIZE to shrink to min 10',
    );
    expect(shrunk).toEqual({ LOG_FORMAT: 'json', DB_POOL_SIZE: '10', DB_MAX_OVERFLOW: '20', DB_POOL_TIMEOUT: '30' });
    const atMin = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'api');
        return condition(p, 'Limited')?.reason === 'AtMin' ? p : undefined;
      },
      30000,
      'Limited=AtMin',
    );
    const history = (atMin.status?.history ?? []) as Array<{
      changes: Array<{ setting: string; from: number; to: number }>;
    }>;
    for (const change of history.flatMap((h) => h.changes.filter((c) => c.setting === 'DB_POOL_SIZE'))) {
      expect(change.to).toBeGreaterThanOrEqual(10);
      expect(change.to).toBeLessThanOrEqual(30);
      expect(Math.abs(change.to - change.from)).toBeLessThanOrEqual(Math.max(1, Math.floor(change.from * 0.2)));
    }
  });
});
