/**
 * Reads, from the informer caches, what the budget arithmetic (domain/budget.ts) needs: the
 * ConnectionBudget's capacity, and for each PoolPolicy drawing from it the replicas its pools
 * multiply by and its wanted and current values.
 *
 * Current values are the larger of the policy's status and the ledger of values this process
 * wrote a moment ago (the cache may not show them yet), so a reconcile never counts a peer as
 * holding less than it may.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseConnectionBudgetSpec, type ConnectionBudgetSpec } from '../../api/v1alpha1/connectionbudget.js';
import { parsePoolPolicySpec, parsePoolPolicyStatus, type PoolPolicySpec } from '../../api/v1alpha1/poolpolicy.js';
import { claimsOf, rolloutSurge, type Backend, type BudgetFacts, type PolicyFacts } from '../../domain/budget.js';
import type { UtilizationSample } from '../../domain/decide.js';
import { drainingValues, rolloutDrainingValues } from '../../domain/delivery.js';
import type { DemandReading } from '../../domain/fill.js';
import { readPgbouncerSettings } from '../../domain/pgbouncer-ini.js';
import { rolloutCompletedAt } from '../../domain/rollout.js';
import { sectionsOf } from '../../domain/sections.js';
import { HPA_BY_DEPLOYMENT, POLICY_BY_BUDGET } from '../indexes.js';
import type { ClusterStores } from '../stores.js';

/**
 * What a FillToBudget peer's pool metrics say of its demand, for sharing the budget by demand
 * (domain/fill.ts demandLevel, with the peer's capacity); undefined when not read. Never throws.
 */
export type PeerDemand = (namespace: string, spec: PoolPolicySpec) => Promise<DemandReading | undefined>;

/** Evaluates a capacity query (postgres_exporter / redis_exporter); never throws. */
/** `namespace` is the budget's (for spec.prometheus.authSecretRef). */
export type CapacityQuery = (
  query: string,
  prometheus: ConnectionBudgetSpec['prometheus'],
  namespace: string,
) => Promise<UtilizationSample>;

/** Values this process applied, by policy key, until the caches show them. */
export class AppliedLedger {
  private readonly applied = new Map<string, Readonly<Record<string, number>>>();

  record(policy: string, values: Readonly<Record<string, number>>): void {
    this.applied.set(policy, { ...this.applied.get(policy), ...values });
  }

  /** The larger of each stored value and the recorded one; forgets what the store caught up with. */
  currentOf(policy: string, stored: Readonly<Record<string, number>>): Record<string, number> {
    const recorded = this.applied.get(policy);
    if (!recorded) return { ...stored };
    const merged: Record<string, number> = { ...stored };
    let pending = false;
    for (const [key, value] of Object.entries(recorded)) {
      if (stored[key] !== value) pending = true;
      merged[key] = Math.max(stored[key] ?? value, value);
    }
    if (!pending) this.applied.delete(policy);
    return merged;
  }

  forget(policy: string): void {
    this.applied.delete(policy);
  }
}

/**
 * The most pods of a Deployment that may hold pools at once: its spec.replicas or the maxReplicas
 * of an HPA targeting it, whichever is more, plus the surge pods of a rolling update while one is
 * running (counting them all the time would hold every pool a quarter lower for pods that exist
 * only during a rollout).
 */
export function replicasOf(
  stores: ClusterStores,
  namespace: string,
  deployment: string,
  surge: 'withSurge' | 'withoutSurge' = 'withSurge',
): number {
  const object = stores.deployments.get(deployment, namespace);
  const spec = object?.spec?.replicas ?? 1;
  const hpaMax = stores.hpas.byIndex(HPA_BY_DEPLOYMENT, `${namespace}/${deployment}`).map((h) => h.spec.maxReplicas);
  const replicas = Math.max(spec, ...hpaMax);
  return surge === 'withSurge' && rolling(stores, namespace, deployment)
    ? replicas + rolloutSurge(replicas, object?.spec?.strategy)
    : replicas;
}

export type BudgetCapacity =
  | { readonly ok: true; readonly capacity: Partial<Record<Backend, number>>; readonly spec: ConnectionBudgetSpec }
  | { readonly ok: false; readonly reason: string; readonly message: string };

/** maxConnections − reserved (and maxClients − reserved), from the spec or its queries. */
export async function budgetCapacity(
  stores: ClusterStores,
  namespace: string,
  name: string,
  query: CapacityQuery,
): Promise<BudgetCapacity> {
  const object: (KubernetesObject & { spec?: unknown }) | undefined = stores.budgets.get(name, namespace);
  if (!object)
    return {
      ok: false,
      reason: 'BudgetNotFound',
      message: `ConnectionBudget ${name} not found in namespace ${namespace}; create it or fix spec.budgetRef.name`,
    };
  const parsed = parseConnectionBudgetSpec(object.spec);
  if (!parsed.ok) return { ok: false, reason: 'BudgetInvalid', message: `ConnectionBudget ${name}: ${parsed.message}` };
  const spec = parsed.spec;
  const capacity: Partial<Record<Backend, number>> = {};
  const limits: Array<[Backend, number | undefined, string | undefined, number]> = [];
  if (spec.postgres)
    limits.push(['postgres', spec.postgres.maxConnections, spec.postgres.maxConnectionsQuery, spec.postgres.reserved]);
  if (spec.redis) limits.push(['redis', spec.redis.maxClients, spec.redis.maxClientsQuery, spec.redis.reserved]);
  for (const [backend, fixed, promql, reserved] of limits) {
    let max = fixed;
    if (max === undefined && promql !== undefined) {
      const sample = await query(promql, spec.prometheus, namespace);
      if (!sample.valid)
        return {
          ok: false,
          reason: 'BudgetQueryFailed',
          message: `ConnectionBudget ${name}: the ${backend} capacity query failed (${sample.problem}): ${sample.message}`,
        };
      max = Math.floor(sample.percent);
    }
    if (max !== undefined) capacity[backend] = max - reserved;
  }
  return { ok: true, capacity, spec };
}

/**
 * The policies in `namespace` that draw from budget `name`, with their parsed specs; Paused ones
 * too, since their apps' pools stay open.
 */
export function policiesOfBudget(
  stores: ClusterStores,
  namespace: string,
  name: string,
): Array<{ key: string; object: KubernetesObject & { status?: unknown }; spec: PoolPolicySpec }> {
  return stores.policies.byIndex(POLICY_BY_BUDGET, `${namespace}/${name}`).flatMap((object) => {
    const parsed = parsePoolPolicySpec((object as { spec?: unknown }).spec);
    if (!parsed.ok || parsed.spec.budgetRef?.name !== name) return [];
    return [{ key: `${namespace}/${object.metadata?.name ?? ''}`, object, spec: parsed.spec }];
  });
}

/** Facts of a peer policy, from its status (recommended, current) and the caches. */
export function peerFacts(
  stores: ClusterStores,
  ledger: AppliedLedger,
  namespace: string,
  peer: { key: string; object: KubernetesObject & { status?: unknown }; spec: PoolPolicySpec },
): PolicyFacts {
  const status = parsePoolPolicyStatus(peer.object.status);
  const current = ledger.currentOf(peer.key, status.current ?? {});
  return {
    policy: peer.key,
    spec: peer.spec,
    ...deploymentFacts(stores, namespace, peer.spec),
    wanted: { ...current, ...status.recommended },
    current,
    paused: peer.spec.mode === 'Paused',
    draining:
      peer.spec.delivery.mode === 'ConfigMap'
        ? drainingValues(status.delivery)
        : rolloutDrainingValues(
            status.lastChange,
            envValues(peer.spec, current),
            rolling(stores, namespace, peer.spec.targetRef.name),
          ),
  };
}

/** The current values of the settings a policy's env sections own (database, redis). */
function envValues(spec: PoolPolicySpec, current: Readonly<Record<string, number>>): Record<string, number> {
  const values: Record<string, number> = {};
  for (const settings of sectionsOf(spec).filter((s) => s.target === 'env'))
    for (const key of [settings.leader.key, settings.follower?.key])
      if (key !== undefined && current[key] !== undefined) values[key] = current[key];
  return values;
}

/** Whether a rollout of the Deployment is in progress. */
function rolling(stores: ClusterStores, namespace: string, deployment: string): boolean {
  const object = stores.deployments.get(deployment, namespace);
  return object !== undefined && rolloutCompletedAt(object) === undefined;
}

/** Replicas of the target and of PgBouncer, and PgBouncer's reserve_pool_size. */
export function deploymentFacts(
  stores: ClusterStores,
  namespace: string,
  spec: PoolPolicySpec,
): Pick<PolicyFacts, 'replicas' | 'surge' | 'pgbouncerReplicas' | 'reservePoolSize'> {
  const pg = spec.pgbouncer;
  let reservePoolSize = 0;
  if (pg?.format === 'ini') {
    const text = stores.configMaps.get(pg.configMapRef.name, namespace)?.data?.[pg.configMapRef.key];
    const read = text === undefined ? undefined : readPgbouncerSettings(text, ['reserve_pool_size']);
    if (read?.ok) reservePoolSize = read.values.get('reserve_pool_size') ?? 0;
  } else if (pg?.format === 'env') {
    const value = Number(stores.configMaps.get(pg.configMapRef.name, namespace)?.data?.RESERVE_POOL_SIZE ?? '0');
    reservePoolSize = Number.isSafeInteger(value) && value >= 0 ? value : 0;
  }
  return {
    replicas: replicasOf(stores, namespace, spec.targetRef.name, 'withoutSurge'),
    surge:
      replicasOf(stores, namespace, spec.targetRef.name) -
      replicasOf(stores, namespace, spec.targetRef.name, 'withoutSurge'),
    pgbouncerReplicas: pg?.rolloutRef ? replicasOf(stores, namespace, pg.rolloutRef.name) : 1,
    reservePoolSize,
  };
}

/**
 * What the budget arithmetic (sectionBudgetsOf) needs about `self`'s ConnectionBudget, read from
 * the caches, the ledger and the capacity queries. undefined when the policy has no budgetRef.
 */
export async function readBudgetFacts(
  stores: ClusterStores,
  ledger: AppliedLedger,
  query: CapacityQuery,
  self: { readonly policy: string; readonly namespace: string; readonly spec: PoolPolicySpec },
  demandOf?: PeerDemand,
): Promise<BudgetFacts | undefined> {
  const ref = self.spec.budgetRef;
  if (!ref) return undefined;
  const own = deploymentFacts(stores, self.namespace, self.spec);
  const capacity = await budgetCapacity(stores, self.namespace, ref.name, query);
  const peers = capacity.ok
    ? (
        await Promise.all(
          policiesOfBudget(stores, self.namespace, ref.name)
            .filter((p) => p.key !== self.policy)
            .map(async (p) => {
              // A FillToBudget peer's share follows its demand, read like this policy's own.
              const demand =
                demandOf && sectionsOf(p.spec).some((s) => s.fill) ? await demandOf(self.namespace, p.spec) : undefined;
              return claimsOf({ ...peerFacts(stores, ledger, self.namespace, p), demand });
            }),
        )
      ).flat()
    : [];
  const pgbouncerRollout = self.spec.pgbouncer?.rolloutRef;
  const pgbouncerSteadyReplicas = pgbouncerRollout
    ? replicasOf(stores, self.namespace, pgbouncerRollout.name, 'withoutSurge')
    : 1;
  return { policy: self.policy, capacity, own, pgbouncerSteadyReplicas, peers };
}
