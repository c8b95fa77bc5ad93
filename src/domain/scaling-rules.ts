/**
 * Rate limits shaped like the HPA v2 `behavior` (spec.behavior.scaleUp / scaleDown): a list of
 * policies, each allowing a change of `value` percent of the value at the start of its period, or
 * of `value` connections, per `period`; `selectPolicy` picks the policy allowing the largest
 * change (Max), the smallest (Min), or forbids the direction (Disabled).
 *
 * Modelled on calculateScaleUpLimitWithScalingRules / calculateScaleDownLimitWithBehaviors in
 * kubernetes pkg/controller/podautoscaler/horizontal.go, with two differences: time is an argument
 * (no hidden clock), and percentages are computed in integers (periodStart × (100 ± value) / 100,
 * then rounded), so 100 + 10 % is 110 and not the 111 a float product would round up to.
 * Pure: numbers and dates in, a limit out.
 */
import { formatDuration } from './duration.js';

export const SCALING_POLICY_TYPES = ['Percent', 'Connections'] as const;
export type ScalingPolicyType = (typeof SCALING_POLICY_TYPES)[number];
export const SELECT_POLICIES = ['Max', 'Min', 'Disabled'] as const;
export type SelectPolicy = (typeof SELECT_POLICIES)[number];

export interface ScalingPolicy {
  /** Percent: of the value at the start of the period; Connections: an absolute number. */
  readonly type: ScalingPolicyType;
  /** Integer >= 1. */
  readonly value: number;
  /** > 0: changes made within this long before now count against the policy. */
  readonly periodMs: number;
}

/** One direction's rules (spec.behavior.scaleUp or scaleDown, normalized). */
export interface DirectionRules {
  readonly selectPolicy: SelectPolicy;
  /**
   * At least one policy; undefined = no policies given: the step limit of maxStepPercent per
   * change applies, as without the block.
   */
  readonly policies: readonly ScalingPolicy[] | undefined;
}

/** A change of one setting already made (from status.history). */
export interface PastChange {
  readonly at: Date;
  readonly from: number;
  readonly to: number;
}

export type Direction = 'up' | 'down';

export type RateLimit =
  /** selectPolicy Disabled (or no policy): no change in this direction. */
  | { readonly kind: 'disabled' }
  | {
      readonly kind: 'limit';
      /**
       * The furthest value the selected policy allows now: an upper bound on a scale-up, a lower
       * bound on a scale-down. Never past `current` the wrong way (a period whose allowance is used
       * up allows exactly current: hold, as the HPA does).
       */
      readonly limit: number;
      /** The policy that set the limit (the first one on a tie). */
      readonly policy: ScalingPolicy;
      /** The value at the start of that policy's period (current minus the changes made in it). */
      readonly periodStart: number;
    };

/**
 * How far `current` may move in `direction` now under `rules` (with policies), given the changes
 * already made. A change counts against a policy when it was made less than `periodMs` before
 * `now` (strictly after the period's start, like the HPA's cutoff); changes in both directions
 * count, so the base is the value the setting had when the period began.
 */
export function rateLimit(
  direction: Direction,
  current: number,
  rules: { readonly selectPolicy: SelectPolicy; readonly policies: readonly ScalingPolicy[] },
  changes: readonly PastChange[],
  now: Date,
): RateLimit {
  if (rules.selectPolicy === 'Disabled') return { kind: 'disabled' };
  // "Wider" allows the bigger move: a higher limit up, a lower one down. Max keeps the widest, Min the narrowest.
  const wider = (a: number, b: number): boolean => (direction === 'up' ? a > b : a < b);
  let best: { limit: number; policy: ScalingPolicy; periodStart: number } | undefined;
  for (const policy of rules.policies) {
    const periodStart = current - changedWithin(changes, policy.periodMs, now);
    const limit = allowedFrom(direction, periodStart, policy);
    const wins =
      best === undefined || (rules.selectPolicy === 'Max' ? wider(limit, best.limit) : wider(best.limit, limit));
    if (wins) best = { limit, policy, periodStart };
  }
  // No policy at all allows no change (the schema requires at least one; an empty list is not "unlimited").
  if (best === undefined) return { kind: 'disabled' };
  const limit = direction === 'up' ? Math.max(best.limit, current) : Math.min(best.limit, current);
  return { kind: 'limit', limit, policy: best.policy, periodStart: best.periodStart };
}

/** Net change (to − from) of the changes made strictly after now − periodMs. */
function changedWithin(changes: readonly PastChange[], periodMs: number, now: Date): number {
  const cutoff = now.getTime() - periodMs;
  let sum = 0;
  for (const change of changes) if (change.at.getTime() > cutoff) sum += change.to - change.from;
  return sum;
}

/**
 * The value one policy allows from the period's start. Percent scale-ups round up (so a small
 * value can still move, as the HPA does); Percent scale-downs truncate toward zero (the HPA's
 * int32 conversion).
 */
function allowedFrom(direction: Direction, periodStart: number, policy: ScalingPolicy): number {
  if (policy.type === 'Connections')
    return direction === 'up' ? periodStart + policy.value : periodStart - policy.value;
  return direction === 'up'
    ? Math.ceil((periodStart * (100 + policy.value)) / 100)
    : Math.trunc((periodStart * (100 - policy.value)) / 100);
}

/** "Percent 100% per 1m" / "Connections 4 per 15s": how status messages name a policy. */
export function describePolicy(policy: ScalingPolicy): string {
  return policy.type === 'Percent'
    ? `Percent ${policy.value}% per ${formatDuration(policy.periodMs)}`
    : `Connections ${policy.value} per ${formatDuration(policy.periodMs)}`;
}
