import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { Breach } from '../../../src/domain/decide.js';
import {
  decideFill,
  decideShareFill,
  demandLevel,
  split,
  waitingNow,
  type DemandSample,
  type FillDecision,
  type FillInput,
  type FillReason,
  type ShareFillInput,
} from '../../../src/domain/fill.js';
import type { SectionBudget } from '../../../src/domain/sections.js';
import { parsePoolPolicySpec } from '../../../src/api/v1alpha1/poolpolicy.js';

const SECOND = 1000;
const NOW_MS = Date.parse('2025-01-01T12:00:00.000Z');
const ago = (ms: number): Date => new Date(NOW_MS - ms);

const share = (cap: number, over: { readonly fair?: number; readonly limit?: number } = {}): SectionBudget => ({
  kind: 'cap',
  backend: 'PostgreSQL',
  cap,
  needs: 240,
  free: 97,
  minimumsFit: true,
  ...over,
});

/** Demand per process; the floor defaults to the lower of the mean and now. */
const demand = (overrides: Partial<DemandSample> = {}): FillInput['demand'] => {
  const inUse = overrides.inUse ?? 2;
  const typical = overrides.typical ?? 2;
  return {
    valid: true,
    demand: { inUse, typical, floor: Math.min(inUse, typical), waiters: 0, timeouts: 0, ...overrides },
  };
};

/**
 * The demo's shape: 2 replicas with maxSurge 0 (one serves during a rollout), poolSize 5..40,
 * maxOverflow 0..80, budget share 48 per process, thresholds 40/65/80, 10 s up / 20 s down
 * windows, 5 s between changes. Settings 10 + 20 (the runbook's low tier), light demand.
 */
function input(overrides: Partial<FillInput> = {}): FillInput {
  return {
    now: new Date(NOW_MS),
    pool: { current: 10, bounds: { min: 5, max: 40 } },
    overflow: { current: 20, bounds: { min: 0, max: 80 } },
    budget: share(48),
    sample: { valid: true, percent: 7, sampledAt: ago(2 * SECOND) },
    demand: demand(),
    restart: { processes: 2, processesDuringRollout: 1, change: 'restart' },
    thresholds: { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 },
    behavior: {
      maxStepPercent: 20,
      scaleUpStabilizationMs: 10 * SECOND,
      scaleDownStabilizationMs: 20 * SECOND,
      minChangeIntervalMs: 5 * SECOND,
    },
    intervalMs: 5 * SECOND,
    breach: undefined,
    lastChangeAt: undefined,
    rolloutCompletedAt: new Date(0),
    ...overrides,
  };
}

const at48 = (pool: number): Pick<FillInput, 'pool' | 'overflow'> => ({
  pool: { current: pool, bounds: { min: 5, max: 40 } },
  overflow: { current: 48 - pool, bounds: { min: 0, max: 80 } },
});
const breach = (direction: Breach['direction'], sinceMs: number): Breach => ({
  direction,
  since: ago(sinceMs),
  lastSeen: ago(5 * SECOND),
});

interface Case {
  readonly name: string;
  readonly input: FillInput;
  readonly pool: number;
  readonly overflow: number;
  readonly reason: FillReason;
}

const cases: Case[] = [
  {
    name: 'fills capacity to the share in one jump at the first pass, poolSize to typical demand (min 5)',
    input: input(),
    pool: 5,
    overflow: 43,
    reason: 'FilledToBudget',
  },
  {
    name: 'a saturated pool (censored at 100 %) also jumps straight to the share, never in steps',
    input: input({
      sample: { valid: true, percent: 100, sampledAt: ago(SECOND) },
      demand: demand({ inUse: 30, typical: 29, waiters: 12, timeouts: 40 }),
    }),
    pool: 29,
    overflow: 19,
    reason: 'FilledToBudget',
  },
  {
    name: 'saturated growth ignores the minimum interval (an outage is worth a rollout)',
    input: input({ lastChangeAt: ago(SECOND), demand: demand({ inUse: 30, typical: 10, waiters: 3 }) }),
    pool: 10,
    overflow: 38,
    reason: 'FilledToBudget',
  },
  {
    name: 'unsaturated growth waits for the minimum interval',
    input: input({ lastChangeAt: ago(SECOND) }),
    pool: 10,
    overflow: 20,
    reason: 'MinIntervalNotElapsed',
  },
  {
    name: 'over the share (a peer grew, replicas rose): capacity comes down at once',
    input: input({ ...at48(10), budget: share(32) }),
    pool: 5,
    overflow: 27,
    reason: 'BudgetCorrection',
  },
  {
    name: "a peer's demand grew: the fair share fell by more than the tolerance, the rollout is safe: capacity given back",
    input: input({ ...at48(10), budget: share(48, { fair: 30, limit: 48 }) }),
    pool: 5,
    overflow: 25,
    reason: 'Rebalanced',
  },
  {
    name: 'a fair share that wobbles by less than 20 % moves nothing',
    input: input({
      ...at48(10),
      demand: demand({ inUse: 12, typical: 11, floor: 10 }),
      budget: share(48, { fair: 44, limit: 48 }),
    }),
    pool: 10,
    overflow: 38,
    reason: 'DeadBand',
  },
  {
    name: 'giving capacity back would need a rollout the demand of now cannot carry: deferred',
    input: input({
      ...at48(10),
      demand: demand({ inUse: 30, typical: 30 }),
      budget: share(48, { fair: 24, limit: 48 }),
    }),
    pool: 10,
    overflow: 38,
    reason: 'RestartDeferred',
  },
  {
    name: "a past peak's waiters do not count once the pool has free capacity: capacity given back at once (poolSize keeps what it has: the window saw waiters)",
    input: input({
      ...at48(10),
      demand: demand({ inUse: 8, typical: 30, floor: 5, waiters: 245 }),
      budget: share(48, { fair: 24, limit: 48 }),
    }),
    pool: 10,
    overflow: 14,
    reason: 'Rebalanced',
  },
  {
    name: "a full pool's waiters count: giving capacity back is deferred",
    input: input({
      ...at48(10),
      demand: demand({ inUse: 47, typical: 45, floor: 40, waiters: 10 }),
      budget: share(48, { fair: 24, limit: 48 }),
    }),
    pool: 10,
    overflow: 38,
    reason: 'RestartDeferred',
  },
  {
    name: 'a small rise of the share is taken only when saturated',
    input: input({
      ...at48(10),
      demand: demand({ inUse: 48, typical: 40, waiters: 4 }),
      budget: share(60, { limit: 55 }),
    }),
    pool: 40,
    overflow: 15,
    reason: 'FilledToBudget',
  },
  {
    name: "a peer's rollout holds surge pods: growth stops short of them (cap below the share), no correction",
    input: input({ budget: share(36, { fair: 48, limit: 48 }) }),
    pool: 5,
    overflow: 31,
    reason: 'FilledToBudget',
  },
  {
    name: "already at the share while a peer's surge pods are up: nothing moves",
    input: input({
      ...at48(10),
      demand: demand({ inUse: 12, typical: 11, floor: 10 }),
      budget: share(36, { fair: 48, limit: 48 }),
    }),
    pool: 10,
    overflow: 38,
    reason: 'DeadBand',
  },
  {
    name: 'over what the others leave free (limit), even within the fair share: back at once',
    input: input({ ...at48(10), budget: share(60, { limit: 40 }) }),
    pool: 5,
    overflow: 35,
    reason: 'BudgetCorrection',
  },
  {
    name: 'capacity at the share and the floor of demand within 20 % (2 connections) of poolSize: hold',
    input: input({ ...at48(10), demand: demand({ inUse: 12, typical: 10, floor: 9 }) }),
    pool: 10,
    overflow: 38,
    reason: 'DeadBand',
  },
  {
    name: 'typical demand above the band: wait for the scale-up window',
    input: input({ ...at48(5), demand: demand({ inUse: 12, typical: 10 }) }),
    pool: 5,
    overflow: 43,
    reason: 'Stabilizing',
  },
  {
    name: 'typical demand above the band for the window, rollout safe: poolSize follows, capacity stays',
    input: input({ ...at48(5), demand: demand({ inUse: 12, typical: 10 }), breach: breach('up', 11 * SECOND) }),
    pool: 10,
    overflow: 38,
    reason: 'PoolFollowsDemand',
  },
  {
    name: "after a peak the window's mean still says 34 but demand now is 4: no growth (both must agree)",
    input: input({ ...at48(5), demand: demand({ inUse: 4, typical: 34 }), breach: breach('up', 60 * SECOND) }),
    pool: 5,
    overflow: 43,
    reason: 'DeadBand',
  },
  {
    name: 'growth follows the lesser of the mean and now',
    input: input({ ...at48(5), demand: demand({ inUse: 9, typical: 14 }), breach: breach('up', 11 * SECOND) }),
    pool: 9,
    overflow: 39,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'a capacity change takes poolSize to the floor of demand, not to a lagging mean',
    input: input({ demand: demand({ inUse: 3, typical: 30 }) }),
    pool: 5,
    overflow: 43,
    reason: 'FilledToBudget',
  },
  {
    name: 'after a peak the floor falls at once: poolSize shrinks after the scale-down window, whatever the lagging mean says',
    input: input({
      ...at48(14),
      demand: demand({ inUse: 4, typical: 25, floor: 3 }),
      breach: breach('down', 21 * SECOND),
    }),
    pool: 5,
    overflow: 43,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'the floor rises only when demand stayed up the whole window: a burst does not grow the pool',
    input: input({
      ...at48(5),
      demand: demand({ inUse: 30, typical: 12, floor: 4 }),
      breach: breach('up', 60 * SECOND),
    }),
    pool: 5,
    overflow: 43,
    reason: 'DeadBand',
  },
  {
    name: "the rollout would leave one process for today's 2 × 40 connections: deferred",
    input: input({ ...at48(5), demand: demand({ inUse: 40, typical: 38 }), breach: breach('up', 11 * SECOND) }),
    pool: 5,
    overflow: 43,
    reason: 'RestartDeferred',
  },
  {
    name: "the same demand with a reloaded file: the old pool's 40 busy connections beside a new pool cross the share: deferred",
    input: input({
      ...at48(5),
      demand: demand({ inUse: 40, typical: 38 }),
      breach: breach('up', 11 * SECOND),
      restart: { processes: 2, processesDuringRollout: 2, change: 'swap' },
    }),
    pool: 5,
    overflow: 43,
    reason: 'ReloadDeferred',
  },
  {
    name: 'the same demand with an app that resizes its pool in place (reload Resize): no second pool, poolSize follows its floor',
    input: input({
      ...at48(5),
      demand: demand({ inUse: 40, typical: 38, floor: 36 }),
      breach: breach('up', 11 * SECOND),
      restart: { processes: 2, processesDuringRollout: 2, change: 'resize' },
    }),
    pool: 36,
    overflow: 12,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'a reloaded file at a demand that fits the target: poolSize follows its floor',
    input: input({
      ...at48(5),
      demand: demand({ inUse: 28, typical: 27, floor: 26 }),
      breach: breach('up', 11 * SECOND),
      restart: { processes: 2, processesDuringRollout: 2, change: 'swap' },
    }),
    pool: 26,
    overflow: 22,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'typical demand below the band for the scale-down window: poolSize shrinks, overflow takes the rest',
    input: input({ ...at48(20), demand: demand({ inUse: 4, typical: 3.2 }), breach: breach('down', 21 * SECOND) }),
    pool: 5,
    overflow: 43,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'no shrink while waiters were seen in the window',
    input: input({
      ...at48(20),
      demand: demand({ inUse: 4, typical: 3.2, waiters: 2 }),
      breach: breach('down', 21 * SECOND),
    }),
    pool: 20,
    overflow: 28,
    reason: 'Saturated',
  },
  {
    name: 'after a peak, with a reloaded file: poolSize shrinks to the floor at once, waiters earlier in the window or not',
    input: input({
      ...at48(37),
      demand: demand({ inUse: 6, typical: 20, floor: 5, waiters: 9 }),
      restart: { processes: 2, processesDuringRollout: 2, change: 'swap' },
    }),
    pool: 5,
    overflow: 43,
    reason: 'PoolFollowsDemand',
  },
  {
    name: 'the same after a peak with a rolling restart: held while waiters were in the window',
    input: input({ ...at48(37), demand: demand({ inUse: 6, typical: 20, floor: 5, waiters: 9 }) }),
    pool: 37,
    overflow: 11,
    reason: 'Saturated',
  },
  {
    name: 'the same with a rolling restart that keeps every process serving (maxUnavailable 0): still a restart, held',
    input: input({
      ...at48(37),
      demand: demand({ inUse: 6, typical: 20, floor: 5, waiters: 9 }),
      restart: { processes: 2, processesDuringRollout: 2, change: 'restart' },
    }),
    pool: 37,
    overflow: 11,
    reason: 'Saturated',
  },
  {
    name: 'with a reloaded file, growth still waits out the scale-up window',
    input: input({
      ...at48(5),
      demand: demand({ inUse: 40, typical: 38 }),
      breach: breach('up', 2 * SECOND),
      restart: { processes: 2, processesDuringRollout: 2, change: 'swap' },
    }),
    pool: 5,
    overflow: 43,
    reason: 'Stabilizing',
  },
  {
    name: 'no shrink while timeouts were seen in the window',
    input: input({
      ...at48(20),
      demand: demand({ inUse: 4, typical: 3.2, timeouts: 1 }),
      breach: breach('down', 21 * SECOND),
    }),
    pool: 20,
    overflow: 28,
    reason: 'Saturated',
  },
  {
    name: 'at min with the floor of demand below it: hold',
    input: input({ ...at48(5), demand: demand({ inUse: 0, typical: 0.2 }) }),
    pool: 5,
    overflow: 43,
    reason: 'DeadBand',
  },
  {
    name: 'invalid demand holds, never reads as zero',
    input: input({ demand: { valid: false, problem: 'QueryFailed', message: 'Prometheus down' } }),
    pool: 10,
    overflow: 20,
    reason: 'MetricsUnavailable',
  },
  {
    name: 'stale utilization holds',
    input: input({ sample: { valid: true, percent: 7, sampledAt: ago(11 * SECOND) } }),
    pool: 10,
    overflow: 20,
    reason: 'MetricsUnavailable',
  },
  {
    name: 'rollout in progress holds',
    input: input({ rolloutCompletedAt: undefined }),
    pool: 10,
    overflow: 20,
    reason: 'RolloutInProgress',
  },
  {
    name: 'an unknown budget allows no growth',
    input: input({
      budget: { kind: 'unknown', reason: 'BudgetQueryFailed', message: 'ConnectionBudget b: the query failed' },
    }),
    pool: 10,
    overflow: 20,
    reason: 'BudgetUnknown',
  },
  {
    name: 'a share above the bounds is clamped to poolSize.max + maxOverflow.max (poolSize takes what overflow cannot)',
    input: input({ budget: share(500) }),
    pool: 40,
    overflow: 80,
    reason: 'FilledToBudget',
  },
];

describe('decideFill', () => {
  it.each(cases)('$name', ({ input: given, pool, overflow, reason }) => {
    const decision: FillDecision = decideFill(given);
    expect({ pool: decision.pool, overflow: decision.overflow, reason: decision.reason }).toEqual({
      pool,
      overflow,
      reason,
    });
    expect(decision.message.length).toBeGreaterThan(0);
  });

  it("names the signals it used, so a user sees which of the app's metrics counted", () => {
    expect(decideFill(input()).message).toContain(
      'signals: db_pool_checked_out, db_pool_waiters, db_pool_timeouts_total',
    );
    const runbookOnly = decideFill(input({ demand: demand({ waiters: undefined, timeouts: undefined }) }));
    expect(runbookOnly.message).toContain('signals: db_pool_checked_out)');
    expect(runbookOnly.reason).toBe('FilledToBudget');
  });

  it("says PgBouncer would help when demand fills the share below the policy's own max", () => {
    expect(decideFill(input({ ...at48(20), demand: demand({ inUse: 48, typical: 20, waiters: 5 }) })).budgetBound).toBe(
      true,
    );
    expect(decideFill(input({ ...at48(20), demand: demand({ inUse: 20, typical: 20 }) })).budgetBound).toBe(false);
  });

  it('holds without live numbers in the message, so a steady workload writes no status', () => {
    const a = decideFill(input({ ...at48(10), demand: demand({ inUse: 12, typical: 10, floor: 9 }) }));
    const b = decideFill(input({ ...at48(10), demand: demand({ inUse: 14, typical: 11, floor: 10.5 }) }));
    expect(a.reason).toBe('DeadBand');
    expect(a.message).toBe(b.message);
  });

  it('property: settings stay within their bounds and capacity never exceeds the share', () => {
    const arb = fc.record({
      pool: fc.integer({ min: 0, max: 120 }),
      overflow: fc.integer({ min: 0, max: 200 }),
      cap: fc.integer({ min: 5, max: 300 }),
      inUse: fc.double({ min: 0, max: 200, noNaN: true }),
      typical: fc.double({ min: 0, max: 200, noNaN: true }),
      waiters: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }),
      breachUp: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, (g) => {
        const given = input({
          pool: { current: g.pool, bounds: { min: 5, max: 40 } },
          overflow: { current: g.overflow, bounds: { min: 0, max: 80 } },
          budget: share(g.cap),
          demand: demand({ inUse: g.inUse, typical: g.typical, waiters: g.waiters }),
          breach: breach(g.breachUp ? 'up' : 'down', 30 * SECOND),
        });
        const d = decideFill(given);
        const moved = d.pool !== g.pool || d.overflow !== g.overflow;
        if (!moved) return;
        expect(d.pool).toBeGreaterThanOrEqual(5);
        expect(d.pool).toBeLessThanOrEqual(40);
        expect(d.overflow).toBeGreaterThanOrEqual(0);
        expect(d.overflow).toBeLessThanOrEqual(80);
        // The budget's cap is never below the claim's min (5 + 0), so any change lands within it.
        expect(d.pool + d.overflow).toBeLessThanOrEqual(Math.max(g.cap, 5));
      }),
    );
  });
});

describe('waitingNow and demandLevel: a queue counts while the pool is full', () => {
  it.each([
    ['full (48 of 48): the waiters count', 48, 48, 30],
    ['full within a handoff (44 of 48, at least 90 %): the waiters count', 44, 48, 30],
    ['free capacity (20 of 48): a past queue, none waits now', 20, 48, 0],
    ['capacity unknown: the window counts', 20, undefined, 30],
  ] as const)('%s', (_name, inUse, capacity, waiting) => {
    const reading = demand({ inUse, typical: inUse, floor: 10, waiters: 30 });
    if (!reading.valid) throw new Error('fixture');
    expect(waitingNow(reading.demand, capacity)).toBe(waiting);
    expect(demandLevel(reading, capacity)).toBe(inUse + waiting);
  });

  it('is undefined when the demand was not read', () => {
    expect(demandLevel(undefined, 48)).toBeUndefined();
    expect(demandLevel({ valid: false, problem: 'NoData', message: 'no series' }, 48)).toBeUndefined();
  });
});

describe('split', () => {
  it.each([
    { capacity: 48, wanted: 5, pool: 5, overflow: 43 },
    { capacity: 48, wanted: 60, pool: 40, overflow: 8 },
    { capacity: 130, wanted: 10, pool: 40, overflow: 80 },
    { capacity: 3, wanted: 10, pool: 5, overflow: 0 },
  ])('capacity $capacity with poolSize wanted $wanted → $pool + $overflow', ({ capacity, wanted, pool, overflow }) => {
    expect(split(capacity, wanted, { min: 5, max: 40 }, { min: 0, max: 80 })).toEqual({ pool, overflow });
  });
});

describe('decideShareFill (Redis maxConnections)', () => {
  const base: ShareFillInput = {
    now: new Date(NOW_MS),
    unit: 'process',
    current: 10,
    bounds: { min: 10, max: 50 },
    budget: { kind: 'cap', backend: 'Redis', cap: 50, needs: 100, free: 9900, minimumsFit: true },
    sample: { valid: true, percent: 3, sampledAt: ago(SECOND) },
    intervalMs: 5 * SECOND,
    minChangeIntervalMs: 5 * SECOND,
    lastChangeAt: undefined,
    rolloutCompletedAt: new Date(0),
  };
  it.each<{ name: string; input: ShareFillInput; value: number; reason: FillReason }>([
    {
      name: 'fills to the share in one change, whatever utilization says',
      input: base,
      value: 50,
      reason: 'FilledToBudget',
    },
    { name: 'at the share: hold', input: { ...base, current: 50 }, value: 50, reason: 'DeadBand' },
    {
      name: 'growth waits for the minimum interval',
      input: { ...base, lastChangeAt: ago(SECOND) },
      value: 10,
      reason: 'MinIntervalNotElapsed',
    },
    {
      name: 'over a smaller share: down at once, interval or not',
      input: {
        ...base,
        current: 50,
        lastChangeAt: ago(SECOND),
        budget: { ...base.budget, kind: 'cap', cap: 20 } as SectionBudget,
      },
      value: 20,
      reason: 'BudgetCorrection',
    },
    {
      name: "over the share only for a peer's old pools (limit and fair share still allow it): held, not cut",
      input: {
        ...base,
        current: 50,
        budget: { ...base.budget, kind: 'cap', cap: 20, fair: 60, limit: 50 } as SectionBudget,
      },
      value: 50,
      reason: 'DeadBand',
    },
    {
      name: 'over the share for transient connections but above max: down to max, not to the transient cap',
      input: {
        ...base,
        current: 60,
        budget: { ...base.budget, kind: 'cap', cap: 20, fair: 60, limit: 60 } as SectionBudget,
      },
      value: 50,
      reason: 'AtMax',
    },
    {
      name: 'over the steady limit: down to it, not to the transient cap',
      input: {
        ...base,
        current: 50,
        budget: { ...base.budget, kind: 'cap', cap: 20, fair: 60, limit: 30 } as SectionBudget,
      },
      value: 30,
      reason: 'BudgetCorrection',
    },
    {
      name: 'a share below min is held at min',
      input: { ...base, budget: { ...base.budget, kind: 'cap', cap: 4 } as SectionBudget },
      value: 10,
      reason: 'DeadBand',
    },
    {
      name: 'invalid samples hold',
      input: { ...base, sample: { valid: false, problem: 'NoData', message: 'none' } },
      value: 10,
      reason: 'MetricsUnavailable',
    },
    {
      name: 'a rollout in progress holds',
      input: { ...base, rolloutCompletedAt: undefined },
      value: 10,
      reason: 'RolloutInProgress',
    },
    {
      name: 'an unknown budget holds',
      input: {
        ...base,
        budget: { kind: 'unknown', reason: 'BudgetNotFound', message: 'ConnectionBudget b not found' },
      },
      value: 10,
      reason: 'BudgetNotFound',
    },
  ])('$name', ({ input: given, value, reason }) => {
    const decision = decideShareFill(given);
    expect({ value: decision.pool, reason: decision.reason }).toEqual({ value, reason });
  });
});

describe('decideFill with spec.behavior.scaleUp / scaleDown', () => {
  /** The behavior a parsed spec hands the law (block windows already folded into the window fields). */
  const behaviorOf = (raw: Record<string, unknown>): FillInput['behavior'] => {
    const parsed = parsePoolPolicySpec({
      targetRef: { name: 'api' },
      redis: { maxConnections: { min: 1, max: 2 } },
      behavior: { minChangeInterval: '5s', ...raw },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    return parsed.spec.behavior;
  };
  const growing = { ...at48(5), demand: demand({ inUse: 12, typical: 10 }), breach: breach('up', 11 * SECOND) };

  it("the scaleUp block's stabilizationWindow is the poolSize window: 11 s of 30 s is still Stabilizing", () => {
    expect(
      decideFill(input({ ...growing, behavior: behaviorOf({ scaleUp: { stabilizationWindow: '30s' } }) })).reason,
    ).toBe('Stabilizing');
    expect(
      decideFill(input({ ...growing, behavior: behaviorOf({ scaleUp: { stabilizationWindow: '10s' } }) })).reason,
    ).toBe('PoolFollowsDemand');
  });

  it('selectPolicy and policies do not apply to FillToBudget: poolSize still follows demand in one move', () => {
    const decision = decideFill(
      input({
        ...growing,
        behavior: behaviorOf({
          scaleUp: {
            stabilizationWindow: '10s',
            selectPolicy: 'Disabled',
            policies: [{ type: 'Connections', value: 1, period: '1h' }],
          },
        }),
      }),
    );
    expect({ pool: decision.pool, reason: decision.reason }).toEqual({ pool: 10, reason: 'PoolFollowsDemand' });
  });
});
