import { describe, expect, it } from '@jest/globals';
import { batchReuseMs } from '../../../src/controllers/poolpolicy/utilization.js';

describe('batchReuseMs: how long a namespace-wide reading serves further policies', () => {
  it.each<[string, number, number]>([
    ['a quarter of a 10 s interval (samples may be 20 s old)', 20_000, 2500],
    ['a quarter of a 30 s interval', 60_000, 7500],
    ['at least a second for a 1 s interval', 2000, 1000],
    ['a quarter of a 5 s interval', 10_000, 1250],
  ])('%s', (_label, maxAgeMs, expected) => {
    expect(batchReuseMs(maxAgeMs)).toBe(expected);
  });
});
