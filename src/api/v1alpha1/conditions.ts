/**
 * Condition types and reasons written to PoolPolicy `status.conditions`
 * (metav1.Condition shape). These strings are public API: dashboards and
 * alerts match on them, so renaming one is a breaking change.
 *
 * Reasons follow the metav1.Condition rule: CamelCase, `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`.
 */

export const ConditionType = {
  /** True when the last reconcile succeeded (targets found, spec valid, settings applied or recommended). */
  Ready: 'Ready',
  /** True when every configured utilization query returned one finite, fresh sample. */
  MetricsAvailable: 'MetricsAvailable',
  /** True when a recommendation was held back or clamped (bounds, step limit, stabilization, intervals). */
  Limited: 'Limited',
  /**
   * True when the policy's connection budget would be better served by putting PgBouncer in
   * front of PostgreSQL (the replicas' pools together exceed what the server accepts).
   */
  PgBouncerRecommended: 'PgBouncerRecommended',
  /**
   * spec.delivery.mode ConfigMap only: True when every pod reports the values last written to the
   * ConfigMap (reason Applied) or nothing was written yet (NothingDelivered); False while they do
   * not (Pending, then NotConfirmed after spec.delivery.confirmTimeout).
   */
  Delivered: 'Delivered',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionStatus = { True: 'True', False: 'False', Unknown: 'Unknown' } as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

export const ConditionReason = {
  // Ready=False
  /** The spec failed validation (message names the field). */
  InvalidSpec: 'InvalidSpec',
  /** spec.targetRef names no Deployment in the PoolPolicy's namespace. */
  TargetNotFound: 'TargetNotFound',
  /** spec.targetRef.container names no container of the target Deployment. */
  ContainerNotFound: 'ContainerNotFound',
  /** Another PoolPolicy manages the same target setting. */
  Conflict: 'Conflict',
  /** The target env var is set via valueFrom; poolpilot only manages literal `value`s. */
  ValueFromNotManaged: 'ValueFromNotManaged',
  /** The PgBouncer ini could not be safely rewritten (unparseable or ambiguous keys). */
  IniRefused: 'IniRefused',
  /** spec.delivery.configMapRef names no ConfigMap in the PoolPolicy's namespace. */
  DeliveryConfigMapNotFound: 'DeliveryConfigMapNotFound',
  /** The delivery ConfigMap's key is not in the KEY=VALUE format poolpilot can edit safely. */
  DeliveryFormatRefused: 'DeliveryFormatRefused',
  /** No container of the target mounts the delivery ConfigMap's key so that updates reach it. */
  DeliveryNotMounted: 'DeliveryNotMounted',

  // Ready=True
  /** Mode Auto: the desired values are in place. */
  Reconciled: 'Reconciled',
  /** Mode Paused: nothing is evaluated or written. */
  Paused: 'Paused',
  /** Mode Recommend: values are computed into status.recommended, targets untouched. */
  Recommending: 'Recommending',

  // MetricsAvailable=False
  /** The Prometheus query failed (HTTP/transport/PromQL error). */
  QueryFailed: 'QueryFailed',
  /** --enforce-namespace-label: the query reads another namespace or cannot be confined to its own; not run. */
  QueryRejected: 'QueryRejected',
  /** The query returned no series. */
  NoData: 'NoData',
  /** The query returned NaN. */
  NaN: 'NaN',
  /** The query returned +Inf or -Inf. */
  Infinite: 'Infinite',
  /** The query returned more than one series; wrap it in max()/sum(). */
  MultipleSeries: 'MultipleSeries',
  /** The newest sample is older than allowed. */
  Stale: 'Stale',

  // Limited=True / False
  /** The recommendation was clamped to the configured max. */
  AtMax: 'AtMax',
  /** The recommendation was clamped to the configured min. */
  AtMin: 'AtMin',
  /** The change was limited by behavior.maxStepPercent. */
  StepLimited: 'StepLimited',
  /** The change was cut, or forbidden, by a policy of spec.behavior.scaleUp (the message names it and its period). */
  ScaleUpLimit: 'ScaleUpLimit',
  /** The change was cut, or forbidden, by a policy of spec.behavior.scaleDown (the message names it and its period). */
  ScaleDownLimit: 'ScaleDownLimit',
  /** A breach is waiting out its stabilization window. */
  Stabilizing: 'Stabilizing',
  /** behavior.minChangeInterval has not elapsed since status.lastChange. */
  MinIntervalNotElapsed: 'MinIntervalNotElapsed',
  /** The target (or PgBouncer rolloutRef) is still rolling out a previous change. */
  RolloutInProgress: 'RolloutInProgress',
  /** Utilization is between scaleDownBelow and scaleUpAbove: no change. */
  DeadBand: 'DeadBand',
  /** A change was applied (Auto) or recommended (Recommend). */
  Scaled: 'Scaled',

  // Connection budgets (spec.budgetRef)
  /** The recommendation was capped by this policy's share of its ConnectionBudget. */
  BudgetLimited: 'BudgetLimited',
  /** spec.budgetRef names no ConnectionBudget in the PoolPolicy's namespace. */
  BudgetNotFound: 'BudgetNotFound',
  /** A value above the policy's budget share (set by a person or before the budget) is brought inside it. */
  BudgetCorrection: 'BudgetCorrection',

  // Delivered (spec.delivery.mode ConfigMap); DeliveryPending is also Limited's reason meanwhile
  /** Every pod reports the values last written. */
  Applied: 'Applied',
  /** No change was written to the delivery ConfigMap yet. */
  NothingDelivered: 'NothingDelivered',
  /** Written, not yet reported by every pod (the message says how long ago and who is missing). */
  Pending: 'Pending',
  /** Not reported by every pod within spec.delivery.confirmTimeout; nothing more is written until they do. */
  NotConfirmed: 'NotConfirmed',
  /** A section holds while the last ConfigMap delivery is not Applied. */
  DeliveryPending: 'DeliveryPending',
} as const;
export type ConditionReason = (typeof ConditionReason)[keyof typeof ConditionReason];
