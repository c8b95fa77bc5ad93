import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { RunningController } from '../../../src/main.js';
import { getPolicy, operatorMetric, type PolicyView } from './operator.js';
import { eventually } from './prometheus.js';

/** A policy that acts at once: 1 s interval, steps of 20 %, no stabilization, no minimum interval. */
export const FAST = { interval: '1s', behavior: { maxStepPercent: 20, scaleUpStabilization: '0s', scaleDownStabilization: '0s', minChangeInterval: '0s' } };

/** The PoolPolicy `name` once `predicate` holds for it. */
export async function policyWhen(kc: KubeConfig, namespace: string, name: string, predicate: (p: PolicyView) => boolean, what: string, timeoutMs = 30_000): Promise<PolicyView> {
  return eventually(async () => {
    const p = await getPolicy(kc, namespace, name);
    return predicate(p) ? p : undefined;
  }, timeoutMs, what);
}

/** The successful reconcile passes the operator counted (its own poolpilot_reconciles_total). */
export function successfulPasses(operator: Pick<RunningController, 'metricsPort'>): Promise<number> {
  return operatorMetric(operator, 'poolpilot_reconciles_total', { result: 'success' });
}

/** Waits until the operator counted `n` more successful reconcile passes, of any policy. */
export async function morePasses(operator: Pick<RunningController, 'metricsPort'>, n: number, timeoutMs = 60_000): Promise<void> {
  const start = await successfulPasses(operator);
  await eventually(async () => ((await successfulPasses(operator)) >= start + n ? true : undefined), timeoutMs, `${n} more reconcile passes`);
}

/**
 * Waits until the operator (watching `namespace`) counted `n` more successful passes for each
 * PoolPolicy there: `n` × their number in total, as its work queue serves the keys in turn. The
 * replacement for "sleep a few intervals, then assert that nothing happened".
 */
export async function passesOfEach(operator: Pick<RunningController, 'metricsPort'>, kc: KubeConfig, namespace: string, n: number): Promise<void> {
  const list = (await kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies', namespace })) as { items: PolicyView[] };
  await morePasses(operator, n * Math.max(1, list.items.length));
}
