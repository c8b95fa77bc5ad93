/**
 * Per-key retry backoff for the work queue (cf. client-go's
 * ItemExponentialFailureRateLimiter). A key's delay grows with its number of
 * consecutive failures and is reset by {@link RateLimiter.forget} once the key
 * reconciles successfully (or is abandoned).
 */

export interface RateLimiter<K extends string = string> {
  /** Records one more failure of `key` and returns how long to wait (ms) before retrying it. */
  when(key: K): number;
  /** Drops all state for `key`; its next `when` starts from the base delay. */
  forget(key: K): void;
  /** Failures recorded for `key` since it was last forgotten (0 if none). */
  failures(key: K): number;
}

export interface ExponentialBackoffOptions {
  /** Delay after the first failure. Default 500 ms. Must be > 0. */
  baseDelayMs?: number;
  /** Multiplier per further failure. Default 2. Must be >= 1. */
  factor?: number;
  /** Upper bound of any delay. Default 5 minutes. Must be >= baseDelayMs. */
  maxDelayMs?: number;
}

/**
 * `when(key)` returns `min(maxDelayMs, baseDelayMs * factor^n)` where `n` is the
 * number of failures recorded for `key` before this call: with the defaults
 * 500ms, 1s, 2s, 4s, … capped at 5m.
 *
 * Memory is one counter per key that is currently failing; callers must
 * `forget` keys that succeed or disappear, or the map grows with them.
 */
export class ExponentialBackoffRateLimiter<K extends string = string> implements RateLimiter<K> {
  private readonly baseDelayMs: number;
  private readonly factor: number;
  private readonly maxDelayMs: number;
  private readonly failureCounts = new Map<K, number>();

  constructor(options: ExponentialBackoffOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.factor = options.factor ?? 2;
    this.maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
    if (!Number.isFinite(this.baseDelayMs) || this.baseDelayMs <= 0) {
      throw new RangeError(`baseDelayMs must be finite and > 0, got ${this.baseDelayMs}`);
    }
    if (!Number.isFinite(this.factor) || this.factor < 1) {
      throw new RangeError(`factor must be finite and >= 1, got ${this.factor}`);
    }
    if (!Number.isFinite(this.maxDelayMs) || this.maxDelayMs < this.baseDelayMs) {
      throw new RangeError(`maxDelayMs must be finite and >= baseDelayMs, got ${this.maxDelayMs}`);
    }
  }

  when(key: K): number {
    const previous = this.failureCounts.get(key) ?? 0;
    this.failureCounts.set(key, previous + 1);
    // factor^n overflows to Infinity for large n; min() then yields the cap.
    return Math.min(this.maxDelayMs, this.baseDelayMs * this.factor ** previous);
  }

  forget(key: K): void {
    this.failureCounts.delete(key);
  }

  failures(key: K): number {
    return this.failureCounts.get(key) ?? 0;
  }

  /** Number of keys with recorded failures (for leak checks and metrics). */
  trackedKeys(): number {
    return this.failureCounts.size;
  }
}
