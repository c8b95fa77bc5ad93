import { describe, it, expect } from '@jest/globals';
import { ConditionReason, ConditionType } from '../../../src/api/v1alpha1/conditions.js';
import {
  formatStatusTime,
  parsePoolPolicySpec,
  parsePoolPolicyStatus,
  type ParsedPoolPolicyStatus,
  type PoolPolicySpec,
  type PoolPolicyStatus,
  type PoolSection,
} from '../../../src/api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../../src/domain/decide.js';
import { blockedEvents, blockedStatus } from '../../../src/domain/policy-status.js';
import { planPolicy, type Plan, type PlanInput, type SettingReading } from '../../../src/domain/plan.js';
import { sectionsOf, type SectionBudget } from '../../../src/domain/sections.js';
import { statusToWrite, toWrittenStatus } from '../../../src/domain/status.js';

type Raw = Record<string, unknown>;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const NOW = new Date('2025-01-01T12:00:00.000Z');
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);
const at = (ms: number): string => formatStatusTime(ago(ms));

function specOf(raw: Raw): PoolPolicySpec {
  const result = parsePoolPolicySpec(raw);
  if (!result.ok) throw new Error(`spec refused: ${result.message}`);
  return result.spec;
}

const target = { name: 'voiceassist-api' };
const database = { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } };
const redis = { maxConnections: { min: 25, max: 200 } };
const pgbouncerIni = {
  configMapRef: { name: 'pgbouncer-config' },
  defaultPoolSize: { min: 10, max: 80 },
  maxClientConn: { min: 100, max: 4000, ratio: 20 },
};
const pgbouncerEnv = { ...pgbouncerIni, format: 'env' };

/** Defaults throughout: thresholds 40/65/80, 20% steps, 5m up window, 10m between changes. */
const DB_AUTO = specOf({ targetRef: target, database });
const DB_RECOMMEND = specOf({ targetRef: target, mode: 'Recommend', database });
const DB_AND_REDIS = specOf({ targetRef: target, database, redis });
const DB_AND_PGBOUNCER = specOf({ targetRef: target, database, pgbouncer: pgbouncerIni });
const PGBOUNCER_ENV = specOf({ targetRef: target, pgbouncer: pgbouncerEnv });

const valid = (percent: number, age = 10 * SECOND): UtilizationSample => ({
  valid: true,
  percent,
  sampledAt: ago(age),
});
const value = (v: number): SettingReading => ({ kind: 'value', value: v });
const readings = (entries: Record<string, SettingReading>): ReadonlyMap<string, SettingReading> =>
  new Map(Object.entries(entries));

/** An up-breach of every section, 10 minutes old (beyond the 5m window), last seen one interval ago. */
const OLD_UP_BREACHES: ParsedPoolPolicyStatus['breaches'] = {
  database: { direction: 'up', since: ago(10 * MINUTE), lastSeen: ago(30 * SECOND) },
  redis: { direction: 'up', since: ago(10 * MINUTE), lastSeen: ago(30 * SECOND) },
  pgbouncer: { direction: 'up', since: ago(10 * MINUTE), lastSeen: ago(30 * SECOND) },
};

const DB_20_40 = readings({ DB_POOL_SIZE: value(20), DB_MAX_OVERFLOW: value(40) });

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    now: NOW,
    generation: 3,
    spec: DB_AUTO,
    previous: { breaches: OLD_UP_BREACHES },
    readings: DB_20_40,
    samples: { database: valid(90) },
    rolloutCompletedAt: { env: new Date(0), pgbouncer: new Date(0) },
    pgbouncerRefusal: undefined,
    ...overrides,
  };
}

function conditionOf(plan: Plan | PoolPolicyStatus, type: string) {
  const status = 'status' in plan ? plan.status : plan;
  const found = status.conditions?.find((c) => c.type === type);
  if (found === undefined) throw new Error(`no ${type} condition`);
  return found;
}

/** What the reconciler reads back on the next pass: the status it wrote, parsed. */
const stored = (status: PoolPolicyStatus): ParsedPoolPolicyStatus =>
  parsePoolPolicyStatus(JSON.parse(JSON.stringify(status)));

describe('sectionsOf', () => {
  it.each<[string, PoolPolicySpec, Array<[PoolSection, string, string | undefined]>]>([
    ['database with overflow', DB_AUTO, [['database', 'DB_POOL_SIZE', 'DB_MAX_OVERFLOW']]],
    [
      'database without overflow',
      specOf({ targetRef: target, database: { poolSize: { min: 1, max: 5 } } }),
      [['database', 'DB_POOL_SIZE', undefined]],
    ],
    [
      'custom env names',
      specOf({
        targetRef: target,
        database: { poolSize: { env: 'POOL', min: 1, max: 5 }, maxOverflow: { env: 'OVER', min: 0, max: 10 } },
        redis: { maxConnections: { env: 'RMAX', min: 1, max: 5 } },
      }),
      [
        ['database', 'POOL', 'OVER'],
        ['redis', 'RMAX', undefined],
      ],
    ],
    [
      'pgbouncer ini keys',
      specOf({ targetRef: target, pgbouncer: pgbouncerIni }),
      [['pgbouncer', 'default_pool_size', 'max_client_conn']],
    ],
    ['pgbouncer env keys', PGBOUNCER_ENV, [['pgbouncer', 'DEFAULT_POOL_SIZE', 'MAX_CLIENT_CONN']]],
    [
      'all three, in fixed order',
      specOf({ targetRef: target, pgbouncer: pgbouncerIni, redis, database }),
      [
        ['database', 'DB_POOL_SIZE', 'DB_MAX_OVERFLOW'],
        ['redis', 'REDIS_MAX_CONNECTIONS', undefined],
        ['pgbouncer', 'default_pool_size', 'max_client_conn'],
      ],
    ],
  ])('%s', (_name, spec, expected) => {
    expect(sectionsOf(spec).map((s) => [s.section, s.leader.key, s.follower?.key])).toEqual(expected);
  });

  it('carries bounds, ratio and where the setting lives', () => {
    expect(sectionsOf(DB_AND_PGBOUNCER)).toEqual([
      {
        section: 'database',
        target: 'env',
        leader: { key: 'DB_POOL_SIZE', bounds: { min: 10, max: 50 } },
        follower: { key: 'DB_MAX_OVERFLOW', bounds: { min: 0, max: 100 }, ratio: 2 },
        fill: false,
      },
      {
        section: 'pgbouncer',
        target: 'pgbouncer',
        leader: { key: 'default_pool_size', bounds: { min: 10, max: 80 } },
        follower: { key: 'max_client_conn', bounds: { min: 100, max: 4000 }, ratio: 20 },
        fill: false,
      },
    ]);
  });
});

describe('planPolicy: Auto mode at 90% with a breach older than the window', () => {
  const plan = planPolicy(input());

  it('writes DB_POOL_SIZE 24 (one 20% step) and DB_MAX_OVERFLOW 48 (ratio 2)', () => {
    expect([...plan.envWrites]).toEqual([
      ['DB_POOL_SIZE', 24],
      ['DB_MAX_OVERFLOW', 48],
    ]);
    expect(plan.pgbouncerWrites.size).toBe(0);
    expect(plan.changes).toEqual([
      { setting: 'DB_POOL_SIZE', from: 20, to: 24 },
      { setting: 'DB_MAX_OVERFLOW', from: 40, to: 48 },
    ]);
  });

  it('records one PoolResized event naming the change', () => {
    expect(plan.events).toHaveLength(1);
    expect(plan.events[0]).toMatchObject({ type: 'Normal', reason: 'PoolResized' });
    expect(plan.events[0]?.note).toContain('DB_POOL_SIZE 20→24');
    expect(plan.events[0]?.note).toContain('DB_MAX_OVERFLOW 40→48');
    expect(plan.events[0]?.note).toContain('90%');
  });

  it('updates status.current, recommended and observed', () => {
    expect(plan.status.current).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect(plan.status.recommended).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect(plan.status.observed).toEqual({ database: 90, sampledAt: at(10 * SECOND) });
    expect(plan.status.observedGeneration).toBe(3);
  });

  it('sets lastChange and appends a history entry with utilizationBefore', () => {
    expect(plan.status.lastChange).toEqual({
      time: formatStatusTime(NOW),
      reason: plan.events[0]?.note,
      changes: plan.changes,
    });
    expect(plan.status.history).toEqual([{ ...plan.status.lastChange, utilizationBefore: 90 }]);
  });

  it('resets the breach, so the next change must earn a full window again', () => {
    expect(plan.status.breaches).toBeUndefined();
  });

  it('is Ready, metrics available, and Limited by the step', () => {
    expect(conditionOf(plan, ConditionType.Ready)).toMatchObject({
      status: 'True',
      reason: ConditionReason.Reconciled,
    });
    expect(conditionOf(plan, ConditionType.MetricsAvailable)).toMatchObject({ status: 'True' });
    expect(conditionOf(plan, ConditionType.Limited)).toMatchObject({
      status: 'True',
      reason: ConditionReason.StepLimited,
    });
  });

  it('does not change again on the next pass: the breach must earn a new window', () => {
    const next = planPolicy(
      input({
        previous: stored(plan.status),
        readings: readings({ DB_POOL_SIZE: value(24), DB_MAX_OVERFLOW: value(48) }),
        now: new Date(NOW.getTime() + 30 * SECOND),
        samples: { database: { valid: true, percent: 90, sampledAt: new Date(NOW.getTime() + 20 * SECOND) } },
      }),
    );
    expect(next.envWrites.size).toBe(0);
    expect(next.events).toEqual([]);
    expect(next.status.history).toHaveLength(1);
    expect(conditionOf(next, ConditionType.Limited)).toMatchObject({
      status: 'True',
      reason: ConditionReason.Stabilizing,
    });
  });
});

describe('planPolicy: what each situation writes', () => {
  it.each<[string, Partial<PlanInput>, Array<[string, number]>]>([
    ['utilization in the dead band', { samples: { database: valid(60) } }, []],
    [
      'breach younger than the window',
      { previous: { breaches: { database: { direction: 'up', since: ago(MINUTE), lastSeen: ago(30 * SECOND) } } } },
      [],
    ],
    ['no breach yet', { previous: {} }, []],
    ['rollout still in progress', { rolloutCompletedAt: { env: undefined, pgbouncer: new Date(0) } }, []],
    [
      'last change too recent',
      { previous: { breaches: OLD_UP_BREACHES, lastChange: { time: ago(MINUTE), reason: 'x', changes: [] } } },
      [],
    ],
    [
      'invalid sample',
      { samples: { database: { valid: false, problem: 'NoData', message: 'query returned no series' } } },
      [],
    ],
    ['no sample taken at all', { samples: {} }, []],
    ['Recommend mode', { spec: DB_RECOMMEND }, []],
    [
      'missing env: starts at min, follower follows',
      { readings: readings({}) },
      [
        ['DB_POOL_SIZE', 10],
        ['DB_MAX_OVERFLOW', 20],
      ],
    ],
    [
      'missing follower only: follower set from leader',
      { readings: readings({ DB_POOL_SIZE: value(20) }), samples: { database: valid(60) } },
      [['DB_MAX_OVERFLOW', 40]],
    ],
    [
      'follower outside its bounds: clamped back',
      {
        readings: readings({ DB_POOL_SIZE: value(20), DB_MAX_OVERFLOW: value(500) }),
        samples: { database: valid(60) },
      },
      [['DB_MAX_OVERFLOW', 100]],
    ],
    [
      'leader above max: corrected at once',
      {
        readings: readings({ DB_POOL_SIZE: value(70), DB_MAX_OVERFLOW: value(100) }),
        samples: { database: valid(60) },
      },
      [['DB_POOL_SIZE', 50]],
    ],
    [
      'low utilization past the down window: shrinks',
      {
        samples: { database: valid(20) },
        previous: {
          breaches: { database: { direction: 'down', since: ago(40 * MINUTE), lastSeen: ago(30 * SECOND) } },
        },
      },
      [
        ['DB_POOL_SIZE', 16],
        ['DB_MAX_OVERFLOW', 32],
      ],
    ],
  ])('%s', (_name, overrides, expected) => {
    const plan = planPolicy(input(overrides));
    expect([...plan.envWrites]).toEqual(expected);
    expect(plan.changes.map((c) => [c.setting, c.to])).toEqual(expected);
    expect(plan.events.filter((e) => e.reason === 'PoolResized')).toHaveLength(expected.length > 0 ? 1 : 0);
  });

  it('missing env: reports the start at min and keeps current without the unset values', () => {
    const plan = planPolicy(input({ readings: readings({}) }));
    expect(plan.status.current).toEqual({ DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 20 });
    expect(plan.events[0]?.note).toContain('starting at min 10');
    expect(conditionOf(plan, ConditionType.Limited)).toMatchObject({ status: 'True', reason: ConditionReason.AtMin });
  });

  it('holds the breach while waiting out the window, and reports Stabilizing', () => {
    const plan = planPolicy(input({ previous: {} }));
    expect(plan.status.breaches).toEqual({
      database: { direction: 'up', since: at(10 * SECOND), lastSeen: formatStatusTime(NOW) },
    });
    expect(conditionOf(plan, ConditionType.Limited)).toMatchObject({
      status: 'True',
      reason: ConditionReason.Stabilizing,
    });
    expect(plan.status.current).toEqual({ DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 });
  });
});

describe('planPolicy: Recommend mode', () => {
  const plan = planPolicy(input({ spec: DB_RECOMMEND }));

  it('writes nothing and records no change', () => {
    expect(plan.envWrites.size).toBe(0);
    expect(plan.pgbouncerWrites.size).toBe(0);
    expect(plan.changes).toEqual([]);
    expect(plan.status.lastChange).toBeUndefined();
    expect(plan.status.history).toBeUndefined();
  });

  it('moves recommended but leaves current as read', () => {
    expect(plan.status.recommended).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect(plan.status.current).toEqual({ DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 });
  });

  it('records RecommendationChanged (and no PoolResized)', () => {
    expect(plan.events.map((e) => [e.type, e.reason])).toEqual([['Normal', 'RecommendationChanged']]);
    expect(plan.events[0]?.note).toContain('DB_POOL_SIZE 20→24');
  });

  it('is Ready with reason Recommending', () => {
    expect(conditionOf(plan, ConditionType.Ready)).toMatchObject({
      status: 'True',
      reason: ConditionReason.Recommending,
    });
  });

  // A recommendation is not applied, so its breach goes on: it must not flap back.
  it('keeps the recommendation on the next pass while utilization stays high', () => {
    const later = new Date(NOW.getTime() + 30 * SECOND);
    const next = planPolicy(
      input({
        spec: DB_RECOMMEND,
        now: later,
        previous: stored(plan.status),
        samples: { database: { valid: true, percent: 90, sampledAt: later } },
      }),
    );
    expect(next.envWrites.size).toBe(0);
    expect(next.status.recommended).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect(next.events).toEqual([]);
  });

  it('records no event when the recommendation did not move', () => {
    const quiet = planPolicy(input({ spec: DB_RECOMMEND, samples: { database: valid(60) } }));
    expect(quiet.status.recommended).toEqual({ DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 });
    expect(quiet.events).toEqual([]);
  });
});

describe('planPolicy: metrics problems', () => {
  const invalid: UtilizationSample = { valid: false, problem: 'Stale', message: 'sample is 5m old' };
  const first = planPolicy(input({ samples: { database: invalid } }));

  it('sets MetricsAvailable=False with the problem as reason', () => {
    expect(conditionOf(first, ConditionType.MetricsAvailable)).toMatchObject({
      status: 'False',
      reason: 'Stale',
      message: 'database: sample is 5m old',
    });
    expect(conditionOf(first, ConditionType.Limited)).toMatchObject({ status: 'False', reason: 'MetricsUnavailable' });
    expect(first.envWrites.size).toBe(0);
    expect(first.status.observed).toBeUndefined();
  });

  it('keeps the breach as it was: a gap neither advances nor restarts the window', () => {
    expect(first.status.breaches).toEqual({
      database: { direction: 'up', since: at(10 * MINUTE), lastSeen: at(30 * SECOND) },
    });
  });

  it('warns the first time', () => {
    expect(first.events).toEqual([{ type: 'Warning', reason: 'Stale', note: 'database: sample is 5m old' }]);
  });

  it.each<[string, UtilizationSample, number]>([
    ['same reason again: no repeated event', invalid, 0],
    [
      'same reason, other message: no repeated event',
      { valid: false, problem: 'Stale', message: 'sample is 6m old' },
      0,
    ],
    ['a new reason: warns again', { valid: false, problem: 'QueryFailed', message: 'HTTP 503' }, 1],
    ['recovered: no warning', valid(60), 0],
  ])('on the next pass, %s', (_name, sample, warnings) => {
    const next = planPolicy(input({ previous: stored(first.status), samples: { database: sample } }));
    expect(next.events.filter((e) => e.type === 'Warning')).toHaveLength(warnings);
  });

  it('keeps lastTransitionTime while the problem persists', () => {
    const later = new Date(NOW.getTime() + MINUTE);
    const next = planPolicy(
      input({
        now: later,
        previous: stored(first.status),
        samples: { database: { valid: false, problem: 'QueryFailed', message: 'HTTP 503' } },
      }),
    );
    expect(conditionOf(next, ConditionType.MetricsAvailable)).toMatchObject({
      status: 'False',
      reason: 'QueryFailed',
      lastTransitionTime: formatStatusTime(NOW),
    });
  });
});

describe('planPolicy: sections that cannot be managed', () => {
  const valueFrom: SettingReading = {
    kind: 'unmanageable',
    reason: ConditionReason.ValueFromNotManaged,
    message: 'DB_POOL_SIZE is set via valueFrom',
  };

  it.each<[string, Record<string, SettingReading>]>([
    [
      'leader set via valueFrom',
      { DB_POOL_SIZE: valueFrom, DB_MAX_OVERFLOW: value(40), REDIS_MAX_CONNECTIONS: value(50) },
    ],
    [
      'follower set via valueFrom',
      {
        DB_POOL_SIZE: value(20),
        DB_MAX_OVERFLOW: { ...valueFrom, message: 'DB_MAX_OVERFLOW is set via valueFrom' },
        REDIS_MAX_CONNECTIONS: value(50),
      },
    ],
  ])('%s: Ready=False, no database writes, redis still planned', (_name, entries) => {
    const plan = planPolicy(
      input({ spec: DB_AND_REDIS, readings: readings(entries), samples: { database: valid(90), redis: valid(90) } }),
    );
    expect(conditionOf(plan, ConditionType.Ready)).toMatchObject({
      status: 'False',
      reason: ConditionReason.ValueFromNotManaged,
    });
    expect([...plan.envWrites]).toEqual([['REDIS_MAX_CONNECTIONS', 60]]);
    expect(plan.events.map((e) => [e.type, e.reason])).toEqual([
      ['Normal', 'PoolResized'],
      ['Warning', ConditionReason.ValueFromNotManaged],
    ]);
  });

  it('pgbouncerRefusal: Ready=False with its reason, no pgbouncer writes, database still planned', () => {
    const plan = planPolicy(
      input({
        spec: DB_AND_PGBOUNCER,
        readings: readings({
          DB_POOL_SIZE: value(20),
          DB_MAX_OVERFLOW: value(40),
          default_pool_size: value(20),
          max_client_conn: value(400),
        }),
        samples: { database: valid(90), pgbouncer: valid(95) },
        pgbouncerRefusal: { reason: ConditionReason.IniRefused, message: 'pgbouncer.ini sets default_pool_size twice' },
      }),
    );
    expect(conditionOf(plan, ConditionType.Ready)).toMatchObject({
      status: 'False',
      reason: ConditionReason.IniRefused,
      message: 'pgbouncer.ini sets default_pool_size twice',
    });
    expect(plan.pgbouncerWrites.size).toBe(0);
    expect([...plan.envWrites]).toEqual([
      ['DB_POOL_SIZE', 24],
      ['DB_MAX_OVERFLOW', 48],
    ]);
    expect(plan.status.current).toMatchObject({ default_pool_size: 20, max_client_conn: 400 });
    expect(plan.events.filter((e) => e.type === 'Warning').map((e) => e.reason)).toEqual([ConditionReason.IniRefused]);
  });
});

describe('planPolicy: PgBouncer', () => {
  it.each<[string, string, string, PoolPolicySpec]>([
    ['format ini', 'default_pool_size', 'max_client_conn', DB_AND_PGBOUNCER],
    ['format env', 'DEFAULT_POOL_SIZE', 'MAX_CLIENT_CONN', PGBOUNCER_ENV],
  ])('%s writes %s and %s', (_name, pool, clients, spec) => {
    const plan = planPolicy(
      input({
        spec,
        readings: readings({
          DB_POOL_SIZE: value(20),
          DB_MAX_OVERFLOW: value(40),
          [pool]: value(20),
          [clients]: value(400),
        }),
        samples: { database: valid(60), pgbouncer: valid(90) },
      }),
    );
    expect([...plan.pgbouncerWrites]).toEqual([
      [pool, 24],
      [clients, 480],
    ]);
    expect(plan.envWrites.size).toBe(0);
    expect(plan.status.current).toMatchObject({ [pool]: 24, [clients]: 480 });
  });

  // PgBouncer applies a write on RELOAD, with no rollout to wait for: a sample scraped before
  // poolpilot's last write still shows the old pool and would make it step again (overshoot).
  const immediate = specOf({
    targetRef: target,
    pgbouncer: pgbouncerEnv,
    behavior: { scaleUpStabilization: '0s', minChangeInterval: '0s' },
  });
  it.each<[string, Date, number, string]>([
    ['sample scraped before the last write: hold', ago(5 * SECOND), 20, ConditionReason.RolloutInProgress],
    ['sample scraped after the last write: acts', ago(20 * SECOND), 24, 'StepLimited'],
    // managedFields record whole seconds: a write recorded at :50 happened in [:50, :51).
    [
      'sample scraped in the second the write is recorded in: hold',
      ago(10 * SECOND),
      20,
      ConditionReason.RolloutInProgress,
    ],
    ['sample scraped at the end of that second: acts', ago(11 * SECOND), 24, 'StepLimited'],
  ])('%s', (_name, writtenAt, expected, reason) => {
    const plan = planPolicy(
      input({
        spec: immediate,
        readings: readings({ DEFAULT_POOL_SIZE: value(20), MAX_CLIENT_CONN: value(400) }),
        samples: { pgbouncer: valid(90, 10 * SECOND) },
        lastAppliedAt: { pgbouncer: writtenAt },
        previous: { breaches: OLD_UP_BREACHES, lastChange: { time: ago(HOUR), reason: 'x', changes: [] } },
      }),
    );
    expect(plan.status.current).toMatchObject({ DEFAULT_POOL_SIZE: expected });
    expect(conditionOf(plan, ConditionType.Limited).reason).toBe(reason);
  });
});

describe('planPolicy: PgBouncer runs the last write before its samples count', () => {
  const immediate = specOf({
    targetRef: target,
    pgbouncer: pgbouncerEnv,
    behavior: { scaleUpStabilization: '0s', minChangeInterval: '0s' },
  });
  const pass = (pgbouncerApplied: PlanInput['pgbouncerApplied']): Plan =>
    planPolicy(
      input({
        spec: immediate,
        readings: readings({ DEFAULT_POOL_SIZE: value(20), MAX_CLIENT_CONN: value(400) }),
        samples: { pgbouncer: valid(90, 10 * SECOND) },
        lastAppliedAt: { pgbouncer: ago(HOUR) },
        previous: { breaches: OLD_UP_BREACHES, lastChange: { time: ago(HOUR), reason: 'x', changes: [] } },
        pgbouncerApplied,
      }),
    );

  it.each<[string, PlanInput['pgbouncerApplied']]>([
    ['Applied', { state: 'Applied' }],
    ['Unknown (no pool sizes exported): by time alone', { state: 'Unknown' }],
    ['not read at all', undefined],
  ])('%s: acts on the sample', (_name, applied) => {
    const plan = pass(applied);
    expect(plan.status.current).toMatchObject({ DEFAULT_POOL_SIZE: 24 });
    expect(conditionOf(plan, ConditionType.Limited).reason).toBe('StepLimited');
  });

  it('Pending: holds both settings, writes nothing, and says why', () => {
    const plan = pass({ state: 'Pending', message: 'PgBouncer does not run default_pool_size 20 yet' });
    expect(plan.pgbouncerWrites.size).toBe(0);
    expect(plan.status.current).toMatchObject({ DEFAULT_POOL_SIZE: 20, MAX_CLIENT_CONN: 400 });
    expect(conditionOf(plan, ConditionType.Limited)).toMatchObject({
      reason: ConditionReason.DeliveryPending,
      message: expect.stringContaining(
        'holding until PgBouncer runs the last write: PgBouncer does not run default_pool_size 20 yet',
      ) as unknown as string,
    });
  });
});

describe('planPolicy: conditions', () => {
  it('carry observedGeneration = generation', () => {
    const plan = planPolicy(input({ generation: 11 }));
    expect(plan.status.conditions?.map((c) => [c.type, c.observedGeneration])).toEqual([
      [ConditionType.Ready, 11],
      [ConditionType.MetricsAvailable, 11],
      [ConditionType.Limited, 11],
    ]);
  });

  it.each<[string, 'True' | 'False', string]>([
    ['status unchanged: keeps lastTransitionTime', 'True', at(HOUR)],
    ['status flips: moves lastTransitionTime to now', 'False', formatStatusTime(NOW)],
  ])('%s', (_name, previousReady, expected) => {
    const previous: ParsedPoolPolicyStatus = {
      breaches: OLD_UP_BREACHES,
      conditions: [
        {
          type: ConditionType.Ready,
          status: previousReady,
          reason: 'Old',
          message: 'old',
          lastTransitionTime: ago(HOUR),
          observedGeneration: 1,
        },
      ],
    };
    const ready = conditionOf(planPolicy(input({ previous })), ConditionType.Ready);
    expect(ready).toMatchObject({
      type: ConditionType.Ready,
      status: 'True',
      reason: ConditionReason.Reconciled,
      lastTransitionTime: expected,
      observedGeneration: 3,
    });
  });
});

describe('planPolicy: utilizationAfter', () => {
  const previous: ParsedPoolPolicyStatus = {
    lastChange: { time: ago(5 * MINUTE), reason: 'grew', changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }] },
    history: [
      {
        time: ago(5 * MINUTE),
        reason: 'grew',
        changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }],
        utilizationBefore: 90,
      },
    ],
  };
  const after = { DB_POOL_SIZE: value(24), DB_MAX_OVERFLOW: value(48) };

  it.each<[string, Partial<PlanInput>, number | undefined]>([
    [
      'valid sample after the rollout completed: filled',
      {
        samples: { database: valid(61.26, 10 * SECOND) },
        rolloutCompletedAt: { env: ago(2 * MINUTE), pgbouncer: undefined },
      },
      61.3,
    ],
    [
      'rollout still in progress: not yet',
      { samples: { database: valid(61, 10 * SECOND) }, rolloutCompletedAt: { env: undefined, pgbouncer: undefined } },
      undefined,
    ],
    [
      'sample predates the rollout completion: not yet',
      {
        samples: { database: valid(61, 3 * MINUTE) },
        rolloutCompletedAt: { env: ago(2 * MINUTE), pgbouncer: undefined },
      },
      undefined,
    ],
    [
      'completion predates the change (older rollout): not yet',
      {
        samples: { database: valid(61, 10 * SECOND) },
        rolloutCompletedAt: { env: ago(10 * MINUTE), pgbouncer: undefined },
      },
      undefined,
    ],
    [
      'invalid sample: not yet',
      {
        samples: { database: { valid: false, problem: 'NoData', message: 'none' } },
        rolloutCompletedAt: { env: ago(2 * MINUTE), pgbouncer: undefined },
      },
      undefined,
    ],
  ])('%s', (_name, overrides, expected) => {
    const plan = planPolicy(input({ previous, readings: readings(after), ...overrides }));
    expect(plan.status.history).toHaveLength(1);
    expect(plan.status.history?.[0]?.utilizationBefore).toBe(90);
    expect(plan.status.history?.[0]?.utilizationAfter).toBe(expected);
  });

  it('is never overwritten once filled', () => {
    const filled: ParsedPoolPolicyStatus = {
      ...previous,
      history: previous.history?.map((h) => ({ ...h, utilizationAfter: 70 })),
    };
    const plan = planPolicy(
      input({
        previous: filled,
        readings: readings(after),
        samples: { database: valid(50) },
        rolloutCompletedAt: { env: ago(2 * MINUTE), pgbouncer: undefined },
      }),
    );
    expect(plan.status.history?.[0]?.utilizationAfter).toBe(70);
  });
});

describe('planPolicy + statusToWrite: an idle pass writes nothing', () => {
  /** Two passes 30s apart in the dead band, the second reading back what the first stored. */
  function twoPasses(firstPercent: number, secondPercent: number): { written: PoolPolicyStatus; next: Plan } {
    const first = planPolicy(input({ samples: { database: valid(firstPercent) }, previous: {} }));
    const later = new Date(NOW.getTime() + 30 * SECOND);
    const next = planPolicy(
      input({
        now: later,
        previous: stored(first.status),
        samples: { database: { valid: true, percent: secondPercent, sampledAt: later } },
      }),
    );
    return { written: toWrittenStatus(stored(first.status)), next };
  }

  it('same utilization: no write, no event', () => {
    const { written, next } = twoPasses(60, 60);
    expect(next.events).toEqual([]);
    expect(statusToWrite(written, next.status)).toBeUndefined();
  });

  it('utilization moved by >= 5 points: writes the new observation', () => {
    const { written, next } = twoPasses(60, 66);
    expect(statusToWrite(written, next.status)?.observed?.database).toBe(66);
  });

  // The dead-band message leaves out live utilization, so a steady workload writes nothing.
  it('utilization wobbling 60% -> 62% inside the dead band: no write', () => {
    const { written, next } = twoPasses(60, 62);
    expect(statusToWrite(written, next.status)).toBeUndefined();
  });
});

describe('blockedStatus and blockedEvents', () => {
  const previous: ParsedPoolPolicyStatus = {
    observedGeneration: 2,
    current: { DB_POOL_SIZE: 24 },
    conditions: [
      {
        type: ConditionType.Ready,
        status: 'True',
        reason: ConditionReason.Reconciled,
        message: 'ok',
        lastTransitionTime: ago(HOUR),
        observedGeneration: 2,
      },
      {
        type: ConditionType.MetricsAvailable,
        status: 'True',
        reason: 'SamplesValid',
        message: 'ok',
        lastTransitionTime: ago(HOUR),
        observedGeneration: 2,
      },
    ],
  };

  it('sets Ready, keeps the other conditions and the rest of the status', () => {
    const status = blockedStatus(previous, 4, NOW, {
      status: 'False',
      reason: ConditionReason.TargetNotFound,
      message: 'no Deployment voiceassist-api',
    });
    expect(status).toEqual({
      observedGeneration: 4,
      current: { DB_POOL_SIZE: 24 },
      conditions: [
        {
          type: ConditionType.Ready,
          status: 'False',
          reason: ConditionReason.TargetNotFound,
          message: 'no Deployment voiceassist-api',
          lastTransitionTime: formatStatusTime(NOW),
          observedGeneration: 4,
        },
        {
          type: ConditionType.MetricsAvailable,
          status: 'True',
          reason: 'SamplesValid',
          message: 'ok',
          lastTransitionTime: at(HOUR),
          observedGeneration: 2,
        },
      ],
    });
  });

  it.each<[string, ParsedPoolPolicyStatus, 'True' | 'False', string, string[]]>([
    ['turns not ready: warns', previous, 'False', ConditionReason.TargetNotFound, [ConditionReason.TargetNotFound]],
    ['paused (Ready=True): no warning', previous, 'True', ConditionReason.Paused, []],
    ['no status yet, blocked: warns', {}, 'False', ConditionReason.InvalidSpec, [ConditionReason.InvalidSpec]],
  ])('%s', (_name, before, status, reason, expected) => {
    const next = blockedStatus(before, 4, NOW, { status, reason, message: 'm' });
    expect(blockedEvents(before, next).map((e) => [e.type, e.reason])).toEqual(expected.map((r) => ['Warning', r]));
  });

  it.each<[string, string, number]>([
    ['same reason as stored: not repeated', ConditionReason.TargetNotFound, 0],
    ['a new reason: warns', ConditionReason.ContainerNotFound, 1],
  ])('already blocked, %s', (_name, reason, expected) => {
    const first = blockedStatus(previous, 4, NOW, {
      status: 'False',
      reason: ConditionReason.TargetNotFound,
      message: 'm',
    });
    const before = stored(first);
    const next = blockedStatus(before, 4, new Date(NOW.getTime() + MINUTE), { status: 'False', reason, message: 'm2' });
    expect(blockedEvents(before, next)).toHaveLength(expected);
    expect(conditionOf(next, ConditionType.Ready).lastTransitionTime).toBe(formatStatusTime(NOW));
  });
});

describe('planPolicy: a change whose status write was lost', () => {
  // The env was applied 2 minutes ago, then the process died before the status write: the
  // status has no lastChange, only the Deployment's managedFields time says when it happened.
  const spec = specOf({ targetRef: target, database, behavior: { minChangeInterval: '10m' } });

  it('still holds the minimum change interval, counted from the time the target records', () => {
    const plan = planPolicy(input({ spec, lastAppliedAt: { env: ago(2 * MINUTE) } }));
    expect(plan.changes).toEqual([]);
    expect(plan.envWrites.size).toBe(0);
    expect(conditionOf(plan, ConditionType.Limited).reason).toBe('MinIntervalNotElapsed');
  });

  it('the later of status.lastChange and the target time counts; once it is old enough, a step is allowed', () => {
    const lastChange = { time: ago(1 * MINUTE), reason: 'earlier', changes: [] };
    expect(
      planPolicy(
        input({ spec, previous: { breaches: OLD_UP_BREACHES, lastChange }, lastAppliedAt: { env: ago(HOUR) } }),
      ).changes,
    ).toEqual([]);
    expect(planPolicy(input({ spec, lastAppliedAt: { env: ago(11 * MINUTE) } })).changes.map((c) => c.setting)).toEqual(
      ['DB_POOL_SIZE', 'DB_MAX_OVERFLOW'],
    );
    // A PgBouncer write does not hold the database section (another target).
    expect(planPolicy(input({ spec, lastAppliedAt: { pgbouncer: ago(1 * MINUTE) } })).changes).toHaveLength(2);
  });
});

describe('planPolicy: PgBouncer default_pool_size FillToBudget', () => {
  const filling = specOf({
    targetRef: target,
    budgetRef: { name: 'postgres' },
    pgbouncer: { ...pgbouncerEnv, defaultPoolSize: { mode: 'FillToBudget', min: 10, max: 80 } },
    behavior: { minChangeInterval: '5s' },
  });
  const share = (cap: number, extra: Partial<SectionBudget> = {}): SectionBudget =>
    ({ kind: 'cap', backend: 'PostgreSQL', cap, needs: 80, free: cap, minimumsFit: true, ...extra }) as SectionBudget;
  const pass = (overrides: Partial<PlanInput>): Plan =>
    planPolicy(
      input({
        spec: filling,
        readings: readings({ DEFAULT_POOL_SIZE: value(20), MAX_CLIENT_CONN: value(400) }),
        samples: { pgbouncer: valid(30) },
        previous: { lastChange: { time: ago(HOUR), reason: 'x', changes: [] } },
        budget: { pgbouncer: share(60) },
        ...overrides,
      }),
    );

  it.each<[string, Partial<PlanInput>, number, number, string]>([
    ['fills the share in one change at low utilization; max_client_conn follows × 20', {}, 60, 1200, 'FilledToBudget'],
    ['the share above max: held at max', { budget: { pgbouncer: share(94) } }, 80, 1600, 'FilledToBudget'],
    [
      'at the share: held',
      { readings: readings({ DEFAULT_POOL_SIZE: value(60), MAX_CLIENT_CONN: value(1200) }) },
      60,
      1200,
      'DeadBand',
    ],
    [
      'above the steady share (a peer claims its part): down at once',
      { readings: readings({ DEFAULT_POOL_SIZE: value(80), MAX_CLIENT_CONN: value(1600) }) },
      60,
      1200,
      'BudgetCorrection',
    ],
    [
      'growth waits for the minimum change interval',
      { previous: { lastChange: { time: ago(2 * SECOND), reason: 'x', changes: [] } } },
      20,
      400,
      'MinIntervalNotElapsed',
    ],
    [
      'the exporter gives no data: held',
      { samples: { pgbouncer: { valid: false, problem: 'NoData', message: 'no series' } } },
      20,
      400,
      'MetricsUnavailable',
    ],
    [
      'the budget cannot be evaluated: held',
      { budget: { pgbouncer: { kind: 'unknown', reason: 'BudgetNotFound', message: 'no budget postgres' } } },
      20,
      400,
      'BudgetNotFound',
    ],
    [
      'PgBouncer does not run the last write yet: held',
      { pgbouncerApplied: { state: 'Pending', message: 'PgBouncer runs 10, not 20' } },
      20,
      400,
      ConditionReason.DeliveryPending,
    ],
  ])('%s', (_label, overrides, pool, clients, reason) => {
    const plan = pass(overrides);
    expect(plan.status.recommended).toMatchObject({ DEFAULT_POOL_SIZE: pool, MAX_CLIENT_CONN: clients });
    const from = overrides.readings?.get('DEFAULT_POOL_SIZE') ?? value(20);
    expect([...plan.pgbouncerWrites]).toEqual(
      from.kind === 'value' && from.value !== pool
        ? [
            ['DEFAULT_POOL_SIZE', pool],
            ['MAX_CLIENT_CONN', clients],
          ]
        : [],
    );
    expect(conditionOf(plan, ConditionType.Limited).reason).toBe(reason);
  });
});

describe('planPolicy: connection budget', () => {
  const DOWN_BREACHES: ParsedPoolPolicyStatus['breaches'] = {
    database: { direction: 'down', since: ago(HOUR), lastSeen: ago(30 * SECOND) },
  };
  const cap = (value: number, needs = 100, free = 90): SectionBudget => ({
    kind: 'cap',
    backend: 'PostgreSQL',
    cap: value,
    needs,
    free,
    minimumsFit: true,
  });

  it.each<[string, Partial<PlanInput>, number, string]>([
    ['a growth is cut to the cap', { budget: { database: cap(22) } }, 22, 'BudgetLimited'],
    [
      'a growth at the cap holds',
      { readings: readings({ DB_POOL_SIZE: value(22), DB_MAX_OVERFLOW: value(44) }), budget: { database: cap(22) } },
      22,
      'BudgetLimited',
    ],
    [
      'a value above the cap comes down at once, past the step limit',
      { readings: readings({ DB_POOL_SIZE: value(40), DB_MAX_OVERFLOW: value(80) }), budget: { database: cap(15) } },
      15,
      'BudgetCorrection',
    ],
    [
      'a normal step down within the cap is no correction',
      {
        samples: { database: valid(20) },
        previous: { breaches: DOWN_BREACHES },
        budget: { database: cap(16, 78, 97) },
      },
      16,
      'StepLimited',
    ],
    ['a growth within the cap is untouched', { budget: { database: cap(50) } }, 24, 'StepLimited'],
    [
      "a peer's rollout holds surge pods (cap below the steady limit): no correction, no growth",
      {
        readings: readings({ DB_POOL_SIZE: value(20), DB_MAX_OVERFLOW: value(40) }),
        budget: { database: { ...cap(15), fair: 30, limit: 25 } as SectionBudget },
      },
      20,
      'BudgetLimited',
    ],
    [
      'over the steady limit: corrected to it, not to the surge-reduced cap',
      {
        readings: readings({ DB_POOL_SIZE: value(40), DB_MAX_OVERFLOW: value(80) }),
        budget: { database: { ...cap(15), fair: 30, limit: 25 } as SectionBudget },
      },
      25,
      'BudgetCorrection',
    ],
  ])('%s', (_label, overrides, desired, reason) => {
    const plan = planPolicy(input(overrides));
    expect(plan.status.recommended?.DB_POOL_SIZE).toBe(desired);
    expect(conditionOf(plan, ConditionType.Limited).reason).toBe(reason);
  });

  it('says "faster than the normal step" in the PoolResized event of a correction', () => {
    const plan = planPolicy(
      input({
        readings: readings({ DB_POOL_SIZE: value(40), DB_MAX_OVERFLOW: value(80) }),
        budget: { database: cap(15) },
      }),
    );
    expect(plan.events.find((e) => e.reason === 'PoolResized')?.note).toMatch(
      /DB_POOL_SIZE 40→15.*faster than the normal step/,
    );
  });
});

describe('planPolicy with spec.behavior.scaleUp policies: the rate limit counts status.history', () => {
  // No stabilization and no minimum interval: only the policy limits the growth.
  const spec = specOf({
    targetRef: target,
    database,
    behavior: {
      minChangeInterval: '0s',
      scaleUp: { stabilizationWindow: '0s', policies: [{ type: 'Connections', value: 6, period: '1m' }] },
    },
  });
  const history = (msAgo: number, from: number, to: number): ParsedPoolPolicyStatus['history'] => [
    // A first value on an unset setting (from 0) is not a move; the later change is.
    { time: ago(10 * MINUTE), reason: 'not set', changes: [{ setting: 'DB_POOL_SIZE', from: 0, to: 10 }] },
    {
      time: ago(msAgo),
      reason: 'up',
      changes: [
        { setting: 'DB_POOL_SIZE', from, to },
        { setting: 'DB_MAX_OVERFLOW', from: from * 2, to: to * 2 },
      ],
    },
  ];

  it('a change 30 s ago inside the 1m period leaves 1 of 6: 20→21, Limited ScaleUpLimit naming the policy and period', () => {
    const plan = planPolicy(
      input({ spec, previous: { history: history(30 * SECOND, 15, 20) }, samples: { database: valid(100) } }),
    );
    expect(plan.changes).toEqual([
      { setting: 'DB_POOL_SIZE', from: 20, to: 21 },
      { setting: 'DB_MAX_OVERFLOW', from: 40, to: 42 },
    ]);
    const limited = conditionOf(plan, ConditionType.Limited);
    expect(limited).toMatchObject({ status: 'True', reason: ConditionReason.ScaleUpLimit });
    expect(limited.message).toContain(
      'scale-up limited by policy Connections 6 per 1m0s (selectPolicy Max; from 15 at the start of the period, +5 already changed in it)',
    );
  });

  it('once the change is older than the period, the full 6 are allowed again: 20→26', () => {
    const plan = planPolicy(
      input({ spec, previous: { history: history(2 * MINUTE, 15, 20) }, samples: { database: valid(100) } }),
    );
    expect(plan.changes[0]).toEqual({ setting: 'DB_POOL_SIZE', from: 20, to: 26 });
  });
});

describe('planPolicy: spec.delivery mode ConfigMap', () => {
  const DELIVERED = specOf({
    targetRef: target,
    database,
    delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' } },
  });
  const written = planPolicy(input({ spec: DELIVERED }));

  it('records the delivery: what was written, what it replaced, Pending until the pods report it', () => {
    expect([...written.envWrites]).toEqual([
      ['DB_POOL_SIZE', 24],
      ['DB_MAX_OVERFLOW', 48],
    ]);
    expect(written.status.delivery).toEqual({
      configMap: 'api-pools',
      key: 'pools.env',
      writtenAt: formatStatusTime(NOW),
      written: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
      replaced: { DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 },
      pods: [],
    });
    expect(conditionOf(written, ConditionType.Delivered)).toMatchObject({
      status: 'False',
      reason: ConditionReason.Pending,
      message: `DB_MAX_OVERFLOW=48 DB_POOL_SIZE=24 written to api-pools/pools.env at ${formatStatusTime(NOW)}; waiting for the pods to report it`,
    });
  });

  it.each<['Pending' | 'NotConfirmed']>([['Pending'], ['NotConfirmed']])(
    'holds every env section while the delivery is %s, whatever utilization says, and keeps the record',
    (state) => {
      const record = { ...stored(written.status).delivery, configMap: 'api-pools' } as NonNullable<
        ParsedPoolPolicyStatus['delivery']
      >;
      const plan = planPolicy(
        input({
          spec: DELIVERED,
          readings: readings({ DB_POOL_SIZE: value(24), DB_MAX_OVERFLOW: value(48) }),
          samples: { database: valid(99) },
          delivery: { state, message: 'm', record },
        }),
      );
      expect(plan.envWrites.size).toBe(0);
      expect(plan.changes).toEqual([]);
      expect(conditionOf(plan, ConditionType.Limited)).toMatchObject({
        status: 'True',
        reason: ConditionReason.DeliveryPending,
      });
      expect(conditionOf(plan, ConditionType.Delivered)).toMatchObject({ status: 'False', reason: state });
      expect(plan.status.delivery?.written).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    },
  );

  it('plans again once the delivery is Applied', () => {
    const record = stored(written.status).delivery;
    if (record === undefined) throw new Error('no delivery record');
    const plan = planPolicy(
      input({
        spec: DELIVERED,
        readings: readings({ DB_POOL_SIZE: value(24), DB_MAX_OVERFLOW: value(48) }),
        delivery: { state: 'Applied', message: 'applied', record: { ...record, confirmedAt: NOW } },
      }),
    );
    // Still at 90 %: the next step is delivered, and waits for its own confirmation.
    expect([...plan.envWrites]).toEqual([
      ['DB_POOL_SIZE', 28],
      ['DB_MAX_OVERFLOW', 56],
    ]);
    expect(plan.status.delivery?.replaced).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    const steady = planPolicy(
      input({
        spec: DELIVERED,
        readings: readings({ DB_POOL_SIZE: value(24), DB_MAX_OVERFLOW: value(48) }),
        samples: { database: valid(60) },
        delivery: { state: 'Applied', message: 'applied', record: { ...record, confirmedAt: NOW } },
      }),
    );
    expect(conditionOf(steady, ConditionType.Delivered)).toMatchObject({ status: 'True', reason: 'Applied' });
    expect(conditionOf(steady, ConditionType.Limited).reason).not.toBe(ConditionReason.DeliveryPending);
  });

  it('before any delivery: Delivered=True NothingDelivered; mode Env has no Delivered condition', () => {
    const idle = planPolicy(input({ spec: DELIVERED, samples: { database: valid(60) } }));
    expect(conditionOf(idle, ConditionType.Delivered)).toMatchObject({
      status: 'True',
      reason: ConditionReason.NothingDelivered,
    });
    expect(planPolicy(input()).status.conditions?.map((c) => c.type)).not.toContain(ConditionType.Delivered);
  });
});
