/**
 * What one reconcile of a PoolPolicy should do, as a pure function of what was read.
 *
 * The reconciler reads (policy, target Deployment, PgBouncer ConfigMap, Prometheus samples, the
 * budget's facts), calls {@link planWithinBudget}, then performs exactly the writes in the plan,
 * writes the status if statusToWrite says it changed, and records the events. This file holds the
 * per-section decisions; policy-status.ts assembles status, history and events from them.
 * Nothing here does I/O or reads a clock: `now` comes in.
 *
 * A policy has up to three sections (database, redis, pgbouncer). Each has a leader setting that
 * {@link decide} moves from its own utilization, and optionally a follower that is set to
 * leader × ratio (clamped) whenever the leader changes, or brought back inside its bounds.
 */
import type { PoolPolicySpec, PoolPolicyStatus, SettingChange } from '../api/v1alpha1/poolpolicy.js';
import { clamp, decide, follow, type Bounds, type Breach, type UtilizationSample } from './decide.js';
import { sectionBudgetsOf, type BudgetFacts } from './budget.js';
import type { PastChange } from './scaling-rules.js';
import { decideFill, decideShareFill, type DemandReading, type RestartCost } from './fill.js';
import {
  passStatus,
  type PlannedEvent,
  type SectionDecision,
  type SectionOutcome,
  type StatusFacts,
} from './policy-status.js';
import { sectionsOf, type SectionBudget, type SectionSettings, type SettingTarget } from './sections.js';
import type { PgbouncerApplied } from './pgbouncer-applied.js';

/** A setting as read from its target. */
export type SettingReading =
  | { readonly kind: 'value'; readonly value: number }
  | { readonly kind: 'missing' }
  /** Set, but not as a plain integer the operator may manage (valueFrom, or unparsable text). */
  | { readonly kind: 'unmanageable'; readonly reason: string; readonly message: string };

export interface PlanInput extends StatusFacts {
  /** Readings by setting key (env name or PgBouncer key) for every section's settings. */
  readonly readings: ReadonlyMap<string, SettingReading>;
  /** Why the PgBouncer settings cannot be edited (e.g. an ini the editor refuses), if so. */
  readonly pgbouncerRefusal: { readonly reason: string; readonly message: string } | undefined;
  /**
   * When poolpilot last changed each target, as the target records it (see lastAppliedBy). The
   * minimum change interval counts from the later of this and status.lastChange, so a change
   * whose status write was lost (a crash, an API server restart) still counts.
   */
  readonly lastAppliedAt?: Readonly<Partial<Record<SettingTarget, Date>>>;
  /** Demand per process from the app's pool metrics; read for a FillToBudget database section. */
  readonly demand?: DemandReading | undefined;
  /** How many processes a rolling restart of the target leaves serving (FillToBudget's restart gate). */
  readonly restart?: RestartCost | undefined;
  /** Whether PgBouncer runs the default_pool_size in its ConfigMap (see pgbouncerApplied); Pending holds the section. */
  readonly pgbouncerApplied?: PgbouncerApplied | undefined;
}

export interface Plan {
  /** Env values to apply to the target container (Auto mode only). */
  readonly envWrites: ReadonlyMap<string, number>;
  /** PgBouncer settings to write (Auto mode only). */
  readonly pgbouncerWrites: ReadonlyMap<string, number>;
  readonly changes: readonly SettingChange[];
  readonly status: PoolPolicyStatus;
  readonly events: readonly PlannedEvent[];
}

export function planPolicy(input: PlanInput): Plan {
  const { spec } = input;
  const outcomes = sectionsOf(spec).map((settings) => planSection(input, settings));
  const apply = spec.mode === 'Auto';
  const changes = apply ? outcomes.flatMap((o) => o.changes) : [];
  const writesFor = (target: SettingTarget): Map<string, number> =>
    new Map(
      apply
        ? outcomes
            .filter((o) => o.settings.target === target)
            .flatMap((o) => o.changes.map((c) => [c.setting, c.to] as const))
        : [],
    );

  const { status, events } = passStatus(input, outcomes, changes);
  return { envWrites: writesFor('env'), pgbouncerWrites: writesFor('pgbouncer'), changes, status, events };
}

/**
 * The plan of a pass. With a budget it is planned twice: first for what utilization asks (the
 * wanted values the fair share weighs), then within what the budget allows those wants.
 */
export function planWithinBudget(input: PlanInput, budget: BudgetFacts | undefined): Plan {
  const unbudgeted = planPolicy(input);
  if (!budget) return unbudgeted;
  const current = Object.fromEntries(
    [...input.readings].flatMap(([setting, r]) => (r.kind === 'value' ? [[setting, r.value]] : [])),
  );
  const wanted = unbudgeted.status.recommended ?? {};
  return planPolicy({
    ...input,
    budget: sectionBudgetsOf(budget, { spec: input.spec, wanted, current, demand: input.demand }),
  });
}

/**
 * The changes of one setting recorded in status.history (at most MAX_HISTORY entries, oldest
 * first): what the policies of spec.behavior.scaleUp / scaleDown count against their periods.
 */
function changesOf(previous: PlanInput['previous'], setting: string): PastChange[] {
  // A leader is never 0 (its min is >= 1): from 0 records a setting that was unset, a first value and not a move.
  return (previous.history ?? []).flatMap((entry) =>
    entry.changes
      .filter((c) => c.setting === setting && c.from > 0)
      .map((c) => ({ at: entry.time, from: c.from, to: c.to })),
  );
}

function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  return b === undefined || a >= b ? a : b;
}

function planSection(input: PlanInput, settings: SectionSettings): SectionOutcome {
  const { leader, follower, section, target } = settings;
  const reading = input.readings.get(leader.key) ?? { kind: 'missing' };
  const followerReading = follower ? (input.readings.get(follower.key) ?? { kind: 'missing' }) : undefined;
  const blocked = blockingReason(input, settings, reading, followerReading);
  const currentValues: Record<string, number> = {};
  if (reading.kind === 'value') currentValues[leader.key] = reading.value;
  if (follower && followerReading?.kind === 'value') currentValues[follower.key] = followerReading.value;
  if (blocked)
    return {
      settings,
      decision: undefined,
      blocked,
      current: currentValues,
      recommended: currentValues,
      changes: [],
      explanation: blocked.message,
    };

  const sample = input.samples[section] ?? { valid: false, problem: 'NoData', message: 'no sample was taken' };
  const pending = pendingDelivery(input, target);
  let decision: SectionDecision;
  if (pending !== undefined && reading.kind === 'value') {
    // The samples are of the old pools until the pods (or PgBouncer) run the delivered values.
    decision = {
      desired: reading.value,
      ...(followerReading?.kind === 'value' ? { followerDesired: followerReading.value } : {}),
      reason: 'DeliveryPending',
      message: pending,
      breach: input.previous.breaches?.[section],
    };
  } else if (
    settings.fill &&
    section === 'database' &&
    follower &&
    reading.kind === 'value' &&
    followerReading?.kind === 'value'
  ) {
    decision = fillDecision(input, settings, sample, reading.value, followerReading.value, follower.bounds);
  } else if (settings.fill && section !== 'database' && reading.kind === 'value') {
    const fill = decideShareFill({
      now: input.now,
      unit: section === 'pgbouncer' ? 'server pool' : 'process',
      current: reading.value,
      bounds: leader.bounds,
      budget: input.budget?.[section] ?? UNEVALUATED_BUDGET,
      sample,
      intervalMs: input.spec.intervalMs,
      minChangeIntervalMs: input.spec.behavior.minChangeIntervalMs,
      lastChangeAt: latest(input.previous.lastChange?.time, input.lastAppliedAt?.[target]),
      rolloutCompletedAt: samplesCountFrom(input, target),
    });
    decision = { desired: fill.pool, reason: fill.reason, message: fill.message, breach: undefined, fillsShare: true };
  } else if (reading.kind === 'value') {
    decision = decide({
      now: input.now,
      current: reading.value,
      bounds: leader.bounds,
      thresholds: input.spec.thresholds,
      behavior: input.spec.behavior,
      intervalMs: input.spec.intervalMs,
      sample,
      breach: input.previous.breaches?.[section],
      lastChangeAt: latest(input.previous.lastChange?.time, input.lastAppliedAt?.[target]),
      recentChanges: changesOf(input.previous, leader.key),
      rolloutCompletedAt: samplesCountFrom(input, target),
    });
  } else {
    // A setting the target does not carry yet starts at its minimum: the conservative value
    // within bounds; later passes move it with utilization as usual.
    decision = {
      desired: leader.bounds.min,
      reason: 'AtMin',
      message: `not set on the target; starting at min ${leader.bounds.min}`,
      breach: undefined,
    };
  }
  const budget = input.budget?.[section];
  // A held delivery is not cut either: the pods run the old values until it is Applied.
  if (budget && decision.fillsShare !== true && decision.reason !== 'DeliveryPending')
    decision = withinBudget(
      decision,
      budget,
      reading.kind === 'value' ? reading.value : undefined,
      leader.bounds,
      input.previous.breaches?.[section],
    );

  const recommended: Record<string, number> = { [leader.key]: decision.desired };
  const changes: SettingChange[] = [];
  const leaderFrom = reading.kind === 'value' ? reading.value : undefined;
  if (leaderFrom !== decision.desired)
    changes.push({ setting: leader.key, from: leaderFrom ?? 0, to: decision.desired });
  if (follower) {
    const followerFrom = followerReading?.kind === 'value' ? followerReading.value : undefined;
    const leaderMoves = leaderFrom !== decision.desired;
    const followerDesired =
      decision.followerDesired ??
      (leaderMoves || followerFrom === undefined
        ? follow(decision.desired, follower.ratio, follower.bounds)
        : clamp(followerFrom, follower.bounds));
    recommended[follower.key] = followerDesired;
    if (followerFrom !== followerDesired)
      changes.push({ setting: follower.key, from: followerFrom ?? 0, to: followerDesired });
  }
  const explanation =
    changes.length > 0
      ? `${changes.map((c) => `${c.setting} ${input.readings.get(c.setting)?.kind === 'value' ? c.from : '(unset)'}→${c.to}`).join(', ')}: ${decision.message}`
      : `${leader.key}: ${holdMessage(decision, input.spec, reading.kind === 'value' ? reading.value : decision.desired)}`;
  return { settings, decision, blocked: undefined, current: currentValues, recommended, changes, explanation };
}

/**
 * From when the samples of a target count: once its rollout completed, and for PgBouncer, whose
 * settings apply on RELOAD without a rollout, not before poolpilot's last write of its config (a
 * sample scraped before the write says nothing of the new pool size; acting on it overshoots).
 */
function samplesCountFrom(input: PlanInput, target: SettingTarget): Date | undefined {
  const completed = input.rolloutCompletedAt[target];
  const recorded = target === 'pgbouncer' ? input.lastAppliedAt?.pgbouncer : undefined;
  if (completed === undefined || recorded === undefined) return completed;
  // managedFields times have whole seconds: the write happened somewhere in the recorded second,
  // so only samples from its end surely postdate it.
  const written = new Date(Math.floor(recorded.getTime() / 1000) * 1000 + 1000);
  return written > completed ? written : completed;
}

/** Why a section's samples are still of the old values it delivered, or undefined when they are not. */
function pendingDelivery(input: PlanInput, target: SettingTarget): string | undefined {
  if (target === 'env') {
    const undelivered = input.delivery?.state !== 'Applied' ? input.delivery : undefined;
    return undelivered && `holding until the pods run the last delivery (${undelivered.state}): ${undelivered.message}`;
  }
  const applied = input.pgbouncerApplied;
  return applied?.state === 'Pending' ? `holding until PgBouncer runs the last write: ${applied.message}` : undefined;
}

/** The first of the reconciler's two plans has no budget yet: a fill section holds in it. */
const UNEVALUATED_BUDGET: SectionBudget = {
  kind: 'unknown',
  reason: 'BudgetUnknown',
  message: 'the budget was not evaluated',
};

/**
 * decideFill() for a FillToBudget database section whose two settings are both set. Without a
 * budget in the input (the first of the reconciler's two plans, or no budget support) the share is
 * unknown and capacity holds.
 */
function fillDecision(
  input: PlanInput,
  settings: SectionSettings,
  sample: UtilizationSample,
  pool: number,
  overflow: number,
  overflowBounds: Bounds,
): SectionDecision {
  const fill = decideFill({
    now: input.now,
    pool: { current: pool, bounds: settings.leader.bounds },
    overflow: { current: overflow, bounds: overflowBounds },
    budget: input.budget?.[settings.section] ?? UNEVALUATED_BUDGET,
    sample,
    demand: input.demand ?? { valid: false, problem: 'NoData', message: 'demand was not read' },
    restart: input.restart ?? { processes: 1, processesDuringRollout: 0, change: 'restart' },
    thresholds: input.spec.thresholds,
    behavior: input.spec.behavior,
    intervalMs: input.spec.intervalMs,
    breach: input.previous.breaches?.[settings.section],
    lastChangeAt: latest(input.previous.lastChange?.time, input.lastAppliedAt?.[settings.target]),
    rolloutCompletedAt: samplesCountFrom(input, settings.target),
  });
  return {
    desired: fill.pool,
    followerDesired: fill.overflow,
    reason: fill.reason,
    message: fill.message,
    breach: fill.breach,
    budgetBound: fill.budgetBound,
    fillsShare: true,
  };
}

/**
 * Cuts a decision to what the connection budget allows. A value above the cap comes down to it
 * at once, faster than the normal step (the pools of all replicas must fit the database); a
 * growth is cut to the cap; an unknown budget allows no growth. Never below min: the cap is not.
 */
function withinBudget(
  decision: SectionDecision,
  budget: SectionBudget,
  current: number | undefined,
  bounds: Bounds,
  storedBreach: Breach | undefined,
): SectionDecision {
  const from = current ?? decision.desired;
  // A held-back growth keeps its breach: it acts as soon as the budget allows.
  const breach = decision.breach ?? storedBreach;
  if (budget.kind === 'unknown') {
    if (decision.desired <= from) return decision;
    return {
      desired: from,
      reason: budget.reason === 'BudgetNotFound' ? 'BudgetNotFound' : 'BudgetUnknown',
      message: `${budget.message}; not growing until the budget can be evaluated (would be ${decision.desired})`,
      breach,
    };
  }
  const cap = Math.max(budget.cap, bounds.min);
  // Corrections count the steady pools only: the surge pods of a peer's rollout are gone when it
  // ends, and a correction for them would start a rollout here whose surge cuts the peer back.
  const steadyCap = Math.max(Math.min(budget.fair ?? budget.cap, budget.limit ?? budget.cap), bounds.min);
  const numbers = `needs ${budget.needs} of ${budget.free} free ${budget.backend} connections${budget.minimumsFit ? '' : "; even every policy's minimum does not fit the budget"}`;
  // Within the cap (a normal step down included): the budget does not bind.
  if (decision.desired <= cap) return decision;
  if (from > steadyCap) {
    return {
      desired: steadyCap,
      reason: 'BudgetCorrection',
      message: `over the ${budget.backend} budget: ${numbers}; brought back to ${steadyCap} at once, faster than the normal step`,
      breach: undefined,
    };
  }
  if (from > cap) {
    return {
      desired: from,
      reason: 'BudgetLimited',
      message: `would grow to ${decision.desired} but a peer's rollout holds surge pods: the ${budget.backend} budget ${numbers}; holding at ${from}`,
      breach,
    };
  }
  return cap > from
    ? {
        desired: cap,
        reason: 'BudgetLimited',
        message: `${decision.message}; cut to ${cap} by the ${budget.backend} budget: ${numbers}`,
        breach: undefined,
      }
    : {
        desired: from,
        reason: 'BudgetLimited',
        message: `would grow to ${decision.desired} but the ${budget.backend} budget ${numbers}; holding at ${from}`,
        breach,
      };
}

/**
 * A dead-band hold is the idle state: its message leaves out the live utilization (that is in
 * status.observed, refreshed only on a material move), so a steady workload writes no status.
 */
function holdMessage(decision: SectionDecision, spec: PoolPolicySpec, current: number): string {
  // FillToBudget's hold messages carry no live numbers already.
  if (decision.reason !== 'DeadBand' || decision.fillsShare === true) return decision.message;
  return `utilization is within ${spec.thresholds.scaleDownBelow}%..${spec.thresholds.scaleUpAbove}%; holding at ${current}`;
}

function blockingReason(
  input: PlanInput,
  settings: SectionSettings,
  ...readings: Array<SettingReading | undefined>
): { reason: string; message: string } | undefined {
  if (settings.target === 'pgbouncer' && input.pgbouncerRefusal) return input.pgbouncerRefusal;
  for (const reading of readings)
    if (reading?.kind === 'unmanageable') return { reason: reading.reason, message: reading.message };
  return undefined;
}
