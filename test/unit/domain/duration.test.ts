import { describe, it, expect } from '@jest/globals';
import { formatDuration, parseDuration } from '../../../src/domain/duration.js';

describe('parseDuration', () => {
  const valid: readonly (readonly [string, number])[] = [
    ['0s', 0],
    ['0ms', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1h0m0s', 3_600_000],
    ['2m30s', 150_000],
    ['1m30.5s', 90_500],
    ['0.5ms', 1], // rounded to the nearest ms
    ['10s500ms', 10_500],
  ];
  it.each(valid)('%s -> %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  const invalid: readonly string[] = [
    '',
    '5',
    '5 minutes',
    '-1s',
    '+1s',
    '1d',
    '1.s',
    '.5s',
    's',
    '5m ',
    ' 5m',
    '1H',
    '1e3s',
    '1,5s',
    '99999999999999999999h',
  ];
  it.each(invalid)('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  const cases: readonly (readonly [number, string])[] = [
    [0, '0s'],
    [1, '1ms'],
    [500, '500ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [1050, '1.05s'],
    [30_000, '30s'],
    [60_000, '1m0s'],
    [300_000, '5m0s'],
    [90_500, '1m30.5s'],
    [1_800_000, '30m0s'],
    [3_600_000, '1h0m0s'],
    [5_400_000, '1h30m0s'],
    [90_000_000, '25h0m0s'],
    [-5000, '-5s'],
    [499.6, '500ms'],
  ];
  it.each(cases)('%d ms -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('throws on non-finite input', () => {
    expect(() => formatDuration(Number.NaN)).toThrow(RangeError);
    expect(() => formatDuration(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it.each([0, 1, 500, 1500, 90_500, 300_000, 5_400_000, 86_399_999])('round-trips %d ms', (ms) => {
    expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});
