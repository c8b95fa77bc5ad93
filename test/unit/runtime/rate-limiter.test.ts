import { describe, it, expect } from '@jest/globals';
import { ExponentialBackoffRateLimiter } from '../../../src/runtime/rate-limiter.js';

describe('ExponentialBackoffRateLimiter', () => {
  it('defaults to 500ms doubling per failure, capped at 5 minutes', () => {
    const limiter = new ExponentialBackoffRateLimiter();
    const delays = Array.from({ length: 12 }, () => limiter.when('ns/a'));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]);
    expect(limiter.failures('ns/a')).toBe(12);
  });

  it('stays at the cap for very many failures (no overflow to Infinity/NaN)', () => {
    const limiter = new ExponentialBackoffRateLimiter({ baseDelayMs: 1, factor: 10, maxDelayMs: 1000 });
    let last = 0;
    for (let i = 0; i < 2000; i++) last = limiter.when('k');
    expect(last).toBe(1000);
  });

  it('honours custom options', () => {
    const limiter = new ExponentialBackoffRateLimiter({ baseDelayMs: 100, factor: 3, maxDelayMs: 1000 });
    expect([1, 2, 3, 4].map(() => limiter.when('k'))).toEqual([100, 300, 900, 1000]);
  });

  it('tracks keys independently', () => {
    const limiter = new ExponentialBackoffRateLimiter();
    limiter.when('a');
    limiter.when('a');
    expect(limiter.when('b')).toBe(500);
    expect(limiter.failures('a')).toBe(2);
    expect(limiter.failures('b')).toBe(1);
    expect(limiter.failures('c')).toBe(0);
  });

  it('forget resets the sequence and frees the key', () => {
    const limiter = new ExponentialBackoffRateLimiter();
    limiter.when('a');
    limiter.when('a');
    limiter.forget('a');
    expect(limiter.failures('a')).toBe(0);
    expect(limiter.trackedKeys()).toBe(0);
    expect(limiter.when('a')).toBe(500);
  });

  it('rejects invalid options', () => {
    expect(() => new ExponentialBackoffRateLimiter({ baseDelayMs: 0 })).toThrow(RangeError);
    expect(() => new ExponentialBackoffRateLimiter({ factor: 0.5 })).toThrow(RangeError);
    expect(() => new ExponentialBackoffRateLimiter({ baseDelayMs: 1000, maxDelayMs: 10 })).toThrow(RangeError);
    expect(() => new ExponentialBackoffRateLimiter({ maxDelayMs: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});
