import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import type { RunningController } from '../../src/main.js';
import { createDeployment, deploymentManifest } from './support/kube.js';
import { repoRoot } from './support/local-env.js';
import {
  completeRollout,
  condition,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  type PolicyView,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { openTestNamespace, passesOfEach, policyWhen, type OperatorNamespace } from './support/suite.js';

// The control plane fails under a running operator: kube-apiserver and etcd are killed and
// started again with the same command line (test/controlplane/restart.sh: same ports, data and
// kubeconfig, so the plane is healthy for the tests after this file). The operator's informers
// resume, a change made during the outage is acted on afterwards, and nothing is done twice.

const execFileAsync = promisify(execFile);
const DATABASE = { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } };
/** One step per breach: a second step would need an hour (minChangeInterval). */
const ONE_STEP = {
  interval: '1s',
  behavior: { maxStepPercent: 20, scaleUpStabilization: '0s', scaleDownStabilization: '0s', minChangeInterval: '1h' },
};

async function restart(component: 'etcd' | 'kube-apiserver', downSeconds: number): Promise<void> {
  await execFileAsync(
    'bash',
    [join(repoRoot, 'test/controlplane/restart.sh'), component, '--kill', '--down-seconds', String(downSeconds)],
    { timeout: 120_000 },
  );
}

interface HistoryEntry {
  readonly time: string;
  readonly changes: ReadonlyArray<{ setting: string; from: number; to: number }>;
}

/** Every step in history is distinct and within maxStepPercent (at least 1) of its from. */
function expectDistinctBoundedSteps(policy: PolicyView, maxStepPercent: number): void {
  const history = (policy.status?.history ?? []) as HistoryEntry[];
  const keys = history.flatMap((h) => h.changes.map((c) => `${c.setting}:${c.from}->${c.to}`));
  expect(new Set(keys).size).toBe(keys.length);
  for (const h of history) {
    for (const c of h.changes) {
      if (c.setting !== 'DB_POOL_SIZE') continue;
      expect(Math.abs(c.to - c.from)).toBeLessThanOrEqual(Math.max(1, Math.ceil((c.from * maxStepPercent) / 100)));
    }
  }
}

describe('control-plane faults under a running operator', () => {
  let kc: KubeConfig;
  let namespace: string;
  let scope: OperatorNamespace;
  let operator: RunningController;
  const targets: ScrapeTarget[] = [];

  async function workload(name: string, percent: number): Promise<Gauge> {
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
    const metric = `cp_${name.replace(/-/g, '_')}_utilization`;
    const target = await startScrapeTarget(`${namespace}-${name}`, { namespace, pod: `${name}-7c9b8d6f54-x2x9q` });
    targets.push(target);
    const gauge = new Gauge({ name: metric, help: 'utilization', registers: [target.registry] });
    gauge.set(percent);
    await eventually(
      async () => ((await queryVector(`${metric}{namespace="${namespace}"}`)).length === 1 ? true : undefined),
      30_000,
      `${metric} in Prometheus`,
    );
    await createPolicy(kc, namespace, name, {
      targetRef: { name },
      database: { ...DATABASE, utilization: `max(${metric}{namespace="$namespace"})` },
      ...ONE_STEP,
    });
    return gauge;
  }

  const settled = (p: PolicyView): boolean =>
    condition(p, 'Limited')?.reason === 'DeadBand' && condition(p, 'MetricsAvailable')?.status === 'True';

  beforeAll(async () => {
    scope = await openTestNamespace('faults-cp', { rollouts: true, operator: true });
    ({ kc, namespace, operator } = scope);
  });

  afterAll(async () => {
    await scope.close(() => Promise.all(targets.map((t) => t.stop())));
  });

  it.each([
    ['kube-apiserver', 'apiserver'],
    ['etcd', 'etcd'],
  ] as const)(
    '%s killed and restarted: the breach that began during the outage gets exactly one step afterwards',
    async (component, name) => {
      const gauge = await workload(name, 50);
      await policyWhen(kc, namespace, name, settled, 'a settled dead-band status', 60_000);

      // Down for 3 s; utilization jumps to 90 % while it is down.
      const outage = restart(component, 3);
      await new Promise((resolve) => setTimeout(resolve, 500));
      gauge.set(90);
      await outage;

      const stepped = await policyWhen(
        kc,
        namespace,
        name,
        (p) => p.status?.current?.DB_POOL_SIZE === 24,
        'the step to 24 after the outage',
        60_000,
      );
      expect(stepped.status?.current).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
      // Several intervals later: still exactly that one step in the Deployment, and at most that
      // one in history (a status write that failed while the API server came back loses its
      // history entry, never the minimum interval: that also counts from managedFields).
      await passesOfEach(operator, kc, namespace, 3);
      const later = await getPolicy(kc, namespace, name);
      expect(later.status?.current).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
      expect((later.status?.history ?? []).length).toBeLessThanOrEqual(1);
      expectDistinctBoundedSteps(later, 20);
      expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
        DB_POOL_SIZE: '24',
        DB_MAX_OVERFLOW: '48',
      });

      // The informers resumed: objects created after the outage reach the operator through its
      // watches (a new Deployment and a new PoolPolicy, which gets a status of its own).
      const created = `${name}-after`;
      await workload(created, 50);
      await policyWhen(
        kc,
        namespace,
        created,
        settled,
        `the policy ${created}, created after the outage, gets a status`,
        60_000,
      );
    },
  );

  it('the plane is healthy afterwards: same kubeconfig and ports, data intact', async () => {
    const p = await getPolicy(kc, namespace, 'apiserver');
    expect(p.status?.current).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect((await kc.makeApiClient(CoreV1Api).readNamespace({ name: namespace })).metadata?.name).toBe(namespace);
  });
});
