/**
 * Which PoolPolicy keys an object change concerns. The reconciler is level-triggered: these only
 * decide whom to wake, never what to do.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectStore } from '../../runtime/informer.js';
import { POLICY_BY_BUDGET, POLICY_BY_CONFIGMAP, POLICY_BY_DEPLOYMENT } from '../indexes.js';

export type PolicyKey = `${string}/${string}`;

export function keyOf(obj: KubernetesObject): PolicyKey | undefined {
  const { namespace, name } = obj.metadata ?? {};
  return namespace && name ? `${namespace}/${name}` : undefined;
}

export function splitKey(key: PolicyKey): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Keys of the stored policies that name the changed Deployment or ConfigMap (by index). */
export function policiesReferring(
  policies: ObjectStore<KubernetesObject>,
  changed: KubernetesObject,
  kind: 'Deployment' | 'ConfigMap',
): PolicyKey[] {
  const key = keyOf(changed);
  if (!key) return [];
  return policies.byIndex(kind === 'Deployment' ? POLICY_BY_DEPLOYMENT : POLICY_BY_CONFIGMAP, key).flatMap(ownKey);
}

/** The ConnectionBudget key a stored policy draws from, read without validation. */
export function budgetKeyOf(policy: KubernetesObject): PolicyKey | undefined {
  const name = (policy as { spec?: { budgetRef?: { name?: unknown } } }).spec?.budgetRef?.name;
  const namespace = policy.metadata?.namespace;
  return typeof name === 'string' && namespace ? `${namespace}/${name}` : undefined;
}

/** The budget keys the stored policies `keys` draw from, each once. */
function budgetKeysOf(policies: ObjectStore<KubernetesObject>, keys: readonly PolicyKey[]): Set<PolicyKey> {
  return new Set(
    keys.flatMap((key) => {
      const { namespace, name } = splitKey(key);
      const policy = policies.get(name, namespace);
      return (policy && budgetKeyOf(policy)) ?? [];
    }),
  );
}

/**
 * Keys of the policies sharing a budget with any policy in `touched`: a change to one policy's
 * replicas (an HPA's maxReplicas, a Deployment's replicas) moves every share of that budget.
 */
export function budgetPeers(policies: ObjectStore<KubernetesObject>, touched: readonly PolicyKey[]): PolicyKey[] {
  return [...budgetKeysOf(policies, touched)].flatMap((budget) =>
    policies.byIndex(POLICY_BY_BUDGET, budget).flatMap(ownKey),
  );
}

/** The object's own key (a policy's, or a budget's), as a mapper's list. */
export function ownKey(object: KubernetesObject): PolicyKey[] {
  const key = keyOf(object);
  return key ? [key] : [];
}

/** The ConnectionBudget key a policy draws from, as a mapper's list. */
export function budgetOfPolicy(policy: KubernetesObject): PolicyKey[] {
  const key = budgetKeyOf(policy);
  return key ? [key] : [];
}

/** `keys`, then every policy sharing a budget with one of them, each once. */
export function withBudgetPeers(policies: ObjectStore<KubernetesObject>, keys: readonly PolicyKey[]): PolicyKey[] {
  return [...new Set([...keys, ...budgetPeers(policies, keys)])];
}

/** The ConnectionBudget keys the policies `keys` draw from. */
export function budgetsOf(policies: ObjectStore<KubernetesObject>, keys: readonly PolicyKey[]): PolicyKey[] {
  return [...budgetKeysOf(policies, keys)];
}

/** Keys of the policies drawing from the ConnectionBudget `budget`. */
export function policiesOfBudget(policies: ObjectStore<KubernetesObject>, budget: KubernetesObject): PolicyKey[] {
  const key = keyOf(budget);
  return key ? policies.byIndex(POLICY_BY_BUDGET, key).flatMap(ownKey) : [];
}

/**
 * Passes a policy change only when its generation (its spec) is new, not on a status-only
 * update: a policy's own status write must not wake it again (a message that changes every pass,
 * e.g. a Stale age, would otherwise reconcile it in a tight loop and defeat the metrics backoff).
 * A recreated policy (new uid) is new. Call `forget` when the policy is deleted.
 */
export class GenerationChangedPredicate {
  private readonly seen = new Map<PolicyKey, string>();

  /** True the first time this uid/generation of the object is seen (it is remembered). */
  readonly test = (object: KubernetesObject): boolean => {
    const key = keyOf(object);
    if (!key) return false;
    const generation = `${object.metadata?.uid ?? ''}/${String(object.metadata?.generation ?? 0)}`;
    if (this.seen.get(key) === generation) return false;
    this.seen.set(key, generation);
    return true;
  };

  forget(key: PolicyKey): void {
    this.seen.delete(key);
  }
}

/** What a watch observes: an informer's change notifications (adds, updates and deletes). */
export interface WatchSource<T extends KubernetesObject> {
  onChange(handler: (object: T) => void): void;
}

/** The controller's work queues, by name (each leadership term has its own). */
export interface KeyQueues {
  readonly policies: { add(key: PolicyKey): void };
  readonly budgets: { add(key: PolicyKey): void };
}

/** One row of the wiring table: a change of `source` passing `predicate` adds `keys` to `queue`. */
export interface Watch<T extends KubernetesObject> {
  readonly source: WatchSource<T>;
  /** The keys a change concerns: whom to wake, never what to do. */
  readonly keys: (object: T) => readonly PolicyKey[];
  /** Which changes count; every change when absent. */
  readonly predicate?: (object: T) => boolean;
  /**
   * Waited for before the keys are queued (e.g. until the caches hold what a new policy names,
   * so its first reconcile does not find its target missing). Must not reject.
   */
  readonly before?: (object: T) => Promise<void>;
  readonly queue: keyof KeyQueues;
}

/** A row with its object type erased, so rows of different sources share one table. */
export interface Connectable {
  /** Starts routing the source's changes into the queue of `queues()` current at each change. */
  connect(queues: () => KeyQueues): void;
}

export function watch<T extends KubernetesObject>(row: Watch<T>): Connectable {
  return {
    connect: (queues) => {
      row.source.onChange((object) => {
        if (row.predicate && !row.predicate(object)) return;
        const add = (): void => {
          const queue = queues()[row.queue];
          for (const key of row.keys(object)) queue.add(key);
        };
        if (row.before) void row.before(object).then(add, add);
        else add();
      });
    },
  };
}

/**
 * Calls `forget` with the key of every object a change shows deleted (no longer in `stored`):
 * per-key state (queued keys, remembered generations, gauges, the ledger) must not outlive it.
 */
export function whenDeleted<T extends KubernetesObject>(
  source: WatchSource<T>,
  stored: (object: T) => boolean,
  forget: (key: PolicyKey) => void,
): void {
  source.onChange((object) => {
    const key = keyOf(object);
    if (key && !stored(object)) forget(key);
  });
}

/** A cache that holds only wanted objects (runtime/selective-informer.ts). */
export interface HoldingCache {
  /** Resolves once the cache holds the object if it is wanted and exists; never rejects. */
  hold(namespace: string, name: string): Promise<void>;
  /** Drops the object if the cache holds it and it is no longer wanted. */
  release(namespace: string, name: string): void;
}

/**
 * Keeps the Deployment and ConfigMap caches holding exactly what the stored policies name:
 * every policy change releases what it no longer names (once no other policy names it) and
 * `hold(policy)` brings in what it names now. Register {@link NamedObjects.onPolicyChange} on the
 * policy source after its indexes (which decide what is wanted) are updated.
 */
export class NamedObjects {
  /** Index values (`namespace/name`) each stored policy named at its last change. */
  private readonly named = new Map<PolicyKey, { deployments: string[]; configMaps: string[] }>();

  constructor(
    private readonly caches: { readonly deployments: HoldingCache; readonly configMaps: HoldingCache },
    private readonly namesOf: (policy: KubernetesObject) => { deployments: string[]; configMaps: string[] },
  ) {}

  /** Releases what a changed (or deleted: `stored` false) policy no longer names. */
  onPolicyChange(policy: KubernetesObject, stored: boolean): void {
    const key = keyOf(policy);
    if (!key) return;
    const now = stored ? this.namesOf(policy) : { deployments: [], configMaps: [] };
    const before = this.named.get(key);
    if (stored) this.named.set(key, now);
    else this.named.delete(key);
    for (const kind of ['deployments', 'configMaps'] as const)
      for (const value of before?.[kind] ?? [])
        if (!now[kind].includes(value)) this.caches[kind].release(...splitNames(value));
  }

  /** Resolves once the caches hold what `policy` names (what exists of it). */
  async hold(policy: KubernetesObject): Promise<void> {
    const names = this.namesOf(policy);
    await Promise.all([
      ...names.deployments.map((value) => this.caches.deployments.hold(...splitNames(value))),
      ...names.configMaps.map((value) => this.caches.configMaps.hold(...splitNames(value))),
    ]);
  }
}

function splitNames(value: string): [namespace: string, name: string] {
  const slash = value.indexOf('/');
  return [value.slice(0, slash), value.slice(slash + 1)];
}
