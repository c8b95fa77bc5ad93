/**
 * Which PoolPolicy keys an object change concerns. The reconciler is level-triggered: these only
 * decide whom to wake, never what to do.
 */
import type { KubernetesObject } from '@kubernetes/client-node';

export type PolicyKey = `${string}/${string}`;

export function keyOf(obj: KubernetesObject): PolicyKey | undefined {
  const { namespace, name } = obj.metadata ?? {};
  return namespace && name ? `${namespace}/${name}` : undefined;
}

export function splitKey(key: PolicyKey): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

interface LooseSpec {
  targetRef?: { name?: unknown };
  pgbouncer?: { configMapRef?: { name?: unknown }; rolloutRef?: { name?: unknown } };
}

/** Names a stored policy refers to, read without validation (a bad spec still gets woken). */
export function referencedNames(policy: KubernetesObject): { deployments: string[]; configMaps: string[] } {
  const spec = (policy as { spec?: LooseSpec }).spec ?? {};
  const names = (...values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string');
  return {
    deployments: names(spec.targetRef?.name, spec.pgbouncer?.rolloutRef?.name),
    configMaps: names(spec.pgbouncer?.configMapRef?.name),
  };
}

/** Keys of the policies in `policies` that refer to the changed Deployment or ConfigMap. */
export function policiesReferring(policies: readonly KubernetesObject[], changed: KubernetesObject, kind: 'Deployment' | 'ConfigMap'): PolicyKey[] {
  const { namespace, name } = changed.metadata ?? {};
  if (!namespace || !name) return [];
  return policies.flatMap((policy) => {
    if (policy.metadata?.namespace !== namespace) return [];
    const refs = referencedNames(policy);
    const hit = kind === 'Deployment' ? refs.deployments.includes(name) : refs.configMaps.includes(name);
    const key = keyOf(policy);
    return hit && key ? [key] : [];
  });
}

/** The ConnectionBudget key a stored policy draws from, read without validation. */
export function budgetKeyOf(policy: KubernetesObject): PolicyKey | undefined {
  const name = (policy as { spec?: { budgetRef?: { name?: unknown } } }).spec?.budgetRef?.name;
  const namespace = policy.metadata?.namespace;
  return typeof name === 'string' && namespace ? `${namespace}/${name}` : undefined;
}

/**
 * Keys of the policies sharing a budget with any policy in `touched`: a change to one policy's
 * replicas (an HPA's maxReplicas, a Deployment's replicas) moves every share of that budget.
 */
export function budgetPeers(policies: readonly KubernetesObject[], touched: readonly PolicyKey[]): PolicyKey[] {
  const budgets = new Set(policies.filter((p) => touched.includes(keyOf(p) ?? '/')).flatMap((p) => budgetKeyOf(p) ?? []));
  return policies.flatMap((p) => {
    const budget = budgetKeyOf(p);
    const key = keyOf(p);
    return budget && key && budgets.has(budget) ? [key] : [];
  });
}
