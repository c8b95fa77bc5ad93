/**
 * The runtime's only source of time. Everything in src/runtime that waits or
 * timestamps takes a {@link Clock}, so tests drive time with a fake clock
 * (test/support/fake-clock.ts) instead of sleeping or asserting on wall time.
 */

/**
 * Brand for {@link TimerHandle}. Exported so other Clock implementations
 * (e.g. the test fake) can mint handles without type assertions.
 */
export const timerHandleBrand: unique symbol = Symbol('poolpilot.TimerHandle');

/**
 * Opaque token returned by {@link Clock.setTimeout}. It is only meaningful to
 * the clock that issued it: passing it to another clock's `clearTimeout` is a no-op.
 */
export interface TimerHandle {
  readonly [timerHandleBrand]: true;
}

export interface Clock {
  /** Current time. */
  now(): Date;
  /**
   * Runs `fn` once, no earlier than `ms` milliseconds from now (negative is
   * treated as 0). `fn` runs as a fresh task, never synchronously inside this call.
   */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a pending timer. Idempotent; a no-op for fired, cleared or foreign handles. */
  clearTimeout(handle: TimerHandle): void;
}

class SystemTimer implements TimerHandle {
  readonly [timerHandleBrand] = true as const;
  constructor(readonly native: NodeJS.Timeout) {}
}

/** The real clock: `Date` and Node's timers. */
export const systemClock: Clock = {
  now: () => new Date(),
  setTimeout: (fn, ms) => new SystemTimer(setTimeout(fn, Math.max(0, ms))),
  clearTimeout: (handle) => {
    if (handle instanceof SystemTimer) clearTimeout(handle.native);
  },
};
