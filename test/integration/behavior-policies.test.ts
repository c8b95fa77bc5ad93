import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
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
  installCrds,
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { passesOfEach, policyWhen } from './support/suite.js';

// spec.behavior.scaleUp policies end to end: the operator (in this process) against the real
// kube-apiserver and Prometheus. The policy's period (1h) outlasts the test, so the change the
// operator makes first must keep counting against it, read back from status.history.

describe('PoolPolicy behavior.scaleUp policies', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let exporter: ScrapeTarget;
  let rollouts: ReturnType<typeof simulateRollouts>;

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'bh');
    rollouts = simulateRollouts(kc, namespace);
    exporter = await startScrapeTarget(`bh-${namespace}`, { namespace, pod: 'api-5d8c7-x2x9q' });
    new Gauge({
      name: 'voiceassist_db_pool_utilization_percent',
      help: 'pool utilization',
      registers: [exporter.registry],
    }).set(90);
    operator = await startOperator(namespace);
  });

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await exporter.stop();
    await deleteTestNamespace(kc, namespace);
  });

  it('Connections 3 per 1h: grows 20→23 at once, then holds with Limited=ScaleUpLimit naming the policy and period', async () => {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest('api', [
        {
          name: 'api',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    );
    await createPolicy(kc, namespace, 'api', {
      targetRef: { name: 'api', container: 'api' },
      interval: '1s',
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: {
        minChangeInterval: '0s',
        scaleUp: { stabilizationWindow: '0s', policies: [{ type: 'Connections', value: 3, period: '1h' }] },
      },
    });

    const held = await policyWhen(
      kc,
      namespace,
      'api',
      (p) => p.status?.current?.DB_POOL_SIZE === 23 && (condition(p, 'Limited')?.message.includes('no room') ?? false),
      'DB_POOL_SIZE 23 and a ScaleUpLimit hold',
      60_000,
    );
    const limited = condition(held, 'Limited');
    expect(limited).toMatchObject({ status: 'True', reason: 'ScaleUpLimit' });
    expect(limited?.message).toContain(
      'scale-up limited by policy Connections 3 per 1h0m0s (selectPolicy Max; from 20 at the start of the period, +3 already changed in it): no room for 23→',
    );

    // The period has not moved on: more passes of the policy change nothing.
    await passesOfEach(operator, kc, namespace, 3);
    expect(envOf(await getDeployment(kc, namespace, 'api'), 'api')).toEqual({
      DB_POOL_SIZE: '23',
      DB_MAX_OVERFLOW: '46',
    });
    const after = await policyWhen(kc, namespace, 'api', () => true, 'the policy');
    const steps = (
      (after.status?.history ?? []) as Array<{ changes: Array<{ setting: string; from: number; to: number }> }>
    ).flatMap((h) => h.changes.filter((c) => c.setting === 'DB_POOL_SIZE'));
    expect(steps.map((c) => [c.from, c.to])).toEqual([[20, 23]]);
    expect(condition(after, 'Limited')?.reason).toBe('ScaleUpLimit');
  });
});
