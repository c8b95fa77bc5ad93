import { describe, it, expect } from '@jest/globals';
import { ConditionReason, ConditionType } from '../../../src/api/v1alpha1/conditions.js';
import {
  parsePoolPolicyStatus,
  type ParsedPoolPolicyStatus,
  type PoolPolicyStatus,
} from '../../../src/api/v1alpha1/poolpolicy.js';
import {
  canonical,
  nextCondition,
  OBSERVED_TOLERANCE,
  statusToWrite,
  toWrittenStatus,
  type ConditionInput,
  type WrittenCondition,
} from '../../../src/domain/status.js';

const NOW = new Date('2025-01-01T12:00:00.000Z');
const EARLIER = '2025-01-01T11:00:00Z';
const NOW_TEXT = '2025-01-01T12:00:00Z';

const readyTrue: WrittenCondition = {
  type: ConditionType.Ready,
  status: 'True',
  reason: ConditionReason.Reconciled,
  message: 'ok',
  lastTransitionTime: EARLIER,
  observedGeneration: 1,
};
const metricsTrue: WrittenCondition = {
  type: ConditionType.MetricsAvailable,
  status: 'True',
  reason: 'SamplesValid',
  message: 'ok',
  lastTransitionTime: EARLIER,
  observedGeneration: 1,
};

describe('nextCondition', () => {
  it.each<[string, readonly WrittenCondition[] | undefined, ConditionInput, string]>([
    [
      'no previous conditions: transition now',
      undefined,
      { type: ConditionType.Ready, status: 'True', reason: 'Reconciled', message: 'ok' },
      NOW_TEXT,
    ],
    [
      'no previous condition of this type: transition now',
      [metricsTrue],
      { type: ConditionType.Ready, status: 'True', reason: 'Reconciled', message: 'ok' },
      NOW_TEXT,
    ],
    [
      'same status, same reason: keeps lastTransitionTime',
      [readyTrue],
      { type: ConditionType.Ready, status: 'True', reason: 'Reconciled', message: 'ok' },
      EARLIER,
    ],
    [
      'same status, new reason and message: keeps lastTransitionTime',
      [readyTrue],
      { type: ConditionType.Ready, status: 'True', reason: 'Recommending', message: 'mode Recommend' },
      EARLIER,
    ],
    [
      'status flips True -> False: transition now',
      [readyTrue],
      { type: ConditionType.Ready, status: 'False', reason: 'TargetNotFound', message: 'gone' },
      NOW_TEXT,
    ],
    [
      'status flips True -> Unknown: transition now',
      [readyTrue],
      { type: ConditionType.Ready, status: 'Unknown', reason: 'Pending', message: '?' },
      NOW_TEXT,
    ],
    [
      'another type flipped, this one not: keeps',
      [readyTrue, { ...metricsTrue, status: 'False' }],
      { type: ConditionType.Ready, status: 'True', reason: 'Reconciled', message: 'ok' },
      EARLIER,
    ],
  ])('%s', (_name, previous, input, lastTransitionTime) => {
    expect(nextCondition(previous, input, NOW, 7)).toEqual({ ...input, lastTransitionTime, observedGeneration: 7 });
  });

  it('always carries the current generation, even when nothing else changed', () => {
    expect(
      nextCondition(
        [readyTrue],
        { type: ConditionType.Ready, status: 'True', reason: ConditionReason.Reconciled, message: 'ok' },
        NOW,
        9,
      ),
    ).toEqual({ ...readyTrue, observedGeneration: 9 });
  });

  it('writes second precision (metav1.Time)', () => {
    expect(
      nextCondition(
        undefined,
        { type: 'X', status: 'True', reason: 'R', message: 'm' },
        new Date('2025-01-01T12:00:00.987Z'),
        1,
      ).lastTransitionTime,
    ).toBe(NOW_TEXT);
  });
});

describe('toWrittenStatus', () => {
  it.each<[string, ParsedPoolPolicyStatus, PoolPolicyStatus]>([
    ['empty', {}, {}],
    [
      'times become RFC3339 strings',
      {
        observedGeneration: 2,
        conditions: [{ ...readyTrue, lastTransitionTime: new Date(EARLIER) }],
        observed: { database: 61.5, sampledAt: new Date('2025-01-01T11:59:50.250Z') },
        breaches: { redis: { direction: 'down', since: new Date(EARLIER), lastSeen: NOW } },
        lastChange: { time: NOW, reason: 'grew', changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }] },
        history: [
          {
            time: NOW,
            reason: 'grew',
            changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }],
            utilizationBefore: 90,
          },
        ],
      },
      {
        observedGeneration: 2,
        conditions: [readyTrue],
        observed: { database: 61.5, sampledAt: '2025-01-01T11:59:50Z' },
        breaches: { redis: { direction: 'down', since: EARLIER, lastSeen: NOW_TEXT } },
        lastChange: { time: NOW_TEXT, reason: 'grew', changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }] },
        history: [
          {
            time: NOW_TEXT,
            reason: 'grew',
            changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }],
            utilizationBefore: 90,
          },
        ],
      },
    ],
    [
      'maps are kept as they are',
      { current: { DB_POOL_SIZE: 20 }, recommended: { DB_POOL_SIZE: 24 } },
      { current: { DB_POOL_SIZE: 20 }, recommended: { DB_POOL_SIZE: 24 } },
    ],
    ['observed without sampledAt has no sampledAt key', { observed: { redis: 10 } }, { observed: { redis: 10 } }],
  ])('%s', (_name, parsed, written) => {
    const result = toWrittenStatus(parsed);
    expect(result).toEqual(written);
    // toEqual ignores undefined-valued keys; a stored status must not carry them.
    expect(JSON.stringify(result)).toBe(JSON.stringify(JSON.parse(JSON.stringify(result))));
    expect(canonical(result)).toBe(canonical(written));
  });

  it('round-trips with parsePoolPolicyStatus', () => {
    const written: PoolPolicyStatus = {
      observedGeneration: 5,
      conditions: [readyTrue, metricsTrue],
      current: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
      recommended: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
      observed: { database: 70, sampledAt: NOW_TEXT },
      breaches: { database: { direction: 'up', since: EARLIER, lastSeen: NOW_TEXT } },
      lastChange: { time: EARLIER, reason: 'grew', changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }] },
      history: [
        {
          time: EARLIER,
          reason: 'grew',
          changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }],
          utilizationBefore: 90,
          utilizationAfter: 70,
        },
      ],
    };
    expect(canonical(toWrittenStatus(parsePoolPolicyStatus(written)))).toBe(canonical(written));
  });
});

describe('canonical', () => {
  it.each<[string, unknown, unknown, boolean]>([
    ['key order does not count', { a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }, true],
    ['array order counts', { list: [1, 2] }, { list: [2, 1] }, false],
    ['values count', { a: 1 }, { a: 2 }, false],
    ['nested objects inside arrays are sorted too', [{ x: 1, y: 2 }], [{ y: 2, x: 1 }], true],
    ['undefined keys are dropped, as in JSON', { a: 1, b: undefined }, { a: 1 }, true],
  ])('%s', (_name, a, b, same) => {
    expect(canonical(a) === canonical(b)).toBe(same);
  });
});

describe('statusToWrite', () => {
  const base: PoolPolicyStatus = {
    observedGeneration: 3,
    conditions: [readyTrue, metricsTrue],
    current: { DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 },
    recommended: { DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 },
    observed: { database: 60, sampledAt: EARLIER },
  };
  const observed = (database: number | undefined, redis?: number): PoolPolicyStatus['observed'] => ({
    ...(database === undefined ? {} : { database }),
    ...(redis === undefined ? {} : { redis }),
    sampledAt: NOW_TEXT,
  });
  const readyFalse: WrittenCondition = {
    ...readyTrue,
    status: 'False',
    reason: ConditionReason.TargetNotFound,
    message: 'gone',
    lastTransitionTime: NOW_TEXT,
  };

  it.each<[string, PoolPolicyStatus, 'none' | 'next' | 'next with stored observed']>([
    ['identical status (idle pass)', base, 'none'],
    [
      'same content, other key order',
      {
        recommended: { DB_MAX_OVERFLOW: 40, DB_POOL_SIZE: 20 },
        observed: base.observed,
        conditions: base.conditions,
        current: base.current,
        observedGeneration: 3,
      },
      'none',
    ],
    ['only sampledAt moved', { ...base, observed: observed(60) }, 'none'],
    [`observed moved by less than ${OBSERVED_TOLERANCE} points`, { ...base, observed: observed(64.9) }, 'none'],
    [`observed moved down by less than ${OBSERVED_TOLERANCE} points`, { ...base, observed: observed(55.1) }, 'none'],
    [`observed moved by exactly ${OBSERVED_TOLERANCE} points`, { ...base, observed: observed(65) }, 'next'],
    ['observed moved by more than the tolerance', { ...base, observed: observed(40) }, 'next'],
    ['a section newly observed', { ...base, observed: observed(60, 30) }, 'next'],
    ['a section no longer observed', { ...base, observed: observed(undefined) }, 'next'],
    ['observed dropped entirely', { ...base, observed: undefined }, 'next'],
    [
      'a condition changed, observed moved < tolerance',
      { ...base, conditions: [readyFalse, metricsTrue], observed: observed(62) },
      'next with stored observed',
    ],
    [
      'a condition message changed, observed unchanged',
      { ...base, conditions: [{ ...readyTrue, message: 'other' }, metricsTrue], observed: observed(60) },
      'next with stored observed',
    ],
    [
      'a condition changed, observed moved >= tolerance',
      { ...base, conditions: [readyFalse, metricsTrue], observed: observed(80) },
      'next',
    ],
    ['current changed', { ...base, current: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 } }, 'next with stored observed'],
    ['observedGeneration changed', { ...base, observedGeneration: 4 }, 'next with stored observed'],
    [
      'a breach appeared',
      { ...base, breaches: { database: { direction: 'up', since: NOW_TEXT, lastSeen: NOW_TEXT } } },
      'next with stored observed',
    ],
  ])('%s', (_name, next, expected) => {
    const result = statusToWrite(base, next);
    if (expected === 'none') expect(result).toBeUndefined();
    else if (expected === 'next') expect(result).toEqual(next);
    else expect(result).toEqual({ ...next, observed: base.observed });
  });

  it('with nothing stored yet, writes the new status as is', () => {
    const next: PoolPolicyStatus = { ...base, observed: observed(62) };
    expect(statusToWrite({}, next)).toEqual(next);
  });

  it('a condition changed and nothing is observed before or after: writes next without observed', () => {
    const stored: PoolPolicyStatus = { ...base, observed: undefined };
    const next: PoolPolicyStatus = { ...base, observed: undefined, conditions: [readyFalse, metricsTrue] };
    expect(statusToWrite(stored, next)).toEqual(next);
  });
});
