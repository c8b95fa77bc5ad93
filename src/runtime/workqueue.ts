/**
 * A work queue of object keys with controller-runtime / client-go semantics
 * (workqueue.TypedRateLimitingInterface), for a single process.
 *
 * Contracts:
 * - Fair and deduplicated: a key is queued at most once, however often it is
 *   added before a worker takes it; keys are handed out in the order they became
 *   ready (an `add` at once, a delayed add when its time comes), so a backlog
 *   drains in order of due time.
 * - Exclusive: a key handed out by {@link WorkQueue.get} is "processing" until
 *   {@link WorkQueue.done}. It is never handed out again meanwhile; if it is
 *   added during processing it is marked dirty and re-queued by `done`, so the
 *   change that caused the add is always seen by a later reconcile.
 * - Every `get` must be followed by exactly one `done` for that key, also when
 *   processing fails (use `finally`).
 * - Delays (`addAfter`, `addRateLimited`) run on the injected {@link Clock}; a
 *   key has at most one pending timer, the earliest requested.
 *
 * Keys are opaque strings (conventionally `namespace/name`).
 */
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { ExponentialBackoffRateLimiter, type RateLimiter } from './rate-limiter.js';

export interface WorkQueueOptions<K extends string> {
  /** Time source for delayed adds. Default {@link systemClock}. */
  clock?: Clock;
  /** Backoff for {@link WorkQueue.addRateLimited}. Default: exponential 500ms×2, capped at 5m. */
  rateLimiter?: RateLimiter<K>;
}

/** Sizes of the queue's internal structures, for leak checks and diagnostics. */
export interface WorkQueueSizes {
  /** Keys ready and waiting for a worker (same as `len()`). */
  readonly queued: number;
  /** Keys needing processing: queued, or re-added while processing. */
  readonly dirty: number;
  /** Keys handed out and not yet `done`. */
  readonly processing: number;
  /** Pending delayed adds. */
  readonly timers: number;
  /** `get` calls waiting for a key. */
  readonly waiters: number;
  /** Keys removed while processing, whose retries are being suppressed until `done`. */
  readonly removedInFlight: number;
}

interface PendingTimer {
  readonly handle: TimerHandle;
  /** Epoch ms at which the key becomes ready. */
  readonly readyAt: number;
}

export class WorkQueue<K extends string> {
  private readonly clock: Clock;
  private readonly rateLimiter: RateLimiter<K>;
  /** Ready keys in FIFO order. Invariant: key in `queue` ⇒ in `dirty`, not in `processing`. */
  private readonly queue: K[] = [];
  private readonly dirty = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly timers = new Map<K, PendingTimer>();
  /** Pending `get` calls. Invariant: non-empty ⇒ `queue` is empty. */
  private readonly waiters: ((key: K | undefined) => void)[] = [];
  private readonly removedInFlight = new Set<K>();
  private shuttingDown = false;

  constructor(options: WorkQueueOptions<K> = {}) {
    this.clock = options.clock ?? systemClock;
    this.rateLimiter = options.rateLimiter ?? new ExponentialBackoffRateLimiter<K>();
  }

  /**
   * Marks `key` as needing processing. A no-op if it is already queued, or after
   * shutdown. If `key` is processing it is re-queued when `done(key)` is called.
   * An add also cancels the effect of an earlier `remove` of an in-flight key
   * (a new event means the object exists again).
   */
  add(key: K): void {
    if (this.shuttingDown) return;
    this.removedInFlight.delete(key);
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.queue.push(key);
    this.dispatch();
  }

  /**
   * Adds `key` once `ms` milliseconds have passed (immediately if `ms <= 0`).
   * If a timer for `key` is already pending, only the earlier of the two is kept:
   * a later request never postpones an earlier one. Immediate adds do not
   * cancel a pending timer. Ignored after shutdown and for keys removed while
   * processing.
   *
   * @throws RangeError if `ms` is not a finite number.
   */
  addAfter(key: K, ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`addAfter: ms must be finite, got ${ms}`);
    if (this.shuttingDown || this.removedInFlight.has(key)) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.clock.now().getTime() + ms;
    const existing = this.timers.get(key);
    if (existing !== undefined) {
      if (existing.readyAt <= readyAt) return;
      this.clock.clearTimeout(existing.handle);
    }
    const handle = this.clock.setTimeout(() => {
      // Guard against a clock that fires a timer after it was cleared/replaced.
      if (this.timers.get(key)?.handle !== handle) return;
      this.timers.delete(key);
      this.add(key);
    }, ms);
    this.timers.set(key, { handle, readyAt });
  }

  /**
   * Schedules a retry of `key` after its backoff delay, recording one more
   * failure. Ignored (and no failure recorded) after shutdown and for keys
   * removed while processing.
   */
  addRateLimited(key: K): void {
    if (this.shuttingDown || this.removedInFlight.has(key)) return;
    this.addAfter(key, this.rateLimiter.when(key));
  }

  /**
   * Resets `key`'s backoff: call when it reconciled successfully or will not be
   * retried. Does not cancel a pending timer.
   */
  forget(key: K): void {
    this.rateLimiter.forget(key);
  }

  /** Failures recorded for `key` since it was last forgotten (for logs). */
  failures(key: K): number {
    return this.rateLimiter.failures(key);
  }

  /**
   * Drops all state for `key`, e.g. when its object was deleted: takes it out of
   * the queue, cancels its timer and forgets its backoff. If it is processing,
   * that reconcile runs to completion, but retries or requeues requested for
   * the key before its `done` are ignored, so a deleted object leaves nothing
   * behind. A later `add(key)` works normally.
   */
  remove(key: K): void {
    const timer = this.timers.get(key);
    if (timer !== undefined) {
      this.clock.clearTimeout(timer.handle);
      this.timers.delete(key);
    }
    this.rateLimiter.forget(key);
    if (this.dirty.delete(key)) {
      const index = this.queue.indexOf(key);
      if (index >= 0) this.queue.splice(index, 1);
    }
    if (this.processing.has(key)) this.removedInFlight.add(key);
  }

  /**
   * Waits for a ready key and marks it processing; the caller must call
   * `done(key)` afterwards. Resolves `undefined` once the queue is shut down
   * (also for calls already waiting): workers should then exit.
   */
  get(): Promise<K | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.startProcessing(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
    });
  }

  /**
   * Ends processing of `key`. If it was added meanwhile, it is queued again.
   * A no-op for keys that are not processing.
   */
  done(key: K): void {
    if (!this.processing.delete(key)) return;
    this.removedInFlight.delete(key);
    if (this.dirty.has(key)) {
      this.queue.push(key);
      this.dispatch();
    }
  }

  /** Number of keys ready and waiting for a worker (queue depth metric). Excludes delayed keys. */
  len(): number {
    return this.queue.length;
  }

  /**
   * Stops the queue: pending and future `get`s resolve `undefined`, timers are
   * cancelled, queued keys are dropped and further adds are ignored. Keys
   * still processing can (and should) still be marked `done`. Idempotent.
   * Backoff state is kept: the rate limiter may be shared.
   */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const { handle } of this.timers.values()) this.clock.clearTimeout(handle);
    this.timers.clear();
    this.queue.length = 0;
    this.dirty.clear();
    this.removedInFlight.clear();
    for (const resolve of this.waiters.splice(0)) resolve(undefined);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  sizes(): WorkQueueSizes {
    return {
      queued: this.queue.length,
      dirty: this.dirty.size,
      processing: this.processing.size,
      timers: this.timers.size,
      waiters: this.waiters.length,
      removedInFlight: this.removedInFlight.size,
    };
  }

  /** Hands queued keys to waiting `get`s, oldest first on both sides. */
  private dispatch(): void {
    while (this.waiters.length > 0) {
      const key = this.queue.shift();
      if (key === undefined) return;
      const resolve = this.waiters.shift();
      if (resolve === undefined) {
        this.queue.unshift(key);
        return;
      }
      this.startProcessing(key);
      resolve(key);
    }
  }

  private startProcessing(key: K): void {
    this.dirty.delete(key);
    this.processing.add(key);
  }
}
