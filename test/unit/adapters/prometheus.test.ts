import { describe, expect, it } from '@jest/globals';
import axios, {
  AxiosError,
  CanceledError,
  type AxiosInstance,
  type AxiosResponse,
  type InternalAxiosRequestConfig,
} from 'axios';
import fc from 'fast-check';
import { PrometheusClient, type QueryMetrics } from '../../../src/adapters/prometheus.js';
import { deploymentPods, type DeploymentPods } from '../../../src/adapters/prometheus-queries.js';
import type { MetricsProblem, UtilizationSample } from '../../../src/domain/decide.js';

// Canned Prometheus replies through axios's `adapter` option: no network.

interface Canned {
  readonly status?: number;
  readonly body: string;
}
type Route = (query: string, config: InternalAxiosRequestConfig) => Canned | Promise<Canned>;

interface Recorded {
  readonly url: string | undefined;
  readonly query: string;
}

function fakeHttp(route: Route, requests: Recorded[] = []): AxiosInstance {
  return axios.create({
    adapter: async (config): Promise<AxiosResponse> => {
      const params: unknown = config.params;
      const query =
        typeof params === 'object' && params !== null && 'query' in params && typeof params.query === 'string'
          ? params.query
          : '';
      requests.push({ url: config.url, query });
      const canned = await route(query, config);
      const status = canned.status ?? 200;
      // axios runs the request's transformResponse on this afterwards, as for a real adapter.
      return { data: canned.body, status, statusText: status === 200 ? 'OK' : '', headers: {}, config, request: {} };
    },
  });
}

const EVAL_TS = 1_790_000_000.5;
const NOW = new Date(EVAL_TS * 1000);

const vector = (
  series: readonly { readonly metric?: Record<string, string>; readonly value: string }[],
  ts = EVAL_TS,
): string =>
  JSON.stringify({
    status: 'success',
    data: { resultType: 'vector', result: series.map((s) => ({ metric: s.metric ?? {}, value: [ts, s.value] })) },
  });
const one = (value: string, ts = EVAL_TS): Canned => ({ body: vector([{ value }], ts) });

function client(
  route: Route,
  options: {
    now?: () => Date;
    metrics?: QueryMetrics;
    requests?: Recorded[];
    baseUrl?: string;
    timeoutMs?: number;
  } = {},
): PrometheusClient {
  return new PrometheusClient({
    baseUrl: options.baseUrl ?? 'http://prometheus.test:9090',
    timeoutMs: options.timeoutMs ?? 1000,
    now: options.now ?? (() => NOW),
    http: fakeHttp(route, options.requests),
    metrics: options.metrics,
  });
}

const EXPR = 'max(util)';
const FRESH = 'max(timestamp(util))';

function expectProblem(
  sample: UtilizationSample,
  problem: MetricsProblem,
  ...fragments: readonly (string | RegExp)[]
): void {
  expect(sample).toEqual({ valid: false, problem, message: expect.any(String) });
  if (!sample.valid) for (const f of fragments) expect(sample.message).toMatch(f);
}

describe('PrometheusClient.utilization: results', () => {
  it('reads a single-series vector; sampledAt is the evaluation time', async () => {
    const requests: Recorded[] = [];
    const sample = await client(() => one('42.5'), {
      requests,
      baseUrl: 'http://prometheus.test:9090/prom/',
    }).utilization({ expr: EXPR }, 60_000);
    expect(sample).toEqual({ valid: true, percent: 42.5, sampledAt: new Date(EVAL_TS * 1000) });
    expect(requests).toEqual([{ url: 'http://prometheus.test:9090/prom/api/v1/query', query: EXPR }]);
  });

  it.each([
    ['0', 0],
    ['100', 100],
    ['137.25', 137.25],
    ['-3', -3],
    ['1e+06', 1e6],
    ['.5', 0.5],
  ])('reads the value %j as %d', async (text, expected) => {
    const sample = await client(() => one(text)).utilization({ expr: EXPR }, 60_000);
    expect(sample).toEqual({ valid: true, percent: expected, sampledAt: NOW });
  });

  it('accepts a scalar result', async () => {
    const body = JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [EVAL_TS, '12'] } });
    expect(await client(() => ({ body })).utilization({ expr: 'scalar(x)' }, 60_000)).toEqual({
      valid: true,
      percent: 12,
      sampledAt: NOW,
    });
  });

  it('empty vector: NoData', async () => {
    expectProblem(
      await client(() => ({ body: vector([]) })).utilization({ expr: EXPR }, 60_000),
      'NoData',
      'returned no series',
      'max(util)',
      'metricsPrefix',
    );
  });

  it('several series: MultipleSeries naming the pods', async () => {
    const body = vector([
      { metric: { pod: 'a' }, value: '1' },
      { metric: { pod: 'b' }, value: '2' },
      { metric: { pod: 'c' }, value: '3' },
    ]);
    const sample = await client(() => ({ body })).utilization({ expr: EXPR }, 60_000);
    expectProblem(sample, 'MultipleSeries');
    if (!sample.valid)
      expect(sample.message).toBe(
        'the utilization query returned 3 series (pods a, b, c); aggregate it to one, e.g. max(...)',
      );
  });

  it('several series without pod labels: the label sets, at most five', async () => {
    const body = vector(Array.from({ length: 7 }, (_, i) => ({ metric: { database: `db${i}` }, value: '1' })));
    expectProblem(
      await client(() => ({ body })).utilization({ expr: EXPR }, 60_000),
      'MultipleSeries',
      '7 series ({database="db0"}, {database="db1"}',
      '… 2 more',
    );
  });

  it('NaN: NaN', async () => {
    expectProblem(await client(() => one('NaN')).utilization({ expr: EXPR }, 60_000), 'NaN', 'returned NaN');
  });

  it.each(['+Inf', '-Inf', '1e999'])('%s: Infinite', async (text) => {
    expectProblem(
      await client(() => one(text)).utilization({ expr: EXPR }, 60_000),
      'Infinite',
      text,
      'division by zero',
    );
  });

  it.each(['', ' 1', '1 ', '0x10', 'abc', '1,5', '1.2.3', 'Infinity%', '--1'])(
    'value %j is not a number: QueryFailed',
    async (text) => {
      expectProblem(await client(() => one(text)).utilization({ expr: EXPR }, 60_000), 'QueryFailed', 'not a number');
    },
  );

  it('a range vector: QueryFailed saying to use an instant expression', async () => {
    const body = JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } });
    expectProblem(
      await client(() => ({ body })).utilization({ expr: 'util[5m]' }, 60_000),
      'QueryFailed',
      'range vector',
      'max_over_time',
    );
  });

  it('a string result: QueryFailed', async () => {
    const body = JSON.stringify({ status: 'success', data: { resultType: 'string', result: [EVAL_TS, '5'] } });
    expectProblem(
      await client(() => ({ body })).utilization({ expr: '"5"' }, 60_000),
      'QueryFailed',
      'returned a string',
    );
  });
});

describe('PrometheusClient.utilization: failures', () => {
  it('status "error": QueryFailed with Prometheus\'s own error text', async () => {
    const body = JSON.stringify({
      status: 'error',
      errorType: 'bad_data',
      error: 'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
    });
    const sample = await client(() => ({ status: 400, body })).utilization({ expr: 'max(' }, 60_000);
    expectProblem(
      sample,
      'QueryFailed',
      'rejected the utilization query "max("',
      'HTTP 400, bad_data',
      'unclosed left parenthesis',
      'spec.<pool>.utilization',
    );
  });

  it('an HTML error page: QueryFailed, not JSON', async () => {
    const sample = await client(() => ({ status: 502, body: '<html><body>Bad Gateway</body></html>' })).utilization(
      { expr: EXPR },
      60_000,
    );
    expectProblem(
      sample,
      'QueryFailed',
      'not JSON',
      'HTTP 502',
      '"<html><body>Bad Gateway</body></html>"',
      '--prometheus-url',
    );
  });

  it('a success body with a non-2xx status: QueryFailed', async () => {
    expectProblem(
      await client(() => ({ status: 503, body: vector([{ value: '5' }]) })).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'HTTP 503',
    );
  });

  it('a 200 login page: QueryFailed', async () => {
    expectProblem(
      await client(() => ({ body: '<!doctype html><form>login</form>' })).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'not JSON',
      'login page',
    );
  });

  it.each([
    [
      'a number instead of the value string',
      JSON.stringify({
        status: 'success',
        data: { resultType: 'vector', result: [{ metric: {}, value: [EVAL_TS, 5] }] },
      }),
    ],
    ['a missing data', JSON.stringify({ status: 'success' })],
    ['an unknown status', JSON.stringify({ status: 'ok', data: {} })],
    ['an unknown resultType', JSON.stringify({ status: 'success', data: { resultType: 'table', result: [] } })],
    [
      'a three-element sample',
      JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [EVAL_TS, '5', 'x'] } }),
    ],
    [
      'a string timestamp',
      JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [String(EVAL_TS), '5'] } }),
    ],
    [
      'a non-string label',
      JSON.stringify({
        status: 'success',
        data: { resultType: 'vector', result: [{ metric: { pod: 1 }, value: [EVAL_TS, '5'] }] },
      }),
    ],
    ['JSON null', 'null'],
    ['a JSON string', '"5"'],
    ['an empty body', ''],
  ])('%s: QueryFailed', async (_what, body) => {
    expectProblem(
      await client(() => ({ body })).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'Prometheus at http://prometheus.test:9090',
    );
  });

  it('an impossible timestamp: QueryFailed', async () => {
    expectProblem(
      await client(() => one('5', 1e300)).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'impossible timestamp',
    );
  });

  it('connection refused: QueryFailed naming the address and what to check', async () => {
    const http = (): never => {
      throw new AxiosError('connect ECONNREFUSED 127.0.0.1:9090', 'ECONNREFUSED');
    };
    const sample = await client(http).utilization({ expr: EXPR }, 60_000);
    expectProblem(sample, 'QueryFailed');
    if (!sample.valid)
      expect(sample.message).toBe(
        'Prometheus at http://prometheus.test:9090: connect ECONNREFUSED 127.0.0.1:9090; check spec.prometheus.address or --prometheus-url',
      );
  });

  it('an error without a message (dual-stack connect): the code', async () => {
    const http = (): never => {
      throw new AxiosError('', 'ECONNREFUSED');
    };
    expectProblem(
      await client(http).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'http://prometheus.test:9090: ECONNREFUSED;',
    );
  });

  it('DNS failure: the code is kept', async () => {
    const http = (): never => {
      throw new AxiosError('getaddrinfo failed for prometheus.test', 'ENOTFOUND');
    };
    expectProblem(
      await client(http).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'getaddrinfo failed for prometheus.test (ENOTFOUND)',
    );
  });

  it('axios timeout: QueryFailed saying how long it waited', async () => {
    const http = (): never => {
      throw new AxiosError('timeout of 1500ms exceeded', 'ECONNABORTED');
    };
    expectProblem(
      await client(http, { timeoutMs: 1500 }).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'no reply within 1.5s',
      'spec.prometheus.timeout',
    );
  });

  it('a reply slower than the deadline is aborted: QueryFailed', async () => {
    const hang: Route = (_query, config) =>
      new Promise<Canned>((_resolve, reject) => {
        const signal = config.signal;
        if (signal instanceof AbortSignal)
          signal.addEventListener('abort', () => {
            reject(new CanceledError('aborted'));
          });
      });
    const started = Date.now();
    expectProblem(
      await client(hang, { timeoutMs: 50 }).utilization({ expr: EXPR }, 60_000),
      'QueryFailed',
      'no reply within 50ms',
    );
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a non-axios exception from the HTTP layer: QueryFailed, not a rejection', async () => {
    const http = (): never => {
      throw new TypeError('boom');
    };
    expectProblem(await client(http).utilization({ expr: EXPR }, 60_000), 'QueryFailed', 'boom');
  });
});

describe('PrometheusClient.utilization: freshness', () => {
  const route =
    (freshTs: string | Canned, value = '40'): Route =>
    (query) =>
      query === FRESH ? (typeof freshTs === 'string' ? one(freshTs) : freshTs) : one(value);

  it('fresh: sampledAt is the newest underlying sample', async () => {
    const sampledAt = new Date(NOW.getTime() - 15_000);
    const sample = await client(route(String(sampledAt.getTime() / 1000))).utilization(
      { expr: EXPR, freshness: FRESH },
      60_000,
    );
    expect(sample).toEqual({ valid: true, percent: 40, sampledAt });
  });

  it('exactly maxAgeMs old is still fresh; one ms more is Stale', async () => {
    const at = (ms: number): string => String((NOW.getTime() - ms) / 1000);
    expect((await client(route(at(60_000))).utilization({ expr: EXPR, freshness: FRESH }, 60_000)).valid).toBe(true);
    expectProblem(await client(route(at(60_001))).utilization({ expr: EXPR, freshness: FRESH }, 60_000), 'Stale');
  });

  it('old: Stale with the age, the time and the allowed age', async () => {
    const sampledAt = new Date(NOW.getTime() - 423_000);
    const sample = await client(route(String(sampledAt.getTime() / 1000))).utilization(
      { expr: EXPR, freshness: FRESH },
      60_000,
    );
    expectProblem(sample, 'Stale', '7m3s old', sampledAt.toISOString(), 'allowed 1m0s', 'scrapes');
  });

  it('a time slightly in the future (clock skew) is fresh', async () => {
    const sampledAt = new Date(NOW.getTime() + 2_000);
    expect(
      await client(route(String(sampledAt.getTime() / 1000))).utilization({ expr: EXPR, freshness: FRESH }, 60_000),
    ).toEqual({ valid: true, percent: 40, sampledAt });
  });

  it('an invalid now() fails safe: Stale', async () => {
    const sample = await client(route(String(EVAL_TS)), { now: () => new Date(Number.NaN) }).utilization(
      { expr: EXPR, freshness: FRESH },
      60_000,
    );
    expectProblem(sample, 'Stale', 'unknown age');
  });

  it('no freshness data: NoData from the freshness query', async () => {
    expectProblem(
      await client(route({ body: vector([]) })).utilization({ expr: EXPR, freshness: FRESH }, 60_000),
      'NoData',
      'freshness query',
    );
  });

  it('a NaN freshness: NaN from the freshness query', async () => {
    expectProblem(
      await client(route('NaN')).utilization({ expr: EXPR, freshness: FRESH }, 60_000),
      'NaN',
      'freshness query',
    );
  });

  it("the utilization query's problem wins over the freshness query's", async () => {
    const r: Route = (query) => (query === FRESH ? { body: 'garbage' } : { body: vector([]) });
    expectProblem(await client(r).utilization({ expr: EXPR, freshness: FRESH }, 60_000), 'NoData', 'utilization query');
  });

  it('a stale sample is Stale even when the value is fine, and a bad value is reported before staleness', async () => {
    expectProblem(await client(route('1000', '50')).utilization({ expr: EXPR, freshness: FRESH }, 60_000), 'Stale');
    expectProblem(
      await client(route('1000', 'NaN')).utilization({ expr: EXPR, freshness: FRESH }, 60_000),
      'NaN',
      'utilization query',
    );
  });

  it('runs both queries concurrently', async () => {
    let started = 0;
    let release: () => void = () => undefined;
    const bothStarted = new Promise<void>((resolve) => {
      release = resolve;
    });
    const r: Route = async (query) => {
      started += 1;
      if (started === 2) release();
      await bothStarted; // deadlocks (and times out) if the queries ran one after the other
      return query === FRESH ? one(String(EVAL_TS)) : one('10');
    };
    expect(await client(r, { timeoutMs: 2000 }).utilization({ expr: EXPR, freshness: FRESH }, 60_000)).toEqual({
      valid: true,
      percent: 10,
      sampledAt: NOW,
    });
    expect(started).toBe(2);
  });
});

describe('PrometheusClient.utilization: metrics hook', () => {
  it('observes once per call with ok or the problem and a duration in seconds', async () => {
    const seen: [string, number][] = [];
    const metrics: QueryMetrics = { observe: (result, seconds) => seen.push([result, seconds]) };
    const c = (route: Route): PrometheusClient => client(route, { metrics });
    await c(() => one('5')).utilization({ expr: EXPR }, 60_000);
    await c(() => one('NaN')).utilization({ expr: EXPR }, 60_000);
    await c(() => ({ body: vector([]) })).utilization({ expr: EXPR }, 60_000);
    expect(seen.map(([r]) => r)).toEqual(['ok', 'NaN', 'NoData']);
    for (const [, seconds] of seen) {
      expect(seconds).toBeGreaterThanOrEqual(0);
      expect(seconds).toBeLessThan(5);
    }
  });

  it('a throwing hook does not break the query', async () => {
    const metrics: QueryMetrics = {
      observe: () => {
        throw new Error('registry broken');
      },
    };
    expect(await client(() => one('5'), { metrics }).utilization({ expr: EXPR }, 60_000)).toEqual({
      valid: true,
      percent: 5,
      sampledAt: NOW,
    });
  });
});

// ---------------------------------------------------------------------------
// Fuzz: whatever comes back, utilization() resolves, and valid:true only for a well-formed
// 2xx reply holding exactly one finite sample (and then with that sample's number).

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Independent statement of "well-formed single finite sample"; the number, else undefined. */
function oracle(status: number, body: string): { percent: number; ts: number } | undefined {
  if (status < 200 || status > 299) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isRecord(json) || json.status !== 'success' || !isRecord(json.data)) return undefined;
  const { resultType, result } = json.data;
  let sample: unknown;
  if (resultType === 'scalar') {
    sample = result;
  } else if (resultType === 'vector') {
    if (!Array.isArray(result) || result.length !== 1) return undefined;
    const series: unknown = result[0];
    if (
      !isRecord(series) ||
      !isRecord(series.metric) ||
      !Object.values(series.metric).every((v) => typeof v === 'string')
    )
      return undefined;
    sample = series.value;
  } else {
    return undefined;
  }
  if (!Array.isArray(sample) || sample.length !== 2) return undefined;
  const ts: unknown = sample[0];
  const text: unknown = sample[1];
  if (typeof ts !== 'number' || !Number.isFinite(ts) || Math.abs(ts * 1000) > 8.64e15 || typeof text !== 'string')
    return undefined;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const percent = Number(text);
  return Number.isFinite(percent) ? { percent, ts } : undefined;
}

const valueText = fc.oneof(
  fc.double().map((d) => (Number.isNaN(d) ? 'NaN' : d === Infinity ? '+Inf' : d === -Infinity ? '-Inf' : String(d))),
  fc.integer().map(String),
  fc.constantFrom(
    '',
    ' 1',
    '0x10',
    '1e999',
    '-1e-400',
    'NaN',
    'nan',
    'Inf',
    '+Inf',
    '1_000',
    '٣',
    '5.',
    '.5',
    '+.5e3',
    'true',
  ),
  fc.string(),
);
const sampleArb = fc.tuple(fc.oneof(fc.constant(EVAL_TS), fc.double(), fc.string()), valueText);
const seriesArb = fc.record({
  metric: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.dictionary(fc.string(), fc.jsonValue())),
  value: sampleArb,
});
/** Mostly the well-formed case, so that the valid side is exercised too. */
const goodReplyArb = fc.record({
  status: fc.constant('success'),
  data: fc.oneof(
    fc.record({
      resultType: fc.constant('vector'),
      result: fc.tuple(
        fc.record({
          metric: fc.dictionary(fc.string(), fc.string()),
          value: fc.tuple(fc.constant(EVAL_TS), valueText),
        }),
      ),
    }),
    fc.record({ resultType: fc.constant('scalar'), result: fc.tuple(fc.constant(EVAL_TS), valueText) }),
  ),
});
const replyArb = fc.oneof(
  { arbitrary: goodReplyArb, weight: 3 },
  fc.record({
    status: fc.constant('success'),
    data: fc.record({ resultType: fc.constant('vector'), result: fc.array(seriesArb, { maxLength: 3 }) }),
  }),
  fc.record({
    status: fc.constant('success'),
    data: fc.record({ resultType: fc.constantFrom('scalar', 'string', 'matrix'), result: sampleArb }),
  }),
  fc.record({ status: fc.constantFrom('error', 'success', 'ok'), error: fc.string(), data: fc.jsonValue() }),
);
/** A reply serialised, then possibly truncated or with a JSON value spliced in. */
const bodyArb = fc.oneof(
  replyArb.map((r) => JSON.stringify(r)),
  fc.tuple(replyArb, fc.nat()).map(([r, cut]) => {
    const text = JSON.stringify(r);
    return text.slice(0, cut % (text.length + 1));
  }),
  fc.json(),
  fc.string(),
);

describe('PrometheusClient.utilization: fuzz', () => {
  it('never rejects; valid:true exactly for a well-formed single finite sample', async () => {
    let validSeen = 0;
    await fc.assert(
      fc.asyncProperty(
        bodyArb,
        fc.oneof({ arbitrary: fc.constant(200), weight: 4 }, fc.constantFrom(204, 400, 422, 500, 503)),
        async (body, status) => {
          const sample = await client(() => ({ status, body })).utilization({ expr: EXPR }, 60_000);
          const expected = oracle(status, body);
          if (expected === undefined) {
            expect(sample.valid).toBe(false);
            if (!sample.valid) expect(sample.message.length).toBeGreaterThan(0);
          } else {
            validSeen += 1;
            expect(sample).toEqual({ valid: true, percent: expected.percent, sampledAt: new Date(expected.ts * 1000) });
          }
        },
      ),
      { numRuns: 2000 },
    );
    // The generators must reach the valid side too, or the property says little.
    expect(validSeen).toBeGreaterThan(50);
  });

  it('well-formed single samples come through with their number', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.dictionary(fc.string(), fc.string()),
        async (value, metric) => {
          const body = JSON.stringify({
            status: 'success',
            data: { resultType: 'vector', result: [{ metric, value: [EVAL_TS, String(value)] }] },
          });
          expect(await client(() => ({ body })).utilization({ expr: EXPR }, 60_000)).toEqual({
            valid: true,
            percent: Number(String(value)),
            sampledAt: NOW,
          });
        },
      ),
    );
  });
});

describe('PrometheusClient.podSamples: one namespace-wide query pair read per Deployment', () => {
  const PAIR = {
    expr: 'max by (pod) (util{namespace="ns"})',
    freshness: 'max by (pod) (timestamp(util{namespace="ns"}))',
  };
  const pods =
    (values: Record<string, string>, times: Record<string, string>): Route =>
    (query) => ({
      body: vector(
        Object.entries(query === PAIR.expr ? values : times).map(([pod, value]) => ({ metric: { pod }, value })),
      ),
    });
  const fresh = String(EVAL_TS - 1);
  const freshAll = (values: Record<string, string>): Record<string, string> =>
    Object.fromEntries(Object.keys(values).map((pod) => [pod, fresh]));
  const of = (deployment: string): [DeploymentPods] => [deploymentPods(deployment)];

  it('takes the busiest pod of each Deployment, only its own pods: api-worker and web-canary are not api and web', async () => {
    const requests: Recorded[] = [];
    const values = {
      'api-7c9b8d6f54-x2x9q': '55',
      'api-7c9b8d6f54-b6m4z': '60',
      'api-worker-5f6d8b7c9-x2x9q': '97',
      'api.v2-6d4cf56db6-9xg8k': '99',
      'apixv2-6d4cf56db6-9xg8k': '98',
      'web-6d4cf56db6-9xg8k': '30',
      'web-canary-7b5d4c8f9-k2j4x': '95',
    };
    const samples = await client(pods(values, freshAll(values)), { requests }).podSamples(PAIR, 60_000);
    expect(samples.forPods(...of('api'))).toEqual({
      valid: true,
      percent: 60,
      sampledAt: new Date((EVAL_TS - 1) * 1000),
    });
    expect(samples.forPods(...of('api-worker'))).toMatchObject({ valid: true, percent: 97 });
    expect(samples.forPods(...of('api.v2'))).toMatchObject({ valid: true, percent: 99 });
    expect(samples.forPods(...of('web'))).toMatchObject({ valid: true, percent: 30 });
    expect(samples.forPods(...of('web-canary'))).toMatchObject({ valid: true, percent: 95 });
    expect(requests).toHaveLength(2); // one utilization and one freshness query, whatever the number of Deployments
  });

  it.each<[string, Record<string, string>, Record<string, string>, MetricsProblem]>([
    ['no pod of the Deployment reports', { 'web-6d4cf56db6-9xg8k': '50' }, { 'web-6d4cf56db6-9xg8k': fresh }, 'NoData'],
    [
      "only a longer-named Deployment's pods report",
      { 'api-worker-5f6d8b7c9-x2x9q': '97' },
      { 'api-worker-5f6d8b7c9-x2x9q': fresh },
      'NoData',
    ],
    ['every pod reports NaN', { 'api-7c9b8d6f54-x2x9q': 'NaN' }, { 'api-7c9b8d6f54-x2x9q': fresh }, 'NaN'],
    [
      'a pod reports +Inf',
      { 'api-7c9b8d6f54-x2x9q': '10', 'api-7c9b8d6f54-b6m4z': '+Inf' },
      { 'api-7c9b8d6f54-x2x9q': fresh, 'api-7c9b8d6f54-b6m4z': fresh },
      'Infinite',
    ],
    [
      'the newest sample is too old',
      { 'api-7c9b8d6f54-x2x9q': '50' },
      { 'api-7c9b8d6f54-x2x9q': String(EVAL_TS - 600) },
      'Stale',
    ],
  ])('is invalid when %s', async (_label, values, times, problem) => {
    const samples = await client(pods(values, times)).podSamples(PAIR, 60_000);
    expectProblem(samples.forPods(...of('api')), problem, /deployment api|NaN|Inf|old/);
  });

  it('finds the pods of a Deployment whose long name Kubernetes cut in its pod names', async () => {
    const long = 'a-deployment-name-that-is-fifty-characters-long-xy';
    // generateName keeps 58 characters of `<deployment>-<hash>-`, then adds 5: part of the hash is lost.
    const cut = `${long}-7c9b8d6f54-`.slice(0, 58);
    const values = { [`${cut}x2x9q`]: '70', 'api-7c9b8d6f54-x2x9q': '55' };
    const samples = await client(pods(values, freshAll(values))).podSamples(PAIR, 60_000);
    expect(samples.forPods(...of(long))).toMatchObject({ valid: true, percent: 70 });
    expect(samples.forPods(...of('api'))).toMatchObject({ valid: true, percent: 55 });
  });

  it('ignores a NaN pod when another pod has a value, as PromQL max() does', async () => {
    const values = { 'api-7c9b8d6f54-x2x9q': 'NaN', 'api-7c9b8d6f54-b6m4z': '30' };
    const samples = await client(pods(values, freshAll(values))).podSamples(PAIR, 60_000);
    expect(samples.forPods(...of('api'))).toMatchObject({ valid: true, percent: 30 });
  });

  it('gives every Deployment the failure of the query itself', async () => {
    const samples = await client(() => ({ status: 500, body: 'boom' })).podSamples(PAIR, 60_000);
    expectProblem(samples.forPods(...of('api')), 'QueryFailed');
    expectProblem(samples.forPods(...of('web')), 'QueryFailed');
  });
});

describe('PrometheusClient.podSamples: a pod whose sample time is missing', () => {
  it('is NoData with a message about the sample time, never "NaN"', async () => {
    const PAIR = { expr: 'max by (pod) (u{namespace="ns"})', freshness: 'max by (pod) (timestamp(u{namespace="ns"}))' };
    const samples = await client((query) => ({
      body: vector(query === PAIR.expr ? [{ metric: { pod: 'api-7c9b8d6f54-x2x9q' }, value: '50' }] : []),
    })).podSamples(PAIR, 60_000);
    const sample = samples.forPods(deploymentPods('api'));
    expectProblem(
      sample,
      'NoData',
      /no sample time for the pods of deployment api \(named api-<pod-template-hash>-<5 characters>\)/,
    );
    if (!sample.valid) expect(sample.message).not.toMatch(/NaN/);
  });
});
