import { describe, expect, it } from '@jest/globals';
import { TokenBucket } from '../../../src/runtime/token-bucket.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

/** Starts `count` takes and returns the indices of those that have resolved, as time is advanced. */
function takes(bucket: TokenBucket, count: number): { resolved: number[] } {
  const state = { resolved: [] as number[] };
  for (let i = 0; i < count; i++)
    void bucket.take().then(() => {
      state.resolved.push(i);
    });
  return state;
}

describe('TokenBucket', () => {
  it('lets a full burst through at once, then paces the rest at qps, in call order', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 3, clock });
    const state = takes(bucket, 6);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1, 2]);
    clock.advance(99);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1, 2]);
    clock.advance(1);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1, 2, 3]);
    clock.advance(200);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('never lets more than burst + qps × t through in t seconds', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 20, burst: 30, clock });
    const state = takes(bucket, 500);
    clock.advance(10_000);
    await flushMicrotasks();
    expect(state.resolved).toHaveLength(30 + 20 * 10);
  });

  it('refills while idle, but never above burst', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 2, clock });
    takes(bucket, 2);
    clock.advance(60_000);
    const state = takes(bucket, 3);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1]);
    clock.advance(1000);
    await flushMicrotasks();
    expect(state.resolved).toEqual([0, 1, 2]);
  });

  it.each([
    [{ qps: 0, burst: 1 }, /qps/],
    [{ qps: Number.NaN, burst: 1 }, /qps/],
    [{ qps: 5, burst: 0 }, /burst/],
    [{ qps: 5, burst: 1.5 }, /burst/],
  ])('refuses %j', (options, message) => {
    expect(() => new TokenBucket({ ...options, clock: new FakeClock() })).toThrow(message);
  });
});
