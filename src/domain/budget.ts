/**
 * Connection budgets: how many connections the pools of every replica may hold together, and
 * each policy's share of them. Pure arithmetic, no I/O.
 *
 * A *claim* is one policy's use of one backend (PostgreSQL or Redis): a setting (the leader,
 * e.g. DB_POOL_SIZE) whose value v makes each *unit* (a process: replica × processesPerPod; or a
 * PgBouncer server pool: PgBouncer replica × (database, user) pair) hold
 * `connectionsAt(shape, v)` connections: v, plus a follower (maxOverflow = v × ratio, clamped),
 * plus a fixed extra (PgBouncer's reserve_pool_size).
 *
 * Two limits make a policy's cap, and it takes the lower:
 * - its fair share: when the wanted values of all claims do not fit, each gets its minimum plus
 *   a part of what is left proportional to how much it wants above its minimum;
 * - the headroom: what the others hold *now* (never more than capacity in total, whatever the
 *   order in which policies are reconciled).
 * A cap is never below the claim's min: when even the minimums do not fit, every policy is held
 * at its min and the allocation says so.
 */
import type { PoolPolicySpec, PoolSection } from '../api/v1alpha1/poolpolicy.js';
import { follow, type Bounds } from './decide.js';
import { demandLevel, type DemandReading } from './fill.js';
import { sectionsOf, type SectionBudget, type SectionSettings } from './sections.js';

export interface ConnectionShape {
  /** A setting that follows the leader (maxOverflow), counted on top of it. */
  readonly follower?: { readonly ratio: number; readonly bounds: Bounds } | undefined;
  /** Connections per unit regardless of the value (PgBouncer reserve_pool_size). */
  readonly extra?: number | undefined;
}

export interface Claim {
  /** Policy key, `namespace/name`. */
  readonly policy: string;
  /** Units holding a pool each: replicas × processesPerPod, or PgBouncer replicas × pools. */
  readonly units: number;
  readonly shape: ConnectionShape;
  readonly bounds: Bounds;
  /** The leader value the policy recommends before the budget. */
  readonly wanted: number;
  /** The leader value in place now. */
  readonly current: number;
  /**
   * FillToBudget claims only: connections per unit the app's recent demand uses (undefined when
   * unknown). When every claim on a backend fills, the capacity is shared by this demand.
   */
  readonly demand?: number | undefined;
  /** A FillToBudget claim: it takes what its demand-weighted share allows, not just what it wants. */
  readonly fills?: boolean;
  /**
   * Units that exist only while the policy's own rollout runs (surge pods, × processesPerPod); 0
   * otherwise. They hold pools too, so nobody grows into them, but nobody is cut back for them:
   * they are gone when the rollout ends, and cutting a peer back for them would start a rollout
   * of its own, whose surge would cut the first back in turn.
   */
  readonly surgeUnits?: number;
  /**
   * Connections the pools replaced by a ConfigMap delivery may still hold until every pod runs the
   * new ones (domain/delivery.ts); 0 otherwise. Counted like surge units: nobody grows into them,
   * nobody is cut back for them.
   */
  readonly drainingConnections?: number;
}

export interface Share {
  /** Largest leader value the policy may hold. */
  readonly cap: number;
  /** Connections at `wanted`, and at `cap`. */
  readonly wants: number;
  readonly gets: number;
}

export interface Allocation {
  /** maxConnections − reserved. */
  readonly capacity: number;
  /** Σ connections at each claim's wanted value. */
  readonly demand: number;
  /** Σ connections at each claim's min. */
  readonly minimum: number;
  readonly minimumsFit: boolean;
  readonly shares: ReadonlyMap<string, Share>;
}

export function connectionsAt(shape: ConnectionShape, value: number): number {
  return value + (shape.follower ? follow(value, shape.follower.ratio, shape.follower.bounds) : 0) + (shape.extra ?? 0);
}

function claimConnections(claim: Claim, value: number): number {
  return claim.units * connectionsAt(claim.shape, value);
}

/** Connections a claim's pools may hold now, surge pods of a running rollout included. */
function claimConnectionsNow(claim: Claim, value: number): number {
  return (claim.units + (claim.surgeUnits ?? 0)) * connectionsAt(claim.shape, value) + (claim.drainingConnections ?? 0);
}

/** The largest v in [bounds.min, upTo] whose connections fit in `allowed`; min if none does. */
export function largestFitting(claim: Claim, upTo: number, allowed: number): number {
  let low = claim.bounds.min;
  let high = Math.max(low, Math.min(upTo, claim.bounds.max));
  if (claimConnections(claim, high) <= allowed) return high;
  if (claimConnections(claim, low) > allowed) return low;
  // Invariant: low fits, high does not (connections are non-decreasing in v).
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (claimConnections(claim, mid) <= allowed) low = mid;
    else high = mid;
  }
  return low;
}

function wantedOf(claim: Claim): number {
  return Math.min(Math.max(claim.wanted, claim.bounds.min), claim.bounds.max);
}

/**
 * Shares of `capacity` among claims that all fill (FillToBudget), by what each app's demand needs
 * now (`demand`: connections per unit, at least min, at most max). When every need fits, each gets
 * it and what is left goes by demand (plus one connection per unit, so that idle apps split
 * evenly). When they do not, the capacity is filled level by level (max-min fairness): every claim
 * rises together from its min and stops at its need, so a small need is met in full and the app at
 * its peak takes the rest, never what another needs now. Nobody goes below min.
 */
function demandShares(capacity: number, claims: readonly Claim[]): Map<string, number> {
  const need = (c: Claim): number => Math.max(c.bounds.min, Math.min(c.bounds.max, Math.ceil(c.demand ?? 0)));
  const at =
    (level: number) =>
    (c: Claim): number =>
      claimConnections(c, Math.max(c.bounds.min, Math.min(need(c), level)));
  const total = (f: (c: Claim) => number): number => claims.reduce((sum, c) => sum + f(c), 0);
  const highest = Math.max(...claims.map(need));
  if (total(at(highest)) <= capacity) {
    const weight = (c: Claim): number => c.units * (Math.max(0, c.demand ?? 0) + 1);
    const totalWeight = total(weight);
    const spare = capacity - total(at(highest));
    return new Map(
      claims.map((c) => [c.policy, at(highest)(c) + (totalWeight === 0 ? 0 : (spare * weight(c)) / totalWeight)]),
    );
  }
  // total(at(level)) grows with level: the highest whole level that still fits (settings are
  // whole numbers; a fractional level converged on 20 from below and lost a connection a unit).
  let low = 0;
  let high = highest;
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (total(at(mid)) <= capacity) low = mid;
    else high = mid;
  }
  return new Map(claims.map((c) => [c.policy, at(low)(c)]));
}

/** Fair shares of `capacity` among `claims` (see the file comment). */
export function allocate(capacity: number, claims: readonly Claim[]): Allocation {
  const wants = new Map(claims.map((c) => [c.policy, claimConnections(c, wantedOf(c))]));
  const mins = new Map(claims.map((c) => [c.policy, claimConnections(c, c.bounds.min)]));
  const sum = (m: ReadonlyMap<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  const demand = sum(wants);
  const minimum = sum(mins);
  const shares = new Map<string, Share>();
  const above = demand - minimum;
  const byDemand =
    claims.length > 0 && claims.every((c) => c.fills === true) ? demandShares(capacity, claims) : undefined;
  for (const claim of claims) {
    const want = wants.get(claim.policy) ?? 0;
    const min = mins.get(claim.policy) ?? 0;
    let cap: number;
    if (minimum > capacity) cap = claim.bounds.min;
    else if (byDemand) cap = largestFitting(claim, claim.bounds.max, Math.floor(byDemand.get(claim.policy) ?? min));
    else if (demand <= capacity) cap = wantedOf(claim);
    else {
      const allowed = min + (above === 0 ? 0 : ((capacity - minimum) * (want - min)) / above);
      cap = largestFitting(claim, wantedOf(claim), Math.floor(allowed));
    }
    shares.set(claim.policy, { cap, wants: want, gets: claimConnections(claim, cap) });
  }
  return { capacity, demand, minimum, minimumsFit: minimum <= capacity, shares };
}

export interface BudgetCap {
  /** Largest leader value allowed now (≥ bounds.min): the lower of `fair` and `limit`. */
  readonly cap: number;
  /** The claim's fair share (leader value). */
  readonly fair: number;
  /** The largest leader value that fits beside what the others hold now: above it the sum would cross capacity. */
  readonly limit: number;
  /** Connections the claim needs at its wanted value, and those free for it. */
  readonly needs: number;
  readonly free: number;
  readonly minimumsFit: boolean;
}

/**
 * The cap for `self` within a budget shared with `others`: the lower of its fair share and what
 * the others leave free at their current values.
 */
export function capFor(capacity: number, self: Claim, others: readonly Claim[]): BudgetCap {
  const allocation = allocate(capacity, [self, ...others]);
  const fair = allocation.shares.get(self.policy)?.cap ?? self.bounds.min;
  // Over `limit` the steady pools cross capacity: a correction. Growth also leaves room for the
  // surge pods of the others' running rollouts.
  const steadyFree = capacity - others.reduce((total, c) => total + claimConnections(c, c.current), 0);
  const free = capacity - others.reduce((total, c) => total + claimConnectionsNow(c, c.current), 0);
  const limit = largestFitting(self, self.bounds.max, steadyFree);
  const headroom = Math.min(largestFitting(self, self.bounds.max, free), Math.max(self.bounds.min, wantedOf(self)));
  return {
    cap: Math.min(fair, headroom),
    fair,
    limit,
    needs: claimConnections(self, wantedOf(self)),
    free,
    minimumsFit: allocation.minimumsFit,
  };
}

/** Connections a set of claims holds at their current values. */
export function heldConnections(claims: readonly Claim[]): number {
  return claims.reduce((total, c) => total + claimConnections(c, c.current), 0);
}

/**
 * What a claim counts against: PostgreSQL's or Redis's connection limit (shared through a
 * ConnectionBudget), or the policy's own PgBouncer's client limit (max_client_conn × replicas).
 */
export type Backend = 'postgres' | 'redis' | 'pgbouncer';

/** What the budget needs to know about one policy, read from the cluster by the caller. */
export interface PolicyFacts {
  readonly policy: string;
  readonly spec: PoolPolicySpec;
  /** The most replicas the target may run: max(spec.replicas, an HPA's maxReplicas). */
  readonly replicas: number;
  /** Surge pods of the target's rollout while one runs, else 0. */
  readonly surge?: number;
  /** Replicas of the PgBouncer Deployment (rolloutRef), 1 when unknown. */
  readonly pgbouncerReplicas: number;
  /** PgBouncer's reserve_pool_size, which each server pool may add. */
  readonly reservePoolSize: number;
  /** Leader values by setting key: what the policy recommends, and what is in place. */
  readonly wanted: Readonly<Record<string, number>>;
  readonly current: Readonly<Record<string, number>>;
  /** What its app's pool metrics say of demand (FillToBudget), undefined when not read. */
  readonly demand?: DemandReading | undefined;
  /** Values replaced by a ConfigMap delivery whose old pools may still be open (domain/delivery.ts drainingValues). */
  readonly draining?: Readonly<Record<string, number>>;
  /**
   * spec.mode Paused: poolpilot changes nothing, but the app's pools stay open, so the policy
   * claims exactly its current values (no growth, no share of anything else).
   */
  readonly paused?: boolean;
}

export interface BackendClaim {
  readonly backend: Backend;
  readonly section: PoolSection;
  readonly claim: Claim;
}

/**
 * A policy's claims on each backend. Its app pools go to PostgreSQL directly unless the policy
 * also manages PgBouncer; then they count against PgBouncer's max_client_conn, and PgBouncer's
 * server pools ((database, user) pairs × replicas × (default_pool_size + reserve_pool_size)) are
 * what PostgreSQL sees.
 */
export function claimsOf(facts: PolicyFacts): BackendClaim[] {
  const claims: BackendClaim[] = [];
  const processes = facts.replicas * facts.spec.processesPerPod;
  const surgeUnits = (facts.surge ?? 0) * facts.spec.processesPerPod;
  for (const settings of sectionsOf(facts.spec)) {
    const key = settings.leader.key;
    const current = facts.current[key] ?? settings.leader.bounds.min;
    const base = {
      policy: facts.policy,
      bounds: settings.leader.bounds,
      wanted: facts.wanted[key] ?? current,
      current,
    };
    const follower = settings.follower && { ratio: settings.follower.ratio, bounds: settings.follower.bounds };
    const replaced = [key, settings.follower?.key].reduce(
      (total, setting) => total + (setting === undefined ? 0 : (facts.draining?.[setting] ?? 0)),
      0,
    );
    const drainingConnections = processes * replaced;
    if (settings.section === 'database' && settings.fill && settings.follower) {
      const capacity = fillClaim(settings.leader, settings.follower, facts.current);
      const level = demandLevel(facts.demand, capacity.current);
      const claim: Claim = {
        policy: facts.policy,
        units: processes,
        surgeUnits,
        drainingConnections,
        shape: {},
        fills: true,
        // What the demand needs at the policy's target utilization, per process.
        demand: level === undefined ? undefined : (level * 100) / facts.spec.thresholds.target,
        ...capacity,
      };
      claims.push({ backend: facts.spec.pgbouncer ? 'pgbouncer' : 'postgres', section: 'database', claim });
    } else if (settings.section === 'database') {
      claims.push({
        backend: facts.spec.pgbouncer ? 'pgbouncer' : 'postgres',
        section: 'database',
        claim: { ...base, units: processes, surgeUnits, drainingConnections, shape: { follower } },
      });
    } else if (settings.section === 'pgbouncer') {
      const pools = facts.spec.pgbouncer?.pools ?? 1;
      claims.push({
        backend: 'postgres',
        section: 'pgbouncer',
        claim: {
          ...base,
          wanted: fillWanted(settings, base.wanted),
          units: facts.pgbouncerReplicas * pools,
          shape: { extra: facts.reservePoolSize },
        },
      });
    } else {
      const wanted = fillWanted(settings, base.wanted);
      claims.push({
        backend: 'redis',
        section: 'redis',
        claim: { ...base, wanted, units: processes, surgeUnits, drainingConnections, shape: {} },
      });
    }
  }
  return facts.paused === true ? claims.map((c) => ({ ...c, claim: pinned(c.claim) })) : claims;
}

/**
 * What a single-setting claim wants: a FillToBudget setting (Redis maxConnections, PgBouncer
 * default_pool_size) all its bounds allow, since the pool opens connections only on demand and
 * the fair share divides what is left; otherwise what the policy recommends.
 */
function fillWanted(settings: SectionSettings, recommended: number): number {
  return settings.fill ? settings.leader.bounds.max : recommended;
}

/**
 * A claim held at its current value: bounds, wanted and demand all there. It counts as filling, so
 * that beside claims that fill the capacity is still shared by demand (its need is its value).
 */
function pinned(claim: Claim): Claim {
  const at = claim.current;
  return { ...claim, bounds: { min: at, max: at }, wanted: at, fills: true, demand: at };
}

/**
 * A FillToBudget section claims capacity, poolSize + maxOverflow per process, and wants all its
 * bounds allow: what no one else needs is worth holding, since an unused overflow connection is
 * closed and costs nothing.
 */
function fillClaim(
  pool: { key: string; bounds: Bounds },
  overflow: { key: string; bounds: Bounds },
  current: Readonly<Record<string, number>>,
): Pick<Claim, 'bounds' | 'wanted' | 'current'> {
  const bounds = { min: pool.bounds.min + overflow.bounds.min, max: pool.bounds.max + overflow.bounds.max };
  return {
    bounds,
    wanted: bounds.max,
    current: (current[pool.key] ?? pool.bounds.min) + (current[overflow.key] ?? overflow.bounds.min),
  };
}

/**
 * What a pass reads about its policy's ConnectionBudget before it plans (under the budget's
 * lock, so the peers' values include what the pass before applied).
 */
export interface BudgetFacts {
  /** The policy these facts were read for, `namespace/name`. */
  readonly policy: string;
  /** maxConnections − reserved per backend, or why the budget cannot be evaluated. */
  readonly capacity:
    | { readonly ok: true; readonly capacity: Readonly<Partial<Record<Backend, number>>> }
    | { readonly ok: false; readonly reason: string; readonly message: string };
  /** Replicas of the policy's own target and PgBouncer, and PgBouncer's reserve_pool_size. */
  readonly own: Pick<PolicyFacts, 'replicas' | 'pgbouncerReplicas' | 'reservePoolSize'>;
  /** PgBouncer's replicas without surge pods: its surge pods exist only during a rollout. */
  readonly pgbouncerSteadyReplicas: number;
  /** The claims of the other policies drawing from the budget (none read when capacity is unknown). */
  readonly peers: readonly BackendClaim[];
}

const BACKEND_NAMES: Readonly<Record<Backend, string>> = {
  postgres: 'PostgreSQL',
  redis: 'Redis',
  pgbouncer: 'PgBouncer client',
};

/**
 * What the budget allows each section of a policy this pass, given what it wants (the plan
 * before the budget) and holds. A budget that cannot be evaluated allows no growth in any
 * section it covers.
 */
export function sectionBudgetsOf(
  facts: BudgetFacts,
  self: {
    readonly spec: PoolPolicySpec;
    readonly wanted: Readonly<Record<string, number>>;
    readonly current: Readonly<Record<string, number>>;
    /** What its app's pool metrics say of demand (FillToBudget), undefined when not read. */
    readonly demand?: DemandReading | undefined;
  },
): Partial<Record<PoolSection, SectionBudget>> {
  const own = claimsOf({ policy: facts.policy, ...self, ...facts.own });
  const result: Partial<Record<PoolSection, SectionBudget>> = {};
  const capacity = facts.capacity;
  if (!capacity.ok) {
    for (const { section } of own)
      result[section] = { kind: 'unknown', reason: capacity.reason, message: capacity.message };
    return result;
  }
  // The app side of PgBouncer: the policy's own max_client_conn (what it wants this pass) times
  // PgBouncer's replicas; no other policy shares it.
  const clientLimitKey =
    self.spec.pgbouncer && sectionsOf(self.spec).find((s) => s.section === 'pgbouncer')?.follower?.key;
  const clientLimit =
    clientLimitKey === undefined ? undefined : (self.wanted[clientLimitKey] ?? self.current[clientLimitKey]);
  for (const { backend, section, claim } of own) {
    const total =
      backend === 'pgbouncer'
        ? clientLimit === undefined
          ? undefined
          : clientLimit * facts.pgbouncerSteadyReplicas
        : capacity.capacity[backend];
    if (total === undefined) continue; // this budget does not cover the backend
    const others = backend === 'pgbouncer' ? [] : facts.peers.filter((p) => p.backend === backend).map((p) => p.claim);
    const { cap, fair, limit, needs, free, minimumsFit } = capFor(total, claim, others);
    result[section] = { kind: 'cap', backend: BACKEND_NAMES[backend], cap, fair, limit, needs, free, minimumsFit };
  }
  return result;
}

export interface ShareInput {
  readonly name: string;
  readonly replicas: number;
  readonly claim: Claim;
  readonly limited: boolean;
}

/** What a ConnectionBudget's status shows for one backend: capacity, use at current values, headroom. */
export function backendSummary(
  capacity: number,
  shares: readonly ShareInput[],
): {
  capacity: number;
  allocated: number;
  headroom: number;
  shares: Array<{ policy: string; replicas: number; connections: number; limited: boolean }>;
} {
  const rows = shares
    .map((s) => ({
      policy: s.name,
      replicas: s.replicas,
      connections: claimConnections(s.claim, s.claim.current),
      limited: s.limited,
    }))
    .sort((a, b) => (a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : 0));
  const allocated = rows.reduce((total, r) => total + r.connections, 0);
  return { capacity, allocated, headroom: capacity - allocated, shares: rows };
}

export interface RolloutStrategy {
  readonly type?: string;
  readonly rollingUpdate?: { readonly maxSurge?: number | string; readonly maxUnavailable?: number | string };
}

/**
 * Extra pods a rolling update may run on top of `replicas` (every change poolpilot applies is
 * one): maxSurge as a count, or a percentage rounded up as the deployment controller does;
 * Kubernetes' default is 25 %. None for the Recreate strategy.
 */
export function rolloutSurge(replicas: number, strategy: RolloutStrategy | undefined): number {
  if (strategy?.type === 'Recreate') return 0;
  return intOrPercent(strategy?.rollingUpdate?.maxSurge ?? '25%', replicas, Math.ceil);
}

/**
 * Pods a rolling update may take down before their replacements are ready: maxUnavailable as a
 * count, or a percentage rounded down as the deployment controller does (default 25 %); all of
 * them for Recreate. At most `replicas`.
 */
export function rolloutUnavailable(replicas: number, strategy: RolloutStrategy | undefined): number {
  if (strategy?.type === 'Recreate') return replicas;
  const unavailable = intOrPercent(strategy?.rollingUpdate?.maxUnavailable ?? '25%', replicas, Math.floor);
  // Both 0 after rounding: the deployment controller takes one pod down at a time.
  if (unavailable === 0 && rolloutSurge(replicas, strategy) === 0) return Math.min(replicas, 1);
  return Math.min(replicas, unavailable);
}

/** A Kubernetes IntOrString count of pods; a percentage of `replicas` rounded by `round`; 0 if malformed. */
function intOrPercent(value: number | string, replicas: number, round: (x: number) => number): number {
  if (typeof value === 'number') return Math.max(0, value);
  const percent = /^(\d+)%$/.exec(value);
  if (percent?.[1] !== undefined) return round((replicas * Number(percent[1])) / 100);
  const count = Number(value);
  return Number.isSafeInteger(count) && count > 0 ? count : 0;
}
