/**
 * Revisits of one group (the policies of one namespace) aligned to a common tick, so that work
 * they share (one Prometheus query pair per namespace, reused for a second) is done once per
 * interval instead of once per member spread over the interval.
 *
 * `alignedDelay(now, delay, group)` returns the wait until the first tick of the group's grid
 * (period `delay`, phase from a hash of `group`, on epoch time so restarts and replicas agree)
 * that is at least `delay / 2` away: in [delay / 2, 3 × delay / 2). A member revisited on the
 * grid lands on it again one `delay` later (minus the time it waited in the queue), so only a
 * member's first revisit moves, by less than half a period; groups are spread over the period
 * by their phases.
 */

/** FNV-1a, 32 bits: a stable phase for a group name. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function alignedDelay(nowMs: number, delayMs: number, group: string): number {
  if (!(delayMs > 0) || !Number.isFinite(delayMs)) return delayMs;
  const period = Math.max(1, Math.round(delayMs));
  const phase = hash(group) % period;
  const earliest = Math.ceil(nowMs + period / 2);
  const offset = (((phase - earliest) % period) + period) % period;
  return earliest + offset - nowMs;
}
