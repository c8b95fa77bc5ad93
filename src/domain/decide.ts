/**
 * The scaling decision for one connection-pool setting, modelled on the
 * Kubernetes HPA's staged pipeline (convertDesiredReplicasWithRules): numbers
 * in, one number plus the reason that limited it out. Pure: time arrives as
 * `now`, and everything that must survive a restart (the breach window) is
 * returned for the caller to persist.
 *
 * Stages, in order; the first one that holds returns, later ones do not run:
 *  1. validity      invalid, non-finite or stale sample        -> MetricsUnavailable
 *                   sample taken before the rollout completed  -> RolloutInProgress
 *  2. rollout gate  previous rollout not complete              -> RolloutInProgress
 *  3. bounds        current outside [min, max]: clamp at once  -> AtMax / AtMin
 *  4. dead band     scaleDownBelow <= util <= scaleUpAbove      -> DeadBand
 *  5. breach window out of band for less than stabilization    -> Stabilizing
 *  6. proposal      proportional to util / target, at least +-1
 *  7. step limit    at most maxStepPercent of current          -> StepLimited
 *                   or, when behavior.scaleUp / scaleDown has policies, the HPA-style
 *                   rate limit against the changes already made in each policy's
 *                   period (scaling-rules.ts); selectPolicy Disabled forbids the
 *                   direction                                   -> ScaleUpLimit / ScaleDownLimit
 *  8. bounds clamp  proposal beyond [min, max]                 -> AtMax / AtMin
 *  9. rate limit    last change too recent                     -> MinIntervalNotElapsed
 * 10. apply         unmodified proposal                        -> Scaled
 * When both the step limit and the bounds clamp cut a proposal, the clamp is
 * reported: it is the limit that determined the final value (as in the HPA).
 */

import { formatDuration } from './duration.js';
import { describePolicy, rateLimit, type DirectionRules, type PastChange } from './scaling-rules.js';

/** QueryRejected: the query was not run (--enforce-namespace-label could not confine it to the policy's namespace). */
export type MetricsProblem =
  'QueryFailed' | 'QueryRejected' | 'NoData' | 'NaN' | 'Infinite' | 'MultipleSeries' | 'Stale';

/** A utilization reading in percent (0..100+ allowed; >100 is possible with overflow). */
export type UtilizationSample =
  | { readonly valid: true; readonly percent: number; readonly sampledAt: Date }
  | { readonly valid: false; readonly problem: MetricsProblem; readonly message: string };

/** Integers, 1 <= min <= max. */
export interface Bounds {
  readonly min: number;
  readonly max: number;
}

/** Percent, scaleDownBelow < target < scaleUpAbove <= 100. */
export interface Thresholds {
  readonly scaleUpAbove: number;
  readonly scaleDownBelow: number;
  readonly target: number;
}

export interface Behavior {
  /** 1..100 */
  readonly maxStepPercent: number;
  /** >= 0 */
  readonly scaleUpStabilizationMs: number;
  /** >= 0 */
  readonly scaleDownStabilizationMs: number;
  /** >= 0 */
  readonly minChangeIntervalMs: number;
  /**
   * spec.behavior.scaleUp / scaleDown: with policies they replace maxStepPercent for their
   * direction; selectPolicy Disabled forbids it. Undefined = maxStepPercent per change. (Their
   * stabilizationWindow arrives already folded into the two *StabilizationMs above.)
   */
  readonly scaleUp?: DirectionRules | undefined;
  readonly scaleDown?: DirectionRules | undefined;
}

export type BreachDirection = 'up' | 'down';

/** Persisted (in the policy's status) so a restart neither loses nor repeats progress. */
export interface Breach {
  readonly direction: BreachDirection;
  readonly since: Date;
  readonly lastSeen: Date;
}

export type LimitReason =
  | 'MetricsUnavailable' // invalid sample: hold, never read as 0, never shrink
  | 'DeadBand' // scaleDownBelow <= util <= scaleUpAbove: hold
  | 'Stabilizing' // out of band but not for long enough yet
  | 'RolloutInProgress' // target's previous rollout not complete: hold
  | 'MinIntervalNotElapsed'
  | 'StepLimited' // proposal cut to maxStepPercent
  | 'ScaleUpLimit' // growth cut (or forbidden) by behavior.scaleUp
  | 'ScaleDownLimit' // shrink cut (or forbidden) by behavior.scaleDown
  | 'AtMax'
  | 'AtMin' // proposal clamped (or already at the bound)
  | 'Scaled'; // proposal applied unmodified

/**
 * Preconditions (guaranteed by the caller, not re-checked here): `current`
 * is an integer, bounds/thresholds/behavior satisfy their documented ranges,
 * `intervalMs` > 0 and every Date except `sample.sampledAt` is valid. The
 * sample itself is untrusted: it is re-checked for finiteness and staleness.
 * Outside the preconditions the result is unspecified (an invalid Date may make
 * formatDuration throw RangeError); validating status and spec is the caller's job.
 */
export interface DecisionInput {
  readonly now: Date;
  /** Current integer value of the setting (may lie outside bounds, e.g. set by a human). */
  readonly current: number;
  readonly bounds: Bounds;
  readonly thresholds: Thresholds;
  readonly behavior: Behavior;
  /** Evaluation interval; a sample older than 2 x interval is Stale. */
  readonly intervalMs: number;
  readonly sample: UtilizationSample;
  /** From status, undefined if none. */
  readonly breach: Breach | undefined;
  readonly lastChangeAt: Date | undefined;
  /**
   * Changes of this setting already made (status.history), for the policies' periods. Only read
   * when behavior.scaleUp / scaleDown has policies; undefined = none known.
   */
  readonly recentChanges?: readonly PastChange[] | undefined;
  /**
   * undefined = the previous rollout of the target is still in progress; else
   * when it completed (new Date(0) if unknown). Samples taken before it do not count.
   */
  readonly rolloutCompletedAt: Date | undefined;
}

export interface Decision {
  /** Integer; equals current when holding. */
  readonly desired: number;
  readonly reason: LimitReason;
  /** One human sentence with numbers; the caller prefixes the setting name. */
  readonly message: string;
  /** Next breach state to persist. */
  readonly breach: Breach | undefined;
}

export function decide(input: DecisionInput): Decision {
  const usable = usableSample(input);
  if (!usable.ok) return usable.decision;
  const { percent, sampledAt, rolloutCompletedAt } = usable;
  const { now, current, bounds, thresholds, behavior } = input;

  // Bounds correction is immediate: neither step-limited nor rate-limited, and
  // independent of utilization, because the bounds are the policy's hard limits.
  const corrected = clamp(current, bounds);
  if (corrected !== current) {
    const bound = current > bounds.max ? `max ${bounds.max}` : `min ${bounds.min}`;
    return {
      desired: corrected,
      reason: current > bounds.max ? 'AtMax' : 'AtMin',
      message: `current ${current} is outside bounds [${bounds.min}, ${bounds.max}]; corrected to ${bound}`,
      breach: undefined,
    };
  }

  if (percent >= thresholds.scaleDownBelow && percent <= thresholds.scaleUpAbove) {
    return {
      desired: current,
      reason: 'DeadBand',
      message:
        `utilization ${formatPercent(percent)}% is within ` +
        `${formatPercent(thresholds.scaleDownBelow)}%..${formatPercent(thresholds.scaleUpAbove)}%; holding at ${current}`,
      breach: undefined,
    };
  }

  const direction: BreachDirection = percent > thresholds.scaleUpAbove ? 'up' : 'down';
  const breach = trackBreach(input.breach, direction, now, sampledAt, rolloutCompletedAt, input.intervalMs);
  const breachedFor = now.getTime() - breach.since.getTime();
  const window = direction === 'up' ? behavior.scaleUpStabilizationMs : behavior.scaleDownStabilizationMs;
  const comparison =
    direction === 'up'
      ? `utilization ${formatPercent(percent)}% > ${formatPercent(thresholds.scaleUpAbove)}%`
      : `utilization ${formatPercent(percent)}% < ${formatPercent(thresholds.scaleDownBelow)}%`;
  if (breachedFor < window) {
    return {
      desired: current,
      reason: 'Stabilizing',
      message: `${comparison} for ${formatDuration(breachedFor)} of ${formatDuration(window)}`,
      breach,
    };
  }
  const justification = `${comparison} for ${formatDuration(breachedFor)}`;

  const proposal = propose(current, percent, direction, thresholds.target, stepLimit(input, direction), bounds);
  // Already at the bound it would cross, or no room left under the direction's
  // policies: hold, but keep the breach so that a raised bound (or the period
  // moving on) acts on the window already earned.
  if (proposal.value === current) {
    return {
      desired: current,
      reason: proposal.reason,
      message: `${justification}; ${proposal.detail}`,
      breach,
    };
  }

  if (input.lastChangeAt !== undefined) {
    const sinceLastChange = now.getTime() - input.lastChangeAt.getTime();
    if (sinceLastChange < behavior.minChangeIntervalMs) {
      return {
        desired: current,
        reason: 'MinIntervalNotElapsed',
        message:
          `${justification}; ${proposal.detail}, but the last change was ${formatDuration(sinceLastChange)} ago; ` +
          `holding until the ${formatDuration(behavior.minChangeIntervalMs)} minimum interval elapses ` +
          `(${formatDuration(behavior.minChangeIntervalMs - sinceLastChange)} left)`,
        breach,
      };
    }
  }

  // A change resets the breach: the next change must re-earn its full window,
  // from samples taken after the rollout this change triggers.
  return {
    desired: proposal.value,
    reason: proposal.reason,
    message: `${justification}; ${proposal.detail}`,
    breach: undefined,
  };
}

/** A value that follows another (maxOverflow follows poolSize x ratio): round, then clamp to bounds. */
export function follow(leader: number, ratio: number, bounds: Bounds): number {
  return clamp(Math.round(leader * ratio), bounds);
}

/** Pure: bring a value outside bounds back inside (used when a human set it outside). */
export function clamp(value: number, bounds: Bounds): number {
  return Math.min(bounds.max, Math.max(bounds.min, value));
}

/**
 * Largest change one decision may make from `current`: maxStepPercent of
 * current rounded DOWN, so the configured percentage is never exceeded, but
 * at least 1 so small pools can still move (20% of 20 = 4; 20% of 3 = 1).
 */
export function maxStepDelta(current: number, maxStepPercent: number): number {
  return Math.max(1, Math.floor((current * maxStepPercent) / 100));
}

export type UsableSample =
  | { readonly ok: true; readonly percent: number; readonly sampledAt: Date; readonly rolloutCompletedAt: Date }
  | { readonly ok: false; readonly decision: Decision };

/** Stages 1 and 2: a sample the rest of the pipeline may act on, or the hold that replaces it. */
export function usableSample(
  input: Pick<DecisionInput, 'sample' | 'current' | 'now' | 'intervalMs' | 'rolloutCompletedAt' | 'breach'>,
): UsableSample {
  const { sample, current, now, intervalMs, rolloutCompletedAt } = input;
  // An unusable reading holds the value and leaves the breach exactly as it
  // was: a gap neither advances nor restarts the window (the gap check in
  // trackBreach restarts it if the outage outlasts 2 x interval).
  const unavailable = (problem: MetricsProblem, message: string): UsableSample => ({
    ok: false,
    decision: {
      desired: current,
      reason: 'MetricsUnavailable',
      message: `metrics unavailable (${problem}): ${message}; holding at ${current}`,
      breach: input.breach,
    },
  });
  const rolloutHold = (message: string): UsableSample => ({
    ok: false,
    decision: { desired: current, reason: 'RolloutInProgress', message, breach: undefined },
  });

  if (!sample.valid) return unavailable(sample.problem, sample.message);
  if (Number.isNaN(sample.percent)) return unavailable('NaN', 'utilization is NaN');
  if (!Number.isFinite(sample.percent)) return unavailable('Infinite', `utilization is ${sample.percent}`);
  const sampledAtMs = sample.sampledAt.getTime();
  if (!Number.isFinite(sampledAtMs)) return unavailable('Stale', 'sample has no valid timestamp');
  const age = now.getTime() - sampledAtMs;
  const maxAge = 2 * intervalMs;
  if (age > maxAge) {
    return unavailable(
      'Stale',
      `sample is ${formatDuration(age)} old, older than 2 x the ${formatDuration(intervalMs)} interval`,
    );
  }

  if (rolloutCompletedAt === undefined) {
    return rolloutHold(`previous rollout still in progress; holding at ${current}`);
  }
  const predatesBy = rolloutCompletedAt.getTime() - sampledAtMs;
  if (predatesBy > 0) {
    return rolloutHold(
      `samples predate the rollout (sample taken ${formatDuration(predatesBy)} before it completed); holding at ${current}`,
    );
  }
  return { ok: true, percent: sample.percent, sampledAt: sample.sampledAt, rolloutCompletedAt };
}

/**
 * Continues the persisted breach when it points the same way and was last
 * seen within 2 x interval (one missed evaluation is tolerated); otherwise a
 * new breach starts at the sample. A continued breach never reaches back
 * before the last rollout, and a new one cannot since the sample is already
 * known not to predate it. `since` never lies in the future, so a sample
 * timestamp ahead of `now` (clock skew) cannot stall the window.
 */
export function trackBreach(
  previous: Breach | undefined,
  direction: BreachDirection,
  now: Date,
  sampledAt: Date,
  rolloutCompletedAt: Date,
  intervalMs: number,
): Breach {
  const continues =
    previous !== undefined &&
    previous.direction === direction &&
    now.getTime() - previous.lastSeen.getTime() <= 2 * intervalMs;
  const since = continues ? later(previous.since, rolloutCompletedAt) : earlier(sampledAt, now);
  return { direction, since, lastSeen: now };
}

interface Proposal {
  /** Equals current only when current already sits at the bound it would cross, or the step limit allows no move. */
  readonly value: number;
  readonly reason: 'Scaled' | StepLimit['reason'] | 'AtMax' | 'AtMin';
  /** Clause for the decision message, e.g. "step limited to +20% (20→24 instead of 26)". */
  readonly detail: string;
}

/** Stage 7's limit: the furthest value a change may reach now, and how to report the cut. */
interface StepLimit {
  /** Beyond current in the direction of the change, or current itself (no move allowed). */
  readonly furthest: number;
  readonly reason: 'StepLimited' | 'ScaleUpLimit' | 'ScaleDownLimit';
  /** Clause naming the limit, e.g. "step limited to +20%". */
  readonly clause: string;
}

function stepLimit(input: DecisionInput, direction: BreachDirection): StepLimit {
  const { current, behavior } = input;
  const rules = direction === 'up' ? behavior.scaleUp : behavior.scaleDown;
  const block = direction === 'up' ? 'scaleUp' : 'scaleDown';
  const reason = direction === 'up' ? 'ScaleUpLimit' : 'ScaleDownLimit';
  // Without policies (no block, or a block that leaves them out) the flat step applies, unless the direction is disabled.
  if (rules === undefined || (rules.policies === undefined && rules.selectPolicy !== 'Disabled')) {
    const maxDelta = maxStepDelta(current, behavior.maxStepPercent);
    const sign = direction === 'up' ? '+' : '-';
    // Name the limit that actually applied: the percentage, or the floor of 1.
    const limit = Math.floor((current * behavior.maxStepPercent) / 100) >= 1 ? `${behavior.maxStepPercent}%` : '1';
    return {
      furthest: direction === 'up' ? current + maxDelta : current - maxDelta,
      reason: 'StepLimited',
      clause: `step limited to ${sign}${limit}`,
    };
  }
  const limited = rateLimit(
    direction,
    current,
    { selectPolicy: rules.selectPolicy, policies: rules.policies ?? [] },
    input.recentChanges ?? [],
    input.now,
  );
  if (limited.kind === 'disabled') {
    return {
      furthest: current,
      reason,
      clause: `${direction === 'up' ? 'scale-up' : 'scale-down'} is disabled by spec.behavior.${block}.selectPolicy Disabled`,
    };
  }
  const made = current - limited.periodStart;
  const history =
    made === 0
      ? `from ${limited.periodStart}, nothing changed yet in the period`
      : `from ${limited.periodStart} at the start of the period, ${made > 0 ? '+' : ''}${made} already changed in it`;
  const clause = `${direction === 'up' ? 'scale-up' : 'scale-down'} limited by policy ${describePolicy(limited.policy)} (selectPolicy ${rules.selectPolicy}; ${history})`;
  return { furthest: limited.limit, reason, clause };
}

/** Stages 6-8 for a current value inside bounds. */
function propose(
  current: number,
  percent: number,
  direction: BreachDirection,
  targetPercent: number,
  limit: StepLimit,
  bounds: Bounds,
): Proposal {
  // Scale-ups round up (as the HPA does) so small values still move; scale-downs
  // round down. The +-1 floor guards float rounding when util is within a hair of target.
  const exact = (current * percent) / targetPercent;
  const proportional =
    direction === 'up' ? Math.max(current + 1, Math.ceil(exact)) : Math.min(current - 1, Math.floor(exact));

  const stepped = direction === 'up' ? Math.min(proportional, limit.furthest) : Math.max(proportional, limit.furthest);

  if (stepped > bounds.max || stepped < bounds.min) {
    const atMax = stepped > bounds.max;
    const bound = atMax ? bounds.max : bounds.min;
    const boundName = `${atMax ? 'max' : 'min'} ${bound}`;
    return {
      value: bound,
      reason: atMax ? 'AtMax' : 'AtMin',
      detail:
        bound === current
          ? `already at ${boundName}`
          : `capped at ${boundName} (${current}→${bound} instead of ${stepped})`,
    };
  }
  if (stepped !== proportional) {
    return {
      value: stepped,
      reason: limit.reason,
      detail:
        stepped === current
          ? `${limit.clause}: no room for ${current}→${proportional}; holding at ${current}`
          : `${limit.clause} (${current}→${stepped} instead of ${proportional})`,
    };
  }
  return {
    value: proportional,
    reason: 'Scaled',
    detail: `scaling toward the ${formatPercent(targetPercent)}% target (${current}→${proportional})`,
  };
}

function later(a: Date, b: Date): Date {
  return a.getTime() >= b.getTime() ? a : b;
}

function earlier(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

/** At most two decimals, no trailing zeros: 86, 86.5, 86.33. */
export function formatPercent(percent: number): string {
  return String(Number(percent.toFixed(2)));
}
