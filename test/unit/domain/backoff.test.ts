import { describe, expect, it } from '@jest/globals';
import {
  consecutiveMetricsFailures,
  MAX_METRICS_BACKOFF_MS,
  metricsBackoffMs,
  type MetricsCondition,
} from '../../../src/domain/backoff.js';

const SINCE = '2025-01-01T12:00:00Z';
const at = (seconds: number): Date => new Date(Date.parse(SINCE) + seconds * 1000);
const failing: MetricsCondition = { status: 'False', lastTransitionTime: SINCE };

describe('metricsBackoffMs', () => {
  it.each<[string, MetricsCondition | undefined, number, number, number, number]>([
    // label, condition, seconds since the transition, interval (ms), failures, delay (ms)
    ['no condition yet', undefined, 100, 30_000, 0, 30_000],
    ['metrics fine', { status: 'True', lastTransitionTime: SINCE }, 100, 30_000, 0, 30_000],
    ['unknown is not a failure', { status: 'Unknown', lastTransitionTime: SINCE }, 100, 30_000, 0, 30_000],
    ['first failure, this pass: the interval', failing, 0, 30_000, 1, 30_000],
    ['first failure, within one interval', failing, 29.9, 30_000, 1, 30_000],
    ['second failure after 1 interval: ×2', failing, 30, 30_000, 2, 60_000],
    ['second failure, a late pass: still ×2', failing, 89, 30_000, 2, 60_000],
    ['third failure after 3 intervals: ×4', failing, 90, 30_000, 3, 120_000],
    ['fourth failure after 7 intervals: ×8', failing, 210, 30_000, 4, 240_000],
    ['fifth failure after 15 intervals: ×16 capped at 5 min', failing, 450, 30_000, 5, MAX_METRICS_BACKOFF_MS],
    ['1s interval: 1, 2, 4, 8, 16 s', failing, 7, 1000, 4, 8000],
    ['1s interval, 15 s: ×16', failing, 15, 1000, 5, 16_000],
    ['1s interval, a day: capped', failing, 86_400, 1000, 17, MAX_METRICS_BACKOFF_MS],
    ['a century: capped, no overflow', failing, 3.2e9, 1000, 32, MAX_METRICS_BACKOFF_MS],
    ['interval above the cap: never below the interval', failing, 3600, 600_000, 3, 600_000],
    ['clock behind the transition (skew): first failure', failing, -5, 30_000, 1, 30_000],
    [
      'unparsable transition time: first failure',
      { status: 'False', lastTransitionTime: 'yesterday' },
      100,
      30_000,
      1,
      30_000,
    ],
    ['Date transition time works too', { status: 'False', lastTransitionTime: new Date(SINCE) }, 30, 30_000, 2, 60_000],
  ])('%s', (_label, condition, seconds, intervalMs, failures, delay) => {
    expect(consecutiveMetricsFailures(at(seconds), condition, intervalMs)).toBe(failures);
    expect(metricsBackoffMs(at(seconds), condition, intervalMs)).toBe(delay);
  });

  it('the delays of passes that follow the schedule double: 1, 2, 4, 8 … intervals', () => {
    const interval = 10_000;
    let t = 0;
    const delays: number[] = [];
    for (let pass = 0; pass < 7; pass++) {
      const delay = metricsBackoffMs(new Date(Date.parse(SINCE) + t), failing, interval);
      delays.push(delay / interval);
      t += delay + 250; // a little late every time
    }
    expect(delays).toEqual([1, 2, 4, 8, 16, 30, 30]);
  });
});
