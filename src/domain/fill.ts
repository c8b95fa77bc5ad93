/**
 * The FillToBudget law of a database section (`spec.database.maxOverflow.mode: FillToBudget`).
 * Capacity and the idle pool are two decisions, because they do two different jobs:
 *
 * - **Capacity**, poolSize + maxOverflow per process, decides QueuePool timeouts (too low) versus
 *   PostgreSQL refusals (the pools of all processes above max_connections − reserved). SQLAlchemy
 *   closes an overflow connection when it comes back while poolSize connections sit idle, so
 *   capacity costs nothing while it is unused: it is set to the ConnectionBudget's share for the
 *   policy in one jump (no steps: a saturated pool reads 100 % whatever the demand, so a
 *   proportional law needs several restarts to get there). It follows the share when the share
 *   moves (a peer's demand, an HPA's maxReplicas) by at least 20 %; at once, whatever the amount,
 *   when the pool is saturated or holds more than the others leave free; giving capacity back to
 *   the others waits for a safe rollout.
 * - **poolSize** is what stays open while idle: a returned connection is kept only while fewer than
 *   poolSize sit idle. It follows the floor of demand, the fewest connections checked out at any
 *   moment of the scale-down window (busiest process): those were busy all along, so keeping them
 *   open costs no idle connection and saves their reconnects, while anything above the floor is
 *   served by overflow and closed again. The floor falls at once when demand falls (the idle pool
 *   shrinks soon after a peak) and rises only after demand stayed up for the whole window. It
 *   moves by at least 20 % (2 connections) after the stabilization window, never shrinks while
 *   waiters or timeouts were seen, and only when the rolling restart it causes is safe: the
 *   processes that keep serving during the rollout can carry today's demand at the target
 *   utilization.
 *
 * Every env change restarts the pods, so a capacity change takes the poolSize change with it (one
 * rollout, not two), and no change is made in steps. A change that restarts nothing (spec.delivery
 * ConfigMap: the app reloads a file) keeps every process serving, but an app that swaps pools holds
 * the old pool's busy connections beside the new pool until they come back, so a poolSize move
 * waits for the same demand test (ReloadDeferred); an app that resizes its pool in place
 * (spec.delivery.reload Resize) has no second pool and does not wait. A shrink
 * of poolSize then waits neither for its own window after the floor's nor for the waiters of the
 * window to be gone: the floor already is what stayed busy, and what a peak left open above it is
 * idle.
 * Pure: time comes in as `now`.
 */
import type { SectionBudget } from './sections.js';
import {
  clamp,
  trackBreach,
  usableSample,
  type Behavior,
  type Bounds,
  type Breach,
  type LimitReason,
  type MetricsProblem,
  type Thresholds,
  type UtilizationSample,
} from './decide.js';
import { formatDuration } from './duration.js';

/** What the app's pool metrics say about demand, per process (the busiest of the Deployment's). */
export interface DemandSample {
  /** Connections checked out now. */
  readonly inUse: number;
  /** Mean of checked-out connections over the scale-down window. */
  readonly typical: number;
  /** Fewest checked-out connections over the scale-down window: what stayed busy all through it. */
  readonly floor: number;
  /** Most threads waiting for a connection at once in the window; undefined: the app does not export db_pool_waiters. */
  readonly waiters: number | undefined;
  /** QueuePool timeouts in the window; undefined: the app does not export db_pool_timeouts_total. */
  readonly timeouts: number | undefined;
}

export type DemandReading =
  | { readonly valid: true; readonly demand: DemandSample }
  | { readonly valid: false; readonly problem: MetricsProblem; readonly message: string };

/**
 * The share of its capacity the busiest process must have checked out for its pool to count as
 * full now: a scrape can fall between a returned connection and the waiter that takes it.
 */
const FULL_NOW = 0.9;

/**
 * The window's waiters, while they may still be waiting: only a full pool queues, so once the pool
 * has free capacity now, a past peak's queue stops counting (the window's max would count it for a
 * whole scale-down window after the peak; measured on the bench's two apps: the app whose peak was
 * over kept its capacity 23 s into the other app's peak). `capacity` (poolSize + maxOverflow per
 * process) undefined: unknown, and the window's waiters count.
 */
export function waitingNow(demand: DemandSample, capacity: number | undefined): number {
  const waiters = demand.waiters ?? 0;
  if (capacity === undefined || capacity <= 0) return waiters;
  return demand.inUse >= Math.floor(FULL_NOW * capacity) ? waiters : 0;
}

/**
 * Connections per process an app's demand uses now, for weighting budget shares: the larger of the
 * window's floor and now, plus the waiters while the pool is full (demand a full pool hides; see
 * {@link waitingNow}). undefined when unknown.
 */
export function demandLevel(reading: DemandReading | undefined, capacity: number | undefined): number | undefined {
  if (!reading?.valid) return undefined;
  const { floor, inUse } = reading.demand;
  // Not the window's mean: it lags a peak by the whole window, and the app whose peak is over
  // would keep the capacity the next app's peak needs.
  return Math.max(floor, inUse) + waitingNow(reading.demand, capacity);
}

/** How many processes hold pools, and how many keep serving while a rollout replaces the pods. */
export interface RestartCost {
  /** replicas × processesPerPod. */
  readonly processes: number;
  /** (replicas − maxUnavailable) × processesPerPod; surge pods do not serve before they are ready. */
  readonly processesDuringRollout: number;
  /**
   * How a change reaches the processes: a rolling restart (env), a reload that opens a new pool
   * beside the old pool's busy connections (spec.delivery.reload Swap), or one that resizes the
   * pool in place (Resize).
   */
  readonly change: 'restart' | 'swap' | 'resize';
}

export interface FillInput {
  readonly now: Date;
  readonly pool: { readonly current: number; readonly bounds: Bounds };
  readonly overflow: { readonly current: number; readonly bounds: Bounds };
  /** What the ConnectionBudget allows this section, as capacity per process. */
  readonly budget: SectionBudget;
  /** The runbook's utilization: its validity, freshness and the rollout gate apply as in decide(). */
  readonly sample: UtilizationSample;
  readonly demand: DemandReading;
  readonly restart: RestartCost;
  readonly thresholds: Thresholds;
  readonly behavior: Behavior;
  readonly intervalMs: number;
  /** The poolSize breach (from status), undefined if none. */
  readonly breach: Breach | undefined;
  readonly lastChangeAt: Date | undefined;
  /** As in decide(): undefined while the previous rollout is in progress. */
  readonly rolloutCompletedAt: Date | undefined;
}

export type FillReason =
  | LimitReason
  /** Capacity moved to the budget's share (and poolSize with it, in the same rollout). */
  | 'FilledToBudget'
  /** Capacity above what the budget leaves free: brought down at once. */
  | 'BudgetCorrection'
  /** Capacity given back to the budget's other policies, whose demand grew. */
  | 'Rebalanced'
  | 'BudgetNotFound'
  | 'BudgetUnknown'
  /** poolSize moved to typical demand. */
  | 'PoolFollowsDemand'
  /** poolSize would move, but the rollout would leave too few processes for today's demand. */
  | 'RestartDeferred'
  /**
   * poolSize would move, but a reload now (spec.delivery ConfigMap) would open the new pool beside
   * the old one's busy connections, past the process's share at today's demand.
   */
  | 'ReloadDeferred'
  /** poolSize would shrink, but waiters or timeouts were seen in the window. */
  | 'Saturated';

export interface FillDecision {
  readonly pool: number;
  readonly overflow: number;
  readonly reason: FillReason;
  /** One sentence; holds carry no live numbers, so an idle pass writes no status. */
  readonly message: string;
  readonly breach: Breach | undefined;
  /** Capacity sits at the budget's share below its own max and demand fills it (PgBouncer would help). */
  readonly budgetBound: boolean;
}

export function decideFill(input: FillInput): FillDecision {
  const { pool, overflow, budget } = input;
  const capacity = pool.current + overflow.current;
  const hold = (
    reason: FillReason,
    message: string,
    breach: Breach | undefined,
    budgetBound = false,
  ): FillDecision => ({
    pool: pool.current,
    overflow: overflow.current,
    reason,
    message,
    breach,
    budgetBound,
  });

  const usable = usableSample({ ...input, current: pool.current });
  if (!usable.ok) return hold(usable.decision.reason, usable.decision.message, usable.decision.breach);
  if (!input.demand.valid) {
    return hold(
      'MetricsUnavailable',
      `metrics unavailable (${input.demand.problem}): ${input.demand.message}; holding at ${pool.current} + ${overflow.current}`,
      input.breach,
    );
  }
  if (budget.kind === 'unknown') {
    const reason = budget.reason === 'BudgetNotFound' ? 'BudgetNotFound' : 'BudgetUnknown';
    return hold(
      reason,
      `${budget.message}; capacity held at ${capacity} per process until the budget can be evaluated`,
      input.breach,
    );
  }
  const demand = input.demand.demand;
  const capacityBounds = { min: pool.bounds.min + overflow.bounds.min, max: pool.bounds.max + overflow.bounds.max };
  const saturated = demand.inUse >= capacity || (demand.waiters ?? 0) > 0 || (demand.timeouts ?? 0) > 0;
  // The share: the fair one (weighted by demand when every policy on the budget fills), never
  // above what the others leave free. Over that limit the sum crosses the budget: back at once.
  const limit = clamp(budget.limit ?? budget.cap, capacityBounds);
  const share = Math.min(clamp(budget.fair ?? budget.cap, capacityBounds), limit);
  // Growth also leaves room for the surge pods of the others' running rollouts (cap ≤ share).
  const room = Math.min(share, clamp(budget.cap, capacityBounds));
  const outOfBounds =
    clamp(pool.current, pool.bounds) !== pool.current || clamp(overflow.current, overflow.bounds) !== overflow.current;
  const move = capacityMove(capacity, share, limit, room, saturated, outOfBounds);
  const target = move?.to ?? capacity;
  const poolBounds = {
    min: pool.bounds.min,
    max: Math.max(pool.bounds.min, Math.min(pool.bounds.max, target - overflow.bounds.min)),
  };
  // Waiters or timeouts in the window: the pool keeps what it has (unless a shrink restarts nothing).
  const restartFree = restartsNothing(input.restart);
  const wantedFor = (connections: number): number => {
    const followed = clamp(Math.ceil(connections), poolBounds);
    return saturated && !restartFree ? Math.max(followed, clamp(pool.current, poolBounds)) : followed;
  };
  const signals = signalsOf(demand);

  if (move) {
    const next = split(target, wantedFor(demand.floor), pool.bounds, overflow.bounds);
    const moves = `poolSize ${pool.current}→${next.pool}, maxOverflow ${overflow.current}→${next.overflow}`;
    const urgent = move.reason === 'BudgetCorrection' || outOfBounds || (saturated && move.reason === 'FilledToBudget');
    if (!urgent && withinMinInterval(input)) {
      return hold(
        'MinIntervalNotElapsed',
        `capacity would move to the budget's share of ${target} per process, but the last change was less than ${formatDuration(input.behavior.minChangeIntervalMs)} ago`,
        input.breach,
      );
    }
    // Giving capacity back is for a peer whose demand outgrew its share: it waits only while this
    // app's own demand of now would not fit the smaller capacity, not for the rollout's dip (held
    // back, the peer's timeouts go on for as long as it waits).
    if (move.reason === 'Rebalanced' && !fitsSteadily(input, demand, target)) {
      return hold(
        'RestartDeferred',
        `capacity would give ${capacity - target} connections per process back to the budget's other policies, but today's demand would not fit ${target} per process at the ${input.thresholds.target}% target; deferred until demand falls`,
        input.breach,
      );
    }
    const texts: Readonly<Record<CapacityMove['reason'], string>> = {
      FilledToBudget: `capacity ${capacity}→${target} per process, the budget's share (${budget.free} ${budget.backend} connections free for ${budget.needs} wanted)`,
      BudgetCorrection: `capacity ${capacity}→${target} per process: over the ${budget.backend} budget, brought back at once`,
      Rebalanced: `capacity ${capacity}→${target} per process: the budget's other policies see more demand, and the share follows it`,
      AtMin: `settings outside their bounds corrected, capacity ${capacity}→${target} per process`,
    };
    return {
      ...next,
      reason: move.reason,
      message: `${texts[move.reason]}; poolSize follows the floor of demand (${formatCount(demand.floor)} connections busy all through the window, ${signals}); ${moves} in one rollout`,
      breach: undefined,
      budgetBound: false,
    };
  }

  const budgetBound = saturated && target === share && target < capacityBounds.max;
  const followed = clamp(Math.ceil(demand.floor), poolBounds);
  if (saturated && followed < pool.current && !restartFree) {
    return hold(
      'Saturated',
      `poolSize ${pool.current} does not shrink: waiters or timeouts were seen in the window (${signals})`,
      undefined,
      budgetBound,
    );
  }
  const poolWanted = wantedFor(demand.floor);
  const gap = poolWanted - pool.current;
  if (Math.abs(gap) < capacityTolerance(pool.current)) {
    return hold(
      'DeadBand',
      `poolSize ${pool.current} is within ${capacityTolerance(pool.current)} of the floor of demand; capacity ${capacity} per process is the budget's share`,
      undefined,
      budgetBound,
    );
  }
  const direction = gap > 0 ? 'up' : 'down';
  const breach = trackBreach(
    input.breach,
    direction,
    input.now,
    usable.sampledAt,
    usable.rolloutCompletedAt,
    input.intervalMs,
  );
  const breachedFor = input.now.getTime() - breach.since.getTime();
  // A shrink that restarts nothing needs no window of its own: the floor is the fewest connections
  // busy over the scale-down window already, and a pool kept large after a peak is idle.
  const window =
    direction === 'up'
      ? input.behavior.scaleUpStabilizationMs
      : restartFree
        ? 0
        : input.behavior.scaleDownStabilizationMs;
  if (breachedFor < window) {
    return hold(
      'Stabilizing',
      `the floor of demand has been ${direction === 'up' ? 'above' : 'below'} poolSize ${pool.current} for less than ${formatDuration(window)}`,
      breach,
      budgetBound,
    );
  }
  if (withinMinInterval(input)) {
    return hold(
      'MinIntervalNotElapsed',
      `poolSize would move to ${poolWanted}, but the last change was less than ${formatDuration(input.behavior.minChangeIntervalMs)} ago`,
      breach,
      budgetBound,
    );
  }
  const { processes, processesDuringRollout } = input.restart;
  if (input.restart.change !== 'resize' && !restartSafe(input, demand, target)) {
    return restartFree
      ? hold(
          'ReloadDeferred',
          `poolSize would move to ${poolWanted}, but the reload would open the new pool beside the ${formatCount(demand.inUse)} connections busy in the old one, past the share at today's demand; deferred until demand falls below the ${input.thresholds.target}% target`,
          breach,
          budgetBound,
        )
      : hold(
          'RestartDeferred',
          `poolSize would move to ${poolWanted}, but the rollout it causes would leave ${processesDuringRollout} of ${processes} processes for today's demand; deferred until demand falls`,
          breach,
          budgetBound,
        );
  }
  const next = split(target, poolWanted, pool.bounds, overflow.bounds);
  return {
    ...next,
    reason: 'PoolFollowsDemand',
    message:
      `the floor of demand is ${formatCount(demand.floor)} connections (mean ${formatCount(demand.typical)}, now ${formatCount(demand.inUse)}; ${signals}); ` +
      `poolSize ${pool.current}→${next.pool}, maxOverflow ${overflow.current}→${next.overflow}, capacity stays ${target} per process`,
    breach: undefined,
    budgetBound,
  };
}

/**
 * poolSize near `poolWanted` and maxOverflow so that they add up to `capacity`, each within its
 * bounds; when the bounds cannot make the sum exact, maxOverflow's bound wins and poolSize takes
 * up what it can.
 */
export function split(
  capacity: number,
  poolWanted: number,
  poolBounds: Bounds,
  overflowBounds: Bounds,
): { pool: number; overflow: number } {
  const poolFirst = clamp(poolWanted, poolBounds);
  const overflow = clamp(capacity - poolFirst, overflowBounds);
  return { pool: clamp(capacity - overflow, poolBounds), overflow };
}

/** The metrics the demand estimate used, for messages: the user sees which of the app's metrics count. */
export function signalsOf(demand: DemandSample): string {
  const used = ['db_pool_checked_out'];
  if (demand.waiters !== undefined) used.push('db_pool_waiters');
  if (demand.timeouts !== undefined) used.push('db_pool_timeouts_total');
  return `signals: ${used.join(', ')}`;
}

interface CapacityMove {
  readonly to: number;
  readonly reason: 'FilledToBudget' | 'BudgetCorrection' | 'Rebalanced' | 'AtMin';
}

/**
 * Whether capacity moves, and to what. Over `limit` (the steady pools would cross the budget) or
 * outside its bounds: at once, to the share. Growth goes to `room` (the share, less what the
 * surge pods of the others' running rollouts hold): when saturated by any amount, else only by at
 * least {@link capacityTolerance}, so demand-weighted shares that wobble do not restart the pods.
 */
function capacityMove(
  capacity: number,
  share: number,
  limit: number,
  room: number,
  saturated: boolean,
  outOfBounds: boolean,
): CapacityMove | undefined {
  if (capacity > limit) return { to: share, reason: 'BudgetCorrection' };
  if (outOfBounds) return { to: share, reason: 'AtMin' };
  const growth = room - capacity;
  if (growth > 0 && (saturated || growth >= capacityTolerance(capacity))) return { to: room, reason: 'FilledToBudget' };
  const giveBack = capacity - share;
  if (giveBack > 0 && giveBack >= capacityTolerance(capacity)) return { to: share, reason: 'Rebalanced' };
  return undefined;
}

/** A capacity move must be worth a rollout: 20 % of the capacity, and at least 2 connections. */
export function capacityTolerance(capacity: number): number {
  return Math.max(2, Math.ceil(0.2 * capacity));
}

/** Today's demand fits `capacity` per process on every process at the target utilization. */
function fitsSteadily(input: FillInput, demand: DemandSample, capacity: number): boolean {
  const waiting = waitingNow(demand, input.pool.current + input.overflow.current);
  const demandNow = (demand.inUse + waiting) * input.restart.processes;
  return demandNow <= (input.restart.processes * capacity * input.thresholds.target) / 100;
}

/**
 * The processes that keep serving while the pods roll carry today's demand at the target
 * utilization. For a change that restarts nothing (a reloaded file) every process keeps serving,
 * and the same test says the swap is safe: an app that swaps pools keeps the old pool's busy
 * connections open beside the new pool until they are returned, so at a demand near the share the
 * two together cross it (measured: PostgreSQL refused connections when poolSize moved at a peak).
 */
function restartSafe(input: FillInput, demand: DemandSample, capacity: number): boolean {
  const { processes, processesDuringRollout } = input.restart;
  const demandNow = (demand.inUse + (demand.waiters ?? 0)) * processes;
  return demandNow <= (processesDuringRollout * capacity * input.thresholds.target) / 100;
}

/** Every process keeps serving while a change reaches it (an app that reloads a delivered file). */
function restartsNothing(restart: RestartCost): boolean {
  return restart.change !== 'restart';
}

function withinMinInterval(input: FillInput): boolean {
  return (
    input.lastChangeAt !== undefined &&
    input.now.getTime() - input.lastChangeAt.getTime() < input.behavior.minChangeIntervalMs
  );
}

function formatCount(value: number): string {
  return String(Math.round(value * 10) / 10);
}

export interface ShareFillInput {
  readonly now: Date;
  /** What one value is for, in messages: `process` (an app pool) or `server pool` (PgBouncer). */
  readonly unit: 'process' | 'server pool';
  readonly current: number;
  readonly bounds: Bounds;
  readonly budget: SectionBudget;
  readonly sample: UtilizationSample;
  readonly intervalMs: number;
  readonly minChangeIntervalMs: number;
  readonly lastChangeAt: Date | undefined;
  readonly rolloutCompletedAt: Date | undefined;
}

/**
 * FillToBudget for a single setting (Redis maxConnections, PgBouncer default_pool_size): the
 * budget's share, clamped to the bounds, in one change. Growth waits for the minimum interval; a
 * value over the steady share (the fair share, and what fits beside what the others hold
 * steadily) comes down at once. One over the share only because of connections that end with a
 * peer's rollout or delivery holds: a cut for them would outlast them. Invalid or stale samples
 * and a rollout in progress hold, as in decide().
 */
export function decideShareFill(input: ShareFillInput): Omit<FillDecision, 'overflow' | 'budgetBound'> {
  const { current, budget } = input;
  const usable = usableSample({ ...input, breach: undefined });
  if (!usable.ok)
    return { pool: current, reason: usable.decision.reason, message: usable.decision.message, breach: undefined };
  if (budget.kind === 'unknown') {
    const reason = budget.reason === 'BudgetNotFound' ? 'BudgetNotFound' : 'BudgetUnknown';
    return {
      pool: current,
      reason,
      message: `${budget.message}; held at ${current} until the budget can be evaluated`,
      breach: undefined,
    };
  }
  const steady = Math.min(budget.fair ?? budget.cap, budget.limit ?? budget.cap);
  // Over the share only for a peer's transient connections (still within the steady share): kept.
  const transient = current > budget.cap && current <= steady;
  const target = clamp(transient ? current : current > steady ? steady : budget.cap, input.bounds);
  if (target === current)
    return {
      pool: current,
      reason: 'DeadBand',
      message: transient
        ? `held at ${current} per ${input.unit}: within the budget's steady share of ${steady}; the ${budget.free} ${budget.backend} connections free now leave room for ${budget.cap} only while a peer's rollout or delivery holds old pools`
        : `at the budget's share of ${target} per ${input.unit}`,
      breach: undefined,
    };
  if (
    target > current &&
    input.lastChangeAt !== undefined &&
    input.now.getTime() - input.lastChangeAt.getTime() < input.minChangeIntervalMs
  ) {
    return {
      pool: current,
      reason: 'MinIntervalNotElapsed',
      message: `would fill to the budget's share of ${target} per ${input.unit}, but the last change was less than ${formatDuration(input.minChangeIntervalMs)} ago`,
      breach: undefined,
    };
  }
  const reason = target > current ? 'FilledToBudget' : current > steady ? 'BudgetCorrection' : 'AtMax';
  return {
    pool: target,
    reason,
    message: `${current}→${target} per ${input.unit}: the ${budget.backend} budget's share (${budget.free} connections free for ${budget.needs} wanted), in one change`,
    breach: undefined,
  };
}
