/**
 * A manually driven {@link Clock} for tests. Time only moves when the test
 * calls {@link FakeClock.advance}; timers fire synchronously inside it, in
 * due-time order (ties in scheduling order), with `now()` set to each timer's
 * due time while it runs.
 *
 * Code under test is usually promise-based: after `advance`, await
 * {@link flushMicrotasks} so the continuations triggered by the timers run.
 */
import { timerHandleBrand, type Clock, type TimerHandle } from '../../src/runtime/clock.js';

class FakeTimer implements TimerHandle {
  readonly [timerHandleBrand] = true as const;
  constructor(
    readonly dueAt: number,
    readonly seq: number,
    readonly fn: () => void,
  ) {}
}

export class FakeClock implements Clock {
  private nowMs: number;
  private seq = 0;
  private readonly timers = new Set<FakeTimer>();

  constructor(start: Date = new Date('2024-01-01T00:00:00.000Z')) {
    this.nowMs = start.getTime();
  }

  now(): Date {
    return new Date(this.nowMs);
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = new FakeTimer(this.nowMs + Math.max(0, ms), this.seq++, fn);
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    if (handle instanceof FakeTimer) this.timers.delete(handle);
  }

  /** Number of timers scheduled and not yet fired or cleared. */
  pendingTimers(): number {
    return this.timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer due up to and including the
   * new time — also timers scheduled by timers that fire during this call.
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: ms must be finite and >= 0, got ${ms}`);
    const target = this.nowMs + ms;
    for (let next = this.nextDue(target); next !== undefined; next = this.nextDue(target)) {
      this.timers.delete(next);
      this.nowMs = next.dueAt;
      next.fn();
    }
    this.nowMs = target;
  }

  private nextDue(limit: number): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) {
      if (t.dueAt > limit) continue;
      if (best === undefined || t.dueAt < best.dueAt || (t.dueAt === best.dueAt && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Resolves after every microtask queued so far (and those they queue) has run. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => {
    setImmediate(resolve);
  });
}
