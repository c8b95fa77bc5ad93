// Every file under deploy/samples/ is parsed with the zod schema of its kind: the tier
// samples and the ConnectionBudget sample must be valid, every file in deploy/samples/invalid/ must be refused with a
// message naming the field given in its `# expect-error: <path>` header.
import { describe, it, expect } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { parsePoolPolicySpec, POOLPOLICY_API_VERSION, POOLPOLICY_KIND } from '../../../src/api/v1alpha1/poolpolicy.js';
import {
  CONNECTIONBUDGET_API_VERSION,
  CONNECTIONBUDGET_KIND,
  parseConnectionBudgetSpec,
} from '../../../src/api/v1alpha1/connectionbudget.js';

/** The spec parser of each kind a sample may have. */
const PARSERS: Readonly<Record<string, (spec: unknown) => { ok: true } | { ok: false; message: string }>> = {
  [POOLPOLICY_KIND]: parsePoolPolicySpec,
  [CONNECTIONBUDGET_KIND]: parseConnectionBudgetSpec,
};

/** Checks apiVersion and kind, then parses the spec with the parser of its kind. */
function parseSample(doc: Record<string, unknown>): { ok: true } | { ok: false; message: string } {
  expect(doc.apiVersion).toBe(
    doc.kind === CONNECTIONBUDGET_KIND ? CONNECTIONBUDGET_API_VERSION : POOLPOLICY_API_VERSION,
  );
  const parse = PARSERS[String(doc.kind)];
  if (parse === undefined) throw new Error(`unexpected kind ${String(doc.kind)}`);
  return parse(doc.spec);
}

const samplesDir = fileURLToPath(new URL('../../../deploy/samples/', import.meta.url));
const invalidDir = fileURLToPath(new URL('../../../deploy/samples/invalid/', import.meta.url));
const demoDir = fileURLToPath(new URL('../../../deploy/samples/demo/', import.meta.url));

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

function readObject(path: string): { text: string; doc: Record<string, unknown> } {
  const text = readFileSync(path, 'utf8');
  const doc = load(text);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${path}: not a YAML mapping`);
  return { text, doc: doc as Record<string, unknown> };
}

describe('deploy/samples', () => {
  const valid = yamlFiles(samplesDir);

  it('has one sample per runbook tier, a ConnectionBudget and the ConfigMap delivery', () => {
    expect(valid).toEqual([
      'connectionbudget.yaml',
      'poolpolicy-configmap-delivery.yaml',
      'poolpolicy-high.yaml',
      'poolpolicy-low.yaml',
      'poolpolicy-medium.yaml',
      'poolpolicy-very-high.yaml',
    ]);
  });

  it.each(valid)('%s is valid', (file) => {
    const { doc } = readObject(samplesDir + file);
    expect(doc.kind).toBe(file.startsWith('poolpolicy-') ? POOLPOLICY_KIND : CONNECTIONBUDGET_KIND);
    const result = parseSample(doc);
    if (!result.ok) throw new Error(`${file}: ${result.message}`);
    expect(result.ok).toBe(true);
  });

  // Runbook tiers: DB_POOL_SIZE / DB_MAX_OVERFLOW / REDIS_MAX_CONNECTIONS floors.
  const tiers: readonly (readonly [string, number, number, number | undefined])[] = [
    ['low', 10, 20, 25],
    ['medium', 20, 40, 50],
    ['high', 30, 70, 100],
    ['very-high', 50, 100, undefined],
  ];
  it.each(tiers)('tier %s starts at the runbook values', (tier, pool, overflow, redis) => {
    const result = parsePoolPolicySpec(readObject(`${samplesDir}poolpolicy-${tier}.yaml`).doc.spec);
    if (!result.ok) throw new Error(result.message);
    expect(result.spec.database?.poolSize.min).toBe(pool);
    expect(result.spec.database?.maxOverflow?.min).toBe(overflow);
    expect(result.spec.redis?.maxConnections.min).toBe(redis);
    if (tier === 'very-high') expect(result.spec.pgbouncer).toBeDefined();
  });
});

describe('deploy/samples/invalid', () => {
  const invalid = yamlFiles(invalidDir);

  it('covers every malformed case', () => {
    expect(invalid).toEqual([
      'bad-env-name.yaml',
      'behavior-max-step-and-policies.yaml',
      'behavior-policy-period-too-long.yaml',
      'behavior-policy-type-pods.yaml',
      'behavior-stabilization-twice.yaml',
      'budget-negative-max.yaml',
      'budget-negative-reserved.yaml',
      'budget-no-capacity.yaml',
      'budget-no-section.yaml',
      'budget-reserved-not-less.yaml',
      'budget-unknown-field.yaml',
      'budget-value-and-query.yaml',
      'delivery-configmap-without-ref.yaml',
      'delivery-env-with-ref.yaml',
      'delivery-env-with-refresh.yaml',
      'delivery-env-with-reload.yaml',
      'delivery-reload-unknown.yaml',
      'duration-negative.yaml',
      'duration-words.yaml',
      'fill-to-budget-without-budget.yaml',
      'max-step-percent-101.yaml',
      'max-step-percent-zero.yaml',
      'min-greater-than-max.yaml',
      'negative-bound.yaml',
      'no-section.yaml',
      'pgbouncer-fill-to-budget-without-budget.yaml',
      'thresholds-out-of-order.yaml',
      'unknown-field.yaml',
      'zero-bound.yaml',
    ]);
  });

  it.each(invalid)('%s is refused naming the field', (file) => {
    const { text, doc } = readObject(invalidDir + file);
    const expectedPath = /^# expect-error: (\S+)$/m.exec(text)?.[1];
    expect(expectedPath).toBeDefined();
    expect(doc.kind).toBe(file.startsWith('budget-') ? CONNECTIONBUDGET_KIND : POOLPOLICY_KIND);
    const result = parseSample(doc);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toContain(`${expectedPath ?? '?'}: `);
  });
});

describe('deploy/samples/demo', () => {
  // bench/arms.sh trace T3 compares static splits with poolpilot on two apps: both policies must
  // differ only in the Deployment they tune, or the comparison measures their settings instead.
  it('gives the second app (reports-api) the PoolPolicy of voiceassist-api on the same ConnectionBudget', () => {
    const first = readObject(`${demoDir}poolpolicy.yaml`).doc;
    const second = readObject(`${demoDir}poolpolicy-reports-api.yaml`).doc;
    for (const doc of [first, second]) {
      const result = parseSample(doc);
      if (!result.ok) throw new Error(result.message);
    }
    const { targetRef: firstTarget, ...firstSettings } = first.spec as Record<string, unknown>;
    const { targetRef: secondTarget, ...secondSettings } = second.spec as Record<string, unknown>;
    expect(firstTarget).toEqual({ name: 'voiceassist-api', container: 'api' });
    expect(secondTarget).toEqual({ name: 'reports-api', container: 'api' });
    expect(secondSettings).toEqual(firstSettings);
    expect(second.metadata).toEqual({ name: 'reports-api', namespace: 'demo' });
  });
});

describe('deploy/samples/demo, DEMO_PATH=pgbouncer', () => {
  // demo/run.sh and bench/arms.sh arm F keep the app's pools fixed and let poolpilot tune only
  // PgBouncer: a database or redis section (env writes) or a rolloutRef (a checksum annotation)
  // would roll pods, which is what this path exists to avoid.
  it('tunes PgBouncer only: no env section, no rolloutRef, within a budget read from postgres_exporter', () => {
    const policy = parsePoolPolicySpec(readObject(`${demoDir}poolpolicy-pgbouncer.yaml`).doc.spec);
    if (!policy.ok) throw new Error(policy.message);
    expect(policy.spec.database).toBeUndefined();
    expect(policy.spec.redis).toBeUndefined();
    expect(policy.spec.pgbouncer?.rolloutRef).toBeUndefined();
    expect(policy.spec.pgbouncer?.configMapRef).toEqual({ name: 'pgbouncer-config', key: 'pgbouncer.ini' });
    expect(policy.spec.budgetRef).toEqual({ name: 'demo-postgres' });
    const budgetDoc = readObject(`${demoDir}connectionbudget-pgbouncer.yaml`).doc;
    const budget = parseSample(budgetDoc);
    if (!budget.ok) throw new Error(budget.message);
    expect(budgetDoc.spec).toMatchObject({
      postgres: { maxConnectionsQuery: 'max(pg_settings_max_connections{namespace="demo"})', reserved: 6 },
    });
  });
});

describe('README.md', () => {
  // The PoolPolicy example of the README is what a reader copies: it must parse, and its behavior
  // must mean what its comments say.
  it('its PoolPolicy example is valid, with behavior blocks that replace the flat fields they name', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    const yaml = /## A PoolPolicy\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(yaml).toBeDefined();
    const doc = load(yaml ?? '') as Record<string, unknown>;
    const result = parsePoolPolicySpec(doc.spec);
    if (!result.ok) throw new Error(result.message);
    expect(result.spec.behavior).toEqual({
      maxStepPercent: 20,
      scaleUpStabilizationMs: 2 * 60_000,
      scaleDownStabilizationMs: 30 * 60_000,
      minChangeIntervalMs: 10 * 60_000,
      scaleUp: {
        selectPolicy: 'Max',
        policies: [
          { type: 'Percent', value: 100, periodMs: 30 * 60_000 },
          { type: 'Connections', value: 4, periodMs: 30 * 60_000 },
        ],
      },
      scaleDown: { selectPolicy: 'Max', policies: [{ type: 'Connections', value: 5, periodMs: 60 * 60_000 }] },
    });
  });
});
