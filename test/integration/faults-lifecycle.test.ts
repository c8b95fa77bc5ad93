import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import type { PolicyWriter } from '../../src/controllers/poolpolicy/reconciler.js';
import type { RunningController } from '../../src/main.js';
import { createDeployment, deploymentManifest } from './support/kube.js';
import {
  completeRollout,
  condition,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  startOperator,
} from './support/operator.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { cacheHas, startReconciler } from './support/reconciler.js';
import { FAST, openTestNamespace, passesOfEach, policyWhen, type TestNamespace } from './support/suite.js';

// Objects come and go under the operator, and the operator itself dies at the worst moment.
// Real API server and Prometheus.

const DATABASE = { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface HistoryEntry {
  readonly time: string;
  readonly changes: ReadonlyArray<{ setting: string; from: number; to: number }>;
}

describe('lifecycle faults', () => {
  let kc: KubeConfig;
  let namespace: string;
  let scope: TestNamespace;
  const targets: ScrapeTarget[] = [];
  const stops: Array<() => Promise<void>> = [];

  async function gauge(deployment: string, value: number): Promise<{ metric: string; gauge: Gauge }> {
    const metric = `lc_${deployment}_utilization`;
    const target = await startScrapeTarget(`${namespace}-${deployment}`, {
      namespace,
      pod: `${deployment}-7c9b8d6f54-x2x9q`,
    });
    targets.push(target);
    const g = new Gauge({ name: metric, help: 'utilization', registers: [target.registry] });
    g.set(value);
    await eventually(
      async () => ((await queryVector(`${metric}{namespace="${namespace}"}`)).length === 1 ? true : undefined),
      30_000,
      `${metric} in Prometheus`,
    );
    return { metric, gauge: g };
  }

  async function workload(name: string, size: number): Promise<void> {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest(name, [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: String(size) },
            { name: 'DB_MAX_OVERFLOW', value: String(2 * size) },
          ],
        },
      ]),
    );
    await completeRollout(kc, namespace, name);
  }

  /**
   * Drives the reconciler alone (a process of its own) until it has patched the Deployment and
   * then "dies" on the status write that follows (passes every 0.5 s).
   */
  async function runUntilCrash(name: string): Promise<void> {
    const crash = { patched: false, died: false };
    const dying = (kube: PolicyWriter): PolicyWriter => ({
      applyContainerEnv: async (...args) => {
        const r = await kube.applyContainerEnv(...args);
        crash.patched = true;
        return r;
      },
      applyConfigMapData: (...args) => kube.applyConfigMapData(...args),
      applyPodTemplateAnnotation: (...args) => kube.applyPodTemplateAnnotation(...args),
      annotatePods: (...args) => kube.annotatePods(...args),
      applyStatus: async (...args) => {
        if (crash.patched && !crash.died) {
          crash.died = true;
          throw new Error('killed (SIGKILL) before the status write');
        }
        return kube.applyStatus(...args);
      },
      emitEvent: (...args) => kube.emitEvent(...args),
    });
    const run = await startReconciler(namespace, dying);
    try {
      await cacheHas(run.policies, namespace, name, () => true);
      await cacheHas(run.deployments, namespace, name, () => true);
      /** One pass; true once the process "died" in it. */
      const pass = async (): Promise<boolean> => {
        try {
          await run.reconciler.reconcile(`${namespace}/${name}`);
        } catch (err) {
          if (!crash.died) throw err;
        }
        return crash.died;
      };
      while (!(await pass())) await sleep(500);
    } finally {
      await run.stop();
    }
  }

  beforeAll(async () => {
    scope = await openTestNamespace('faults-life');
    ({ kc, namespace } = scope);
  });

  afterAll(async () => {
    await scope.close(...stops.reverse(), () => Promise.all(targets.map((t) => t.stop())));
  });

  describe('with the operator running', () => {
    let operator: RunningController;

    beforeAll(async () => {
      operator = await startOperator(namespace);
    });

    afterAll(async () => {
      await operator.stop();
    });

    it('target Deployment deleted: Ready=False/TargetNotFound; recreated: the policy resumes by itself', async () => {
      const name = 'gone';
      await workload(name, 20);
      const { metric, gauge: g } = await gauge(name, 50);
      await createPolicy(kc, namespace, name, {
        targetRef: { name },
        database: { ...DATABASE, utilization: `max(${metric}{namespace="$namespace"})` },
        ...FAST,
      });
      await policyWhen(
        kc,
        namespace,
        name,
        (p) => condition(p, 'Ready')?.status === 'True' && p.status?.current?.DB_POOL_SIZE === 20,
        'Ready with 20',
      );

      await kc.makeApiClient(AppsV1Api).deleteNamespacedDeployment({ name, namespace });
      const lost = await policyWhen(
        kc,
        namespace,
        name,
        (p) => condition(p, 'Ready')?.reason === 'TargetNotFound',
        'TargetNotFound',
      );
      expect(condition(lost, 'Ready')).toMatchObject({ status: 'False', reason: 'TargetNotFound' });
      expect(condition(lost, 'Ready')?.message).toMatch(/deployment gone not found/);

      // Recreated (with other values) and busy: nobody touches the policy, it picks it up.
      g.set(90);
      await workload(name, 30);
      const resumed = await policyWhen(
        kc,
        namespace,
        name,
        (p) => condition(p, 'Ready')?.status === 'True' && p.status?.current?.DB_POOL_SIZE === 36,
        'resumed: a step from the new 30 to 36',
      );
      expect(resumed.status?.current).toEqual({ DB_POOL_SIZE: 36, DB_MAX_OVERFLOW: 72 });
      expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
        DB_POOL_SIZE: '36',
        DB_MAX_OVERFLOW: '72',
      });
    });

    it('PoolPolicy deleted: the target is left as it is and the operator keeps no trace of the key', async () => {
      const name = 'dropped';
      await workload(name, 20);
      const { metric } = await gauge(name, 90);
      await createPolicy(kc, namespace, name, {
        targetRef: { name },
        database: { ...DATABASE, utilization: `max(${metric}{namespace="$namespace"})` },
        ...FAST,
      });
      await policyWhen(kc, namespace, name, (p) => p.status?.current?.DB_POOL_SIZE === 24, 'a first step to 24');

      const custom = kc.makeApiClient(CustomObjectsApi);
      for (const policy of ['dropped', 'gone'])
        await custom.deleteNamespacedCustomObject({
          group: 'poolpilot.io',
          version: 'v1alpha1',
          plural: 'poolpolicies',
          namespace,
          name: policy,
        });
      // Let the rollout complete: with the policy alive, this would allow the next step.
      await completeRollout(kc, namespace, name);
      const before = await getDeployment(kc, namespace, name);
      // No key queued, delayed, in flight or being retried: only the idle workers wait, and
      // nothing is left that could ever write the Deployment again.
      const idle = { queued: 0, dirty: 0, processing: 0, timers: 0, removedInFlight: 0 };
      await eventually(
        () =>
          Promise.resolve(
            Object.entries(idle).every(([k, v]) => operator.queueSizes()[k as keyof typeof idle] === v)
              ? true
              : undefined,
          ),
        30_000,
        'an idle work queue',
      );
      const after = await getDeployment(kc, namespace, name);
      expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
      expect(envOf(after, 'app')).toEqual({ DB_POOL_SIZE: '24', DB_MAX_OVERFLOW: '48' });
      expect(operator.queueSizes()).toMatchObject(idle);
    });
  });

  it('operator dies between patching the Deployment and writing status: the next run sees the applied value and steps once per stabilization window', async () => {
    const name = 'crash';
    const WINDOW_S = 5;
    await workload(name, 20);
    const { metric } = await gauge(name, 90);
    await createPolicy(kc, namespace, name, {
      targetRef: { name },
      database: { ...DATABASE, utilization: `max(${metric}{namespace="$namespace"})` },
      interval: '1s',
      behavior: {
        maxStepPercent: 20,
        scaleUpStabilization: `${WINDOW_S}s`,
        scaleDownStabilization: '0s',
        minChangeInterval: '0s',
      },
    });

    // Run 1: the reconciler alone; the status write that follows the env patch "dies".
    await runUntilCrash(name);
    expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
      DB_POOL_SIZE: '24',
      DB_MAX_OVERFLOW: '48',
    });
    const orphaned = await getPolicy(kc, namespace, name);
    expect(orphaned.status?.current?.DB_POOL_SIZE).toBe(20); // the status never learned of it
    expect(orphaned.status?.history ?? []).toEqual([]);

    // Run 2: the operator starts again. Its rollout is not complete yet: the gate holds.
    const operator = await startOperator(namespace);
    stops.push(() => operator.stop());
    const held = await policyWhen(
      kc,
      namespace,
      name,
      (p) => p.status?.current?.DB_POOL_SIZE === 24,
      'status catching up with the applied 24',
    );
    expect(condition(held, 'Limited')?.reason).toBe('RolloutInProgress');
    await passesOfEach(operator, kc, namespace, 2);
    expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
      DB_POOL_SIZE: '24',
      DB_MAX_OVERFLOW: '48',
    });

    // The rollout completes; the breach must re-earn its whole window from then on.
    await completeRollout(kc, namespace, name);
    const completedAt = (await getDeployment(kc, namespace, name)).status?.conditions?.find(
      (c) => c.type === 'Progressing',
    )?.lastUpdateTime;
    const stepped = await policyWhen(
      kc,
      namespace,
      name,
      (p) => p.status?.current?.DB_POOL_SIZE === 28,
      'the next step, 24 → 28',
      30_000,
    );
    const history = (stepped.status?.history ?? []) as HistoryEntry[];
    expect(history).toHaveLength(1);
    expect(history[0]?.changes).toContainEqual({ setting: 'DB_POOL_SIZE', from: 24, to: 28 });
    const stepAt = Date.parse(history[0]?.time ?? '');
    // Second-precision timestamps on both sides: at least the window minus one second.
    expect(stepAt - new Date(completedAt ?? 0).getTime()).toBeGreaterThanOrEqual((WINDOW_S - 1) * 1000);
    expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
      DB_POOL_SIZE: '28',
      DB_MAX_OVERFLOW: '56',
    });
    await operator.stop();
  });

  it('the same crash with minChangeInterval: the lost status does not let the next run change again within the interval', async () => {
    const name = 'crash-interval';
    await workload(name, 20);
    const { metric } = await gauge(name.replace('-', '_'), 90);
    await createPolicy(kc, namespace, name, {
      targetRef: { name },
      database: { ...DATABASE, utilization: `max(${metric}{namespace="$namespace"})` },
      interval: '1s',
      behavior: {
        maxStepPercent: 20,
        scaleUpStabilization: '0s',
        scaleDownStabilization: '0s',
        minChangeInterval: '1h',
      },
    });
    await runUntilCrash(name);
    expect(envOf(await getDeployment(kc, namespace, name), 'app')).toEqual({
      DB_POOL_SIZE: '24',
      DB_MAX_OVERFLOW: '48',
    });
    expect((await getPolicy(kc, namespace, name)).status?.lastChange).toBeUndefined();

    // The next run, with the rollout complete: the status knows no change, the Deployment does.
    await completeRollout(kc, namespace, name);
    const operator = await startOperator(namespace);
    try {
      const held = await policyWhen(
        kc,
        namespace,
        name,
        (p) => p.status?.current?.DB_POOL_SIZE === 24 && condition(p, 'Limited')?.reason === 'MinIntervalNotElapsed',
        'MinIntervalNotElapsed at 24',
      );
      expect(condition(held, 'Limited')?.message).toMatch(/minimum interval/);
      const before = (await getDeployment(kc, namespace, name)).metadata?.resourceVersion;
      await passesOfEach(operator, kc, namespace, 3);
      const after = await getDeployment(kc, namespace, name);
      expect(after.metadata?.resourceVersion).toBe(before);
      expect(envOf(after, 'app')).toEqual({ DB_POOL_SIZE: '24', DB_MAX_OVERFLOW: '48' });
    } finally {
      await operator.stop();
    }
  });
});
