import { describe, it, expect } from '@jest/globals';
import {
  formatStatusTime,
  parsePoolPolicySpec,
  parsePoolPolicyStatus,
  POOLPOLICY_API_VERSION,
  POOLPOLICY_GROUP,
  POOLPOLICY_KIND,
  POOLPOLICY_PLURAL,
  POOLPOLICY_VERSION,
  type PoolPolicySpec,
  type PoolPolicyStatus,
} from '../../../src/api/v1alpha1/poolpolicy.js';
import { ConditionReason, ConditionType } from '../../../src/api/v1alpha1/conditions.js';

type Raw = Record<string, unknown>;

const target = { name: 'voiceassist-api' };
const redisOnly: Raw = { targetRef: target, redis: { maxConnections: { min: 25, max: 100 } } };

function parseOk(raw: unknown): PoolPolicySpec {
  const result = parsePoolPolicySpec(raw);
  if (!result.ok) throw new Error(`expected ok, got: ${result.message}`);
  return result.spec;
}

function parseErr(raw: unknown): string {
  const result = parsePoolPolicySpec(raw);
  if (result.ok) throw new Error('expected the spec to be refused');
  return result.message;
}

/** Deep copy of redisOnly with `patch` merged at the top level. */
function withRedis(patch: Raw): Raw {
  return { ...structuredClone(redisOnly), ...patch };
}

const DEFAULT_THRESHOLDS = { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 };
const DEFAULT_BEHAVIOR = {
  maxStepPercent: 20,
  scaleUpStabilizationMs: 5 * 60_000,
  scaleDownStabilizationMs: 30 * 60_000,
  minChangeIntervalMs: 10 * 60_000,
};

describe('API constants', () => {
  it('names the group, version, plural and kind', () => {
    expect([POOLPOLICY_GROUP, POOLPOLICY_VERSION, POOLPOLICY_PLURAL, POOLPOLICY_KIND]).toEqual([
      'poolpilot.io',
      'v1alpha1',
      'poolpolicies',
      'PoolPolicy',
    ]);
    expect(POOLPOLICY_API_VERSION).toBe('poolpilot.io/v1alpha1');
  });

  it('exports the condition types and reasons', () => {
    expect(Object.values(ConditionType)).toEqual([
      'Ready',
      'MetricsAvailable',
      'Limited',
      'PgBouncerRecommended',
      'Delivered',
    ]);
    for (const [key, value] of Object.entries(ConditionReason)) {
      expect(value).toBe(key);
      expect(value).toMatch(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/);
    }
    expect(Object.keys(ConditionReason)).toHaveLength(37);
    expect(ConditionReason.QueryRejected).toBe('QueryRejected');
    expect([ConditionReason.BudgetLimited, ConditionReason.BudgetNotFound, ConditionReason.BudgetCorrection]).toEqual([
      'BudgetLimited',
      'BudgetNotFound',
      'BudgetCorrection',
    ]);
  });
});

describe('parsePoolPolicySpec: valid specs get the documented defaults', () => {
  it('redis only: every default applied', () => {
    expect(parseOk(redisOnly)).toEqual({
      targetRef: { name: 'voiceassist-api', container: undefined },
      mode: 'Auto',
      intervalMs: 30_000,
      metricsPrefix: '',
      prometheus: { address: undefined, timeoutMs: 10_000 },
      database: undefined,
      redis: {
        maxConnections: { env: 'REDIS_MAX_CONNECTIONS', mode: 'Utilization', min: 25, max: 100 },
        utilization: undefined,
      },
      pgbouncer: undefined,
      delivery: { mode: 'Env' },
      budgetRef: undefined,
      processesPerPod: 1,
      thresholds: DEFAULT_THRESHOLDS,
      behavior: DEFAULT_BEHAVIOR,
    });
  });

  it('database: env names and overflow ratio default; overflow min may be 0', () => {
    const spec = parseOk({
      targetRef: target,
      database: { poolSize: { min: 10, max: 50 }, maxOverflow: { min: 0, max: 100 } },
    });
    expect(spec.database).toEqual({
      poolSize: { env: 'DB_POOL_SIZE', min: 10, max: 50 },
      maxOverflow: { env: 'DB_MAX_OVERFLOW', mode: 'Ratio', ratio: 2, min: 0, max: 100 },
      utilization: undefined,
    });
  });

  it('pgbouncer: key, format, maxClientConn ratio and pools default', () => {
    const spec = parseOk({
      targetRef: target,
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000 },
      },
    });
    expect(spec.pgbouncer).toEqual({
      configMapRef: { name: 'pgbouncer-config', key: 'pgbouncer.ini' },
      format: 'ini',
      defaultPoolSize: { mode: 'Utilization', min: 10, max: 40 },
      maxClientConn: { min: 100, max: 2000, ratio: 20 },
      utilization: undefined,
      rolloutRef: undefined,
      pools: 1,
    });
  });

  it('the full example from the API docs', () => {
    const spec = parseOk({
      targetRef: { name: 'voiceassist-api', container: 'api' },
      mode: 'Recommend',
      interval: '15s',
      metricsPrefix: 'voiceassist_',
      prometheus: { address: 'http://prometheus.monitoring:9090', timeout: '5s' },
      database: {
        poolSize: { env: 'DB_POOL_SIZE', min: 10, max: 50 },
        maxOverflow: { env: 'DB_MAX_OVERFLOW', mode: 'Ratio', ratio: 1.5, min: 0, max: 100 },
        utilization: 'max(db_pool_in_use / db_pool_size) * 100',
      },
      redis: {
        maxConnections: { env: 'REDIS_MAX', mode: 'Utilization', min: 25, max: 100 },
        utilization: 'max(redis_util)',
      },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config', key: 'config.ini' },
        format: 'env',
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000, ratio: 25 },
        utilization: 'max(pgb_util)',
        rolloutRef: { name: 'pgbouncer' },
        pools: 3,
      },
      delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' }, confirmTimeout: '90s' },
      budgetRef: { name: 'prod-db' },
      processesPerPod: 4,
      thresholds: { scaleUpAbove: 90, scaleDownBelow: 30.5, target: 70 },
      behavior: {
        maxStepPercent: 50,
        scaleUpStabilization: '0s',
        scaleDownStabilization: '1h30m',
        minChangeInterval: '90s',
      },
    });
    expect(spec).toEqual({
      targetRef: { name: 'voiceassist-api', container: 'api' },
      mode: 'Recommend',
      intervalMs: 15_000,
      metricsPrefix: 'voiceassist_',
      prometheus: { address: 'http://prometheus.monitoring:9090', timeoutMs: 5000 },
      database: {
        poolSize: { env: 'DB_POOL_SIZE', min: 10, max: 50 },
        maxOverflow: { env: 'DB_MAX_OVERFLOW', mode: 'Ratio', ratio: 1.5, min: 0, max: 100 },
        utilization: 'max(db_pool_in_use / db_pool_size) * 100',
      },
      redis: {
        maxConnections: { env: 'REDIS_MAX', mode: 'Utilization', min: 25, max: 100 },
        utilization: 'max(redis_util)',
      },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config', key: 'config.ini' },
        format: 'env',
        defaultPoolSize: { mode: 'Utilization', min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000, ratio: 25 },
        utilization: 'max(pgb_util)',
        rolloutRef: { name: 'pgbouncer' },
        pools: 3,
      },
      delivery: {
        mode: 'ConfigMap',
        configMapRef: { name: 'api-pools', key: 'pools.env' },
        confirmTimeoutMs: 90_000,
        reload: 'Swap',
        refresh: 'KubeletSync',
      },
      budgetRef: { name: 'prod-db' },
      processesPerPod: 4,
      thresholds: { scaleUpAbove: 90, scaleDownBelow: 30.5, target: 70 },
      behavior: {
        maxStepPercent: 50,
        scaleUpStabilizationMs: 0,
        scaleDownStabilizationMs: 5_400_000,
        minChangeIntervalMs: 90_000,
      },
    });
  });

  const variants: readonly (readonly [string, Raw, (spec: PoolPolicySpec) => unknown, unknown])[] = [
    ['interval 1s (the minimum)', { interval: '1s' }, (s) => s.intervalMs, 1000],
    ['interval 1h30m', { interval: '1h30m' }, (s) => s.intervalMs, 5_400_000],
    ['interval 1.5s', { interval: '1.5s' }, (s) => s.intervalMs, 1500],
    ['timeout 500ms', { prometheus: { timeout: '500ms' } }, (s) => s.prometheus.timeoutMs, 500],
    ['empty prometheus section', { prometheus: {} }, (s) => s.prometheus, { address: undefined, timeoutMs: 10_000 }],
    [
      'https address with path',
      { prometheus: { address: 'https://prom.example/api/prom' } },
      (s) => s.prometheus.address,
      'https://prom.example/api/prom',
    ],
    [
      'stabilizations may be 0s',
      { behavior: { scaleUpStabilization: '0s', scaleDownStabilization: '0ms', minChangeInterval: '0s' } },
      (s) => s.behavior,
      { ...DEFAULT_BEHAVIOR, scaleUpStabilizationMs: 0, scaleDownStabilizationMs: 0, minChangeIntervalMs: 0 },
    ],
    [
      'partial behavior keeps other defaults',
      { behavior: { maxStepPercent: 100 } },
      (s) => s.behavior,
      { ...DEFAULT_BEHAVIOR, maxStepPercent: 100 },
    ],
    [
      'partial thresholds keep other defaults',
      { thresholds: { target: 70 } },
      (s) => s.thresholds,
      { ...DEFAULT_THRESHOLDS, target: 70 },
    ],
    ['empty thresholds object', { thresholds: {} }, (s) => s.thresholds, DEFAULT_THRESHOLDS],
    ['scaleUpAbove 100', { thresholds: { scaleUpAbove: 100 } }, (s) => s.thresholds.scaleUpAbove, 100],
    ['metricsPrefix with colon', { metricsPrefix: 'ns:app_' }, (s) => s.metricsPrefix, 'ns:app_'],
    ['explicit empty metricsPrefix', { metricsPrefix: '' }, (s) => s.metricsPrefix, ''],
    ['mode Paused', { mode: 'Paused' }, (s) => s.mode, 'Paused'],
    ['dotted target name', { targetRef: { name: 'api.v2' } }, (s) => s.targetRef.name, 'api.v2'],
    [
      'min == max',
      { redis: { maxConnections: { min: 50, max: 50 } } },
      (s) => s.redis?.maxConnections,
      { env: 'REDIS_MAX_CONNECTIONS', mode: 'Utilization', min: 50, max: 50 },
    ],
    ['budgetRef', { budgetRef: { name: 'prod-db.v2' } }, (s) => s.budgetRef, { name: 'prod-db.v2' }],
    ['processesPerPod 1 (the minimum)', { processesPerPod: 1 }, (s) => s.processesPerPod, 1],
    ['processesPerPod 8', { processesPerPod: 8 }, (s) => s.processesPerPod, 8],
    [
      'delivery ConfigMap without reload: the app swaps pools',
      { delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' } } },
      (s) => s.delivery,
      {
        mode: 'ConfigMap',
        configMapRef: { name: 'api-pools', key: 'pools.env' },
        confirmTimeoutMs: 180_000,
        reload: 'Swap',
        refresh: 'KubeletSync',
      },
    ],
    [
      'delivery ConfigMap with refresh AnnotatePods',
      { delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' }, refresh: 'AnnotatePods' } },
      (s) => s.delivery.mode === 'ConfigMap' && s.delivery.refresh,
      'AnnotatePods',
    ],
    [
      'delivery ConfigMap with reload Resize',
      { delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' }, reload: 'Resize' } },
      (s) => s.delivery.mode === 'ConfigMap' && s.delivery.reload,
      'Resize',
    ],
    [
      'lower-case env name',
      { redis: { maxConnections: { env: '_redis_max1', min: 1, max: 2 } } },
      (s) => s.redis?.maxConnections.env,
      '_redis_max1',
    ],
  ];
  it.each(variants)('%s', (_name, patch, select, expected) => {
    expect(select(parseOk(withRedis(patch)))).toEqual(expected);
  });

  it('does not mutate its input', () => {
    const raw = withRedis({});
    const before = structuredClone(raw);
    parseOk(raw);
    expect(raw).toEqual(before);
  });
});

describe('parsePoolPolicySpec: malformed specs are refused naming the field', () => {
  const db = (poolSize: unknown, maxOverflow?: unknown): Raw => ({
    targetRef: target,
    database: maxOverflow === undefined ? { poolSize } : { poolSize, maxOverflow },
  });
  const pgb = (patch: Raw): Raw => ({
    targetRef: target,
    pgbouncer: { configMapRef: { name: 'pgbouncer-config' }, defaultPoolSize: { min: 10, max: 40 }, ...patch },
  });

  const cases: readonly (readonly [string, unknown, readonly string[]])[] = [
    // bounds
    ['min > max', db({ min: 60, max: 50 }), ['spec.database.poolSize: min (60) must be <= max (50)']],
    [
      'min > max (overflow)',
      db({ min: 1, max: 2 }, { min: 10, max: 5 }),
      ['spec.database.maxOverflow: min (10) must be <= max (5)'],
    ],
    [
      'min > max (redis)',
      withRedis({ redis: { maxConnections: { min: 101, max: 100 } } }),
      ['spec.redis.maxConnections: min (101) must be <= max (100)'],
    ],
    [
      'FillToBudget overflow without a budget',
      db({ min: 5, max: 40 }, { mode: 'FillToBudget', min: 0, max: 80 }),
      ['spec.database.maxOverflow.mode: FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef'],
    ],
    [
      'FillToBudget Redis without a budget',
      withRedis({ redis: { maxConnections: { mode: 'FillToBudget', min: 10, max: 50 } } }),
      ['spec.redis.maxConnections.mode: FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef'],
    ],
    [
      'FillToBudget PgBouncer pool without a budget',
      pgb({ defaultPoolSize: { mode: 'FillToBudget', min: 10, max: 40 } }),
      ['spec.pgbouncer.defaultPoolSize.mode: FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef'],
    ],
    [
      'unknown PgBouncer pool mode',
      pgb({ defaultPoolSize: { mode: 'Fill', min: 10, max: 40 } }),
      ['spec.pgbouncer.defaultPoolSize.mode: must be one of Utilization, FillToBudget (got "Fill")'],
    ],
    [
      'unknown overflow mode',
      db({ min: 5, max: 40 }, { mode: 'Fill', min: 0, max: 80 }),
      ['spec.database.maxOverflow.mode: must be one of Ratio, FillToBudget (got "Fill")'],
    ],
    [
      'min > max (pgbouncer)',
      pgb({ defaultPoolSize: { min: 50, max: 40 } }),
      ['spec.pgbouncer.defaultPoolSize: min (50) must be <= max (40)'],
    ],
    [
      'min > max (maxClientConn)',
      pgb({ maxClientConn: { min: 3000, max: 2000 } }),
      ['spec.pgbouncer.maxClientConn: min (3000) must be <= max (2000)'],
    ],
    ['zero pool size min', db({ min: 0, max: 50 }), ['spec.database.poolSize.min: must be >= 1 (got 0)']],
    ['zero pool size max', db({ min: 1, max: 0 }), ['spec.database.poolSize.max: must be >= 1 (got 0)']],
    [
      'negative redis min',
      withRedis({ redis: { maxConnections: { min: -5, max: 50 } } }),
      ['spec.redis.maxConnections.min: must be >= 1 (got -5)'],
    ],
    [
      'negative overflow min',
      db({ min: 1, max: 2 }, { min: -1, max: 5 }),
      ['spec.database.maxOverflow.min: must be >= 0 (got -1)'],
    ],
    [
      'zero pgbouncer min',
      pgb({ defaultPoolSize: { min: 0, max: 40 } }),
      ['spec.pgbouncer.defaultPoolSize.min: must be >= 1 (got 0)'],
    ],
    ['fractional bound', db({ min: 1.5, max: 50 }), ['spec.database.poolSize.min: must be an integer (got 1.5)']],
    ['string bound', db({ min: '10', max: 50 }), ['spec.database.poolSize.min: must be']],
    ['bound above int32', db({ min: 1, max: 2 ** 31 }), ['spec.database.poolSize.max: must be <= 2147483647']],
    ['missing max', db({ min: 1 }), ['spec.database.poolSize.max: is required']],
    ['missing poolSize', { targetRef: target, database: {} }, ['spec.database.poolSize: is required']],
    [
      'zero ratio',
      db({ min: 1, max: 2 }, { ratio: 0, min: 0, max: 5 }),
      ['spec.database.maxOverflow.ratio: must be > 0 (got 0)'],
    ],
    [
      'negative maxClientConn ratio',
      pgb({ maxClientConn: { min: 1, max: 2, ratio: -1 } }),
      ['spec.pgbouncer.maxClientConn.ratio: must be > 0'],
    ],
    // behavior
    [
      'maxStepPercent 0',
      withRedis({ behavior: { maxStepPercent: 0 } }),
      ['spec.behavior.maxStepPercent: must be >= 1 (got 0)'],
    ],
    [
      'maxStepPercent 101',
      withRedis({ behavior: { maxStepPercent: 101 } }),
      ['spec.behavior.maxStepPercent: must be <= 100 (got 101)'],
    ],
    [
      'maxStepPercent fractional',
      withRedis({ behavior: { maxStepPercent: 12.5 } }),
      ['spec.behavior.maxStepPercent: must be an integer'],
    ],
    // thresholds
    [
      'scaleDownBelow > target',
      withRedis({ thresholds: { scaleUpAbove: 80, scaleDownBelow: 70, target: 60 } }),
      ['spec.thresholds: must satisfy 0 < scaleDownBelow (70) < target (60) < scaleUpAbove (80) <= 100'],
    ],
    [
      'target > scaleUpAbove',
      withRedis({ thresholds: { target: 90 } }),
      ['spec.thresholds: must satisfy', 'target (90)'],
    ],
    ['target == scaleUpAbove', withRedis({ thresholds: { target: 80 } }), ['spec.thresholds: must satisfy']],
    ['scaleDownBelow == target', withRedis({ thresholds: { scaleDownBelow: 65 } }), ['spec.thresholds: must satisfy']],
    [
      'scaleUpAbove 101',
      withRedis({ thresholds: { scaleUpAbove: 101 } }),
      ['spec.thresholds.scaleUpAbove: must be <= 100 (got 101)'],
    ],
    [
      'scaleDownBelow 0',
      withRedis({ thresholds: { scaleDownBelow: 0 } }),
      ['spec.thresholds.scaleDownBelow: must be > 0 (got 0)'],
    ],
    // durations
    [
      'duration in words',
      withRedis({ behavior: { scaleUpStabilization: '5 minutes' } }),
      ['spec.behavior.scaleUpStabilization: must be a duration like 30s, 5m, 1h30m or 500ms (got "5 minutes")'],
    ],
    [
      'negative duration',
      withRedis({ behavior: { minChangeInterval: '-1s' } }),
      ['spec.behavior.minChangeInterval: must be a duration', '"-1s"'],
    ],
    ['bare number duration', withRedis({ interval: '30' }), ['spec.interval: must be a duration']],
    ['numeric duration', withRedis({ interval: 30 }), ['spec.interval: must be a string (got 30)']],
    [
      'day unit',
      withRedis({ behavior: { scaleDownStabilization: '1d' } }),
      ['spec.behavior.scaleDownStabilization: must be a duration'],
    ],
    ['zero interval', withRedis({ interval: '0s' }), ['spec.interval: must be at least 1s (got "0s")']],
    ['sub-second interval', withRedis({ interval: '500ms' }), ['spec.interval: must be at least 1s']],
    ['zero timeout', withRedis({ prometheus: { timeout: '0s' } }), ['spec.prometheus.timeout: must be greater than 0']],
    // unknown fields
    [
      'unknown top-level field',
      withRedis({ replicas: 3 }),
      ['spec.replicas: unknown field (allowed fields: targetRef, mode,'],
    ],
    [
      'unknown nested field (typo)',
      withRedis({ redis: { maxConnection: { min: 1, max: 2 }, maxConnections: { min: 1, max: 2 } } }),
      ['spec.redis.maxConnection: unknown field (allowed fields: maxConnections, utilization)'],
    ],
    [
      'targetRef in another namespace',
      withRedis({ targetRef: { name: 'x', namespace: 'other' } }),
      ['spec.targetRef.namespace: unknown field'],
    ],
    ['unknown behavior field', withRedis({ behavior: { cooldown: '5m' } }), ['spec.behavior.cooldown: unknown field']],
    // sections
    [
      'no section set',
      { targetRef: target },
      ['spec: set at least one of spec.database, spec.redis or spec.pgbouncer'],
    ],
    [
      'no section set (null-free empty)',
      { targetRef: target, mode: 'Auto' },
      ['set at least one of spec.database, spec.redis or spec.pgbouncer'],
    ],
    // env names
    [
      'env name with dashes',
      db({ env: 'DB-POOL-SIZE', min: 10, max: 20 }),
      [
        'spec.database.poolSize.env: must be a valid env var name matching ^[A-Za-z_][A-Za-z0-9_]*$ (got "DB-POOL-SIZE")',
      ],
    ],
    [
      'env name starting with a digit',
      withRedis({ redis: { maxConnections: { env: '1REDIS', min: 1, max: 2 } } }),
      ['spec.redis.maxConnections.env: must be a valid env var name'],
    ],
    [
      'empty env name',
      db({ min: 1, max: 2 }, { env: '', min: 0, max: 2 }),
      ['spec.database.maxOverflow.env: must be a valid env var name'],
    ],
    [
      'same env for pool and overflow',
      db({ env: 'POOL', min: 1, max: 2 }, { env: 'POOL', min: 0, max: 2 }),
      ['spec.database.maxOverflow.env: must differ from poolSize.env'],
    ],
    [
      'redis env reuses a database env',
      {
        targetRef: target,
        database: { poolSize: { min: 1, max: 2 } },
        redis: { maxConnections: { env: 'DB_POOL_SIZE', min: 1, max: 2 } },
      },
      ['spec.redis.maxConnections.env: must differ from the spec.database env names'],
    ],
    // other fields
    ['missing targetRef', { redis: { maxConnections: { min: 1, max: 2 } } }, ['spec.targetRef: is required']],
    [
      'upper-case target name',
      withRedis({ targetRef: { name: 'VoiceAssist' } }),
      ['spec.targetRef.name: must be a lowercase DNS-1123 subdomain name'],
    ],
    [
      'bad container name',
      withRedis({ targetRef: { name: 'x', container: 'api_1' } }),
      ['spec.targetRef.container: must be a lowercase DNS-1123 label'],
    ],
    [
      'mode in lower case',
      withRedis({ mode: 'auto' }),
      ['spec.mode: must be one of Auto, Recommend, Paused (got "auto")'],
    ],
    ['processesPerPod 0', withRedis({ processesPerPod: 0 }), ['spec.processesPerPod: must be >= 1 (got 0)']],
    [
      'processesPerPod fractional',
      withRedis({ processesPerPod: 2.5 }),
      ['spec.processesPerPod: must be an integer (got 2.5)'],
    ],
    [
      'processesPerPod as a string',
      withRedis({ processesPerPod: '4' }),
      ['spec.processesPerPod: must be a number (got "4")'],
    ],
    ['pgbouncer pools 0', pgb({ pools: 0 }), ['spec.pgbouncer.pools: must be >= 1 (got 0)']],
    ['pgbouncer pools negative', pgb({ pools: -2 }), ['spec.pgbouncer.pools: must be >= 1 (got -2)']],
    ['budgetRef without name', withRedis({ budgetRef: {} }), ['spec.budgetRef.name: is required']],
    [
      'budgetRef in another namespace',
      withRedis({ budgetRef: { name: 'b', namespace: 'other' } }),
      ['spec.budgetRef.namespace: unknown field (allowed fields: name)'],
    ],
    [
      'upper-case budgetRef name',
      withRedis({ budgetRef: { name: 'ProdDB' } }),
      ['spec.budgetRef.name: must be a lowercase DNS-1123 subdomain name'],
    ],
    [
      'unknown pgbouncer format',
      pgb({ format: 'toml' }),
      ['spec.pgbouncer.format: must be one of ini, env (got "toml")'],
    ],
    [
      'missing configMapRef',
      { targetRef: target, pgbouncer: { defaultPoolSize: { min: 1, max: 2 } } },
      ['spec.pgbouncer.configMapRef: is required'],
    ],
    [
      'address without scheme',
      withRedis({ prometheus: { address: 'prometheus:9090' } }),
      ['spec.prometheus.address: must be an http:// or https:// URL'],
    ],
    [
      'metricsPrefix starting with a digit',
      withRedis({ metricsPrefix: '1app_' }),
      ['spec.metricsPrefix: must be empty or a Prometheus metric name prefix'],
    ],
    [
      'empty utilization query',
      withRedis({ redis: { maxConnections: { min: 1, max: 2 }, utilization: '' } }),
      ['spec.redis.utilization: must not be empty'],
    ],
    // found by test/integration/spec-agreement.property.test.ts against the real API server
    [
      'address with a Unicode space (RE2 \\s is ASCII-only)',
      withRedis({ prometheus: { address: 'http://a\u00a0b' } }),
      ['spec.prometheus.address: must be an http:// or https:// URL'],
    ],
    [
      'address with a line separator in the path',
      withRedis({ prometheus: { address: 'http://p/\u2028x' } }),
      ['spec.prometheus.address: must be an http:// or https:// URL'],
    ],
    [
      'timeout beyond the largest Go duration',
      withRedis({ prometheus: { timeout: '2562048h' } }),
      ['spec.prometheus.timeout: duration "2562048h" is too large (at most 2562047h)'],
    ],
    [
      'interval beyond the largest Go duration',
      withRedis({ interval: '99999999999h' }),
      ['spec.interval: duration "99999999999h" is too large'],
    ],
    [
      'minChangeInterval beyond the largest Go duration',
      withRedis({ behavior: { minChangeInterval: '2562048h' } }),
      ['spec.behavior.minChangeInterval: duration "2562048h" is too large'],
    ],
    [
      'utilization of 4097 characters (emoji count 1)',
      withRedis({ redis: { maxConnections: { min: 1, max: 2 }, utilization: '\u{1F600}'.repeat(4097) } }),
      ['spec.redis.utilization: must be at most 4096 characters long'],
    ],
    [
      'cross-namespace-looking target name',
      { targetRef: { name: 'other/api' }, redis: { maxConnections: { min: 1, max: 2 } } },
      ['spec.targetRef.name: must be a lowercase DNS-1123 subdomain name'],
    ],
    [
      'target with a namespace field',
      { targetRef: { name: 'api', namespace: 'other' }, redis: { maxConnections: { min: 1, max: 2 } } },
      ['spec.targetRef.namespace: unknown field'],
    ],
    ['spec is null', null, ['spec: must be an object (got null)']],
    ['spec is a list', [], ['spec: must be an object (got a list)']],
  ];

  it.each(cases)('%s', (_name, raw, expected) => {
    const message = parseErr(raw);
    for (const fragment of expected) expect(message).toContain(fragment);
  });

  // The API server accepts these (found by the spec-agreement property); so must zod.
  const accepted: readonly (readonly [string, unknown])[] = [
    [
      'utilization of 4096 emoji (the API server counts code points)',
      withRedis({ redis: { maxConnections: { min: 1, max: 2 }, utilization: '\u{1F600}'.repeat(4096) } }),
    ],
    ['address of 2048 characters', withRedis({ prometheus: { address: `http://${'a'.repeat(2041)}` } })],
    [
      'the largest Go duration in hours',
      withRedis({ prometheus: { timeout: '2562047h' }, behavior: { minChangeInterval: '2562047h' } }),
    ],
    ['behavior: null (pruned by the API server, then defaulted)', withRedis({ behavior: null })],
    [
      'null fields inside sections',
      withRedis({ targetRef: { name: 'api', container: null }, prometheus: { address: null }, thresholds: null }),
    ],
  ];

  it.each(accepted)('accepts %s', (_name, raw) => {
    expect(parsePoolPolicySpec(raw)).toMatchObject({ ok: true });
  });

  it('reports every problem at once', () => {
    const message = parseErr({
      targetRef: target,
      database: { poolSize: { min: 60, max: 50 } },
      behavior: { maxStepPercent: 0 },
    });
    expect(message.split('; ')).toEqual([
      'spec.database.poolSize: min (60) must be <= max (50)',
      'spec.behavior.maxStepPercent: must be >= 1 (got 0)',
    ]);
  });

  it('reports a malformed duration once', () => {
    expect(parseErr(withRedis({ interval: '5 minutes' }))).toBe(
      'spec.interval: must be a duration like 30s, 5m, 1h30m or 500ms (got "5 minutes")',
    );
  });
});

describe('parsePoolPolicyStatus', () => {
  const t1 = '2024-05-01T10:00:00Z';
  const t2 = '2024-05-01T10:05:00Z';
  const change = {
    time: t2,
    reason: 'database utilization 86.5% > 80%',
    changes: [{ setting: 'DB_POOL_SIZE', from: 20, to: 24 }],
  };

  const full: PoolPolicyStatus = {
    observedGeneration: 3,
    conditions: [
      {
        type: ConditionType.Ready,
        status: 'True',
        reason: ConditionReason.Reconciled,
        message: 'ok',
        lastTransitionTime: t1,
        observedGeneration: 3,
      },
      {
        type: ConditionType.Limited,
        status: 'False',
        reason: ConditionReason.DeadBand,
        message: '',
        lastTransitionTime: t2,
      },
    ],
    current: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
    recommended: { DB_POOL_SIZE: 28, DB_MAX_OVERFLOW: 56 },
    observed: { database: 86.5, redis: 41, pgbouncer: 12, sampledAt: t2 },
    breaches: { database: { direction: 'up', since: t1, lastSeen: t2 } },
    lastChange: change,
    history: [{ ...change, utilizationBefore: 86.5, utilizationAfter: 60.1 }],
  };

  it('reads a well-formed status with Dates for times', () => {
    const status = parsePoolPolicyStatus(full);
    expect(status).toEqual({
      observedGeneration: 3,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Reconciled',
          message: 'ok',
          lastTransitionTime: new Date(t1),
          observedGeneration: 3,
        },
        { type: 'Limited', status: 'False', reason: 'DeadBand', message: '', lastTransitionTime: new Date(t2) },
      ],
      current: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 },
      recommended: { DB_POOL_SIZE: 28, DB_MAX_OVERFLOW: 56 },
      observed: { database: 86.5, redis: 41, pgbouncer: 12, sampledAt: new Date(t2) },
      breaches: { database: { direction: 'up', since: new Date(t1), lastSeen: new Date(t2) } },
      lastChange: { ...change, time: new Date(t2) },
      history: [{ ...change, time: new Date(t2), utilizationBefore: 86.5, utilizationAfter: 60.1 }],
    });
  });

  it('accepts fractional seconds and offsets in times', () => {
    const status = parsePoolPolicyStatus({ observed: { sampledAt: '2024-05-01T12:00:00.123+02:00' } });
    expect(status.observed?.sampledAt?.toISOString()).toBe('2024-05-01T10:00:00.123Z');
  });

  const empties: readonly (readonly [string, unknown])[] = [
    ['undefined', undefined],
    ['null', null],
    ['a string', 'status'],
    ['a list', []],
    ['an empty object', {}],
  ];
  it.each(empties)('%s reads as {}', (_name, raw) => {
    expect(parsePoolPolicyStatus(raw)).toEqual({});
  });

  it('drops malformed parts and keeps the rest', () => {
    const status = parsePoolPolicyStatus({
      observedGeneration: -1,
      conditions: [
        full.conditions?.[0],
        { type: 'Ready', status: 'Maybe', reason: 'X', message: '', lastTransitionTime: t1 },
        { type: 'Limited', status: 'True', reason: 'AtMax', message: '', lastTransitionTime: 'yesterday' },
      ],
      current: { DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: '48', REDIS: 1.5 },
      recommended: 'nope',
      observed: { database: '86', redis: 41, sampledAt: 'not a time' },
      breaches: {
        database: { direction: 'sideways', since: t1, lastSeen: t2 },
        redis: { direction: 'down', since: t1, lastSeen: t2 },
      },
      lastChange: { time: 'later', reason: 'x', changes: [] },
      history: [{ foo: 1 }, change],
      fromTheFuture: { anything: true },
    });
    expect(status).toEqual({
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Reconciled',
          message: 'ok',
          lastTransitionTime: new Date(t1),
          observedGeneration: 3,
        },
      ],
      current: { DB_POOL_SIZE: 24 },
      observed: { redis: 41 },
      breaches: { redis: { direction: 'down', since: new Date(t1), lastSeen: new Date(t2) } },
      history: [{ ...change, time: new Date(t2) }],
    });
  });

  it('keeps only the newest 10 history entries', () => {
    const history = Array.from({ length: 13 }, (_, i) => ({
      time: `2024-05-01T10:${String(i).padStart(2, '0')}:00Z`,
      reason: `r${i}`,
      changes: [{ setting: 'DB_POOL_SIZE', from: i, to: i + 1 }],
    }));
    const read = parsePoolPolicyStatus({ history }).history ?? [];
    expect(read.map((h) => h.reason)).toEqual(['r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10', 'r11', 'r12']);
  });

  it('formatStatusTime writes RFC3339 with second precision that reads back', () => {
    const date = new Date('2024-05-01T10:00:00.987Z');
    expect(formatStatusTime(date)).toBe('2024-05-01T10:00:00Z');
    const back = parsePoolPolicyStatus({ lastChange: { time: formatStatusTime(date), reason: 'x', changes: [] } });
    expect(back.lastChange?.time).toEqual(new Date('2024-05-01T10:00:00Z'));
  });
});

describe('parsePoolPolicySpec: spec.behavior.scaleUp / scaleDown (HPA v2 shaped)', () => {
  const MINUTE = 60_000;
  const withBehavior = (behavior: Raw): Raw => withRedis({ behavior });

  it('normalizes both blocks: policies in ms, selectPolicy defaulting to Max', () => {
    const spec = parseOk(
      withBehavior({
        scaleUp: {
          stabilizationWindow: '0s',
          policies: [
            { type: 'Percent', value: 100, period: '15s' },
            { type: 'Connections', value: 4, period: '1m' },
          ],
        },
        scaleDown: { selectPolicy: 'Min', policies: [{ type: 'Connections', value: 2, period: '5m' }] },
      }),
    );
    expect(spec.behavior).toEqual({
      maxStepPercent: 20,
      scaleUpStabilizationMs: 0,
      scaleDownStabilizationMs: 30 * MINUTE,
      minChangeIntervalMs: 10 * MINUTE,
      scaleUp: {
        selectPolicy: 'Max',
        policies: [
          { type: 'Percent', value: 100, periodMs: 15_000 },
          { type: 'Connections', value: 4, periodMs: MINUTE },
        ],
      },
      scaleDown: { selectPolicy: 'Min', policies: [{ type: 'Connections', value: 2, periodMs: 5 * MINUTE }] },
    });
  });

  it("a block's stabilizationWindow is the window in force for its direction (decide and FillToBudget read it there)", () => {
    const spec = parseOk(withBehavior({ scaleDown: { stabilizationWindow: '2m' }, scaleUpStabilization: '1m' }));
    expect([spec.behavior.scaleUpStabilizationMs, spec.behavior.scaleDownStabilizationMs]).toEqual([
      MINUTE,
      2 * MINUTE,
    ]);
    expect(spec.behavior.scaleDown).toEqual({ selectPolicy: 'Max', policies: undefined });
    expect(spec.behavior.scaleUp).toBeUndefined();
  });

  it("without the blocks the behavior is exactly today's", () => {
    expect(parseOk(redisOnly).behavior).toEqual({
      maxStepPercent: 20,
      scaleUpStabilizationMs: 5 * MINUTE,
      scaleDownStabilizationMs: 30 * MINUTE,
      minChangeIntervalMs: 10 * MINUTE,
    });
    expect(parseOk(redisOnly).behavior.scaleUp).toBeUndefined();
  });

  const accepted: readonly (readonly [string, Raw])[] = [
    [
      'a flat field left at its default beside the block (what the API server stores)',
      {
        maxStepPercent: 20,
        scaleUpStabilization: '5m',
        scaleUp: { stabilizationWindow: '1m', policies: [{ type: 'Percent', value: 50, period: '1m' }] },
      },
    ],
    [
      'the default written another way (300s is 5m)',
      { scaleUpStabilization: '300s', scaleUp: { stabilizationWindow: '1m' } },
    ],
    ['maxStepPercent with a block that has no policies', { maxStepPercent: 50, scaleUp: { selectPolicy: 'Disabled' } }],
    ['a flat window for the other direction', { scaleDownStabilization: '1h', scaleUp: { stabilizationWindow: '0s' } }],
    [
      'period 1s and 1h (the limits)',
      {
        scaleUp: {
          policies: [
            { type: 'Connections', value: 1, period: '1s' },
            { type: 'Percent', value: 1000, period: '1h' },
          ],
        },
      },
    ],
    [
      'ten policies',
      {
        scaleDown: {
          policies: Array.from({ length: 10 }, (_, i) => ({ type: 'Connections', value: i + 1, period: '1m' })),
        },
      },
    ],
  ];
  it.each(accepted)('accepts %s', (_name, behavior) => {
    expect(parsePoolPolicySpec(withBehavior(behavior))).toMatchObject({ ok: true });
  });

  const refused: readonly (readonly [string, Raw, string])[] = [
    [
      'scaleUpStabilization and scaleUp.stabilizationWindow',
      { scaleUpStabilization: '1m', scaleUp: { stabilizationWindow: '0s' } },
      'spec.behavior.scaleUpStabilization: set either scaleUpStabilization or scaleUp.stabilizationWindow, not both: remove spec.behavior.scaleUpStabilization',
    ],
    [
      'scaleDownStabilization and scaleDown.stabilizationWindow',
      { scaleDownStabilization: '1h', scaleDown: { stabilizationWindow: '5m' } },
      'spec.behavior.scaleDownStabilization: set either scaleDownStabilization or scaleDown.stabilizationWindow, not both: remove spec.behavior.scaleDownStabilization',
    ],
    [
      'maxStepPercent and scaleUp.policies',
      { maxStepPercent: 50, scaleUp: { policies: [{ type: 'Percent', value: 100, period: '1m' }] } },
      'spec.behavior.maxStepPercent: set either maxStepPercent or scaleUp/scaleDown policies, not both: remove spec.behavior.maxStepPercent',
    ],
    [
      'maxStepPercent and scaleDown.policies',
      { maxStepPercent: 10, scaleDown: { policies: [{ type: 'Connections', value: 1, period: '1m' }] } },
      'spec.behavior.maxStepPercent: set either maxStepPercent',
    ],
    [
      'an unknown policy type',
      { scaleUp: { policies: [{ type: 'Pods', value: 4, period: '1m' }] } },
      'spec.behavior.scaleUp.policies[0].type: must be one of Percent, Connections (got "Pods")',
    ],
    [
      'value 0',
      { scaleUp: { policies: [{ type: 'Percent', value: 0, period: '1m' }] } },
      'spec.behavior.scaleUp.policies[0].value: must be >= 1 (got 0)',
    ],
    [
      'a fractional value',
      { scaleDown: { policies: [{ type: 'Percent', value: 12.5, period: '1m' }] } },
      'spec.behavior.scaleDown.policies[0].value: must be an integer',
    ],
    [
      'a period below 1s',
      { scaleUp: { policies: [{ type: 'Percent', value: 10, period: '500ms' }] } },
      'spec.behavior.scaleUp.policies[0].period: must be at least 1s (got "500ms")',
    ],
    [
      'a period above 1h',
      { scaleUp: { policies: [{ type: 'Percent', value: 10, period: '61m' }] } },
      'spec.behavior.scaleUp.policies[0].period: must be at most 1h (got "61m")',
    ],
    [
      'a policy without period',
      { scaleUp: { policies: [{ type: 'Percent', value: 10 }] } },
      'spec.behavior.scaleUp.policies[0].period: is required',
    ],
    [
      'an empty policy list',
      { scaleUp: { policies: [] } },
      'spec.behavior.scaleUp.policies: must have at least 1 items',
    ],
    [
      'eleven policies',
      { scaleUp: { policies: Array.from({ length: 11 }, () => ({ type: 'Percent', value: 10, period: '1m' })) } },
      'spec.behavior.scaleUp.policies: must have at most 10 items',
    ],
    [
      'an unknown selectPolicy',
      { scaleDown: { selectPolicy: 'Off' } },
      'spec.behavior.scaleDown.selectPolicy: must be one of Max, Min, Disabled (got "Off")',
    ],
    [
      "HPA's stabilizationWindowSeconds",
      { scaleUp: { stabilizationWindowSeconds: 60 } },
      'spec.behavior.scaleUp.stabilizationWindowSeconds: unknown field',
    ],
    [
      'a stabilizationWindow in words',
      { scaleDown: { stabilizationWindow: '5 minutes' } },
      'spec.behavior.scaleDown.stabilizationWindow: must be a duration like 30s',
    ],
  ];
  it.each(refused)('refuses %s, saying what to fix', (_name, behavior, expected) => {
    expect(parseErr(withBehavior(behavior))).toContain(expected);
  });
});
