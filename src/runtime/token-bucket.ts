/**
 * A client-side request rate limit: a token bucket (client-go's flowcontrol.NewTokenBucketRateLimiter,
 * which controller-runtime configures through rest.Config QPS and Burst).
 *
 * Contract:
 * - The bucket holds at most `burst` tokens and gains `qps` tokens per second; it starts full.
 * - {@link TokenBucket.take} resolves at once while a token is left, else when the next one
 *   is due. Callers are served in the order they called (each call reserves the next token,
 *   as golang.org/x/time/rate's Reserve does), so no caller waits forever behind later ones.
 * - Over any span of `t` seconds at most `burst + qps × t` takes resolve.
 */
import type { Clock } from './clock.js';

export interface TokenBucketOptions {
  /** Tokens gained per second; finite and > 0. */
  readonly qps: number;
  /** Most tokens held at once (the largest burst); an integer >= 1. */
  readonly burst: number;
  readonly clock: Clock;
}

export class TokenBucket {
  private readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  /** Tokens at `updatedAt`; negative when callers have reserved tokens not yet earned. */
  private tokens: number;
  private updatedAt: number;

  constructor(options: TokenBucketOptions) {
    if (!Number.isFinite(options.qps) || options.qps <= 0)
      throw new RangeError(`qps must be finite and > 0, got ${options.qps}`);
    if (!Number.isInteger(options.burst) || options.burst < 1)
      throw new RangeError(`burst must be an integer >= 1, got ${options.burst}`);
    this.qps = options.qps;
    this.burst = options.burst;
    this.clock = options.clock;
    this.tokens = options.burst;
    this.updatedAt = options.clock.now().getTime();
  }

  /** Resolves when the caller may send its request (see the module comment). */
  take(): Promise<void> {
    const now = this.clock.now().getTime();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) * this.qps) / 1000);
    this.updatedAt = now;
    this.tokens -= 1;
    if (this.tokens >= 0) return Promise.resolve();
    const waitMs = Math.ceil((-this.tokens * 1000) / this.qps);
    return new Promise((resolve) => {
      this.clock.setTimeout(resolve, waitMs);
    });
  }
}
