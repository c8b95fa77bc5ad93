import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  parsePoolPolicySpec,
  type ParsedPoolPolicyStatus,
  type PoolPolicySpec,
  type PoolSection,
} from '../../../src/api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../../src/domain/decide.js';
import { planPolicy, type PlanInput, type SettingReading } from '../../../src/domain/plan.js';
import { sectionsOf, type SectionBudget, type SectionSettings } from '../../../src/domain/sections.js';

// Properties of the whole plan (every section, follower, budget and mode together), over random
// specs, readings, samples, budgets and stored status. decide.property.test.ts covers one decision.

const MINUTE = 60_000;
const NOW = new Date('2025-06-01T12:00:00Z');
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

const boundsArb = (lo: number) =>
  fc
    .tuple(fc.integer({ min: lo, max: 200 }), fc.integer({ min: 0, max: 300 }))
    .map(([min, extra]) => ({ min, max: min + extra }));

const specArb: fc.Arbitrary<PoolPolicySpec> = fc
  .record({
    mode: fc.constantFrom('Auto', 'Auto', 'Recommend', 'Paused'),
    db: fc.option(
      fc.record({
        pool: boundsArb(1),
        overflow: fc.option(fc.record({ b: boundsArb(0), ratio: fc.double({ min: 0.1, max: 5, noNaN: true }) }), {
          nil: undefined,
        }),
      }),
      { nil: undefined },
    ),
    redis: fc.option(boundsArb(1), { nil: undefined }),
    pgb: fc.option(
      fc.record({
        b: boundsArb(1),
        format: fc.constantFrom('ini', 'env'),
        mcc: fc.option(fc.record({ b: boundsArb(1), ratio: fc.double({ min: 1, max: 40, noNaN: true }) }), {
          nil: undefined,
        }),
      }),
      { nil: undefined },
    ),
    maxStepPercent: fc.integer({ min: 1, max: 100 }),
    windows: fc.constantFrom('0s', '1m', '5m'),
    minChangeInterval: fc.constantFrom('0s', '2m', '10m'),
  })
  .map((r) => {
    const raw: Record<string, unknown> = {
      targetRef: { name: 'api' },
      mode: r.mode,
      behavior: {
        maxStepPercent: r.maxStepPercent,
        scaleUpStabilization: r.windows,
        scaleDownStabilization: r.windows,
        minChangeInterval: r.minChangeInterval,
      },
    };
    if (r.db)
      raw.database = {
        poolSize: r.db.pool,
        ...(r.db.overflow ? { maxOverflow: { ...r.db.overflow.b, ratio: r.db.overflow.ratio } } : {}),
      };
    if (r.redis) raw.redis = { maxConnections: r.redis };
    if (r.pgb)
      raw.pgbouncer = {
        configMapRef: { name: 'pgb' },
        format: r.pgb.format,
        defaultPoolSize: r.pgb.b,
        ...(r.pgb.mcc ? { maxClientConn: { ...r.pgb.mcc.b, ratio: r.pgb.mcc.ratio } } : {}),
      };
    if (!r.db && !r.redis && !r.pgb) raw.redis = { maxConnections: { min: 5, max: 50 } };
    const parsed = parsePoolPolicySpec(raw);
    if (!parsed.ok) throw new Error(`generator made an invalid spec: ${parsed.message}`);
    return parsed.spec;
  });

/** Mostly values in bounds; also out of bounds, missing, and unmanageable (valueFrom, text). */
function readingArb(bounds: { min: number; max: number }): fc.Arbitrary<SettingReading> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .integer({ min: bounds.min, max: bounds.max })
        .map((value): SettingReading => ({ kind: 'value', value })),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 0, max: bounds.max * 3 + 1 })
        .map((value): SettingReading => ({ kind: 'value', value })),
    },
    { weight: 1, arbitrary: fc.constant<SettingReading>({ kind: 'missing' }) },
    {
      weight: 1,
      arbitrary: fc.constant<SettingReading>({
        kind: 'unmanageable',
        reason: 'ValueFromNotManaged',
        message: 'set via valueFrom',
      }),
    },
  );
}

/** Usable samples, and every way a sample is not: flagged, NaN, ±Inf, stale (the spec's interval is 30s). */
const sampleArb: fc.Arbitrary<UtilizationSample> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      valid: fc.constant(true as const),
      percent: fc.double({ min: 0, max: 250, noNaN: true }),
      sampledAt: fc.integer({ min: 0, max: 60_000 }).map(ago),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      valid: fc.constant(false as const),
      problem: fc.constantFrom('QueryFailed' as const, 'NoData' as const, 'MultipleSeries' as const, 'Stale' as const),
      message: fc.string(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      valid: fc.constant(true as const),
      percent: fc.constantFrom(Number.NaN, Infinity, -Infinity),
      sampledAt: fc.constant(NOW),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      valid: fc.constant(true as const),
      percent: fc.double({ min: 0, max: 250, noNaN: true }),
      sampledAt: fc.integer({ min: 60_001, max: 3_600_000 }).map(ago),
    }),
  },
);

const budgetArb: fc.Arbitrary<SectionBudget | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.record({
    kind: fc.constant('cap' as const),
    backend: fc.constant('PostgreSQL'),
    cap: fc.integer({ min: 0, max: 600 }),
    needs: fc.integer({ min: 0, max: 1000 }),
    free: fc.integer({ min: 0, max: 1000 }),
    minimumsFit: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('unknown' as const),
    reason: fc.constantFrom('BudgetNotFound', 'BudgetUnknown'),
    message: fc.constant('budget unknown'),
  }),
);

const breachArb = fc.option(
  fc
    .tuple(
      fc.constantFrom('up' as const, 'down' as const),
      fc.integer({ min: 0, max: 3_600_000 }),
      fc.integer({ min: 0, max: 3_600_000 }),
    )
    .map(([direction, a, b]) => ({ direction, since: ago(Math.max(a, b)), lastSeen: ago(Math.min(a, b)) })),
  { nil: undefined },
);

interface Case {
  readonly input: PlanInput;
  readonly sections: readonly SectionSettings[];
}

const caseArb: fc.Arbitrary<Case> = specArb.chain((spec) => {
  const sections = sectionsOf(spec);
  const keys = sections.flatMap((s) => [s.leader, ...(s.follower ? [s.follower] : [])]);
  return fc
    .record({
      readings: fc.tuple(...keys.map((k) => readingArb(k.bounds))),
      samples: fc.record({ database: sampleArb, redis: sampleArb, pgbouncer: sampleArb }),
      budget: fc.record({ database: budgetArb, redis: budgetArb, pgbouncer: budgetArb }),
      breaches: fc.record({ database: breachArb, redis: breachArb, pgbouncer: breachArb }),
      lastChangeAgo: fc.option(fc.integer({ min: 0, max: 3_600_000 }), { nil: undefined }),
      rollout: fc.constantFrom<Date | undefined>(new Date(0), undefined, ago(MINUTE)),
      pgbouncerRefusal: fc.option(fc.constant({ reason: 'IniRefused', message: 'duplicated key' }), {
        freq: 6,
        nil: undefined,
      }),
    })
    .map((r): Case => {
      const previous: ParsedPoolPolicyStatus = {
        breaches: Object.fromEntries(Object.entries(r.breaches).filter(([, b]) => b !== undefined)),
        ...(r.lastChangeAgo === undefined
          ? {}
          : { lastChange: { time: ago(r.lastChangeAgo), reason: 'earlier', changes: [] } }),
      };
      const budget = Object.fromEntries(Object.entries(r.budget).filter(([, b]) => b !== undefined)) as Partial<
        Record<PoolSection, SectionBudget>
      >;
      return {
        sections,
        input: {
          now: NOW,
          generation: 2,
          spec,
          previous,
          readings: new Map(keys.map((k, i) => [k.key, r.readings[i] ?? { kind: 'missing' }])),
          samples: r.samples,
          rolloutCompletedAt: { env: r.rollout, pgbouncer: new Date(0) },
          pgbouncerRefusal: r.pgbouncerRefusal,
          budget,
        },
      };
    });
});

const inBounds = (v: number, b: { min: number; max: number }): boolean => v >= b.min && v <= b.max;
const allowedStep = (current: number, maxStepPercent: number): number =>
  Math.max(1, Math.floor((current * maxStepPercent) / 100));

function usable(sample: UtilizationSample | undefined, intervalMs: number): boolean {
  return (
    sample !== undefined &&
    sample.valid &&
    Number.isFinite(sample.percent) &&
    NOW.getTime() - sample.sampledAt.getTime() <= 2 * intervalMs
  );
}

function blocked(c: Case, s: SectionSettings): boolean {
  const unmanageable = [s.leader.key, s.follower?.key].some(
    (k) => k !== undefined && c.input.readings.get(k)?.kind === 'unmanageable',
  );
  return unmanageable || (s.target === 'pgbouncer' && c.input.pgbouncerRefusal !== undefined);
}

/** The leader's reading as a number, or undefined when missing/unmanageable. */
function valueOf(c: Case, key: string): number | undefined {
  const r = c.input.readings.get(key);
  return r?.kind === 'value' ? r.value : undefined;
}

const RUNS = { numRuns: 500 };

describe('planPolicy properties', () => {
  it('plans integers within [min, max] for every leader and follower it may manage (leader read in bounds or missing)', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planPolicy(c.input);
        for (const s of c.sections) {
          if (blocked(c, s)) continue;
          const from = valueOf(c, s.leader.key);
          if (from !== undefined && !inBounds(from, s.leader.bounds)) continue;
          const leader = plan.status.recommended?.[s.leader.key];
          expect(Number.isInteger(leader)).toBe(true);
          expect([s.leader.key, inBounds(leader ?? Number.NaN, s.leader.bounds)]).toEqual([s.leader.key, true]);
          if (s.follower) {
            const follower = plan.status.recommended?.[s.follower.key];
            expect(Number.isInteger(follower)).toBe(true);
            expect([s.follower.key, inBounds(follower ?? Number.NaN, s.follower.bounds)]).toEqual([
              s.follower.key,
              true,
            ]);
          }
        }
      }),
      RUNS,
    );
  });

  it('moves a leader at most one step, except the documented budget correction (down to the cap at once)', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planPolicy(c.input);
        for (const s of c.sections) {
          const from = valueOf(c, s.leader.key);
          if (from === undefined || !inBounds(from, s.leader.bounds)) continue;
          const to = plan.status.recommended?.[s.leader.key] ?? from;
          if (Math.abs(to - from) <= allowedStep(from, c.input.spec.behavior.maxStepPercent)) continue;
          const budget = c.input.budget?.[s.section];
          // Only a budget correction may jump, only downwards, and only to the cap (never below min).
          expect({ section: s.section, budget: budget?.kind, to }).toEqual({
            section: s.section,
            budget: 'cap',
            to: Math.max(budget?.kind === 'cap' ? budget.cap : 0, s.leader.bounds.min),
          });
          expect(to).toBeLessThan(from);
        }
      }),
      RUNS,
    );
  });

  it('never plans a leader above what the budget allows (its cap, or min when even min does not fit); an unknown budget allows no growth', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planPolicy(c.input);
        for (const s of c.sections) {
          if (blocked(c, s)) continue;
          const budget = c.input.budget?.[s.section];
          const to = plan.status.recommended?.[s.leader.key];
          if (budget === undefined || to === undefined) continue;
          const from = valueOf(c, s.leader.key);
          if (budget.kind === 'cap') expect(to).toBeLessThanOrEqual(Math.max(budget.cap, s.leader.bounds.min));
          else if (from !== undefined) expect(to).toBeLessThanOrEqual(from);
        }
      }),
      RUNS,
    );
  });

  it('never shrinks nor grows a leader on invalid data (NaN, ±Inf, flagged, stale), budget correction aside', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planPolicy(c.input);
        for (const s of c.sections) {
          const from = valueOf(c, s.leader.key);
          if (
            from === undefined ||
            !inBounds(from, s.leader.bounds) ||
            usable(c.input.samples[s.section], c.input.spec.intervalMs)
          )
            continue;
          const to = plan.status.recommended?.[s.leader.key] ?? from;
          const budget = c.input.budget?.[s.section];
          const correction = budget?.kind === 'cap' && to === Math.max(budget.cap, s.leader.bounds.min) && to < from;
          expect({ section: s.section, to: correction ? from : to }).toEqual({ section: s.section, to: from });
        }
      }),
      RUNS,
    );
  });

  it('writes only in Auto mode, only changed values, only to the target that holds them, never for a blocked section', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planPolicy(c.input);
        if (c.input.spec.mode !== 'Auto') {
          expect([plan.envWrites.size, plan.pgbouncerWrites.size, plan.changes.length]).toEqual([0, 0, 0]);
          return;
        }
        for (const [writes, target] of [
          [plan.envWrites, 'env'],
          [plan.pgbouncerWrites, 'pgbouncer'],
        ] as const) {
          for (const [key, value] of writes) {
            const section = c.sections.find((s) => s.leader.key === key || s.follower?.key === key);
            expect(section?.target).toBe(target);
            if (section === undefined) continue;
            expect(blocked(c, section)).toBe(false);
            expect(valueOf(c, key)).not.toBe(value);
            expect(Number.isInteger(value) && value >= 0).toBe(true);
          }
        }
        const written = new Map([...plan.envWrites, ...plan.pgbouncerWrites]);
        expect(new Map(plan.changes.map((ch) => [ch.setting, ch.to]))).toEqual(written);
      }),
      RUNS,
    );
  });

  it('is deterministic and does not mutate its input', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const snapshot = JSON.stringify({ ...c.input, readings: [...c.input.readings] });
        const a = planPolicy(c.input);
        const b = planPolicy(c.input);
        expect(JSON.stringify({ ...c.input, readings: [...c.input.readings] })).toBe(snapshot);
        expect(JSON.stringify({ ...a, envWrites: [...a.envWrites], pgbouncerWrites: [...a.pgbouncerWrites] })).toBe(
          JSON.stringify({ ...b, envWrites: [...b.envWrites], pgbouncerWrites: [...b.pgbouncerWrites] }),
        );
      }),
      { numRuns: 100 },
    );
  });
});
