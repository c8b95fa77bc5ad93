/**
 * Per-policy backoff while Prometheus gives nothing usable.
 *
 * A pass whose every sample is invalid changes nothing, so revisiting it every interval only
 * loads a Prometheus that is down or overloaded. The revisit delay doubles with each consecutive
 * failed pass: interval × 2^(failures − 1), capped at {@link MAX_METRICS_BACKOFF_MS}.
 *
 * The failure count is not kept in memory (it would reset on every restart and on every replica
 * change): it is derived from how long `MetricsAvailable` has been False, i.e. from its
 * `lastTransitionTime` in the stored status. With passes at 0, I, 3I, 7I, … after the
 * transition (each one waiting twice as long as the one before), the pass at elapsed time E is
 * failure number 1 + ⌊log2(1 + E / I)⌋; late passes (a busy queue) only round it down.
 */

/** The longest a failing policy waits between passes. */
export const MAX_METRICS_BACKOFF_MS = 5 * 60_000;

/** The MetricsAvailable condition as written in status (lastTransitionTime is RFC3339). */
export interface MetricsCondition {
  readonly status: string;
  readonly lastTransitionTime: string | Date;
}

/** How many consecutive failed passes `now` is, counting this one (≥ 1); 0 when not failing. */
export function consecutiveMetricsFailures(
  now: Date,
  condition: MetricsCondition | undefined,
  intervalMs: number,
): number {
  if (condition?.status !== 'False') return 0;
  if (!(intervalMs > 0)) return 1;
  const since = new Date(condition.lastTransitionTime).getTime();
  const elapsed = now.getTime() - since;
  if (!Number.isFinite(elapsed) || elapsed <= 0) return 1;
  return 1 + Math.floor(Math.log2(1 + elapsed / intervalMs));
}

/**
 * The delay before the next pass of a policy whose every sample was invalid in this pass:
 * min(interval × 2^(failures − 1), 5 min), never less than the interval. A condition that is not
 * False (metrics fine, or no status yet) gives the interval.
 */
export function metricsBackoffMs(now: Date, condition: MetricsCondition | undefined, intervalMs: number): number {
  const failures = consecutiveMetricsFailures(now, condition, intervalMs);
  if (failures <= 1) return intervalMs;
  // 2^(failures − 1) overflows to Infinity for absurd ages; the cap takes care of it.
  return Math.max(intervalMs, Math.min(intervalMs * 2 ** (failures - 1), MAX_METRICS_BACKOFF_MS));
}
