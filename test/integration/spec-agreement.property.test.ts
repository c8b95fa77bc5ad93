import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import fc from 'fast-check';
import { parseConnectionBudgetSpec } from '../../src/api/v1alpha1/connectionbudget.js';
import { parsePoolPolicySpec } from '../../src/api/v1alpha1/poolpolicy.js';
import { adminKubeConfig, createTestNamespace, deleteTestNamespace } from './support/kube.js';
import { installCrds } from './support/operator.js';

// The zod parser and the CRD (OpenAPI schema + CEL, as the real kube-apiserver enforces it with a
// server-side dry run) must AGREE on every spec: both accept or both refuse, and each refusal names
// the field. Specs are mostly valid, each with one targeted mutation.
//
// Reproduce a failure with the seed (and path) fast-check prints:
//   SPEC_AGREEMENT_SEED=<seed> [SPEC_AGREEMENT_RUNS=<n>] npm run test:integration -- test/integration/spec-agreement.property.test.ts

const SEED =
  process.env.SPEC_AGREEMENT_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SPEC_AGREEMENT_SEED);
const POLICY_RUNS = Number(process.env.SPEC_AGREEMENT_RUNS ?? 180);
const BUDGET_RUNS = Math.max(1, Math.round(POLICY_RUNS / 2));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = Record<string, Json>;

/** A mutated spec and the field a refusal must name (the mutation may also be valid). */
interface Case {
  readonly spec: Obj;
  readonly field: string;
  readonly what: string;
  /** The mutated path when it differs from `field` (default: `field`). */
  readonly at?: string;
}

function clone(spec: Obj): Obj {
  return JSON.parse(JSON.stringify(spec)) as Obj;
}

/** Sets (or with `undefined` deletes) the value at a dotted path below `spec`, creating objects. */
function setAt(spec: Obj, path: string, value: Json | undefined): Obj {
  const out = clone(spec);
  const keys = path.split('.');
  let node: Obj = out;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Obj;
  }
  const last = keys[keys.length - 1] ?? '';
  if (value === undefined) Reflect.deleteProperty(node, last);
  else node[last] = value;
  return out;
}

function getAt(spec: Obj, path: readonly string[]): Json | undefined {
  let node: Json | undefined = spec;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = node[key];
  }
  return node;
}

/**
 * A mutation below a section the base spec lacks creates that section half-filled; the refusal
 * then names the section (its required fields), so that is the field to expect.
 */
function adjust(base: Obj, kase: Case): Case {
  const segments = (kase.at ?? kase.field).split('.').slice(1);
  for (let i = 1; i < segments.length; i++) {
    const prefix = segments.slice(0, i);
    if (getAt(base, prefix) === undefined && getAt(kase.spec, prefix) !== undefined)
      return { ...kase, field: `spec.${prefix.join('.')}` };
  }
  return kase;
}

// ---------------------------------------------------------------------------
// Generators

const envName = fc.constantFrom('DB_POOL_SIZE', 'POOL', '_X', 'a1', 'SQLALCHEMY_POOL_SIZE');
const validDuration = fc.constantFrom('0s', '1s', '30s', '5m', '1h30m', '500ms', '1.5s', '10m', '2h', '1m0s');
const invalidDuration = fc.constantFrom(
  '',
  '-1s',
  '30',
  '1d',
  's',
  '10us',
  '5 minutes',
  '1.s',
  '.5s',
  '1h 30m',
  'PT30S',
  '1e3s',
  '0x10s',
);
const anyDuration = fc.oneof(
  validDuration,
  invalidDuration,
  fc.constantFrom('0.5s', '999ms', '1000ms', '99999999999h', '2562047h', '2562048h', '9007199254740991ms'),
);
const bound = fc.integer({ min: 1, max: 500 });
const direction = fc.constantFrom('scaleUp', 'scaleDown');
/** The flat field a block's stabilizationWindow replaces. */
const flatWindow = (block: string): string => (block === 'scaleUp' ? 'scaleUpStabilization' : 'scaleDownStabilization');
const validPolicy = fc.record({
  type: fc.constantFrom('Percent', 'Connections'),
  value: fc.integer({ min: 1, max: 400 }),
  period: fc.constantFrom('1s', '15s', '1m', '5m', '1h', '59m59s'),
});
const validRules = fc.record(
  {
    stabilizationWindow: validDuration,
    selectPolicy: fc.constantFrom('Max', 'Min', 'Disabled'),
    policies: fc.array(validPolicy, { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: [] },
);

/** A pair min <= max, both >= lo. */
const bounds = (lo: number) =>
  fc
    .tuple(fc.integer({ min: lo, max: 500 }), fc.integer({ min: 0, max: 500 }))
    .map(([min, extra]) => ({ min, max: min + extra }));

const policySpec: fc.Arbitrary<Obj> = fc
  .record(
    {
      container: fc.option(fc.constantFrom('api', 'app', 'c-1'), { nil: undefined }),
      mode: fc.option(fc.constantFrom('Auto', 'Recommend', 'Paused'), { nil: undefined }),
      interval: fc.option(fc.constantFrom('30s', '1s', '1m', '1h30m', '1.5s'), { nil: undefined }),
      metricsPrefix: fc.option(fc.constantFrom('', 'voiceassist_', 'app:', '_x'), { nil: undefined }),
      db: fc.option(
        fc.record({
          env: fc.option(envName, { nil: undefined }),
          b: bounds(1),
          overflow: fc.option(
            fc.record({
              b: bounds(0),
              ratio: fc.option(fc.double({ min: 0.01, max: 1000, noNaN: true }), { nil: undefined }),
            }),
            { nil: undefined },
          ),
        }),
        { nil: undefined },
      ),
      redis: fc.option(bounds(1), { nil: undefined }),
      pgb: fc.option(
        fc.record({
          b: bounds(1),
          format: fc.option(fc.constantFrom('ini', 'env'), { nil: undefined }),
          mcc: fc.option(bounds(1), { nil: undefined }),
          pools: fc.option(bound, { nil: undefined }),
        }),
        { nil: undefined },
      ),
      budget: fc.boolean(),
      delivery: fc.option(
        fc.record(
          {
            mode: fc.constantFrom('Env', 'ConfigMap'),
            key: fc.option(fc.constantFrom('pools.env', 'app.conf'), { nil: undefined }),
            reload: fc.option(fc.constantFrom('Swap', 'Resize'), { nil: undefined }),
            confirmTimeout: fc.option(fc.constantFrom('3m', '1s', '90s'), { nil: undefined }),
            explicitEnv: fc.boolean(),
          },
          { requiredKeys: ['mode', 'explicitEnv'] },
        ),
        { nil: undefined },
      ),
      processesPerPod: fc.option(fc.integer({ min: 1, max: 16 }), { nil: undefined }),
      prometheus: fc.option(
        fc.record({
          address: fc.option(fc.constantFrom('http://prometheus.monitoring:9090', 'https://p.example/prefix'), {
            nil: undefined,
          }),
          timeout: fc.option(fc.constantFrom('10s', '500ms', '1m'), { nil: undefined }),
          authSecretRef: fc.option(fc.constant('prom-auth'), { nil: undefined }),
        }),
        { nil: undefined },
      ),
      thresholds: fc.option(
        fc.constantFrom<Obj>(
          { scaleUpAbove: 80, scaleDownBelow: 40, target: 65 },
          { scaleUpAbove: 100, scaleDownBelow: 0.5, target: 50 },
          { scaleUpAbove: 90 },
        ),
        { nil: undefined },
      ),
      behavior: fc.option(
        fc.record({
          maxStepPercent: fc.option(fc.integer({ min: 1, max: 100 }), { nil: undefined }),
          scaleUpStabilization: fc.option(validDuration, { nil: undefined }),
          minChangeInterval: fc.option(validDuration, { nil: undefined }),
        }),
        { nil: undefined },
      ),
      blocks: fc.option(
        fc.record({
          scaleUp: fc.option(validRules, { nil: undefined }),
          scaleDown: fc.option(validRules, { nil: undefined }),
        }),
        { nil: undefined },
      ),
    },
    { requiredKeys: [] },
  )
  .map((r) => {
    let spec: Obj = { targetRef: { name: 'api' } };
    const put = (path: string, value: Json | undefined): void => {
      if (value !== undefined) spec = setAt(spec, path, value);
    };
    put('targetRef.container', r.container);
    put('mode', r.mode);
    put('interval', r.interval);
    put('metricsPrefix', r.metricsPrefix);
    if (r.db) {
      put('database.poolSize', { ...r.db.b, ...(r.db.env === undefined ? {} : { env: r.db.env }) });
      if (r.db.overflow)
        put('database.maxOverflow', {
          ...r.db.overflow.b,
          env: 'DB_MAX_OVERFLOW_X',
          ...(r.db.overflow.ratio === undefined ? {} : { ratio: r.db.overflow.ratio }),
        });
    }
    if (r.redis) put('redis.maxConnections', { ...r.redis });
    if (r.pgb) {
      put('pgbouncer', { configMapRef: { name: 'pgbouncer-config' }, defaultPoolSize: { ...r.pgb.b } });
      put('pgbouncer.format', r.pgb.format);
      put('pgbouncer.maxClientConn', r.pgb.mcc === undefined ? undefined : { ...r.pgb.mcc });
      put('pgbouncer.pools', r.pgb.pools);
    }
    if (r.db === undefined && r.redis === undefined && r.pgb === undefined)
      put('database.poolSize', { min: 5, max: 10 });
    if (r.budget) put('budgetRef', { name: 'orders-db' });
    if (r.delivery) {
      // A valid base: configMapRef and reload only with mode ConfigMap; Env may be left unset.
      const configMap = r.delivery.mode === 'ConfigMap';
      put('delivery', {});
      if (configMap || r.delivery.explicitEnv) put('delivery.mode', r.delivery.mode);
      if (configMap) {
        put('delivery.configMapRef', { name: 'api-pools' });
        put('delivery.configMapRef.key', r.delivery.key);
        put('delivery.reload', r.delivery.reload);
      }
      put('delivery.confirmTimeout', r.delivery.confirmTimeout);
    }
    put('processesPerPod', r.processesPerPod);
    if (r.prometheus) {
      put('prometheus', {});
      put('prometheus.address', r.prometheus.address);
      put('prometheus.timeout', r.prometheus.timeout);
      put(
        'prometheus.authSecretRef',
        r.prometheus.authSecretRef === undefined ? undefined : { name: r.prometheus.authSecretRef },
      );
    }
    put('thresholds', r.thresholds);
    if (r.behavior) {
      put('behavior', {});
      put('behavior.maxStepPercent', r.behavior.maxStepPercent);
      put('behavior.scaleUpStabilization', r.behavior.scaleUpStabilization);
      put('behavior.minChangeInterval', r.behavior.minChangeInterval);
    }
    if (r.blocks) {
      // A valid base: a block's field leaves out the flat field it replaces.
      put('behavior.scaleUp', r.blocks.scaleUp);
      put('behavior.scaleDown', r.blocks.scaleDown);
      if (r.blocks.scaleUp?.policies !== undefined || r.blocks.scaleDown?.policies !== undefined)
        spec = setAt(spec, 'behavior.maxStepPercent', undefined);
      if (r.blocks.scaleUp?.stabilizationWindow !== undefined)
        spec = setAt(spec, 'behavior.scaleUpStabilization', undefined);
    }
    return spec;
  });

/** One character repeated so that the string has `n` code points (astral ones count 1 for the API server). */
const longString = (n: number, ch: string): string => ch.repeat(n);
const longChar = fc.constantFrom('a', 'é', '😀', '\u00a0');

/** Targeted mutations of a valid spec; each returns the case and the field a refusal names. */
function policyMutations(spec: Obj): fc.Arbitrary<Case> {
  const bounded = [
    'database.poolSize',
    'redis.maxConnections',
    'pgbouncer.defaultPoolSize',
    'pgbouncer.maxClientConn',
    'database.maxOverflow',
  ] as const;
  const boundsPath = fc.constantFrom(...bounded);
  const num = fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.constantFrom(2147483647, 2147483648, 1.5, -0.5, 1e20),
    fc.integer(),
  );
  return fc.oneof(
    fc.constant<Case>({ spec, field: 'spec', what: 'unchanged' }),
    // bounds: swapped, zero, negative, huge, fractional, wrong type
    fc.tuple(boundsPath, bound, bound).map(([p, a, b]) => ({
      spec: setAt(setAt(spec, `${p}.min`, Math.max(a, b) + 1), `${p}.max`, Math.min(a, b)),
      field: `spec.${p}`,
      what: 'bounds swapped',
    })),
    fc.tuple(boundsPath, fc.constantFrom('min', 'max'), num).map(([p, k, v]) => ({
      spec: setAt(setAt(spec, `${p}.min`, 1), `${p}.${k}`, v),
      field: `spec.${p}`,
      what: `${k} = ${v}`,
    })),
    fc
      .tuple(boundsPath, fc.constantFrom('min', 'max'))
      .map(([p, k]) => ({ spec: setAt(spec, `${p}.${k}`, '10'), field: `spec.${p}.${k}`, what: 'number as string' })),
    fc
      .tuple(
        fc.constantFrom('database.maxOverflow.ratio', 'pgbouncer.maxClientConn.ratio'),
        fc.constantFrom(0, -1, 0.001, 1000, 1000.5, 1e9),
      )
      .map(([p, v]) => ({ spec: setAt(spec, p, v), field: `spec.${p}`, what: `ratio ${v}` })),
    // maxStepPercent edges
    fc.constantFrom<Json>(0, 1, 100, 101, -1, 20.5, '20').map((v) => ({
      spec: setAt(spec, 'behavior.maxStepPercent', v),
      field: 'spec.behavior.maxStepPercent',
      what: `maxStepPercent ${JSON.stringify(v)}`,
    })),
    // thresholds in any order and range
    fc
      .tuple(
        fc.double({ min: -10, max: 110, noNaN: true }),
        fc.double({ min: -10, max: 110, noNaN: true }),
        fc.double({ min: -10, max: 110, noNaN: true }),
        fc.constantFrom(0, 1, 40, 65, 80, 100, 100.5),
      )
      .map(([a, b, c, edge]) => ({
        spec: setAt(spec, 'thresholds', {
          scaleUpAbove: Math.round(a),
          scaleDownBelow: b < 0 ? edge : Math.round(b),
          target: c > 100 ? edge : Math.round(c * 10) / 10,
        }),
        field: 'spec.thresholds',
        what: 'thresholds',
      })),
    fc
      .tuple(fc.constantFrom('scaleUpAbove', 'scaleDownBelow', 'target'), fc.constantFrom(0, 100, 100.01, -1, 50))
      .map(([k, v]) => ({
        spec: setAt(spec, `thresholds.${k}`, v),
        field: 'spec.thresholds',
        what: `thresholds.${k} ${v}`,
      })),
    // durations
    fc
      .tuple(
        fc.constantFrom(
          'interval',
          'prometheus.timeout',
          'behavior.scaleUpStabilization',
          'behavior.scaleDownStabilization',
          'behavior.minChangeInterval',
        ),
        anyDuration,
      )
      .map(([p, d]) => ({ spec: setAt(spec, p, d), field: `spec.${p}`, what: `duration ${JSON.stringify(d)}` })),
    // delivery: reload and configMapRef only with mode ConfigMap, which needs configMapRef
    fc.constantFrom<Json>('Swap', 'Resize', 'InPlace', '', 1).map((v) => ({
      spec: setAt(spec, 'delivery.reload', v),
      field: 'spec.delivery.reload',
      what: `reload ${JSON.stringify(v)}`,
    })),
    fc.constantFrom('Env', 'ConfigMap').map((mode) => ({
      spec: setAt(
        setAt(setAt(spec, 'delivery.mode', mode), 'delivery.configMapRef', undefined),
        'delivery.reload',
        undefined,
      ),
      field: 'spec.delivery.configMapRef',
      what: `mode ${mode} without configMapRef`,
    })),
    fc.constantFrom('pools.env', 'a/b', '', 'x'.repeat(254)).map((key) => ({
      spec: setAt(setAt(spec, 'delivery.mode', 'ConfigMap'), 'delivery.configMapRef', { name: 'api-pools', key }),
      field: 'spec.delivery.configMapRef',
      what: `configMapRef key ${JSON.stringify(key)}`,
    })),
    // unknown fields, at the top and inside sections
    fc
      .tuple(
        fc.constantFrom(
          '',
          'targetRef.',
          'behavior.',
          'thresholds.',
          'database.poolSize.',
          'prometheus.',
          'prometheus.authSecretRef.',
        ),
        fc.constantFrom('namespace', 'extra', 'minReplicas', 'Max'),
      )
      .map(([p, k]) => ({ spec: setAt(spec, `${p}${k}`, 1), field: `spec.${p}${k}`, what: 'unknown field' })),
    // missing sections / required fields
    fc.constant<Case>({
      spec: setAt(setAt(setAt(spec, 'database', undefined), 'redis', undefined), 'pgbouncer', undefined),
      field: 'spec',
      what: 'no section',
    }),
    fc
      .constantFrom(
        'targetRef',
        'targetRef.name',
        'database.poolSize',
        'pgbouncer.configMapRef',
        'database.poolSize.min',
      )
      .map((p) => ({ spec: setAt(spec, p, undefined), field: `spec.${p}`, what: `missing ${p}` })),
    // names: env, Deployment, container, cross-namespace-looking names, mode, prefix, address
    fc
      .tuple(
        fc.constantFrom('database.poolSize.env', 'database.maxOverflow.env', 'redis.maxConnections.env'),
        fc.constantFrom(
          '',
          '1ABC',
          'A-B',
          'A B',
          'ÄB',
          'DB_POOL_SIZE',
          'REDIS_MAX_CONNECTIONS',
          'A'.repeat(128),
          'A'.repeat(129),
          'A\n',
        ),
      )
      .map(([p, v]) => ({
        spec: setAt(spec, p, v),
        // A name another section uses is refused on whichever env of the pair the rule sits on.
        field:
          v === 'DB_POOL_SIZE' || v === 'REDIS_MAX_CONNECTIONS'
            ? '.env'
            : p === 'redis.maxConnections.env'
              ? 'spec.redis'
              : `spec.${p.split('.').slice(0, 2).join('.')}`,
        what: `env ${JSON.stringify(v)}`,
        at: `spec.${p}`,
      })),
    fc
      .tuple(
        fc.constantFrom(
          'targetRef.name',
          'budgetRef.name',
          'pgbouncer.rolloutRef.name',
          'pgbouncer.configMapRef.name',
          'prometheus.authSecretRef.name',
        ),
        fc.constantFrom(
          'other/api',
          '../api',
          'API',
          '-api',
          'api.',
          '',
          'a'.repeat(253),
          'a'.repeat(254),
          'default:api',
        ),
      )
      .map(([p, v]) => ({ spec: setAt(spec, p, v), field: `spec.${p}`, what: `name ${JSON.stringify(v)}` })),
    fc.constantFrom('api', 'Api', 'a'.repeat(63), 'a'.repeat(64), 'a_b', '').map((v) => ({
      spec: setAt(spec, 'targetRef.container', v),
      field: 'spec.targetRef.container',
      what: `container ${JSON.stringify(v)}`,
    })),
    fc
      .constantFrom<Json>('auto', 'Off', '', 1, 'Recommend')
      .map((v) => ({ spec: setAt(spec, 'mode', v), field: 'spec.mode', what: `mode ${JSON.stringify(v)}` })),
    fc.constantFrom('9x_', 'a-b', 'x'.repeat(128), 'x'.repeat(129), 'ns:', ' ').map((v) => ({
      spec: setAt(spec, 'metricsPrefix', v),
      field: 'spec.metricsPrefix',
      what: `metricsPrefix ${JSON.stringify(v)}`,
    })),
    fc
      .tuple(
        fc.constantFrom(
          'http://p:9090',
          'ftp://p',
          'http://',
          'http://a b',
          'http://a\u00a0b',
          'http://a/\u2028x',
          'https://p/x y',
          'http://p\u3000q',
        ),
        longChar,
      )
      .map(([v]) => ({
        spec: setAt(spec, 'prometheus.address', v),
        field: 'spec.prometheus.address',
        what: `address ${JSON.stringify(v)}`,
      })),
    fc.tuple(fc.constantFrom(2048 - 7, 2049 - 7), longChar).map(([n, ch]) => ({
      spec: setAt(spec, 'prometheus.address', `http://${longString(n, ch)}`),
      field: 'spec.prometheus.address',
      what: `address of ${n + 7} x ${JSON.stringify(ch)}`,
    })),
    // long PromQL overrides (length in characters, astral ones included)
    fc
      .tuple(
        fc.constantFrom('database.utilization', 'redis.utilization', 'pgbouncer.utilization'),
        fc.constantFrom(0, 1, 2048, 4096, 4097),
        longChar,
      )
      .map(([p, n, ch]) => ({
        spec: setAt(spec, p, longString(n, ch)),
        field: `spec.${p}`,
        what: `${p} of ${n} x ${JSON.stringify(ch)}`,
      })),
    fc.constantFrom<Json>(0, -1, 1, 2147483648, 1.5, '2').map((v) => ({
      spec: setAt(spec, 'processesPerPod', v),
      field: 'spec.processesPerPod',
      what: `processesPerPod ${JSON.stringify(v)}`,
    })),
    fc.constantFrom<Json>(0, 1, '1').map((v) => ({
      spec: setAt(spec, 'pgbouncer.pools', v),
      field: 'spec.pgbouncer.pools',
      what: `pools ${JSON.stringify(v)}`,
    })),
    fc.constantFrom<Json>('ini', 'env', 'yaml', '').map((v) => ({
      spec: setAt(spec, 'pgbouncer.format', v),
      field: 'spec.pgbouncer.format',
      what: `format ${JSON.stringify(v)}`,
    })),
    fc.constantFrom<Json>(null, [], 'x', 3).map((v) => ({
      spec: setAt(spec, 'behavior', v),
      field: 'spec.behavior',
      what: `behavior ${JSON.stringify(v)}`,
    })),
    ...behaviorBlockMutations(spec),
  );
}

/** spec.behavior.scaleUp / scaleDown: each field's edges, and a flat field set beside the block field replacing it. */
function behaviorBlockMutations(spec: Obj): fc.Arbitrary<Case>[] {
  const policyType = fc.constantFrom<Json>('Percent', 'Connections', 'Pods', 'percent', '', 1);
  const policyValue = fc.constantFrom<Json>(1, 4, 100, 1000, 2147483647, 2147483648, 0, -1, 1.5, '4');
  const policyPeriod = fc.oneof(
    anyDuration,
    fc.constantFrom('1s', '1000ms', '999ms', '1h', '60m', '3600s', '3601s', '1h0m1s', '0s'),
  );
  const policy = fc.record({ type: policyType, value: policyValue, period: policyPeriod }, { requiredKeys: [] });
  const policyList = fc.oneof(
    fc.array(policy, { minLength: 1, maxLength: 3 }),
    fc.constantFrom<Json>([], 'x', [{ type: 'Percent', value: 10, period: '1m', extra: 1 }]),
    fc.constant<Json>(Array.from({ length: 11 }, () => ({ type: 'Connections', value: 1, period: '1m' }))),
  );
  // The flat step limit would conflict with any policy; the mutation is about the policies themselves.
  const withoutStep = setAt(spec, 'behavior.maxStepPercent', undefined);
  return [
    fc.tuple(direction, fc.constantFrom<Json>('Max', 'Min', 'Disabled', 'max', '', 1)).map(([d, v]) => ({
      spec: setAt(spec, `behavior.${d}.selectPolicy`, v),
      field: `spec.behavior.${d}.selectPolicy`,
      what: `${d}.selectPolicy ${JSON.stringify(v)}`,
    })),
    fc.tuple(direction, anyDuration).map(([d, v]) => ({
      spec: setAt(setAt(spec, `behavior.${flatWindow(d)}`, undefined), `behavior.${d}.stabilizationWindow`, v),
      field: `spec.behavior.${d}.stabilizationWindow`,
      what: `${d}.stabilizationWindow ${JSON.stringify(v)}`,
    })),
    fc.tuple(direction, policyList).map(([d, v]) => ({
      spec: setAt(withoutStep, `behavior.${d}.policies`, v),
      field: `spec.behavior.${d}.policies`,
      what: `${d}.policies ${JSON.stringify(v)}`,
    })),
    fc.tuple(direction, fc.constantFrom('extra', 'stabilizationWindowSeconds')).map(([d, k]) => ({
      spec: setAt(spec, `behavior.${d}.${k}`, 1),
      field: `spec.behavior.${d}.${k}`,
      what: 'unknown field in a block',
    })),
    // Both the flat window and the block's: refused unless the flat one is its default (however written).
    fc
      .tuple(direction, fc.constantFrom('5m', '300s', '30m', '1800s', '0s', '1m'), validDuration)
      .map(([d, flat, block]) => ({
        spec: setAt(setAt(spec, `behavior.${flatWindow(d)}`, flat), `behavior.${d}.stabilizationWindow`, block),
        field: `spec.behavior.${flatWindow(d)}`,
        what: `${flatWindow(d)} ${flat} beside ${d}.stabilizationWindow ${block}`,
      })),
    // maxStepPercent beside policies: refused unless it is the default 20.
    fc.tuple(direction, fc.constantFrom(20, 19, 100)).map(([d, step]) => ({
      spec: setAt(setAt(spec, 'behavior.maxStepPercent', step), `behavior.${d}.policies`, [
        { type: 'Percent', value: 50, period: '1m' },
      ]),
      field: 'spec.behavior.maxStepPercent',
      what: `maxStepPercent ${step} beside ${d}.policies`,
    })),
  ];
}

const capacity = (valueKey: string, queryKey: string) =>
  fc
    .record({
      fixed: fc.option(fc.integer({ min: 1, max: 10000 }), { nil: undefined }),
      reserved: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
    })
    .map(({ fixed, reserved }): Obj => ({
      ...(fixed === undefined ? { [queryKey]: `max(${valueKey}{namespace="db"})` } : { [valueKey]: fixed + 5 }),
      ...(reserved === undefined ? {} : { reserved }),
    }));

const budgetSpec: fc.Arbitrary<Obj> = fc
  .record({
    postgres: fc.option(capacity('maxConnections', 'maxConnectionsQuery'), { nil: undefined }),
    redis: fc.option(capacity('maxClients', 'maxClientsQuery'), { nil: undefined }),
    prometheus: fc.option(fc.constantFrom<Obj>({}, { timeout: '5s' }, { address: 'http://p:9090' }), {
      nil: undefined,
    }),
  })
  .map((r) => {
    const spec: Obj = {};
    if (r.postgres) spec.postgres = r.postgres;
    if (r.redis) spec.redis = r.redis;
    if (!r.postgres && !r.redis) spec.postgres = { maxConnections: 100 };
    if (r.prometheus) spec.prometheus = r.prometheus;
    return spec;
  });

function budgetMutations(spec: Obj): fc.Arbitrary<Case> {
  const section = fc.constantFrom(
    ['postgres', 'maxConnections', 'maxConnectionsQuery'] as const,
    ['redis', 'maxClients', 'maxClientsQuery'] as const,
  );
  return fc.oneof(
    fc.constant<Case>({ spec, field: 'spec', what: 'unchanged' }),
    fc.tuple(section, fc.constantFrom<Json>(0, -1, 1, 2147483647, 2147483648, 1.5, '100')).map(([[s, v], x]) => ({
      spec: setAt(setAt(setAt(spec, `${s}.${v}`, x), `${s}.reserved`, 0), `${s}.${v}Query`, undefined),
      field: `spec.${s}`,
      what: `${v} ${JSON.stringify(x)}`,
    })),
    fc.tuple(section, fc.integer({ min: -2, max: 12 })).map(([[s, v], r]) => ({
      spec: setAt(setAt(setAt(spec, `${s}.${v}Query`, undefined), `${s}.${v}`, 10), `${s}.reserved`, r),
      field: `spec.${s}`,
      what: `reserved ${r} of 10`,
    })),
    section.map(([s, v, q]) => ({
      spec: setAt(setAt(spec, `${s}.${v}`, 10), `${s}.${q}`, 'up'),
      field: `spec.${s}`,
      what: 'value and query',
    })),
    section.map(([s, v, q]) => ({
      spec: setAt(setAt(setAt(spec, `${s}.${v}`, undefined), `${s}.${q}`, undefined), `${s}.reserved`, 1),
      field: `spec.${s}`,
      what: 'neither value nor query',
    })),
    fc.tuple(section, fc.constantFrom(0, 4096, 4097), longChar).map(([[s, v, q], n, ch]) => ({
      spec: setAt(setAt(spec, `${s}.${v}`, undefined), `${s}.${q}`, longString(n, ch)),
      field: `spec.${s}.${q}`,
      what: `${q} of ${n} x ${JSON.stringify(ch)}`,
    })),
    fc.constant<Case>({
      spec: setAt(setAt(spec, 'postgres', undefined), 'redis', undefined),
      field: 'spec',
      what: 'no section',
    }),
    fc
      .tuple(
        fc.constantFrom('', 'postgres.', 'prometheus.', 'prometheus.authSecretRef.'),
        fc.constantFrom('namespace', 'extra'),
      )
      .map(([p, k]) => ({ spec: setAt(spec, `${p}${k}`, 'x'), field: `spec.${p}${k}`, what: 'unknown field' })),
    fc
      .tuple(fc.constantFrom('prometheus.timeout'), anyDuration)
      .map(([p, d]) => ({ spec: setAt(spec, p, d), field: `spec.${p}`, what: `duration ${JSON.stringify(d)}` })),
    fc.constantFrom('http://p:9090', 'ftp://p', 'http://a\u00a0b', '').map((v) => ({
      spec: setAt(spec, 'prometheus.address', v),
      field: 'spec.prometheus.address',
      what: `address ${JSON.stringify(v)}`,
    })),
    fc.constantFrom('prom-auth', 'other/prom-auth', 'Prom', '').map((v) => ({
      spec: setAt(spec, 'prometheus.authSecretRef.name', v),
      field: 'spec.prometheus.authSecretRef.name',
      what: `authSecretRef ${JSON.stringify(v)}`,
    })),
  );
}

// ---------------------------------------------------------------------------

interface Verdict {
  readonly accepted: boolean;
  readonly message: string;
}

function zodVerdict(result: { readonly ok: true } | { readonly ok: false; readonly message: string }): Verdict {
  return result.ok ? { accepted: true, message: '' } : { accepted: false, message: result.message };
}

describe('zod and the CRD agree on every spec (server-side dry run on the real API server)', () => {
  let kc: KubeConfig;
  let api: CustomObjectsApi;
  let namespace: string;
  let counter = 0;

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    api = kc.makeApiClient(CustomObjectsApi);
    namespace = await createTestNamespace(kc, 'agree');
  });

  afterAll(async () => {
    await deleteTestNamespace(kc, namespace);
  });

  async function serverVerdict(plural: string, kind: string, spec: Obj): Promise<Verdict> {
    counter += 1;
    try {
      await api.createNamespacedCustomObject({
        group: 'poolpilot.io',
        version: 'v1alpha1',
        namespace,
        plural,
        body: { apiVersion: 'poolpilot.io/v1alpha1', kind, metadata: { name: `x${counter}` }, spec },
        dryRun: 'All',
        // What `kubectl apply` does: an unknown field is an error, not silently pruned.
        fieldValidation: 'Strict',
      });
      return { accepted: true, message: '' };
    } catch (err) {
      if (err instanceof ApiException && (err.code === 422 || err.code === 400)) {
        const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body);
        let message = body;
        try {
          const parsed = (JSON.parse(body) as { message?: unknown }).message;
          if (typeof parsed === 'string') message = parsed;
        } catch {
          // keep the raw body
        }
        return { accepted: false, message };
      }
      throw err;
    }
  }

  async function check(kase: Case, plural: string, kind: string, zod: Verdict): Promise<void> {
    const server = await serverVerdict(plural, kind, kase.spec);
    const context = `${kind} ${kase.what}\nspec: ${JSON.stringify(kase.spec)}\nserver: ${server.accepted ? 'accepted' : server.message}\nzod: ${zod.accepted ? 'accepted' : zod.message}`;
    expect({ agree: server.accepted === zod.accepted, context }).toEqual({ agree: true, context });
    if (!server.accepted) {
      expect({ serverNamesField: server.message.includes(kase.field), field: kase.field, context }).toEqual({
        serverNamesField: true,
        field: kase.field,
        context,
      });
      expect({ zodNamesField: zod.message.includes(kase.field), field: kase.field, context }).toEqual({
        zodNamesField: true,
        field: kase.field,
        context,
      });
    }
  }

  it(`PoolPolicy: ${POLICY_RUNS} mutated specs (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        policySpec.chain((spec) => policyMutations(spec).map((kase) => adjust(spec, kase))),
        async (kase) => {
          await check(kase, 'poolpolicies', 'PoolPolicy', zodVerdict(parsePoolPolicySpec(kase.spec)));
        },
      ),
      { numRuns: POLICY_RUNS, seed: SEED, endOnFailure: true },
    );
  }, 240_000);

  it(`ConnectionBudget: ${BUDGET_RUNS} mutated specs (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        budgetSpec.chain((spec) => budgetMutations(spec).map((kase) => adjust(spec, kase))),
        async (kase) => {
          await check(kase, 'connectionbudgets', 'ConnectionBudget', zodVerdict(parseConnectionBudgetSpec(kase.spec)));
        },
      ),
      { numRuns: BUDGET_RUNS, seed: SEED, endOnFailure: true },
    );
  }, 240_000);
});
