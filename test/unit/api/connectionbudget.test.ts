import { describe, it, expect } from '@jest/globals';
import {
  BUDGET_BACKENDS,
  CONNECTIONBUDGET_API_VERSION,
  CONNECTIONBUDGET_DEFAULTS,
  CONNECTIONBUDGET_GROUP,
  CONNECTIONBUDGET_KIND,
  CONNECTIONBUDGET_PLURAL,
  CONNECTIONBUDGET_VERSION,
  parseConnectionBudgetSpec,
  type ConnectionBudgetSpec,
  type ConnectionBudgetStatus,
} from '../../../src/api/v1alpha1/connectionbudget.js';
import { formatStatusTime } from '../../../src/api/v1alpha1/poolpolicy.js';

type Raw = Record<string, unknown>;

function parseOk(raw: unknown): ConnectionBudgetSpec {
  const result = parseConnectionBudgetSpec(raw);
  if (!result.ok) throw new Error(`expected ok, got: ${result.message}`);
  return result.spec;
}

function parseErr(raw: unknown): string {
  const result = parseConnectionBudgetSpec(raw);
  if (result.ok) throw new Error('expected the spec to be refused');
  return result.message;
}

const DEFAULT_PROMETHEUS = { address: undefined, timeoutMs: 10_000 };

describe('API constants', () => {
  it('names the group, version, plural and kind', () => {
    expect([CONNECTIONBUDGET_GROUP, CONNECTIONBUDGET_VERSION, CONNECTIONBUDGET_PLURAL, CONNECTIONBUDGET_KIND]).toEqual([
      'poolpilot.io',
      'v1alpha1',
      'connectionbudgets',
      'ConnectionBudget',
    ]);
    expect(CONNECTIONBUDGET_API_VERSION).toBe('poolpilot.io/v1alpha1');
    expect(BUDGET_BACKENDS).toEqual(['postgres', 'redis']);
    expect(CONNECTIONBUDGET_DEFAULTS).toEqual({ postgresReserved: 3, redisReserved: 0 });
  });
});

describe('parseConnectionBudgetSpec: valid specs get the documented defaults', () => {
  it('postgres only, fixed: reserved 3, default prometheus', () => {
    expect(parseOk({ postgres: { maxConnections: 100 } })).toEqual({
      postgres: { maxConnections: 100, maxConnectionsQuery: undefined, reserved: 3 },
      redis: undefined,
      prometheus: DEFAULT_PROMETHEUS,
    });
  });

  it('redis only, fixed: reserved 0', () => {
    expect(parseOk({ redis: { maxClients: 10_000 } })).toEqual({
      postgres: undefined,
      redis: { maxClients: 10_000, maxClientsQuery: undefined, reserved: 0 },
      prometheus: DEFAULT_PROMETHEUS,
    });
  });

  it('the full example from the API docs (queries, prometheus)', () => {
    expect(
      parseOk({
        postgres: { maxConnectionsQuery: 'pg_settings_max_connections{namespace="db"}', reserved: 10 },
        redis: { maxClientsQuery: 'redis_config_maxclients{namespace="cache"}', reserved: 100 },
        prometheus: { address: 'http://prometheus.monitoring:9090', timeout: '5s' },
      }),
    ).toEqual({
      postgres: {
        maxConnections: undefined,
        maxConnectionsQuery: 'pg_settings_max_connections{namespace="db"}',
        reserved: 10,
      },
      redis: { maxClients: undefined, maxClientsQuery: 'redis_config_maxclients{namespace="cache"}', reserved: 100 },
      prometheus: { address: 'http://prometheus.monitoring:9090', timeoutMs: 5000 },
    });
  });

  const variants: readonly (readonly [string, Raw, (spec: ConnectionBudgetSpec) => unknown, unknown])[] = [
    ['reserved 0 (postgres)', { postgres: { maxConnections: 100, reserved: 0 } }, (s) => s.postgres?.reserved, 0],
    ['reserved one below max', { postgres: { maxConnections: 100, reserved: 99 } }, (s) => s.postgres?.reserved, 99],
    ['redis reserved one below max', { redis: { maxClients: 2, reserved: 1 } }, (s) => s.redis?.reserved, 1],
    [
      'maxConnections 1 with reserved 0',
      { postgres: { maxConnections: 1, reserved: 0 } },
      (s) => s.postgres?.maxConnections,
      1,
    ],
    [
      'a query allows any reserved (checked when the query answers)',
      { postgres: { maxConnectionsQuery: 'q', reserved: 500 } },
      (s) => s.postgres?.reserved,
      500,
    ],
    [
      'empty prometheus section',
      { redis: { maxClients: 10 }, prometheus: {} },
      (s) => s.prometheus,
      DEFAULT_PROMETHEUS,
    ],
    [
      'timeout 500ms',
      { redis: { maxClients: 10 }, prometheus: { timeout: '500ms' } },
      (s) => s.prometheus.timeoutMs,
      500,
    ],
  ];
  it.each(variants)('%s', (_name, raw, select, expected) => {
    expect(select(parseOk(raw))).toEqual(expected);
  });

  it('does not mutate its input', () => {
    const raw = { postgres: { maxConnections: 100 } };
    const before = structuredClone(raw);
    parseOk(raw);
    expect(raw).toEqual(before);
  });
});

describe('parseConnectionBudgetSpec: malformed specs are refused naming the field', () => {
  const cases: readonly (readonly [string, unknown, readonly string[]])[] = [
    // reserved vs. the maximum
    [
      'reserved == maxConnections',
      { postgres: { maxConnections: 100, reserved: 100 } },
      ['spec.postgres.reserved: reserved (100) must be less than maxConnections (100)'],
    ],
    [
      'reserved > maxConnections',
      { postgres: { maxConnections: 10, reserved: 20 } },
      ['spec.postgres.reserved: reserved (20) must be less than maxConnections (10)'],
    ],
    [
      'default reserved (3) >= maxConnections',
      { postgres: { maxConnections: 3 } },
      ['spec.postgres.reserved: reserved (3) must be less than maxConnections (3)'],
    ],
    [
      'reserved == maxClients',
      { redis: { maxClients: 5, reserved: 5 } },
      ['spec.redis.reserved: reserved (5) must be less than maxClients (5)'],
    ],
    // value and query
    [
      'both maxConnections and its query',
      { postgres: { maxConnections: 100, maxConnectionsQuery: 'q' } },
      ['spec.postgres.maxConnectionsQuery: set only one of maxConnections and maxConnectionsQuery'],
    ],
    [
      'both maxClients and its query',
      { redis: { maxClients: 100, maxClientsQuery: 'q' } },
      ['spec.redis.maxClientsQuery: set only one of maxClients and maxClientsQuery'],
    ],
    [
      'neither maxConnections nor its query',
      { postgres: { reserved: 1 } },
      ['spec.postgres: set spec.postgres.maxConnections or spec.postgres.maxConnectionsQuery'],
    ],
    ['empty redis section', { redis: {} }, ['spec.redis: set spec.redis.maxClients or spec.redis.maxClientsQuery']],
    [
      'empty query',
      { postgres: { maxConnectionsQuery: '' } },
      ['spec.postgres.maxConnectionsQuery: must not be empty'],
    ],
    [
      'query too long',
      { redis: { maxClientsQuery: 'x'.repeat(4097) } },
      ['spec.redis.maxClientsQuery: must be at most 4096 characters long'],
    ],
    // numbers
    [
      'negative maxConnections',
      { postgres: { maxConnections: -1 } },
      ['spec.postgres.maxConnections: must be >= 1 (got -1)'],
    ],
    ['zero maxClients', { redis: { maxClients: 0 } }, ['spec.redis.maxClients: must be >= 1 (got 0)']],
    [
      'negative reserved',
      { postgres: { maxConnections: 100, reserved: -3 } },
      ['spec.postgres.reserved: must be >= 0 (got -3)'],
    ],
    [
      'negative redis reserved',
      { redis: { maxClients: 100, reserved: -1 } },
      ['spec.redis.reserved: must be >= 0 (got -1)'],
    ],
    [
      'fractional maxConnections',
      { postgres: { maxConnections: 99.5 } },
      ['spec.postgres.maxConnections: must be an integer (got 99.5)'],
    ],
    [
      'maxConnections as a string',
      { postgres: { maxConnections: '100' } },
      ['spec.postgres.maxConnections: must be a number (got "100")'],
    ],
    ['maxClients above int32', { redis: { maxClients: 2 ** 31 } }, ['spec.redis.maxClients: must be <= 2147483647']],
    // unknown fields
    [
      'unknown top-level field',
      { postgres: { maxConnections: 100 }, pgbouncer: {} },
      ['spec.pgbouncer: unknown field (allowed fields: postgres, redis, prometheus)'],
    ],
    [
      'unknown postgres field (typo)',
      { postgres: { max_connections: 100, maxConnections: 100 } },
      ['spec.postgres.max_connections: unknown field (allowed fields: maxConnections, maxConnectionsQuery, reserved)'],
    ],
    [
      'unknown redis field',
      { redis: { maxClients: 100, maxmemory: '1gb' } },
      ['spec.redis.maxmemory: unknown field (allowed fields: maxClients, maxClientsQuery, reserved)'],
    ],
    // sections
    ['no section', {}, ['spec: set spec.postgres or spec.redis']],
    ['only prometheus', { prometheus: { address: 'http://prom:9090' } }, ['spec: set spec.postgres or spec.redis']],
    ['postgres is a number', { postgres: 100 }, ['spec.postgres: must be an object (got 100)']],
    // prometheus
    [
      'address without scheme',
      { redis: { maxClients: 1 }, prometheus: { address: 'prometheus:9090' } },
      ['spec.prometheus.address: must be an http:// or https:// URL'],
    ],
    [
      'zero timeout',
      { redis: { maxClients: 1 }, prometheus: { timeout: '0s' } },
      ['spec.prometheus.timeout: must be greater than 0'],
    ],
    // found by test/integration/spec-agreement.property.test.ts against the real API server
    [
      'address with a Unicode space',
      { redis: { maxClients: 1 }, prometheus: { address: 'http://a\u00a0b' } },
      ['spec.prometheus.address: must be an http:// or https:// URL'],
    ],
    [
      'timeout beyond the largest Go duration',
      { redis: { maxClients: 1 }, prometheus: { timeout: '2562048h' } },
      ['spec.prometheus.timeout: duration "2562048h" is too large (at most 2562047h)'],
    ],
    [
      'query of 4097 emoji',
      { redis: { maxClientsQuery: '\u{1F600}'.repeat(4097) } },
      ['spec.redis.maxClientsQuery: must be at most 4096 characters long'],
    ],
    ['spec is null', null, ['spec: must be an object (got null)']],
  ];
  it.each([
    [
      'a query of 4096 emoji (the API server counts code points)',
      { redis: { maxClientsQuery: '\u{1F600}'.repeat(4096) } },
    ],
    ['prometheus: null (pruned by the API server)', { postgres: { maxConnections: 100 }, prometheus: null }],
  ] as const)('accepts %s', (_name, raw) => {
    expect(parseConnectionBudgetSpec(raw)).toMatchObject({ ok: true });
  });
  it.each(cases)('%s', (_name, raw, expected) => {
    const message = parseErr(raw);
    for (const fragment of expected) expect(message).toContain(fragment);
  });

  it('reports every problem at once', () => {
    const message = parseErr({
      postgres: { maxConnections: 10, reserved: 10 },
      redis: { maxClients: 5, maxClientsQuery: 'q' },
    });
    expect(message.split('; ')).toEqual([
      'spec.postgres.reserved: reserved (10) must be less than maxConnections (10)',
      'spec.redis.maxClientsQuery: set only one of maxClients and maxClientsQuery, not both',
    ]);
  });
});

describe('ConnectionBudgetStatus', () => {
  it('is the shape written to the status subresource (headroom may be negative)', () => {
    const status: ConnectionBudgetStatus = {
      observedGeneration: 2,
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'BudgetLimited',
          message: 'over budget',
          lastTransitionTime: formatStatusTime(new Date(0)),
        },
      ],
      postgres: {
        capacity: 97,
        allocated: 120,
        headroom: -23,
        shares: [{ policy: 'api', replicas: 4, connections: 120, limited: true }],
      },
      lastUpdated: formatStatusTime(new Date(0)),
    };
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
    expect(status.postgres?.headroom).toBe((status.postgres?.capacity ?? 0) - (status.postgres?.allocated ?? 0));
  });
});
