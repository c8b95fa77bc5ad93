import { describe, expect, it } from '@jest/globals';
import {
  describePolicy,
  rateLimit,
  type Direction,
  type PastChange,
  type ScalingPolicy,
  type SelectPolicy,
} from '../../../src/domain/scaling-rules.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const NOW = new Date('2025-01-01T12:00:00.000Z');
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);
const change = (msAgo: number, from: number, to: number): PastChange => ({ at: ago(msAgo), from, to });

const percent = (value: number, periodMs = MINUTE): ScalingPolicy => ({ type: 'Percent', value, periodMs });
const connections = (value: number, periodMs = MINUTE): ScalingPolicy => ({ type: 'Connections', value, periodMs });

interface Case {
  readonly name: string;
  readonly direction: Direction;
  readonly current: number;
  readonly selectPolicy?: SelectPolicy;
  readonly policies: readonly ScalingPolicy[];
  readonly changes?: readonly PastChange[];
  /** The furthest value allowed now, and the policy that set it. */
  readonly limit: number;
  readonly policy: ScalingPolicy;
  readonly periodStart: number;
}

describe('rateLimit: how far a setting may move now under HPA-style policies', () => {
  it.each<Case>([
    // selectPolicy between two policies
    {
      name: 'up, Max: the policy allowing more growth binds (100 % of 10 beats 4 connections)',
      direction: 'up',
      current: 10,
      policies: [percent(100), connections(4)],
      limit: 20,
      policy: percent(100),
      periodStart: 10,
    },
    {
      name: 'up, Min: the policy allowing less growth binds',
      direction: 'up',
      current: 10,
      selectPolicy: 'Min',
      policies: [percent(100), connections(4)],
      limit: 14,
      policy: connections(4),
      periodStart: 10,
    },
    {
      name: 'down, Max: the policy allowing more shrinking binds (lower limit)',
      direction: 'down',
      current: 40,
      policies: [percent(50), connections(4)],
      limit: 20,
      policy: percent(50),
      periodStart: 40,
    },
    {
      name: 'down, Min: the policy allowing less shrinking binds (higher limit)',
      direction: 'down',
      current: 40,
      selectPolicy: 'Min',
      policies: [percent(50), connections(4)],
      limit: 36,
      policy: connections(4),
      periodStart: 40,
    },
    {
      name: 'a tie keeps the first policy listed',
      direction: 'up',
      current: 10,
      policies: [connections(2), percent(20)],
      limit: 12,
      policy: connections(2),
      periodStart: 10,
    },

    // changes already made in the period
    {
      name: 'a change made 30 s ago inside a 60 s period limits the next (base = value before it)',
      direction: 'up',
      current: 15,
      policies: [connections(6)],
      changes: [change(30 * SECOND, 10, 15)],
      limit: 16,
      policy: connections(6),
      periodStart: 10,
    },
    {
      name: 'the allowance of the period used up: no room (limit = current)',
      direction: 'up',
      current: 20,
      policies: [percent(100)],
      changes: [change(30 * SECOND, 10, 20)],
      limit: 20,
      policy: percent(100),
      periodStart: 10,
    },
    {
      name: 'a change older than the period no longer counts',
      direction: 'up',
      current: 15,
      policies: [connections(6)],
      changes: [change(2 * MINUTE, 10, 15)],
      limit: 21,
      policy: connections(6),
      periodStart: 15,
    },
    {
      name: 'a change exactly one period ago no longer counts (cutoff is strict, as in the HPA)',
      direction: 'up',
      current: 15,
      policies: [connections(6)],
      changes: [change(MINUTE, 10, 15)],
      limit: 21,
      policy: connections(6),
      periodStart: 15,
    },
    {
      name: 'each policy counts its own period: the short one forgot the change, the long one did not',
      direction: 'up',
      current: 15,
      policies: [connections(6, 10 * MINUTE), connections(2, 15 * SECOND)],
      changes: [change(30 * SECOND, 10, 15)],
      limit: 17,
      policy: connections(2, 15 * SECOND),
      periodStart: 15,
    },
    {
      name: 'changes in both directions count (net): 10→15→12 in the period leaves base 10',
      direction: 'up',
      current: 12,
      policies: [connections(6)],
      changes: [change(50 * SECOND, 10, 15), change(20 * SECOND, 15, 12)],
      limit: 16,
      policy: connections(6),
      periodStart: 10,
    },
    {
      name: 'down: a shrink made 30 s ago counts against the scale-down allowance',
      direction: 'down',
      current: 16,
      policies: [percent(20)],
      changes: [change(30 * SECOND, 20, 16)],
      limit: 16,
      policy: percent(20),
      periodStart: 20,
    },

    // Connections vs Percent at small values
    {
      name: 'up, Percent at a small value rounds up so it still moves (3 + 10 % → 4)',
      direction: 'up',
      current: 3,
      policies: [percent(10)],
      limit: 4,
      policy: percent(10),
      periodStart: 3,
    },
    {
      name: 'up, Connections at a small value moves by the absolute amount (3 + 4 → 7)',
      direction: 'up',
      current: 3,
      policies: [percent(10), connections(4)],
      limit: 7,
      policy: connections(4),
      periodStart: 3,
    },
    {
      name: 'down, Percent at a small value truncates (3 − 10 % → 2, as the HPA)',
      direction: 'down',
      current: 3,
      policies: [percent(10)],
      limit: 2,
      policy: percent(10),
      periodStart: 3,
    },
    {
      name: 'down, Connections below zero is only a limit (1 − 4 → −3: the caller clamps to min)',
      direction: 'down',
      current: 1,
      policies: [connections(4)],
      limit: -3,
      policy: connections(4),
      periodStart: 1,
    },
    {
      name: 'percentages are exact: 100 + 10 % is 110, not the 111 a float product rounds up to',
      direction: 'up',
      current: 100,
      policies: [percent(10)],
      limit: 110,
      policy: percent(10),
      periodStart: 100,
    },
  ])('$name', (c) => {
    const result = rateLimit(
      c.direction,
      c.current,
      { selectPolicy: c.selectPolicy ?? 'Max', policies: c.policies },
      c.changes ?? [],
      NOW,
    );
    expect(result).toEqual({ kind: 'limit', limit: c.limit, policy: c.policy, periodStart: c.periodStart });
  });

  it.each<Direction>(['up', 'down'])('selectPolicy Disabled forbids %s whatever the policies allow', (direction) => {
    expect(rateLimit(direction, 10, { selectPolicy: 'Disabled', policies: [percent(100)] }, [], NOW)).toEqual({
      kind: 'disabled',
    });
  });
});

describe('describePolicy', () => {
  it.each([
    [percent(100, 15 * SECOND), 'Percent 100% per 15s'],
    [connections(4, MINUTE), 'Connections 4 per 1m0s'],
  ])('%j → %s', (policy, text) => {
    expect(describePolicy(policy)).toBe(text);
  });
});
