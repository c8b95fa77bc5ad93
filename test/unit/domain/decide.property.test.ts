import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  clamp,
  decide,
  type Behavior,
  type Bounds,
  type Breach,
  type DecisionInput,
  type LimitReason,
  type MetricsProblem,
  type Thresholds,
  type UtilizationSample,
} from '../../../src/domain/decide.js';
import type { DirectionRules, ScalingPolicy, SelectPolicy } from '../../../src/domain/scaling-rules.js';

const HOUR = 3_600_000;

const boundsArb: fc.Arbitrary<Bounds> = fc
  .integer({ min: 1, max: 500 })
  .chain((min) => fc.record({ min: fc.constant(min), max: fc.integer({ min, max: min + 500 }) }));

/** scaleDownBelow < target < scaleUpAbove <= 100, integer or fractional percents. */
const thresholdsArb: fc.Arbitrary<Thresholds> = fc
  .tuple(
    fc.double({ min: 0, max: 100, noNaN: true }),
    fc.double({ min: 0, max: 100, noNaN: true }),
    fc.integer({ min: 0, max: 100 }),
  )
  .map((values) => [...values].sort((a, b) => a - b))
  .filter(([low, mid, high]) => low !== undefined && mid !== undefined && high !== undefined && low < mid && mid < high)
  .map(([low = 0, mid = 0, high = 0]) => ({ scaleDownBelow: low, target: mid, scaleUpAbove: high }));

const behaviorArb: fc.Arbitrary<Behavior> = fc.record({
  maxStepPercent: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.double({ min: 1, max: 100, noNaN: true })),
  scaleUpStabilizationMs: fc.integer({ min: 0, max: 2 * HOUR }),
  scaleDownStabilizationMs: fc.integer({ min: 0, max: 2 * HOUR }),
  minChangeIntervalMs: fc.integer({ min: 0, max: 2 * HOUR }),
});

const problemArb = fc.constantFrom<MetricsProblem>(
  'QueryFailed',
  'NoData',
  'NaN',
  'Infinite',
  'MultipleSeries',
  'Stale',
);

/** Mostly usable readings, plus the ways a reading can be unusable: flagged, non-finite or stale. */
function sampleArb(nowMs: number, intervalMs: number): fc.Arbitrary<UtilizationSample> {
  const at = (ageMs: number): Date => new Date(nowMs - ageMs);
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        valid: fc.constant(true as const),
        percent: fc.double({ min: 0, max: 300, noNaN: true }),
        sampledAt: fc.integer({ min: 0, max: 2 * intervalMs }).map(at),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ valid: fc.constant(false as const), problem: problemArb, message: fc.string() }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        valid: fc.constant(true as const),
        percent: fc.constantFrom(Number.NaN, Infinity, -Infinity),
        sampledAt: fc.constant(at(0)),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        valid: fc.constant(true as const),
        percent: fc.double({ min: 0, max: 300, noNaN: true }),
        sampledAt: fc.integer({ min: 2 * intervalMs + 1, max: 3 * HOUR }).map(at),
      }),
    },
  );
}

/**
 * How long before now something happened: often within a few intervals, where
 * the gap, staleness and rollout rules interact, otherwise up to 3h back.
 */
function agoArb(intervalMs: number): fc.Arbitrary<number> {
  return fc.oneof(fc.integer({ min: 0, max: 3 * intervalMs }), fc.integer({ min: 0, max: 3 * HOUR }));
}

/** Persisted breaches as decide writes them: since <= lastSeen <= now. */
function breachArb(nowMs: number, intervalMs: number): fc.Arbitrary<Breach | undefined> {
  return fc.option(
    fc
      .tuple(fc.constantFrom<Breach['direction']>('up', 'down'), agoArb(intervalMs), agoArb(intervalMs))
      .map(([direction, a, b]) => ({
        direction,
        since: new Date(nowMs - Math.max(a, b)),
        lastSeen: new Date(nowMs - Math.min(a, b)),
      })),
    { nil: undefined },
  );
}

const inputArb: fc.Arbitrary<DecisionInput> = fc
  .record({
    nowMs: fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
    bounds: boundsArb,
    thresholds: thresholdsArb,
    behavior: behaviorArb,
    intervalMs: fc.integer({ min: 1000, max: 600_000 }),
  })
  .chain(({ nowMs, bounds, thresholds, behavior, intervalMs }) =>
    fc.record({
      now: fc.constant(new Date(nowMs)),
      current: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: bounds.min, max: bounds.max }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: bounds.max * 3 }) },
      ),
      bounds: fc.constant(bounds),
      thresholds: fc.constant(thresholds),
      behavior: fc.constant(behavior),
      intervalMs: fc.constant(intervalMs),
      sample: sampleArb(nowMs, intervalMs),
      breach: breachArb(nowMs, intervalMs),
      lastChangeAt: fc.option(
        agoArb(intervalMs).map((ago) => new Date(nowMs - ago)),
        { nil: undefined },
      ),
      rolloutCompletedAt: fc.oneof(
        fc.constant(undefined),
        fc.constant(new Date(0)),
        agoArb(intervalMs).map((ago) => new Date(nowMs - ago)),
      ),
    }),
  );

const inBounds = (value: number, bounds: Bounds): boolean => value >= bounds.min && value <= bounds.max;

/** An independent statement of the step limit: maxStepPercent of current, rounded down, at least 1. */
const allowedStep = (current: number, maxStepPercent: number): number =>
  Math.max(1, Math.floor((current * maxStepPercent) / 100));

/** A usable reading per the contract: flagged valid, finite, at most 2 x interval old. */
function usablePercent(input: DecisionInput): number | undefined {
  const { sample } = input;
  if (!sample.valid || !Number.isFinite(sample.percent)) return undefined;
  if (input.now.getTime() - sample.sampledAt.getTime() > 2 * input.intervalMs) return undefined;
  return sample.percent;
}

const HOLDING_REASONS: readonly LimitReason[] = [
  'MetricsUnavailable',
  'DeadBand',
  'Stabilizing',
  'RolloutInProgress',
  'MinIntervalNotElapsed',
];

describe('decide properties', () => {
  it('returns an integer', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        expect(Number.isInteger(decide(input).desired)).toBe(true);
      }),
    );
  });

  it('keeps desired within [min, max] whenever current is', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        fc.pre(inBounds(input.current, input.bounds));
        expect(inBounds(decide(input).desired, input.bounds)).toBe(true);
      }),
    );
  });

  it('moves a value at most max(1, maxStepPercent of current) unless correcting bounds', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        fc.pre(inBounds(input.current, input.bounds));
        const { desired } = decide(input);
        expect(Math.abs(desired - input.current)).toBeLessThanOrEqual(
          allowedStep(input.current, input.behavior.maxStepPercent),
        );
      }),
    );
  });

  it('corrects a value outside bounds only to the nearest bound, or holds it', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        fc.pre(!inBounds(input.current, input.bounds));
        const { desired, reason } = decide(input);
        expect([input.current, clamp(input.current, input.bounds)]).toContain(desired);
        if (desired !== input.current) expect(reason).toBe(input.current > input.bounds.max ? 'AtMax' : 'AtMin');
      }),
    );
  });

  it('never changes the value, nor touches the breach, on an invalid, non-finite or stale sample', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        fc.pre(usablePercent(input) === undefined);
        const decision = decide(input);
        expect(decision.desired).toBe(input.current);
        expect(decision.reason).toBe('MetricsUnavailable');
        expect(decision.breach).toBe(input.breach);
      }),
    );
  });

  it('never grows unless utilization is above scaleUpAbove or current is below min, and never shrinks unless below scaleDownBelow or above max', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { desired } = decide(input);
        const percent = usablePercent(input);
        if (desired > input.current) {
          expect(
            input.current < input.bounds.min || (percent !== undefined && percent > input.thresholds.scaleUpAbove),
          ).toBe(true);
        }
        if (desired < input.current) {
          expect(
            input.current > input.bounds.max || (percent !== undefined && percent < input.thresholds.scaleDownBelow),
          ).toBe(true);
        }
      }),
    );
  });

  it('holds during a rollout and within the minimum change interval (bounds correction aside)', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { desired } = decide(input);
        if (input.rolloutCompletedAt === undefined) expect(desired).toBe(input.current);
        const sinceChange =
          input.lastChangeAt === undefined ? Infinity : input.now.getTime() - input.lastChangeAt.getTime();
        if (inBounds(input.current, input.bounds) && sinceChange < input.behavior.minChangeIntervalMs) {
          expect(desired).toBe(input.current);
        }
      }),
    );
  });

  it('reports a reason that matches what happened', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { desired, reason, message } = decide(input);
        if (HOLDING_REASONS.includes(reason)) expect(desired).toBe(input.current);
        if (reason === 'Scaled' || reason === 'StepLimited') expect(desired).not.toBe(input.current);
        if (reason === 'AtMax') expect(desired).toBe(input.bounds.max);
        if (reason === 'AtMin') expect(desired).toBe(input.bounds.min);
        expect(message.length).toBeGreaterThan(0);
      }),
    );
  });

  it('resets the breach on every change and otherwise tracks it up to now, never from before the rollout', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { desired, reason, breach } = decide(input);
        if (desired !== input.current) expect(breach).toBeUndefined();
        if (reason === 'MetricsUnavailable' || breach === undefined) return;
        // A tracked breach implies the rollout gate passed.
        expect(input.rolloutCompletedAt).toBeDefined();
        expect(breach.lastSeen.getTime()).toBe(input.now.getTime());
        expect(breach.since.getTime()).toBeLessThanOrEqual(input.now.getTime());
        expect(breach.since.getTime()).toBeGreaterThanOrEqual(input.rolloutCompletedAt?.getTime() ?? 0);
      }),
    );
  });

  it('is deterministic and does not mutate its input', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const before = structuredClone(input);
        const first = decide(input);
        expect(decide(input)).toEqual(first);
        expect(input).toEqual(before);
      }),
    );
  });

  it('under constant load moves monotonically, one way only, and stays within bounds', () => {
    fc.assert(
      fc.property(
        inputArb,
        fc.double({ min: 0, max: 300, noNaN: true }),
        fc.integer({ min: 1, max: 60 }),
        (initial, percent, evaluations) => {
          fc.pre(inBounds(initial.current, initial.bounds));
          let current = initial.current;
          let breach = initial.breach;
          let lastChangeAt = initial.lastChangeAt;
          let rolloutCompletedAt = initial.rolloutCompletedAt ?? initial.now;
          const direction =
            percent > initial.thresholds.scaleUpAbove ? 1 : percent < initial.thresholds.scaleDownBelow ? -1 : 0;
          for (let i = 0; i < evaluations; i++) {
            const now = new Date(initial.now.getTime() + i * initial.intervalMs);
            const decision = decide({
              ...initial,
              now,
              current,
              breach,
              lastChangeAt,
              rolloutCompletedAt,
              sample: { valid: true, percent, sampledAt: now },
            });
            expect(Math.sign(decision.desired - current) * direction).toBeGreaterThanOrEqual(0);
            if (direction === 0) expect(decision.desired).toBe(current);
            expect(inBounds(decision.desired, initial.bounds)).toBe(true);
            breach = decision.breach;
            if (decision.desired !== current) {
              current = decision.desired;
              lastChangeAt = now;
              rolloutCompletedAt = now;
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('decide properties with behavior.scaleUp / scaleDown policies', () => {
  const policyArb: fc.Arbitrary<ScalingPolicy> = fc.record({
    type: fc.constantFrom<ScalingPolicy['type']>('Percent', 'Connections'),
    value: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 1000 })),
    periodMs: fc.integer({ min: 1000, max: HOUR }),
  });
  const rulesArb: fc.Arbitrary<DirectionRules | undefined> = fc.option(
    fc.record({
      selectPolicy: fc.constantFrom<SelectPolicy>('Max', 'Min', 'Disabled'),
      policies: fc.option(fc.array(policyArb, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    }),
    { nil: undefined },
  );
  const withRulesArb: fc.Arbitrary<DecisionInput> = inputArb
    .filter((i) => inBounds(i.current, i.bounds))
    .chain((i) =>
      fc
        .record({
          scaleUp: rulesArb,
          scaleDown: rulesArb,
          recentChanges: fc.array(
            fc
              .record({
                ago: fc.integer({ min: 0, max: 2 * HOUR }),
                from: fc.integer({ min: 1, max: 1000 }),
                to: fc.integer({ min: 1, max: 1000 }),
              })
              .map(({ ago, from, to }) => ({ at: new Date(i.now.getTime() - ago), from, to })),
            { maxLength: 10 },
          ),
        })
        .map(({ scaleUp, scaleDown, recentChanges }) => ({
          ...i,
          behavior: { ...i.behavior, scaleUp, scaleDown },
          recentChanges,
        })),
    );

  /** An independent statement of one policy's allowance: does moving to `desired` stay within it? */
  function withinPolicy(input: DecisionInput, desired: number, policy: ScalingPolicy): boolean {
    const cutoff = input.now.getTime() - policy.periodMs;
    const made = (input.recentChanges ?? [])
      .filter((c) => c.at.getTime() > cutoff)
      .reduce((sum, c) => sum + c.to - c.from, 0);
    const start = input.current - made;
    if (desired > input.current)
      return (
        desired <= (policy.type === 'Percent' ? Math.ceil((start * (100 + policy.value)) / 100) : start + policy.value)
      );
    return (
      desired >= (policy.type === 'Percent' ? Math.trunc((start * (100 - policy.value)) / 100) : start - policy.value)
    );
  }

  it('stays within [min, max]; a disabled direction never moves; a move keeps within one policy (Max) or every policy (Min)', () => {
    fc.assert(
      fc.property(withRulesArb, (input) => {
        const { desired, reason } = decide(input);
        expect(inBounds(desired, input.bounds)).toBe(true);
        if (desired === input.current) return;
        const rules = desired > input.current ? input.behavior.scaleUp : input.behavior.scaleDown;
        expect(rules?.selectPolicy).not.toBe('Disabled');
        const policies = rules?.policies;
        if (rules === undefined || policies === undefined) {
          expect(Math.abs(desired - input.current)).toBeLessThanOrEqual(
            allowedStep(input.current, input.behavior.maxStepPercent),
          );
          return;
        }
        const fits = policies.map((p) => withinPolicy(input, desired, p));
        expect(rules.selectPolicy === 'Min' ? fits.every(Boolean) : fits.some(Boolean)).toBe(true);
        expect(['Scaled', 'ScaleUpLimit', 'ScaleDownLimit', 'AtMax', 'AtMin']).toContain(reason);
      }),
      { numRuns: 2000 },
    );
  });
});
