import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { RunningController } from '../../../src/main.js';
import { adminKubeConfig, createTestNamespace, deleteTestNamespace } from './kube.js';
import {
  getPolicy,
  installCrds,
  operatorMetric,
  simulateRollouts,
  startOperator,
  type PolicyView,
} from './operator.js';
import { eventually } from './prometheus.js';

/** A policy that acts at once: 1 s interval, steps of 20 %, no stabilization, no minimum interval. */
export const FAST = {
  interval: '1s',
  behavior: { maxStepPercent: 20, scaleUpStabilization: '0s', scaleDownStabilization: '0s', minChangeInterval: '0s' },
};

/** The PoolPolicy `name` once `predicate` holds for it. */
export async function policyWhen(
  kc: KubeConfig,
  namespace: string,
  name: string,
  predicate: (p: PolicyView) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<PolicyView> {
  let last: PolicyView | undefined;
  try {
    return await eventually(
      async () => {
        last = await getPolicy(kc, namespace, name);
        return predicate(last) ? last : undefined;
      },
      timeoutMs,
      what,
    );
  } catch (error) {
    // What the policy said last, so that a timeout in CI tells why it never got there.
    const conditions = (last?.status?.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}: ${c.message}`);
    throw new Error(
      `${error instanceof Error ? error.message : String(error)}; its conditions last: ${conditions.join(' | ')}`,
    );
  }
}

/** The successful reconcile passes the operator counted (its own poolpilot_reconciles_total). */
export function successfulPasses(operator: Pick<RunningController, 'metricsPort'>): Promise<number> {
  return operatorMetric(operator, 'poolpilot_reconciles_total', { result: 'success' });
}

/** Waits until the operator counted `n` more successful reconcile passes, of any policy. */
export async function morePasses(
  operator: Pick<RunningController, 'metricsPort'>,
  n: number,
  timeoutMs = 60_000,
): Promise<void> {
  const start = await successfulPasses(operator);
  await eventually(
    async () => ((await successfulPasses(operator)) >= start + n ? true : undefined),
    timeoutMs,
    `${n} more reconcile passes`,
  );
}

/**
 * Waits until the operator (watching `namespace`) counted `n` more successful passes for each
 * PoolPolicy there: `n` × their number in total, as its work queue serves the keys in turn. The
 * replacement for "sleep a few intervals, then assert that nothing happened".
 */
export async function passesOfEach(
  operator: Pick<RunningController, 'metricsPort'>,
  kc: KubeConfig,
  namespace: string,
  n: number,
): Promise<void> {
  const list = (await kc
    .makeApiClient(CustomObjectsApi)
    .listNamespacedCustomObject({ group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies', namespace })) as {
    items: PolicyView[];
  };
  await morePasses(operator, n * Math.max(1, list.items.length));
}

/** A fresh namespace on the local control plane, with what the integration files start in it. */
export interface TestNamespace {
  readonly kc: KubeConfig;
  readonly namespace: string;
  /**
   * Stops the operator and the simulated rollouts this opened, then runs `others` (scrape
   * targets, proxies) in order, then deletes the namespace.
   */
  close(...others: Array<() => unknown>): Promise<void>;
}

/** A test namespace with the operator watching it. */
export type OperatorNamespace = TestNamespace & { readonly operator: RunningController };

interface OpenOptions {
  /** Stand in for the deployment controller (simulateRollouts). */
  readonly rollouts?: boolean;
  /** Start the operator watching the namespace (resolved once its caches synced). */
  readonly operator?: boolean;
}

/**
 * What most integration files' beforeAll does: the admin kubeconfig, the CRDs installed, a
 * namespace `<prefix>-<random>`, optionally the simulated rollouts and the operator.
 */
export async function openTestNamespace(
  prefix: string,
  options: OpenOptions & { readonly operator: true },
): Promise<OperatorNamespace>;
export async function openTestNamespace(
  prefix: string,
  options?: OpenOptions & { readonly operator?: false },
): Promise<TestNamespace>;
export async function openTestNamespace(
  prefix: string,
  options: OpenOptions = {},
): Promise<TestNamespace & { readonly operator?: RunningController }> {
  const kc = adminKubeConfig();
  installCrds();
  const namespace = await createTestNamespace(kc, prefix);
  const rollouts = options.rollouts === true ? simulateRollouts(kc, namespace) : undefined;
  const operator = options.operator === true ? await startOperator(namespace) : undefined;
  return {
    kc,
    namespace,
    ...(operator ? { operator } : {}),
    close: async (...others) => {
      await operator?.stop();
      rollouts?.stop();
      for (const other of others) await other();
      await deleteTestNamespace(kc, namespace);
    },
  };
}
