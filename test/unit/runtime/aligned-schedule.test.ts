import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { alignedDelay } from '../../../src/runtime/aligned-schedule.js';

describe('alignedDelay', () => {
  it('waits between half and one and a half periods, landing on the group grid', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.integer({ min: 2, max: 3_600_000 }),
        fc.string(),
        (now, delay, group) => {
          const wait = alignedDelay(now, delay, group);
          expect(wait).toBeGreaterThanOrEqual(delay / 2);
          expect(wait).toBeLessThan((3 * delay) / 2 + 1);
          // Every member of the group lands on the same grid: the same instant modulo the period.
          expect((now + wait) % delay).toBe((0 + alignedDelay(0, delay, group)) % delay);
        },
      ),
    );
  });

  it('keeps members of a namespace together: policies due at different times are revisited at one tick', () => {
    const interval = 30_000;
    const ticks = [0, 4_000, 11_000, 29_000].map((now) => now + alignedDelay(now, interval, 'prod'));
    expect(new Set(ticks.map((t) => t % interval)).size).toBe(1);
    // On the grid, the next revisit is one period later, less the time spent in the queue.
    const onGrid = ticks[0] ?? 0;
    expect(alignedDelay(onGrid + 200, interval, 'prod')).toBe(interval - 200);
  });

  it('leaves a zero or invalid delay as it is', () => {
    expect(alignedDelay(1000, 0, 'prod')).toBe(0);
    expect(alignedDelay(1000, Number.POSITIVE_INFINITY, 'prod')).toBe(Number.POSITIVE_INFINITY);
  });
});
