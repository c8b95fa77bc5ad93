import { describe, expect, it } from '@jest/globals';
import {
  clamp,
  decide,
  follow,
  maxStepDelta,
  type Breach,
  type Decision,
  type DecisionInput,
  type LimitReason,
  type UtilizationSample,
} from '../../../src/domain/decide.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const NOW_MS = Date.parse('2025-01-01T12:00:00.000Z');
const INTERVAL = 30 * SECOND;

/** A Date `ms` before the fixed NOW. */
const ago = (ms: number): Date => new Date(NOW_MS - ms);

const validSample = (percent: number, age = 10 * SECOND): UtilizationSample => ({
  valid: true,
  percent,
  sampledAt: ago(age),
});

const breachOf = (direction: Breach['direction'], sinceAgo: number, lastSeenAgo = INTERVAL): Breach => ({
  direction,
  since: ago(sinceAgo),
  lastSeen: ago(lastSeenAgo),
});

/**
 * Bounds 5..50, dead band 30%..80% around a 70% target, 20% steps, 5m up /
 * 10m down windows, 5m between changes, 30s interval. Utilization 50% (in
 * band), no breach, no previous change, rollout completed long ago.
 */
function input(overrides: Partial<DecisionInput> = {}): DecisionInput {
  return {
    now: new Date(NOW_MS),
    current: 20,
    bounds: { min: 5, max: 50 },
    thresholds: { scaleUpAbove: 80, scaleDownBelow: 30, target: 70 },
    behavior: {
      maxStepPercent: 20,
      scaleUpStabilizationMs: 5 * MINUTE,
      scaleDownStabilizationMs: 10 * MINUTE,
      minChangeIntervalMs: 5 * MINUTE,
    },
    intervalMs: INTERVAL,
    sample: validSample(50),
    breach: undefined,
    lastChangeAt: undefined,
    rolloutCompletedAt: new Date(0),
    ...overrides,
  };
}

interface Case {
  readonly name: string;
  readonly given: Partial<DecisionInput>;
  readonly desired: number;
  readonly reason: LimitReason;
  /** Exact message, or a fragment it must contain. */
  readonly message: string | RegExp;
  /** 'unchanged' = the very breach passed in; otherwise the expected next breach. */
  readonly breach: Breach | undefined | 'unchanged';
}

function expectDecision(c: Case): void {
  const given = input(c.given);
  const decision: Decision = decide(given);
  expect(decision.desired).toBe(c.desired);
  expect(decision.reason).toBe(c.reason);
  if (typeof c.message === 'string') expect(decision.message).toBe(c.message);
  else expect(decision.message).toMatch(c.message);
  if (c.breach === 'unchanged') expect(decision.breach).toBe(given.breach);
  else expect(decision.breach).toEqual(c.breach);
}

const longUpBreach = breachOf('up', 30 * MINUTE);
const longDownBreach = breachOf('down', 30 * MINUTE);

describe('decide, stage 1: sample validity', () => {
  it.each<Case>([
    {
      name: 'QueryFailed holds and keeps the breach as it was',
      given: { sample: { valid: false, problem: 'QueryFailed', message: 'HTTP 503' }, breach: longUpBreach },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (QueryFailed): HTTP 503; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'an empty result is never read as 0 utilization, even after a long down breach',
      given: {
        sample: { valid: false, problem: 'NoData', message: 'query returned no series' },
        breach: longDownBreach,
      },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (NoData): query returned no series; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'MultipleSeries holds with no breach to keep',
      given: { sample: { valid: false, problem: 'MultipleSeries', message: '3 series' } },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: /\(MultipleSeries\): 3 series/,
      breach: undefined,
    },
    {
      name: 'a "valid" NaN reading is rechecked and held',
      given: { sample: validSample(Number.NaN), breach: longDownBreach },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (NaN): utilization is NaN; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'a "valid" +Infinity reading is rechecked and held',
      given: { sample: validSample(Number.POSITIVE_INFINITY), breach: longUpBreach },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (Infinite): utilization is Infinity; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'a "valid" -Infinity reading is rechecked and held',
      given: { sample: validSample(Number.NEGATIVE_INFINITY) },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: /\(Infinite\): utilization is -Infinity/,
      breach: undefined,
    },
    {
      name: 'a sample older than 2 x interval is Stale',
      given: { sample: validSample(10, 2 * INTERVAL + SECOND), breach: longDownBreach },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (Stale): sample is 1m1s old, older than 2 x the 30s interval; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'a sample exactly 2 x interval old still counts',
      given: { sample: validSample(50, 2 * INTERVAL) },
      desired: 20,
      reason: 'DeadBand',
      message: /^utilization 50% is within/,
      breach: undefined,
    },
    {
      name: 'a sample with an invalid timestamp is Stale',
      given: { sample: { valid: true, percent: 95, sampledAt: new Date(Number.NaN) }, breach: longUpBreach },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: 'metrics unavailable (Stale): sample has no valid timestamp; holding at 20',
      breach: 'unchanged',
    },
    {
      name: 'an invalid sample holds even a value outside bounds',
      given: { current: 80, sample: { valid: false, problem: 'NoData', message: 'no series' } },
      desired: 80,
      reason: 'MetricsUnavailable',
      message: /holding at 80$/,
      breach: undefined,
    },
    {
      name: 'an invalid sample during a rollout reports the metrics problem and keeps the breach',
      given: {
        sample: { valid: false, problem: 'QueryFailed', message: 'timeout' },
        rolloutCompletedAt: undefined,
        breach: longUpBreach,
      },
      desired: 20,
      reason: 'MetricsUnavailable',
      message: /\(QueryFailed\): timeout/,
      breach: 'unchanged',
    },
  ])('$name', expectDecision);
});

describe('decide, stages 1-2: rollout gating', () => {
  it.each<Case>([
    {
      name: 'a rollout still in progress holds and resets the breach',
      given: { sample: validSample(95), breach: longUpBreach, rolloutCompletedAt: undefined },
      desired: 20,
      reason: 'RolloutInProgress',
      message: 'previous rollout still in progress; holding at 20',
      breach: undefined,
    },
    {
      name: 'a rollout in progress holds even a value outside bounds',
      given: { current: 2, rolloutCompletedAt: undefined },
      desired: 2,
      reason: 'RolloutInProgress',
      message: 'previous rollout still in progress; holding at 2',
      breach: undefined,
    },
    {
      name: 'a sample taken before the rollout completed does not count',
      given: { sample: validSample(95, 10 * SECOND), breach: longUpBreach, rolloutCompletedAt: ago(5 * SECOND) },
      desired: 20,
      reason: 'RolloutInProgress',
      message: 'samples predate the rollout (sample taken 5s before it completed); holding at 20',
      breach: undefined,
    },
    {
      name: 'a sample taken exactly when the rollout completed counts',
      given: { sample: validSample(50, 10 * SECOND), rolloutCompletedAt: ago(10 * SECOND) },
      desired: 20,
      reason: 'DeadBand',
      message: /^utilization 50% is within/,
      breach: undefined,
    },
  ])('$name', expectDecision);
});

describe('decide, stage 3: current outside bounds', () => {
  it.each<Case>([
    {
      name: 'above max is corrected to max at once, whatever the utilization',
      given: { current: 80, sample: validSample(50), breach: longUpBreach },
      desired: 50,
      reason: 'AtMax',
      message: 'current 80 is outside bounds [5, 50]; corrected to max 50',
      breach: undefined,
    },
    {
      name: 'above max with low utilization is corrected in one move, not step-limited',
      given: { current: 200, sample: validSample(5) },
      desired: 50,
      reason: 'AtMax',
      message: 'current 200 is outside bounds [5, 50]; corrected to max 50',
      breach: undefined,
    },
    {
      name: 'below min is corrected to min even right after a change (no min interval)',
      given: { current: 2, sample: validSample(95), lastChangeAt: ago(10 * SECOND) },
      desired: 5,
      reason: 'AtMin',
      message: 'current 2 is outside bounds [5, 50]; corrected to min 5',
      breach: undefined,
    },
    {
      name: 'zero is corrected to min',
      given: { current: 0, sample: validSample(10) },
      desired: 5,
      reason: 'AtMin',
      message: 'current 0 is outside bounds [5, 50]; corrected to min 5',
      breach: undefined,
    },
  ])('$name', expectDecision);
});

describe('decide, stage 4: dead band', () => {
  it.each<Case>([
    {
      name: 'inside the band holds and resets an existing breach',
      given: { sample: validSample(50), breach: longUpBreach },
      desired: 20,
      reason: 'DeadBand',
      message: 'utilization 50% is within 30%..80%; holding at 20',
      breach: undefined,
    },
    {
      name: 'scaleUpAbove itself is inside the band',
      given: { sample: validSample(80), breach: longUpBreach },
      desired: 20,
      reason: 'DeadBand',
      message: /^utilization 80% is within/,
      breach: undefined,
    },
    {
      name: 'scaleDownBelow itself is inside the band',
      given: { sample: validSample(30), breach: longDownBreach },
      desired: 20,
      reason: 'DeadBand',
      message: /^utilization 30% is within/,
      breach: undefined,
    },
    {
      name: 'fractional utilization is shown with at most two decimals',
      given: { sample: validSample(55.5555) },
      desired: 20,
      reason: 'DeadBand',
      message: 'utilization 55.56% is within 30%..80%; holding at 20',
      breach: undefined,
    },
  ])('$name', expectDecision);
});

describe('decide, stage 5: breach tracking and stabilization', () => {
  it.each<Case>([
    {
      name: 'a first breach starts at the sample time',
      given: { sample: validSample(86, 10 * SECOND) },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 86% > 80% for 10s of 5m0s',
      breach: { direction: 'up', since: ago(10 * SECOND), lastSeen: ago(0) },
    },
    {
      name: 'a continued breach keeps its start and moves lastSeen to now',
      given: { sample: validSample(86), breach: breachOf('up', 2 * MINUTE) },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 86% > 80% for 2m0s of 5m0s',
      breach: { direction: 'up', since: ago(2 * MINUTE), lastSeen: ago(0) },
    },
    {
      name: 'a gap longer than 2 x interval restarts the window',
      given: { sample: validSample(86, 10 * SECOND), breach: breachOf('up', 10 * MINUTE, 2 * INTERVAL + 1) },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 86% > 80% for 10s of 5m0s',
      breach: { direction: 'up', since: ago(10 * SECOND), lastSeen: ago(0) },
    },
    {
      name: 'a gap of exactly 2 x interval continues the window',
      given: { sample: validSample(82), breach: breachOf('up', 10 * MINUTE, 2 * INTERVAL) },
      desired: 24,
      reason: 'Scaled',
      message: /^utilization 82% > 80% for 10m0s;/,
      breach: undefined,
    },
    {
      name: 'a breach in the other direction restarts the window',
      given: { sample: validSample(90, 10 * SECOND), breach: longDownBreach },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 90% > 80% for 10s of 5m0s',
      breach: { direction: 'up', since: ago(10 * SECOND), lastSeen: ago(0) },
    },
    {
      name: 'scaling down waits for the (longer) down window',
      given: { sample: validSample(20), breach: breachOf('down', 6 * MINUTE) },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 20% < 30% for 6m0s of 10m0s',
      breach: { direction: 'down', since: ago(6 * MINUTE), lastSeen: ago(0) },
    },
    {
      name: 'a continued breach does not reach back before the last rollout',
      given: { sample: validSample(86), breach: breachOf('up', 10 * MINUTE), rolloutCompletedAt: ago(2 * MINUTE) },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 86% > 80% for 2m0s of 5m0s',
      breach: { direction: 'up', since: ago(2 * MINUTE), lastSeen: ago(0) },
    },
    {
      name: 'a sample stamped after now (clock skew) starts the window at now',
      given: { sample: { valid: true, percent: 86, sampledAt: ago(-5 * SECOND) } },
      desired: 20,
      reason: 'Stabilizing',
      message: 'utilization 86% > 80% for 0s of 5m0s',
      breach: { direction: 'up', since: ago(0), lastSeen: ago(0) },
    },
    {
      name: 'a zero window acts on the first breaching sample',
      given: {
        sample: validSample(82),
        behavior: {
          maxStepPercent: 20,
          scaleUpStabilizationMs: 0,
          scaleDownStabilizationMs: 0,
          minChangeIntervalMs: 0,
        },
      },
      desired: 24,
      reason: 'Scaled',
      message: 'utilization 82% > 80% for 10s; scaling toward the 70% target (20→24)',
      breach: undefined,
    },
  ])('$name', expectDecision);
});

describe('decide, stages 6-8 and 10: proposal, step limit, bounds', () => {
  it.each<Case>([
    {
      name: 'an unmodified proportional scale-up is Scaled and resets the breach',
      given: { sample: validSample(82), breach: breachOf('up', 5 * MINUTE) },
      desired: 24, // ceil(20 * 82 / 70) = ceil(23.43)
      reason: 'Scaled',
      message: 'utilization 82% > 80% for 5m0s; scaling toward the 70% target (20→24)',
      breach: undefined,
    },
    {
      name: 'a scale-up beyond maxStepPercent is cut to it (20% of 20 = 4)',
      given: { sample: validSample(86), breach: breachOf('up', 5 * MINUTE) },
      desired: 24, // proportional ceil(24.57) = 25
      reason: 'StepLimited',
      message: 'utilization 86% > 80% for 5m0s; step limited to +20% (20→24 instead of 25)',
      breach: undefined,
    },
    {
      name: 'a small pool moves by 1 when the proportional step is 1',
      given: { current: 3, bounds: { min: 1, max: 50 }, sample: validSample(90), breach: longUpBreach },
      desired: 4, // ceil(3 * 90 / 70) = ceil(3.86)
      reason: 'Scaled',
      message: /\(3→4\)$/,
      breach: undefined,
    },
    {
      name: 'a small pool still moves by 1 when 20% of it rounds down to 0',
      given: { current: 3, bounds: { min: 1, max: 50 }, sample: validSample(100), breach: longUpBreach },
      desired: 4, // proportional ceil(4.29) = 5
      reason: 'StepLimited',
      message: /; step limited to \+1 \(3→4 instead of 5\)$/,
      breach: undefined,
    },
    {
      name: 'utilization above 100% (overflow in use) scales proportionally',
      given: { sample: validSample(150), breach: longUpBreach, behavior: { ...input().behavior, maxStepPercent: 100 } },
      desired: 40, // proportional ceil(42.86) = 43, step limit 20
      reason: 'StepLimited',
      message: /utilization 150% > 80% for 30m0s; step limited to \+100% \(20→40 instead of 43\)$/,
      breach: undefined,
    },
    {
      name: 'a scale-down beyond maxStepPercent is cut to it',
      given: { sample: validSample(20), breach: breachOf('down', 10 * MINUTE) },
      desired: 16, // proportional floor(5.71) = 5
      reason: 'StepLimited',
      message: 'utilization 20% < 30% for 10m0s; step limited to -20% (20→16 instead of 5)',
      breach: undefined,
    },
    {
      name: 'an unmodified proportional scale-down may land exactly on min',
      given: {
        sample: validSample(20),
        breach: longDownBreach,
        behavior: { ...input().behavior, maxStepPercent: 100 },
      },
      desired: 5, // floor(20 * 20 / 70) = 5
      reason: 'Scaled',
      message: 'utilization 20% < 30% for 30m0s; scaling toward the 70% target (20→5)',
      breach: undefined,
    },
    {
      name: 'a small pool shrinks by 1',
      given: { current: 3, bounds: { min: 1, max: 50 }, sample: validSample(10), breach: longDownBreach },
      desired: 2, // proportional floor(0.43) = 0
      reason: 'StepLimited',
      message: /step limited to -1 \(3→2 instead of 0\)$/,
      breach: undefined,
    },
    {
      name: 'a step-limited scale-up past max is capped and reported as AtMax',
      given: { current: 48, sample: validSample(90), breach: longUpBreach },
      desired: 50, // proportional 62, step-limited to 57
      reason: 'AtMax',
      message: 'utilization 90% > 80% for 30m0s; capped at max 50 (48→50 instead of 57)',
      breach: undefined,
    },
    {
      name: 'a scale-down past min is capped and reported as AtMin',
      given: {
        current: 6,
        sample: validSample(10),
        breach: longDownBreach,
        behavior: { ...input().behavior, maxStepPercent: 100 },
      },
      desired: 5, // proportional floor(0.86) = 0
      reason: 'AtMin',
      message: 'utilization 10% < 30% for 30m0s; capped at min 5 (6→5 instead of 0)',
      breach: undefined,
    },
    {
      name: 'already at max holds and keeps tracking the breach',
      given: { current: 50, sample: validSample(95), breach: longUpBreach },
      desired: 50,
      reason: 'AtMax',
      message: 'utilization 95% > 80% for 30m0s; already at max 50',
      breach: { direction: 'up', since: longUpBreach.since, lastSeen: ago(0) },
    },
    {
      name: 'already at min holds and keeps tracking the breach',
      given: { current: 5, sample: validSample(10), breach: longDownBreach },
      desired: 5,
      reason: 'AtMin',
      message: 'utilization 10% < 30% for 30m0s; already at min 5',
      breach: { direction: 'down', since: longDownBreach.since, lastSeen: ago(0) },
    },
  ])('$name', expectDecision);
});

describe('decide, stage 9: minimum change interval', () => {
  it.each<Case>([
    {
      name: 'a change too soon after the last one holds, says what it would do, and keeps the breach',
      given: { sample: validSample(86), breach: breachOf('up', 5 * MINUTE), lastChangeAt: ago(MINUTE) },
      desired: 20,
      reason: 'MinIntervalNotElapsed',
      message:
        'utilization 86% > 80% for 5m0s; step limited to +20% (20→24 instead of 25), but the last change was 1m0s ago; ' +
        'holding until the 5m0s minimum interval elapses (4m0s left)',
      breach: { direction: 'up', since: ago(5 * MINUTE), lastSeen: ago(0) },
    },
    {
      name: '1ms short of the minimum interval still holds',
      given: { sample: validSample(82), breach: breachOf('up', 5 * MINUTE), lastChangeAt: ago(5 * MINUTE - 1) },
      desired: 20,
      reason: 'MinIntervalNotElapsed',
      message: /last change was 4m59.999s ago; holding until the 5m0s minimum interval elapses \(1ms left\)$/,
      breach: { direction: 'up', since: ago(5 * MINUTE), lastSeen: ago(0) },
    },
    {
      name: 'exactly the minimum interval after the last change may change again',
      given: { sample: validSample(82), breach: breachOf('up', 5 * MINUTE), lastChangeAt: ago(5 * MINUTE) },
      desired: 24,
      reason: 'Scaled',
      message: /\(20→24\)$/,
      breach: undefined,
    },
    {
      name: 'already at the bound is reported before the interval',
      given: { current: 50, sample: validSample(95), breach: longUpBreach, lastChangeAt: ago(SECOND) },
      desired: 50,
      reason: 'AtMax',
      message: /already at max 50$/,
      breach: { direction: 'up', since: longUpBreach.since, lastSeen: ago(0) },
    },
    {
      name: 'a sub-minute remainder is formatted like Go (1m30.5s)',
      given: { sample: validSample(20), breach: longDownBreach, lastChangeAt: ago(3 * MINUTE + 29_500) },
      desired: 20,
      reason: 'MinIntervalNotElapsed',
      message: /last change was 3m29.5s ago; holding until the 5m0s minimum interval elapses \(1m30.5s left\)$/,
      breach: { direction: 'down', since: longDownBreach.since, lastSeen: ago(0) },
    },
  ])('$name', expectDecision);
});

interface Step {
  readonly at: number;
  readonly from: number;
  readonly to: number;
  readonly reason: LimitReason;
}

/**
 * Runs the decision every interval for `durationMs` against a sample source,
 * persisting the breach and lastChangeAt like the controller does. A rollout
 * is taken to complete the moment a change is made.
 */
function simulate(start: number, durationMs: number, sampleAt: (nowMs: number) => UtilizationSample): Step[] {
  const steps: Step[] = [];
  let current = start;
  let breach: Breach | undefined;
  let lastChangeAt: Date | undefined;
  let rolloutCompletedAt = new Date(0);
  for (let t = NOW_MS; t <= NOW_MS + durationMs; t += INTERVAL) {
    const now = new Date(t);
    const decision = decide(input({ now, current, sample: sampleAt(t), breach, lastChangeAt, rolloutCompletedAt }));
    breach = decision.breach;
    if (decision.desired !== current) {
      steps.push({ at: t - NOW_MS, from: current, to: decision.desired, reason: decision.reason });
      current = decision.desired;
      lastChangeAt = now;
      rolloutCompletedAt = now;
    }
  }
  return steps;
}

const constantUtilization =
  (percent: number) =>
  (nowMs: number): UtilizationSample => ({ valid: true, percent, sampledAt: new Date(nowMs - 5 * SECOND) });

describe('decide, closed loop', () => {
  it.each([
    { percent: 90, start: 20, values: [24, 28, 33, 39, 46, 50], last: 'AtMax' },
    { percent: 100, start: 40, values: [48, 50], last: 'AtMax' },
  ])(
    '$percent% held above scaleUpAbove grows at most 20% per change, never above max',
    ({ percent, start, values, last }) => {
      const steps = simulate(start, 3 * 60 * MINUTE, constantUtilization(percent));
      expect(steps.map((s) => s.to)).toEqual(values);
      // The first breaching sample is taken 5s before the first evaluation, so the 5m window is met at the evaluation 5m later.
      expect(steps[0]?.at).toBe(5 * MINUTE);
      for (const [i, step] of steps.entries()) {
        expect(step.to - step.from).toBeGreaterThan(0);
        expect(step.to - step.from).toBeLessThanOrEqual(maxStepDelta(step.from, 20));
        expect(step.to).toBeLessThanOrEqual(50);
        const previous = steps[i - 1];
        if (previous !== undefined) expect(step.at - previous.at).toBeGreaterThanOrEqual(5 * MINUTE);
      }
      expect(steps.at(-1)?.reason).toBe(last);
    },
  );

  it.each([
    { percent: 20, start: 40, values: [32, 26, 21, 17, 14, 12, 10, 8, 7, 6, 5] },
    { percent: 0, start: 7, values: [6, 5] },
  ])(
    '$percent% held below scaleDownBelow shrinks only after the down window, never below min',
    ({ percent, start, values }) => {
      const steps = simulate(start, 4 * 60 * MINUTE, constantUtilization(percent));
      expect(steps.map((s) => s.to)).toEqual(values);
      expect(steps[0]?.at).toBe(10 * MINUTE);
      for (const [i, step] of steps.entries()) {
        expect(step.from - step.to).toBeGreaterThan(0);
        expect(step.from - step.to).toBeLessThanOrEqual(maxStepDelta(step.from, 20));
        expect(step.to).toBeGreaterThanOrEqual(5);
        const previous = steps[i - 1];
        if (previous !== undefined) expect(step.at - previous.at).toBeGreaterThanOrEqual(10 * MINUTE);
      }
    },
  );

  it.each<{ name: string; sample: (nowMs: number) => UtilizationSample }>([
    { name: 'NaN', sample: (t) => ({ valid: true, percent: Number.NaN, sampledAt: new Date(t) }) },
    { name: 'empty result', sample: () => ({ valid: false, problem: 'NoData', message: 'no series' }) },
    {
      name: 'stale low reading',
      sample: (t) => ({ valid: true, percent: 0, sampledAt: new Date(t - 2 * INTERVAL - 1) }),
    },
    { name: 'query failure', sample: () => ({ valid: false, problem: 'QueryFailed', message: 'connection refused' }) },
  ])('$name for hours never changes the value', ({ sample }) => {
    expect(simulate(20, 3 * 60 * MINUTE, sample)).toEqual([]);
  });

  it('a brief dip into the dead band restarts the window', () => {
    const dipAt = NOW_MS + 4 * MINUTE;
    const steps = simulate(20, 15 * MINUTE, (t) => ({
      valid: true,
      percent: t === dipAt ? 50 : 90,
      sampledAt: new Date(t - 5 * SECOND),
    }));
    expect(steps[0]).toEqual({ at: 4 * MINUTE + INTERVAL + 5 * MINUTE, from: 20, to: 24, reason: 'StepLimited' });
  });
});

describe('maxStepDelta', () => {
  it.each([
    { current: 20, percent: 20, delta: 4 },
    { current: 3, percent: 20, delta: 1 },
    { current: 24, percent: 20, delta: 4 }, // 4.8 rounds down: the percentage is never exceeded
    { current: 1, percent: 100, delta: 1 },
    { current: 7, percent: 100, delta: 7 },
    { current: 10, percent: 1, delta: 1 },
  ])('$percent% of $current allows $delta', ({ current, percent, delta }) => {
    expect(maxStepDelta(current, percent)).toBe(delta);
  });
});

describe('clamp', () => {
  it.each([
    { value: 3, expected: 5 },
    { value: 5, expected: 5 },
    { value: 20, expected: 20 },
    { value: 50, expected: 50 },
    { value: 51, expected: 50 },
  ])('clamps $value into [5, 50] as $expected', ({ value, expected }) => {
    expect(clamp(value, { min: 5, max: 50 })).toBe(expected);
  });
});

describe('follow', () => {
  it.each([
    { leader: 20, ratio: 0.5, expected: 10 },
    { leader: 21, ratio: 0.5, expected: 11 }, // 10.5 rounds half up
    { leader: 20, ratio: 0.1, expected: 2 },
    { leader: 20, ratio: 0.01, expected: 1 }, // 0.2 rounds to 0, clamped to min 1
    { leader: 200, ratio: 0.5, expected: 30 }, // 100 clamped to max 30
  ])('$leader x $ratio in [1, 30] is $expected', ({ leader, ratio, expected }) => {
    expect(follow(leader, ratio, { min: 1, max: 30 })).toBe(expected);
  });
});

describe('decide, stage 7 with behavior.scaleUp / scaleDown policies (HPA-style rate limit)', () => {
  const percentPolicy = (value: number, periodMs = MINUTE) => ({ type: 'Percent' as const, value, periodMs });
  const connectionsPolicy = (value: number, periodMs = MINUTE) => ({ type: 'Connections' as const, value, periodMs });
  const base = input().behavior;
  const UP = { sample: validSample(200), breach: breachOf('up', 6 * MINUTE) };
  const DOWN = { sample: validSample(10), breach: breachOf('down', 11 * MINUTE) };
  const upBreach: Breach = { direction: 'up', since: ago(6 * MINUTE), lastSeen: new Date(NOW_MS) };
  const downBreach: Breach = { direction: 'down', since: ago(11 * MINUTE), lastSeen: new Date(NOW_MS) };
  const twoPolicies = [percentPolicy(100), connectionsPolicy(4)];

  it.each<Case>([
    {
      name: 'Max of two policies: Percent 100 % (20→40) allows more than Connections 4, and binds',
      given: { ...UP, behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: twoPolicies } } },
      desired: 40,
      reason: 'ScaleUpLimit',
      message:
        /scale-up limited by policy Percent 100% per 1m0s \(selectPolicy Max; from 20, nothing changed yet in the period\) \(20→40 instead of 58\)$/,
      breach: undefined,
    },
    {
      name: 'Min of the same two policies: Connections 4 (20→24) binds',
      given: { ...UP, behavior: { ...base, scaleUp: { selectPolicy: 'Min', policies: twoPolicies } } },
      desired: 24,
      reason: 'ScaleUpLimit',
      message: /scale-up limited by policy Connections 4 per 1m0s \(selectPolicy Min; .*\) \(20→24 instead of 58\)$/,
      breach: undefined,
    },
    {
      name: 'a proposal within what the policies allow is applied unmodified',
      given: {
        sample: validSample(95),
        breach: breachOf('up', 6 * MINUTE),
        behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: twoPolicies } },
      },
      desired: 28,
      reason: 'Scaled',
      message: /scaling toward the 70% target \(20→28\)$/,
      breach: undefined,
    },
    {
      name: 'selectPolicy Disabled forbids growth: hold, keeping the breach',
      given: { ...UP, behavior: { ...base, scaleUp: { selectPolicy: 'Disabled', policies: twoPolicies } } },
      desired: 20,
      reason: 'ScaleUpLimit',
      message:
        /scale-up is disabled by spec\.behavior\.scaleUp\.selectPolicy Disabled: no room for 20→58; holding at 20$/,
      breach: upBreach,
    },
    {
      name: 'scaleUp Disabled leaves scale-down to maxStepPercent',
      given: { ...DOWN, behavior: { ...base, scaleUp: { selectPolicy: 'Disabled', policies: undefined } } },
      desired: 16,
      reason: 'StepLimited',
      message: /step limited to -20% \(20→16 instead of 2\)$/,
      breach: undefined,
    },
    {
      name: 'a change made 30 s ago inside a 60 s period limits the next: 15→20, Connections 6 per 1m allows 21',
      given: {
        ...UP,
        behavior: {
          ...base,
          minChangeIntervalMs: 0,
          scaleUp: { selectPolicy: 'Max', policies: [connectionsPolicy(6)] },
        },
        lastChangeAt: ago(30 * SECOND),
        recentChanges: [{ at: ago(30 * SECOND), from: 15, to: 20 }],
      },
      desired: 21,
      reason: 'ScaleUpLimit',
      message:
        /scale-up limited by policy Connections 6 per 1m0s \(selectPolicy Max; from 15 at the start of the period, \+5 already changed in it\) \(20→21 instead of 58\)$/,
      breach: undefined,
    },
    {
      name: "the period's allowance used up (10→20 30 s ago, Percent 100 per 1m): hold until it moves on",
      given: {
        ...UP,
        behavior: { ...base, minChangeIntervalMs: 0, scaleUp: { selectPolicy: 'Max', policies: [percentPolicy(100)] } },
        lastChangeAt: ago(30 * SECOND),
        recentChanges: [{ at: ago(30 * SECOND), from: 10, to: 20 }],
      },
      desired: 20,
      reason: 'ScaleUpLimit',
      message: /Percent 100% per 1m0s .*: no room for 20→58; holding at 20$/,
      breach: upBreach,
    },
    {
      name: 'the same change 2 min ago is outside the period: the full allowance is back',
      given: {
        ...UP,
        behavior: { ...base, minChangeIntervalMs: 0, scaleUp: { selectPolicy: 'Max', policies: [percentPolicy(100)] } },
        lastChangeAt: ago(2 * MINUTE),
        recentChanges: [{ at: ago(2 * MINUTE), from: 10, to: 20 }],
      },
      desired: 40,
      reason: 'ScaleUpLimit',
      message: /\(20→40 instead of 58\)$/,
      breach: undefined,
    },
    {
      name: 'minChangeInterval still applies on top of the policies',
      given: {
        ...UP,
        behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: twoPolicies } },
        lastChangeAt: ago(MINUTE),
      },
      desired: 20,
      reason: 'MinIntervalNotElapsed',
      message: /scale-up limited by policy Percent 100% per 1m0s .*, but the last change was 1m0s ago/,
      breach: upBreach,
    },
    {
      name: 'a bound tighter than the policy is reported as the bound',
      given: {
        ...UP,
        bounds: { min: 5, max: 30 },
        behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: twoPolicies } },
      },
      desired: 30,
      reason: 'AtMax',
      message: /capped at max 30 \(20→30 instead of 40\)$/,
      breach: undefined,
    },
    {
      name: 'scale-down: Connections 5 per 1m cuts 20→2 to 15',
      given: { ...DOWN, behavior: { ...base, scaleDown: { selectPolicy: 'Max', policies: [connectionsPolicy(5)] } } },
      desired: 15,
      reason: 'ScaleDownLimit',
      message:
        /scale-down limited by policy Connections 5 per 1m0s \(selectPolicy Max; from 20, nothing changed yet in the period\) \(20→15 instead of 2\)$/,
      breach: undefined,
    },
    {
      name: 'scale-down Disabled: hold at 20',
      given: { ...DOWN, behavior: { ...base, scaleDown: { selectPolicy: 'Disabled', policies: undefined } } },
      desired: 20,
      reason: 'ScaleDownLimit',
      message:
        /scale-down is disabled by spec\.behavior\.scaleDown\.selectPolicy Disabled: no room for 20→2; holding at 20$/,
      breach: downBreach,
    },
    {
      name: 'a block without policies keeps maxStepPercent per change',
      given: { ...DOWN, behavior: { ...base, scaleDown: { selectPolicy: 'Min', policies: undefined } } },
      desired: 16,
      reason: 'StepLimited',
      message: /step limited to -20% \(20→16 instead of 2\)$/,
      breach: undefined,
    },
    {
      name: 'small value, Percent 10: 3 grows to 4 (rounded up so it still moves)',
      given: {
        ...UP,
        current: 3,
        bounds: { min: 1, max: 50 },
        behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: [percentPolicy(10)] } },
      },
      desired: 4,
      reason: 'ScaleUpLimit',
      message: /Percent 10% per 1m0s .* \(3→4 instead of 9\)$/,
      breach: undefined,
    },
    {
      name: 'small value, Connections 4 beside Percent 10 (Max): 3 grows to 7',
      given: {
        ...UP,
        current: 3,
        bounds: { min: 1, max: 50 },
        behavior: { ...base, scaleUp: { selectPolicy: 'Max', policies: [percentPolicy(10), connectionsPolicy(4)] } },
      },
      desired: 7,
      reason: 'ScaleUpLimit',
      message: /Connections 4 per 1m0s .* \(3→7 instead of 9\)$/,
      breach: undefined,
    },
  ])('$name', expectDecision);
});
