/**
 * Pure helpers for PoolPolicy status: conditions (metav1.Condition semantics), the written form
 * of a parsed status, and the rule that decides whether a new status is worth a write.
 *
 * Contract: an idle pass writes nothing. A status differs from the stored one only when
 * something a person would act on changed: a condition, a value, a breach, a change record.
 * `observed` utilization alone is refreshed only when it moved by at least
 * {@link OBSERVED_TOLERANCE} percentage points, so a steady workload causes no writes.
 */
import type {
  DeliveryRecord,
  ParsedPoolPolicyStatus,
  PoolPolicyStatus,
  StatusCondition,
} from '../api/v1alpha1/poolpolicy.js';
import { formatStatusTime, POOL_SECTIONS } from '../api/v1alpha1/poolpolicy.js';

export const OBSERVED_TOLERANCE = 5;

export type WrittenCondition = StatusCondition<string>;

export interface ConditionInput {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
}

/**
 * Returns the condition to store: lastTransitionTime moves only when `status` flips, as
 * metav1.Condition requires; reason and message follow the newest evaluation.
 */
export function nextCondition(
  previous: readonly WrittenCondition[] | undefined,
  input: ConditionInput,
  now: Date,
  generation: number,
): WrittenCondition {
  const before = previous?.find((c) => c.type === input.type);
  const lastTransitionTime =
    before && before.status === input.status ? before.lastTransitionTime : formatStatusTime(now);
  return {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message,
    lastTransitionTime,
    observedGeneration: generation,
  };
}

/** The parsed (Date) status in its written (RFC3339) form, so the two compare exactly. */
export function toWrittenStatus(parsed: ParsedPoolPolicyStatus): PoolPolicyStatus {
  const t = formatStatusTime;
  const breaches: Record<string, { direction: 'up' | 'down'; since: string; lastSeen: string }> = {};
  for (const section of POOL_SECTIONS) {
    const breach = parsed.breaches?.[section];
    if (breach)
      breaches[section] = { direction: breach.direction, since: t(breach.since), lastSeen: t(breach.lastSeen) };
  }
  return dropUndefined({
    observedGeneration: parsed.observedGeneration,
    conditions: parsed.conditions?.map((c) => ({ ...c, lastTransitionTime: t(c.lastTransitionTime) })),
    current: parsed.current,
    recommended: parsed.recommended,
    observed:
      parsed.observed &&
      dropUndefined({ ...parsed.observed, sampledAt: parsed.observed.sampledAt && t(parsed.observed.sampledAt) }),
    breaches: parsed.breaches ? breaches : undefined,
    lastChange: parsed.lastChange && { ...parsed.lastChange, time: t(parsed.lastChange.time) },
    history: parsed.history?.map((h) => ({ ...h, time: t(h.time) })),
    delivery: parsed.delivery && writtenDelivery(parsed.delivery),
  });
}

/** A delivery record with its times as written. */
export function writtenDelivery(record: DeliveryRecord<Date>): DeliveryRecord<string> {
  const t = formatStatusTime;
  return dropUndefined({
    ...record,
    writtenAt: t(record.writtenAt),
    confirmedAt: record.confirmedAt && t(record.confirmedAt),
    pods: record.pods?.map((p) => ({ name: p.name, reportedAt: t(p.reportedAt) })),
  });
}

/**
 * The status to write, or undefined when `next` says nothing new compared with `stored`.
 * When only `observed` moved (less than the tolerance), the stored observation is kept.
 */
export function statusToWrite(stored: PoolPolicyStatus, next: PoolPolicyStatus): PoolPolicyStatus | undefined {
  const { observed: storedObserved, ...storedRest } = stored;
  const { observed: nextObserved, ...nextRest } = next;
  const restChanged = canonical(storedRest) !== canonical(nextRest);
  const observedMoved = !observationsClose(storedObserved, nextObserved);
  if (!restChanged && !observedMoved) return undefined;
  if (restChanged && !observedMoved && storedObserved !== undefined) return { ...next, observed: storedObserved };
  return next;
}

function observationsClose(a: PoolPolicyStatus['observed'], b: PoolPolicyStatus['observed']): boolean {
  for (const section of POOL_SECTIONS) {
    const x = a?.[section];
    const y = b?.[section];
    if ((x === undefined) !== (y === undefined)) return false;
    if (x !== undefined && y !== undefined && Math.abs(x - y) >= OBSERVED_TOLERANCE) return false;
  }
  return true;
}

/** JSON with object keys sorted, so key order never counts as a change. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
