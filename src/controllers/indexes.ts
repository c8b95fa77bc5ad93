/**
 * The indexes the controllers read their caches by, so that what one change or one reconcile
 * looks up costs the objects that match, not a scan of every policy (at 10,000 policies in a
 * namespace each scan was ~10,000 objects, once per reconcile and once per watch event).
 * Specs are read without validation: a policy with a bad spec is still found (and woken).
 * Every value is `namespace/name` of the object named.
 */
import type { KubernetesObject, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { Indexers } from '../runtime/informer.js';

/** PoolPolicies by the Deployment their spec.targetRef names. */
export const POLICY_BY_TARGET = 'policyByTarget';
/** PoolPolicies by every Deployment they name (targetRef, pgbouncer.rolloutRef). */
export const POLICY_BY_DEPLOYMENT = 'policyByDeployment';
/** PoolPolicies by every ConfigMap they name (pgbouncer.configMapRef, delivery.configMapRef). */
export const POLICY_BY_CONFIGMAP = 'policyByConfigMap';
/** PoolPolicies by the ConnectionBudget they draw from (budgetRef). */
export const POLICY_BY_BUDGET = 'policyByBudget';
/** HorizontalPodAutoscalers by the Deployment they scale. */
export const HPA_BY_DEPLOYMENT = 'hpaByDeployment';

interface LooseSpec {
  targetRef?: { name?: unknown };
  budgetRef?: { name?: unknown };
  pgbouncer?: { configMapRef?: { name?: unknown }; rolloutRef?: { name?: unknown } };
  delivery?: { configMapRef?: { name?: unknown } };
}

/** `namespace/name` for each name that is a string, in the object's namespace. */
function inNamespace(object: KubernetesObject, ...names: unknown[]): string[] {
  const namespace = object.metadata?.namespace;
  if (!namespace) return [];
  return names.filter((n): n is string => typeof n === 'string').map((name) => `${namespace}/${name}`);
}

const specOf = (policy: KubernetesObject): LooseSpec => (policy as { spec?: LooseSpec }).spec ?? {};

/** `namespace/name` of every Deployment a policy names. */
export function deploymentsNamedBy(p: KubernetesObject): string[] {
  return [...new Set(inNamespace(p, specOf(p).targetRef?.name, specOf(p).pgbouncer?.rolloutRef?.name))];
}

/** `namespace/name` of every ConfigMap a policy names. */
export function configMapsNamedBy(p: KubernetesObject): string[] {
  return [...new Set(inNamespace(p, specOf(p).pgbouncer?.configMapRef?.name, specOf(p).delivery?.configMapRef?.name))];
}

export const POLICY_INDEXERS: Indexers<KubernetesObject> = {
  [POLICY_BY_TARGET]: (p) => inNamespace(p, specOf(p).targetRef?.name),
  [POLICY_BY_DEPLOYMENT]: deploymentsNamedBy,
  [POLICY_BY_CONFIGMAP]: configMapsNamedBy,
  [POLICY_BY_BUDGET]: (p) => inNamespace(p, specOf(p).budgetRef?.name),
};

export const HPA_INDEXERS: Indexers<V2HorizontalPodAutoscaler> = {
  [HPA_BY_DEPLOYMENT]: (h) =>
    h.spec.scaleTargetRef.kind === 'Deployment' ? inNamespace(h, h.spec.scaleTargetRef.name) : [],
};
