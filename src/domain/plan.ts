/**
 * What one reconcile of a PoolPolicy should do, as a pure function of what was read.
 *
 * The reconciler reads (policy, target Deployment, PgBouncer ConfigMap, Prometheus samples),
 * calls {@link planPolicy}, then performs exactly the writes in the plan, writes the status if
 * {@link statusToWrite} says it changed, and records the events. Nothing here does I/O or reads
 * a clock: `now` comes in.
 *
 * A policy has up to three sections (database, redis, pgbouncer). Each has a leader setting that
 * {@link decide} moves from its own utilization, and optionally a follower that is set to
 * leader × ratio (clamped) whenever the leader changes, or brought back inside its bounds.
 */
import { ConditionReason, ConditionType } from '../api/v1alpha1/conditions.js';
import {
  MAX_HISTORY,
  formatStatusTime,
  type HistoryEntry,
  type ParsedPoolPolicyStatus,
  type PoolPolicySpec,
  type PoolPolicyStatus,
  type PoolSection,
  type SettingChange,
} from '../api/v1alpha1/poolpolicy.js';
import { clamp, decide, follow, type Bounds, type Breach, type Decision, type LimitReason, type UtilizationSample } from './decide.js';
import { sectionBudgetsOf, type BudgetFacts } from './budget.js';
import { decideFill, decideShareFill, type DemandReading, type FillReason, type RestartCost } from './fill.js';
import { sectionsOf, type SectionBudget, type SectionSettings, type SettingTarget } from './sections.js';
import { nextCondition, toWrittenStatus, type ConditionInput, type WrittenCondition } from './status.js';

/** A setting as read from its target. */
export type SettingReading =
  | { readonly kind: 'value'; readonly value: number }
  | { readonly kind: 'missing' }
  /** Set, but not as a plain integer the operator may manage (valueFrom, or unparsable text). */
  | { readonly kind: 'unmanageable'; readonly reason: string; readonly message: string };

export interface PlanInput {
  readonly now: Date;
  readonly generation: number;
  readonly spec: PoolPolicySpec;
  readonly previous: ParsedPoolPolicyStatus;
  /** Readings by setting key (env name or PgBouncer key) for every section's settings. */
  readonly readings: ReadonlyMap<string, SettingReading>;
  readonly samples: Readonly<Partial<Record<PoolSection, UtilizationSample>>>;
  /**
   * When the rollout that settings of each target need last completed; undefined while one is
   * in progress (see {@link rolloutCompletedAt}).
   */
  readonly rolloutCompletedAt: Readonly<Record<SettingTarget, Date | undefined>>;
  /** Why the PgBouncer settings cannot be edited (e.g. an ini the editor refuses), if so. */
  readonly pgbouncerRefusal: { readonly reason: string; readonly message: string } | undefined;
  /**
   * When poolpilot last changed each target, as the target records it (see lastAppliedBy). The
   * minimum change interval counts from the later of this and status.lastChange, so a change
   * whose status write was lost (a crash, an API server restart) still counts.
   */
  readonly lastAppliedAt?: Readonly<Partial<Record<SettingTarget, Date>>>;
  /** The connection budget's limit per section, when the policy draws from a ConnectionBudget. */
  readonly budget?: Readonly<Partial<Record<PoolSection, SectionBudget>>> | undefined;
  /** Demand per process from the app's pool metrics; read for a FillToBudget database section. */
  readonly demand?: DemandReading | undefined;
  /** How many processes a rolling restart of the target leaves serving (FillToBudget's restart gate). */
  readonly restart?: RestartCost | undefined;
}

/** A section's decision: decide()'s, possibly cut by the connection budget, or decideFill()'s. */
type SectionReason = LimitReason | FillReason | 'BudgetLimited';
interface SectionDecision extends Omit<Decision, 'reason'> {
  readonly reason: SectionReason;
  /** The follower's value when the law sets it itself (FillToBudget), instead of leader × ratio. */
  readonly followerDesired?: number;
  /** FillToBudget: demand fills the budget's share (see pgbouncerAdvice). */
  readonly budgetBound?: boolean;
  /** Decided by a FillToBudget law, which applies the budget itself (withinBudget does not cut it again). */
  readonly fillsShare?: boolean;
}

export interface PlannedEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly note: string;
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

interface SectionOutcome {
  readonly settings: SectionSettings;
  readonly decision: SectionDecision | undefined;
  /** Set when the section cannot be managed at all (its reason goes to Ready). */
  readonly blocked: { readonly reason: string; readonly message: string } | undefined;
  readonly current: Readonly<Record<string, number>>;
  readonly recommended: Readonly<Record<string, number>>;
  readonly changes: readonly SettingChange[];
  readonly explanation: string;
}

const LIMITING: ReadonlySet<SectionReason> = new Set<SectionReason>(['AtMax', 'AtMin', 'StepLimited', 'Stabilizing', 'MinIntervalNotElapsed', 'RolloutInProgress', 'BudgetLimited', 'BudgetCorrection', 'BudgetNotFound', 'BudgetUnknown', 'RestartDeferred', 'Saturated']);

export function planPolicy(input: PlanInput): Plan {
  const { spec, previous, now } = input;
  const outcomes = sectionsOf(spec).map((settings) => planSection(input, settings));
  const apply = spec.mode === 'Auto';
  const changes = apply ? outcomes.flatMap((o) => o.changes) : [];
  const writesFor = (target: SettingTarget): Map<string, number> =>
    new Map(apply ? outcomes.filter((o) => o.settings.target === target).flatMap((o) => o.changes.map((c) => [c.setting, c.to] as const)) : []);

  const current: Record<string, number> = {};
  const recommended: Record<string, number> = {};
  for (const o of outcomes) {
    Object.assign(current, o.current);
    Object.assign(recommended, o.recommended);
    if (apply) for (const c of o.changes) current[c.setting] = c.to;
  }

  const stored = toWrittenStatus(previous);
  const conditions = buildConditions(input, outcomes, stored.conditions);
  const observed = observedOf(input.samples);
  const breaches: Partial<Record<PoolSection, { direction: 'up' | 'down'; since: string; lastSeen: string }>> = {};
  for (const o of outcomes) {
    const breach = breachToKeep(o, apply, previous.breaches?.[o.settings.section], now);
    if (breach) breaches[o.settings.section] = { direction: breach.direction, since: formatStatusTime(breach.since), lastSeen: formatStatusTime(breach.lastSeen) };
  }

  let history = (stored.history ?? []).map((h) => ({ ...h }));
  history = withUtilizationAfter(history, input);
  let lastChange = stored.lastChange;
  const changeReason = outcomes.filter((o) => o.changes.length > 0).map((o) => o.explanation).join('; ');
  if (changes.length > 0) {
    lastChange = { time: formatStatusTime(now), reason: changeReason, changes };
    const before = outcomes.find((o) => o.changes.length > 0)?.settings.section;
    const sample = before && input.samples[before];
    const entry: HistoryEntry<string> = { ...lastChange, ...(sample?.valid ? { utilizationBefore: round1(sample.percent) } : {}) };
    history = [...history, entry].slice(-MAX_HISTORY);
  }

  const status: PoolPolicyStatus = {
    observedGeneration: input.generation,
    conditions,
    current,
    recommended,
    ...(observed ? { observed } : {}),
    ...(Object.keys(breaches).length > 0 ? { breaches } : {}),
    ...(lastChange ? { lastChange } : {}),
    ...(history.length > 0 ? { history } : {}),
  };

  const events: PlannedEvent[] = [];
  if (changes.length > 0) events.push({ type: 'Normal', reason: 'PoolResized', note: changeReason });
  if (!apply && spec.mode === 'Recommend' && canonicalMap(recommended) !== canonicalMap(stored.recommended ?? {})) {
    const moved = outcomes.filter((o) => o.decision && o.decision.desired !== o.current[o.settings.leader.key]).map((o) => o.explanation);
    if (moved.length > 0) events.push({ type: 'Normal', reason: 'RecommendationChanged', note: moved.join('; ') });
  }
  events.push(...problemEvents(stored.conditions, conditions));
  return { envWrites: writesFor('env'), pgbouncerWrites: writesFor('pgbouncer'), changes, status, events };
}

/**
 * The plan of a pass. With a budget it is planned twice: first for what utilization asks (the
 * wanted values the fair share weighs), then within what the budget allows those wants.
 */
export function planWithinBudget(input: PlanInput, budget: BudgetFacts | undefined): Plan {
  const unbudgeted = planPolicy(input);
  if (!budget) return unbudgeted;
  const current = Object.fromEntries([...input.readings].flatMap(([setting, r]) => (r.kind === 'value' ? [[setting, r.value]] : [])));
  const wanted = unbudgeted.status.recommended ?? {};
  return planPolicy({ ...input, budget: sectionBudgetsOf(budget, { spec: input.spec, wanted, current }) });
}

/**
 * decide() resets the breach when it proposes a change, because the change will be applied and
 * must re-earn its window. A change that is only recommended (mode Recommend) is not applied,
 * so the breach goes on; resetting it would make the recommendation flap back every window.
 */
function breachToKeep(outcome: SectionOutcome, apply: boolean, stored: Breach | undefined, now: Date): Breach | undefined {
  if (!outcome.decision) return stored;
  if (apply || outcome.changes.length === 0 || outcome.decision.breach) return outcome.decision.breach;
  return stored && { ...stored, lastSeen: now };
}

function latest(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (a === undefined) return b;
  return b === undefined || a >= b ? a : b;
}

function planSection(input: PlanInput, settings: SectionSettings): SectionOutcome {
  const { leader, follower, section, target } = settings;
  const reading = input.readings.get(leader.key) ?? { kind: 'missing' };
  const followerReading = follower ? input.readings.get(follower.key) ?? { kind: 'missing' } : undefined;
  const blocked = blockingReason(input, settings, reading, followerReading);
  const currentValues: Record<string, number> = {};
  if (reading.kind === 'value') currentValues[leader.key] = reading.value;
  if (follower && followerReading?.kind === 'value') currentValues[follower.key] = followerReading.value;
  if (blocked) return { settings, decision: undefined, blocked, current: currentValues, recommended: currentValues, changes: [], explanation: blocked.message };

  const sample = input.samples[section] ?? { valid: false, problem: 'NoData', message: 'no sample was taken' };
  let decision: SectionDecision;
  if (settings.fill && follower && reading.kind === 'value' && followerReading?.kind === 'value') {
    decision = fillDecision(input, settings, sample, reading.value, followerReading.value, follower.bounds);
  } else if (settings.fill && !follower && reading.kind === 'value') {
    const fill = decideShareFill({
      now: input.now,
      current: reading.value,
      bounds: leader.bounds,
      budget: input.budget?.[section] ?? UNEVALUATED_BUDGET,
      sample,
      intervalMs: input.spec.intervalMs,
      minChangeIntervalMs: input.spec.behavior.minChangeIntervalMs,
      lastChangeAt: latest(input.previous.lastChange?.time, input.lastAppliedAt?.[target]),
      rolloutCompletedAt: input.rolloutCompletedAt[target],
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
      rolloutCompletedAt: input.rolloutCompletedAt[target],
    });
  } else {
    // A setting the target does not carry yet starts at its minimum: the conservative value
    // within bounds; later passes move it with utilization as usual.
    decision = { desired: leader.bounds.min, reason: 'AtMin', message: `not set on the target; starting at min ${leader.bounds.min}`, breach: undefined };
  }
  const budget = input.budget?.[section];
  if (budget && decision.fillsShare !== true) decision = withinBudget(decision, budget, reading.kind === 'value' ? reading.value : undefined, leader.bounds, input.previous.breaches?.[section]);

  const recommended: Record<string, number> = { [leader.key]: decision.desired };
  const changes: SettingChange[] = [];
  const leaderFrom = reading.kind === 'value' ? reading.value : undefined;
  if (leaderFrom !== decision.desired) changes.push({ setting: leader.key, from: leaderFrom ?? 0, to: decision.desired });
  if (follower) {
    const followerFrom = followerReading?.kind === 'value' ? followerReading.value : undefined;
    const leaderMoves = leaderFrom !== decision.desired;
    const followerDesired =
      decision.followerDesired ??
      (leaderMoves || followerFrom === undefined ? follow(decision.desired, follower.ratio, follower.bounds) : clamp(followerFrom, follower.bounds));
    recommended[follower.key] = followerDesired;
    if (followerFrom !== followerDesired) changes.push({ setting: follower.key, from: followerFrom ?? 0, to: followerDesired });
  }
  const explanation = changes.length > 0
    ? `${changes.map((c) => `${c.setting} ${input.readings.get(c.setting)?.kind === 'value' ? c.from : '(unset)'}→${c.to}`).join(', ')}: ${decision.message}`
    : `${leader.key}: ${holdMessage(decision, input.spec, reading.kind === 'value' ? reading.value : decision.desired)}`;
  return { settings, decision, blocked: undefined, current: currentValues, recommended, changes, explanation };
}

/** The first of the reconciler's two plans has no budget yet: a fill section holds in it. */
const UNEVALUATED_BUDGET: SectionBudget = { kind: 'unknown', reason: 'BudgetUnknown', message: 'the budget was not evaluated' };

/**
 * decideFill() for a FillToBudget database section whose two settings are both set. Without a
 * budget in the input (the first of the reconciler's two plans, or no budget support) the share is
 * unknown and capacity holds.
 */
function fillDecision(input: PlanInput, settings: SectionSettings, sample: UtilizationSample, pool: number, overflow: number, overflowBounds: Bounds): SectionDecision {
  const fill = decideFill({
    now: input.now,
    pool: { current: pool, bounds: settings.leader.bounds },
    overflow: { current: overflow, bounds: overflowBounds },
    budget: input.budget?.[settings.section] ?? UNEVALUATED_BUDGET,
    sample,
    demand: input.demand ?? { valid: false, problem: 'NoData', message: 'demand was not read' },
    restart: input.restart ?? { processes: 1, processesDuringRollout: 0 },
    thresholds: input.spec.thresholds,
    behavior: input.spec.behavior,
    intervalMs: input.spec.intervalMs,
    breach: input.previous.breaches?.[settings.section],
    lastChangeAt: latest(input.previous.lastChange?.time, input.lastAppliedAt?.[settings.target]),
    rolloutCompletedAt: input.rolloutCompletedAt[settings.target],
  });
  return { desired: fill.pool, followerDesired: fill.overflow, reason: fill.reason, message: fill.message, breach: fill.breach, budgetBound: fill.budgetBound, fillsShare: true };
}

/**
 * Cuts a decision to what the connection budget allows. A value above the cap comes down to it
 * at once, faster than the normal step (the pools of all replicas must fit the database); a
 * growth is cut to the cap; an unknown budget allows no growth. Never below min: the cap is not.
 */
function withinBudget(decision: SectionDecision, budget: SectionBudget, current: number | undefined, bounds: Bounds, storedBreach: Breach | undefined): SectionDecision {
  const from = current ?? decision.desired;
  // A held-back growth keeps its breach: it acts as soon as the budget allows.
  const breach = decision.breach ?? storedBreach;
  if (budget.kind === 'unknown') {
    if (decision.desired <= from) return decision;
    return { desired: from, reason: budget.reason === 'BudgetNotFound' ? 'BudgetNotFound' : 'BudgetUnknown', message: `${budget.message}; not growing until the budget can be evaluated (would be ${decision.desired})`, breach };
  }
  const cap = Math.max(budget.cap, bounds.min);
  const numbers = `needs ${budget.needs} of ${budget.free} free ${budget.backend} connections${budget.minimumsFit ? '' : '; even every policy\'s minimum does not fit the budget'}`;
  // Within the cap (a normal step down included): the budget does not bind.
  if (decision.desired <= cap) return decision;
  if (from > cap) {
    return { desired: cap, reason: 'BudgetCorrection', message: `over the ${budget.backend} budget: ${numbers}; brought back to ${cap} at once, faster than the normal step`, breach: undefined };
  }
  return cap > from
    ? { desired: cap, reason: 'BudgetLimited', message: `${decision.message}; cut to ${cap} by the ${budget.backend} budget: ${numbers}`, breach: undefined }
    : { desired: from, reason: 'BudgetLimited', message: `would grow to ${decision.desired} but the ${budget.backend} budget ${numbers}; holding at ${from}`, breach };
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

function blockingReason(input: PlanInput, settings: SectionSettings, ...readings: Array<SettingReading | undefined>): { reason: string; message: string } | undefined {
  if (settings.target === 'pgbouncer' && input.pgbouncerRefusal) return input.pgbouncerRefusal;
  for (const reading of readings) if (reading?.kind === 'unmanageable') return { reason: reading.reason, message: reading.message };
  return undefined;
}

function buildConditions(input: PlanInput, outcomes: readonly SectionOutcome[], stored: readonly WrittenCondition[] | undefined): WrittenCondition[] {
  const { now, generation, spec } = input;
  const blocked = outcomes.find((o) => o.blocked);
  const ready: ConditionInput = blocked?.blocked
    ? { type: ConditionType.Ready, status: 'False', reason: blocked.blocked.reason, message: blocked.blocked.message }
    : spec.mode === 'Auto'
      ? { type: ConditionType.Ready, status: 'True', reason: ConditionReason.Reconciled, message: 'settings are within bounds and applied' }
      : { type: ConditionType.Ready, status: 'True', reason: ConditionReason.Recommending, message: 'mode Recommend: status.recommended is computed, targets are not written' };

  const invalid = outcomes.flatMap((o) => {
    const sample = input.samples[o.settings.section];
    return sample && !sample.valid ? [{ section: o.settings.section, sample }] : [];
  });
  const firstInvalid = invalid[0];
  const metrics: ConditionInput = firstInvalid
    ? { type: ConditionType.MetricsAvailable, status: 'False', reason: firstInvalid.sample.problem, message: invalid.map((i) => `${i.section}: ${i.sample.message}`).join('; ') }
    : { type: ConditionType.MetricsAvailable, status: 'True', reason: 'SamplesValid', message: 'every utilization query returned one fresh, finite sample' };

  const decided = outcomes.filter((o) => o.decision);
  const limiting = decided.filter((o) => o.decision && LIMITING.has(o.decision.reason));
  const firstLimiting = limiting[0]?.decision;
  const firstDecided = decided[0]?.decision;
  const limited: ConditionInput = firstLimiting
    ? { type: ConditionType.Limited, status: 'True', reason: firstLimiting.reason, message: limiting.map((o) => o.explanation).join('; ') }
    : {
        type: ConditionType.Limited,
        status: 'False',
        reason: firstDecided ? firstDecided.reason : 'NotEvaluated',
        message: decided.length > 0 ? decided.map((o) => o.explanation).join('; ') : 'no section could be evaluated',
      };
  const conditions = [ready, metrics, limited];
  const advice = pgbouncerAdvice(input, outcomes);
  if (advice) conditions.push(advice);
  return conditions.map((c) => nextCondition(stored, c, now, generation));
}

/**
 * The runbook's advice, for a policy whose app pools go straight to PostgreSQL under a budget:
 * when the budget holds DB_POOL_SIZE below what utilization asks for, PgBouncer would let the
 * pools share server connections instead.
 */
function pgbouncerAdvice(input: PlanInput, outcomes: readonly SectionOutcome[]): ConditionInput | undefined {
  if (!input.spec.budgetRef || !input.spec.database || input.spec.pgbouncer) return undefined;
  const database = outcomes.find((o) => o.settings.section === 'database');
  const budget = input.budget?.database;
  const limited = database?.decision && (database.decision.reason === 'BudgetLimited' || database.decision.reason === 'BudgetCorrection' || database.decision.budgetBound === true);
  if (!limited || budget?.kind !== 'cap') {
    return { type: ConditionType.PgBouncerRecommended, status: 'False', reason: 'WithinBudget', message: 'the database pools fit the PostgreSQL budget at their recommended size' };
  }
  if (database.decision.budgetBound === true) {
    return {
      type: ConditionType.PgBouncerRecommended,
      status: 'True',
      reason: 'BudgetLimited',
      message: `the pools fill the PostgreSQL budget's share and still saw waiters or timeouts; PgBouncer in transaction mode lets many client connections share few server connections: put it in front of PostgreSQL and add a pgbouncer section to this policy`,
    };
  }
  const short = budget.needs - budget.free;
  return {
    type: ConditionType.PgBouncerRecommended,
    status: 'True',
    reason: 'BudgetLimited',
    message: `the pools of all replicas need ${budget.needs} PostgreSQL connections at the recommended ${database.settings.leader.key} but the budget leaves ${budget.free} (${short} short); PgBouncer in transaction mode lets many client connections share few server connections: put it in front of PostgreSQL and add a pgbouncer section to this policy`,
  };
}

/** A Warning event when a condition turns bad, or stays bad for a new reason; never repeated. */
function problemEvents(stored: readonly WrittenCondition[] | undefined, next: readonly WrittenCondition[]): PlannedEvent[] {
  // Ready=False and MetricsAvailable=False are problems; Limited and PgBouncerRecommended are
  // explanations (False there is good news), their changes show in status, not as Warnings.
  const bad = (c: WrittenCondition | undefined): boolean => c !== undefined && (c.type === ConditionType.Ready || c.type === ConditionType.MetricsAvailable) && c.status === 'False';
  return next.filter((c) => {
    const before = stored?.find((s) => s.type === c.type);
    return bad(c) && !(bad(before) && before?.reason === c.reason);
  }).map((c) => ({ type: 'Warning', reason: c.reason, note: c.message }));
}

/**
 * Fills utilizationAfter of the newest history entry once a valid sample of its section was
 * taken after the rollout of that change completed.
 */
function withUtilizationAfter(history: Array<HistoryEntry<string>>, input: PlanInput): Array<HistoryEntry<string>> {
  const last = history.at(-1);
  if (!last || last.utilizationAfter !== undefined) return history;
  const outcome = sectionsOf(input.spec).find((s) => last.changes.some((c) => c.setting === s.leader.key));
  if (!outcome) return history;
  const sample = input.samples[outcome.section];
  const completed = input.rolloutCompletedAt[outcome.target];
  if (!sample?.valid || !completed || completed < new Date(last.time) || sample.sampledAt < completed) return history;
  return [...history.slice(0, -1), { ...last, utilizationAfter: round1(sample.percent) }];
}

function observedOf(samples: PlanInput['samples']): PoolPolicyStatus['observed'] {
  const observed: { database?: number; redis?: number; pgbouncer?: number; sampledAt?: string } = {};
  let newest: Date | undefined;
  for (const [section, sample] of Object.entries(samples) as Array<[PoolSection, UtilizationSample | undefined]>) {
    if (!sample?.valid) continue;
    observed[section] = round1(sample.percent);
    if (!newest || sample.sampledAt > newest) newest = sample.sampledAt;
  }
  if (!newest) return undefined;
  observed.sampledAt = formatStatusTime(newest);
  return observed;
}

/** Status for a pass that could not plan at all (invalid spec, missing target, conflict, paused). */
export function blockedStatus(previous: ParsedPoolPolicyStatus, generation: number, now: Date, ready: { status: 'True' | 'False'; reason: string; message: string }): PoolPolicyStatus {
  const stored = toWrittenStatus(previous);
  const conditions = [nextCondition(stored.conditions, { type: ConditionType.Ready, ...ready }, now, generation)];
  // Other conditions describe the last evaluation; keep them, marked with their own generation.
  for (const c of stored.conditions ?? []) if (c.type !== ConditionType.Ready) conditions.push(c);
  return { ...stored, observedGeneration: generation, conditions };
}

/** Warning event for a blocked pass, only when the Ready condition newly turned to this reason. */
export function blockedEvents(previous: ParsedPoolPolicyStatus, next: PoolPolicyStatus): PlannedEvent[] {
  return problemEvents(toWrittenStatus(previous).conditions, next.conditions ?? []);
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function canonicalMap(map: Readonly<Record<string, number>>): string {
  return JSON.stringify(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : 1)));
}
