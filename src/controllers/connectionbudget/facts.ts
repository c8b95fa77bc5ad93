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
import { drainingValues, excessOver, rolloutDrainingValues } from '../../domain/delivery.js';
import { readPoolConfig } from '../../domain/pool-config-file.js';
import type { DemandReading } from '../../domain/fill.js';
import { readPgbouncerSettings } from '../../domain/pgbouncer-ini.js';
import { oldPodsRemain, rolloutCompletedAt } from '../../domain/rollout.js';
import { envSettingsOf, readsDemand, targetContainer, wholeNumber } from '../../domain/sections.js';
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
  const rolling = object !== undefined && rolloutCompletedAt(object) === undefined;
  return surge === 'withSurge' && rolling ? replicas + rolloutSurge(replicas, object.spec?.strategy) : replicas;
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

/**
 * Facts of a peer policy, from its status (recommended, current) and the caches. A Paused peer
 * counts at the values its app runs (its delivery file's, or its container's literal env, where
 * readable; its last status elsewhere), since nothing of its own keeps its status current.
 */
export function peerFacts(
  stores: ClusterStores,
  ledger: AppliedLedger,
  namespace: string,
  peer: { key: string; object: KubernetesObject & { status?: unknown }; spec: PoolPolicySpec },
): PolicyFacts {
  const { spec } = peer;
  const status = parsePoolPolicyStatus(peer.object.status);
  const paused = spec.mode === 'Paused';
  const recorded = ledger.currentOf(peer.key, status.current ?? {});
  const current = paused ? { ...recorded, ...runningValues(stores, namespace, spec) } : recorded;
  return {
    policy: peer.key,
    spec,
    ...deploymentFacts(stores, namespace, spec),
    wanted: { ...current, ...status.recommended },
    current,
    paused,
    draining: paused ? {} : drainingOf(stores, namespace, spec, status, current),
  };
}

/**
 * What a peer's pools may hold beyond its current values: a ConfigMap delivery not yet Applied
 * counts its replaced values whole when the app swaps pools (both are open) and their excess over
 * the current ones when it resizes in place; an env change counts its excess while old pods remain.
 */
function drainingOf(
  stores: ClusterStores,
  namespace: string,
  spec: PoolPolicySpec,
  status: ReturnType<typeof parsePoolPolicyStatus>,
  current: Readonly<Record<string, number>>,
): Readonly<Record<string, number>> {
  if (spec.delivery.mode === 'ConfigMap') {
    const replaced = drainingValues(status.delivery);
    return spec.delivery.reload === 'Resize' ? excessOver(replaced, current) : replaced;
  }
  const env = Object.fromEntries(
    envSettingsOf(spec).flatMap((key) => (key in current ? [[key, current[key] ?? 0]] : [])),
  );
  const deployment = stores.deployments.get(spec.targetRef.name, namespace);
  return rolloutDrainingValues(status.lastChange, env, deployment !== undefined && oldPodsRemain(deployment));
}

/** The env values a policy's app runs now, from its delivery file or its target container's literal env. */
function runningValues(stores: ClusterStores, namespace: string, spec: PoolPolicySpec): Record<string, number> {
  const owned = envSettingsOf(spec);
  if (spec.delivery.mode === 'ConfigMap') {
    const { name, key } = spec.delivery.configMapRef;
    const text = stores.configMaps.get(name, namespace)?.data?.[key];
    const read = text === undefined ? undefined : readPoolConfig(text, owned);
    return read?.ok === true ? Object.fromEntries(read.values) : {};
  }
  const containers = stores.deployments.get(spec.targetRef.name, namespace)?.spec?.template.spec?.containers ?? [];
  const container = targetContainer(containers, spec.targetRef.container);
  return Object.fromEntries(
    owned.flatMap((setting) => {
      const text = container?.env?.find((e) => e.name === setting && e.valueFrom === undefined)?.value;
      const value = text === undefined ? undefined : wholeNumber(text);
      return value === undefined ? [] : [[setting, value]];
    }),
  );
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
              const demand = demandOf && readsDemand(p.spec) ? await demandOf(self.namespace, p.spec) : undefined;
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
