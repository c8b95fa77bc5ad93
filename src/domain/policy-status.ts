/**
 * The PoolPolicy status, history and events of one planned pass, assembled from the sections'
 * decisions (plan.ts): conditions with their reasons, the breaches to keep, the change record and
 * its history entry, utilizationAfter, the observed utilization, PgBouncer advice, and the
 * Warning and Normal events. Also the status of a pass that could not plan at all. Pure: `now`
 * comes in.
 */
import { ConditionReason, ConditionType } from '../api/v1alpha1/conditions.js';
import {
  MAX_HISTORY,
  formatStatusTime,
  type DeliveryRecord,
  type HistoryEntry,
  type ParsedPoolPolicyStatus,
  type PoolPolicySpec,
  type PoolPolicyStatus,
  type PoolSection,
  type SettingChange,
} from '../api/v1alpha1/poolpolicy.js';
import type { Breach, Decision, LimitReason, UtilizationSample } from './decide.js';
import type { FillReason } from './fill.js';
import { sectionsOf, type SectionBudget, type SectionSettings, type SettingTarget } from './sections.js';
import { describeSettings, type DeliveryView } from './delivery.js';
import {
  canonical,
  nextCondition,
  toWrittenStatus,
  writtenDelivery,
  type ConditionInput,
  type WrittenCondition,
} from './status.js';

/** What a pass read that its status reports on (PlanInput extends it with what only decisions need). */
export interface StatusFacts {
  readonly now: Date;
  readonly generation: number;
  readonly spec: PoolPolicySpec;
  readonly previous: ParsedPoolPolicyStatus;
  readonly samples: Readonly<Partial<Record<PoolSection, UtilizationSample>>>;
  /**
   * When the rollout that settings of each target need last completed; undefined while one is
   * in progress (see rolloutCompletedAt in rollout.ts).
   */
  readonly rolloutCompletedAt: Readonly<Record<SettingTarget, Date | undefined>>;
  /** The connection budget's limit per section, when the policy draws from a ConnectionBudget. */
  readonly budget?: Readonly<Partial<Record<PoolSection, SectionBudget>>> | undefined;
  /** spec.delivery.mode ConfigMap: the last delivery as the pods reported it; undefined before the first. */
  readonly delivery?: DeliveryView | undefined;
}

/** A section's decision: decide()'s, possibly cut by the connection budget, or decideFill()'s. */
export type SectionReason = LimitReason | FillReason | 'BudgetLimited' | 'DeliveryPending';
export interface SectionDecision extends Omit<Decision, 'reason'> {
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

/** One section's decision and what it means for the status. */
export interface SectionOutcome {
  readonly settings: SectionSettings;
  readonly decision: SectionDecision | undefined;
  /** Set when the section cannot be managed at all (its reason goes to Ready). */
  readonly blocked: { readonly reason: string; readonly message: string } | undefined;
  readonly current: Readonly<Record<string, number>>;
  readonly recommended: Readonly<Record<string, number>>;
  readonly changes: readonly SettingChange[];
  readonly explanation: string;
}

const LIMITING: ReadonlySet<SectionReason> = new Set<SectionReason>([
  'AtMax',
  'AtMin',
  'StepLimited',
  'ScaleUpLimit',
  'ScaleDownLimit',
  'Stabilizing',
  'MinIntervalNotElapsed',
  'RolloutInProgress',
  'BudgetLimited',
  'BudgetCorrection',
  'BudgetNotFound',
  'BudgetUnknown',
  'RestartDeferred',
  'ReloadDeferred',
  'Saturated',
  'DeliveryPending',
]);

/** The status and events of a planned pass; `changes` are the ones applied (Auto mode). */
export function passStatus(
  input: StatusFacts,
  outcomes: readonly SectionOutcome[],
  changes: readonly SettingChange[],
): { status: PoolPolicyStatus; events: PlannedEvent[] } {
  const { spec, previous, now } = input;
  const apply = spec.mode === 'Auto';
  const current: Record<string, number> = {};
  const recommended: Record<string, number> = {};
  for (const o of outcomes) {
    Object.assign(current, o.current);
    Object.assign(recommended, o.recommended);
    if (apply) for (const c of o.changes) current[c.setting] = c.to;
  }

  const stored = toWrittenStatus(previous);
  const delivery = deliveryOf(input, outcomes, changes);
  const conditions = buildConditions(input, outcomes, stored.conditions, delivery);
  const observed = observedOf(input.samples);
  const breaches: Partial<Record<PoolSection, { direction: 'up' | 'down'; since: string; lastSeen: string }>> = {};
  for (const o of outcomes) {
    const breach = breachToKeep(o, apply, previous.breaches?.[o.settings.section], now);
    if (breach)
      breaches[o.settings.section] = {
        direction: breach.direction,
        since: formatStatusTime(breach.since),
        lastSeen: formatStatusTime(breach.lastSeen),
      };
  }

  let history = (stored.history ?? []).map((h) => ({ ...h }));
  history = withUtilizationAfter(history, input);
  let lastChange = stored.lastChange;
  const changeReason = outcomes
    .filter((o) => o.changes.length > 0)
    .map((o) => o.explanation)
    .join('; ');
  if (changes.length > 0) {
    lastChange = { time: formatStatusTime(now), reason: changeReason, changes };
    const before = outcomes.find((o) => o.changes.length > 0)?.settings.section;
    const sample = before && input.samples[before];
    const entry: HistoryEntry<string> = {
      ...lastChange,
      ...(sample?.valid ? { utilizationBefore: round1(sample.percent) } : {}),
    };
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
    ...(delivery ? { delivery: writtenDelivery(delivery.record) } : {}),
  };

  const events: PlannedEvent[] = [];
  if (changes.length > 0) events.push({ type: 'Normal', reason: 'PoolResized', note: changeReason });
  if (!apply && spec.mode === 'Recommend' && canonical(recommended) !== canonical(stored.recommended ?? {})) {
    const moved = outcomes
      .filter((o) => o.decision && o.decision.desired !== o.current[o.settings.leader.key])
      .map((o) => o.explanation);
    if (moved.length > 0) events.push({ type: 'Normal', reason: 'RecommendationChanged', note: moved.join('; ') });
  }
  events.push(...problemEvents(stored.conditions, conditions));
  return { status, events };
}

/**
 * decide() resets the breach when it proposes a change, because the change will be applied and
 * must re-earn its window. A change that is only recommended (mode Recommend) is not applied,
 * so the breach goes on; resetting it would make the recommendation flap back every window.
 */
function breachToKeep(
  outcome: SectionOutcome,
  apply: boolean,
  stored: Breach | undefined,
  now: Date,
): Breach | undefined {
  if (!outcome.decision) return stored;
  if (apply || outcome.changes.length === 0 || outcome.decision.breach) return outcome.decision.breach;
  return stored && { ...stored, lastSeen: now };
}

/**
 * spec.delivery.mode ConfigMap: a new delivery when this pass applies env-section changes (every
 * owned value written, and the values they replace), else the last one as the pods reported it.
 */
function deliveryOf(
  input: StatusFacts,
  outcomes: readonly SectionOutcome[],
  changes: readonly SettingChange[],
): DeliveryView | undefined {
  const delivery = input.spec.delivery;
  if (delivery.mode !== 'ConfigMap') return undefined;
  const envOutcomes = outcomes.filter((o) => o.settings.target === 'env');
  const envChanges = changes.filter((c) => envOutcomes.some((o) => c.setting in o.recommended));
  if (envChanges.length === 0) return input.delivery;
  const replaced: Record<string, number> = {};
  const written: Record<string, number> = {};
  for (const o of envOutcomes) {
    Object.assign(replaced, o.current);
    Object.assign(written, o.current);
  }
  for (const c of envChanges) written[c.setting] = c.to;
  const { name, key } = delivery.configMapRef;
  const record: DeliveryRecord<Date> = { configMap: name, key, writtenAt: input.now, written, replaced, pods: [] };
  return {
    state: 'Pending',
    message: `${describeSettings(written)} written to ${name}/${key} at ${formatStatusTime(input.now)}; waiting for the pods to report it`,
    record,
  };
}

/** The Delivered condition of a ConfigMap delivery (see domain/delivery.ts). */
function deliveredCondition(input: StatusFacts, delivery: DeliveryView | undefined): ConditionInput | undefined {
  const spec = input.spec.delivery;
  if (spec.mode !== 'ConfigMap') return undefined;
  if (!delivery)
    return {
      type: ConditionType.Delivered,
      status: 'True',
      reason: ConditionReason.NothingDelivered,
      message: `no change delivered yet; the pods run what ${spec.configMapRef.name}/${spec.configMapRef.key} (or their env) says`,
    };
  return {
    type: ConditionType.Delivered,
    status: delivery.state === 'Applied' ? 'True' : 'False',
    reason: delivery.state,
    message: delivery.message,
  };
}

function buildConditions(
  input: StatusFacts,
  outcomes: readonly SectionOutcome[],
  stored: readonly WrittenCondition[] | undefined,
  delivery: DeliveryView | undefined,
): WrittenCondition[] {
  const { now, generation, spec } = input;
  const blocked = outcomes.find((o) => o.blocked);
  const ready: ConditionInput = blocked?.blocked
    ? { type: ConditionType.Ready, status: 'False', reason: blocked.blocked.reason, message: blocked.blocked.message }
    : spec.mode === 'Auto'
      ? {
          type: ConditionType.Ready,
          status: 'True',
          reason: ConditionReason.Reconciled,
          message: 'settings are within bounds and applied',
        }
      : {
          type: ConditionType.Ready,
          status: 'True',
          reason: ConditionReason.Recommending,
          message: 'mode Recommend: status.recommended is computed, targets are not written',
        };

  const invalid = outcomes.flatMap((o) => {
    const sample = input.samples[o.settings.section];
    return sample && !sample.valid ? [{ section: o.settings.section, sample }] : [];
  });
  const firstInvalid = invalid[0];
  const metrics: ConditionInput = firstInvalid
    ? {
        type: ConditionType.MetricsAvailable,
        status: 'False',
        reason: firstInvalid.sample.problem,
        message: invalid.map((i) => `${i.section}: ${i.sample.message}`).join('; '),
      }
    : {
        type: ConditionType.MetricsAvailable,
        status: 'True',
        reason: 'SamplesValid',
        message: 'every utilization query returned one fresh, finite sample',
      };

  const decided = outcomes.filter((o) => o.decision);
  const limiting = decided.filter((o) => o.decision && LIMITING.has(o.decision.reason));
  const firstLimiting = limiting[0]?.decision;
  const firstDecided = decided[0]?.decision;
  const limited: ConditionInput = firstLimiting
    ? {
        type: ConditionType.Limited,
        status: 'True',
        reason: firstLimiting.reason,
        message: limiting.map((o) => o.explanation).join('; '),
      }
    : {
        type: ConditionType.Limited,
        status: 'False',
        reason: firstDecided ? firstDecided.reason : 'NotEvaluated',
        message: decided.length > 0 ? decided.map((o) => o.explanation).join('; ') : 'no section could be evaluated',
      };
  const conditions = [ready, metrics, limited];
  const advice = pgbouncerAdvice(input, outcomes);
  if (advice) conditions.push(advice);
  const delivered = deliveredCondition(input, delivery);
  if (delivered) conditions.push(delivered);
  return conditions.map((c) => nextCondition(stored, c, now, generation));
}

const PGBOUNCER_ADVICE =
  'PgBouncer in transaction mode lets many client connections share few server connections: ' +
  'put it in front of PostgreSQL and add a pgbouncer section to this policy';

/**
 * The runbook's advice, for a policy whose app pools go straight to PostgreSQL under a budget:
 * when the budget holds DB_POOL_SIZE below what utilization asks for, PgBouncer would let the
 * pools share server connections instead.
 */
function pgbouncerAdvice(input: StatusFacts, outcomes: readonly SectionOutcome[]): ConditionInput | undefined {
  if (!input.spec.budgetRef || !input.spec.database || input.spec.pgbouncer) return undefined;
  const database = outcomes.find((o) => o.settings.section === 'database');
  const budget = input.budget?.database;
  const limited =
    database?.decision &&
    (database.decision.reason === 'BudgetLimited' ||
      database.decision.reason === 'BudgetCorrection' ||
      database.decision.budgetBound === true);
  if (!limited || budget?.kind !== 'cap') {
    return {
      type: ConditionType.PgBouncerRecommended,
      status: 'False',
      reason: 'WithinBudget',
      message: 'the database pools fit the PostgreSQL budget at their recommended size',
    };
  }
  if (database.decision.budgetBound === true) {
    return {
      type: ConditionType.PgBouncerRecommended,
      status: 'True',
      reason: 'BudgetLimited',
      message: `the pools fill the PostgreSQL budget's share and still saw waiters or timeouts; ${PGBOUNCER_ADVICE}`,
    };
  }
  const short = budget.needs - budget.free;
  return {
    type: ConditionType.PgBouncerRecommended,
    status: 'True',
    reason: 'BudgetLimited',
    message:
      `the pools of all replicas need ${budget.needs} PostgreSQL connections at the recommended ${database.settings.leader.key} ` +
      `but the budget leaves ${budget.free} (${short} short); ${PGBOUNCER_ADVICE}`,
  };
}

/** A Warning event when a condition turns bad, or stays bad for a new reason; never repeated. */
function problemEvents(
  stored: readonly WrittenCondition[] | undefined,
  next: readonly WrittenCondition[],
): PlannedEvent[] {
  // Ready=False, MetricsAvailable=False and a delivery NotConfirmed are problems; Limited,
  // PgBouncerRecommended and a Pending delivery are explanations, shown in status, not as Warnings.
  const bad = (c: WrittenCondition | undefined): boolean =>
    c !== undefined &&
    (((c.type === ConditionType.Ready || c.type === ConditionType.MetricsAvailable) && c.status === 'False') ||
      (c.type === ConditionType.Delivered && c.reason === ConditionReason.NotConfirmed));
  return next
    .filter((c) => {
      const before = stored?.find((s) => s.type === c.type);
      return bad(c) && !(bad(before) && before?.reason === c.reason);
    })
    .map((c) => ({ type: 'Warning', reason: c.reason, note: c.message }));
}

/**
 * Fills utilizationAfter of the newest history entry once a valid sample of its section was
 * taken after the rollout of that change completed.
 */
function withUtilizationAfter(history: Array<HistoryEntry<string>>, input: StatusFacts): Array<HistoryEntry<string>> {
  const last = history.at(-1);
  if (!last || last.utilizationAfter !== undefined) return history;
  const outcome = sectionsOf(input.spec).find((s) => last.changes.some((c) => c.setting === s.leader.key));
  if (!outcome) return history;
  const sample = input.samples[outcome.section];
  const completed = input.rolloutCompletedAt[outcome.target];
  if (!sample?.valid || !completed || completed < new Date(last.time) || sample.sampledAt < completed) return history;
  return [...history.slice(0, -1), { ...last, utilizationAfter: round1(sample.percent) }];
}

function observedOf(samples: StatusFacts['samples']): PoolPolicyStatus['observed'] {
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
export function blockedStatus(
  previous: ParsedPoolPolicyStatus,
  generation: number,
  now: Date,
  ready: { status: 'True' | 'False'; reason: string; message: string },
): PoolPolicyStatus {
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
