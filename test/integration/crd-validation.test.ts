import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { load } from 'js-yaml';
import { DEFAULTS } from '../../src/api/v1alpha1/poolpolicy.js';
import { CONNECTIONBUDGET_DEFAULTS } from '../../src/api/v1alpha1/connectionbudget.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import { openTestNamespace, type TestNamespace } from './support/suite.js';

// The CRDs as the real kube-apiserver enforces them: what `kubectl apply` refuses (and with which
// field path), which defaults it fills in, what `kubectl explain` documents and which columns
// `kubectl get` prints. The zod schema is checked against the same samples in the unit tests.

const samplesDir = join(repoRoot, 'deploy/samples');
const invalidDir = join(samplesDir, 'invalid');

const invalidFiles = readdirSync(invalidDir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const validFiles = readdirSync(samplesDir)
  .filter((f) => /^poolpolicy-.*\.yaml$/.test(f))
  .sort();
const budgetInvalidFiles = invalidFiles.filter((f) => f.startsWith('budget-'));
const budgetSample = 'connectionbudget.yaml';

/** The field path from the `# expect-error: <text>` header line of an invalid sample. */
function expectedError(file: string): string {
  const match = /^# expect-error: (.+)$/m.exec(readFileSync(join(invalidDir, file), 'utf8'));
  const text = match?.[1]?.trim();
  if (text === undefined || text === '') throw new Error(`${file} has no "# expect-error: <text>" header line`);
  return text;
}

interface Kubectl {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function kubectl(...args: string[]): Kubectl {
  const result = spawnSync('kubectl', ['--kubeconfig', readLocalEnv().KUBECONFIG, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface SampleSpec {
  mode?: string;
  interval?: string;
  metricsPrefix?: string;
  thresholds?: Record<string, unknown>;
  behavior?: Record<string, unknown>;
}

interface StoredPolicy {
  metadata: { name: string };
  spec: Required<Pick<SampleSpec, 'mode' | 'interval' | 'metricsPrefix'>> & {
    thresholds: Record<string, unknown>;
    behavior: Record<string, unknown>;
  };
}

function sampleSpec(file: string): { name: string; spec: SampleSpec } {
  const doc = load(readFileSync(join(samplesDir, file), 'utf8')) as { metadata: { name: string }; spec: SampleSpec };
  return { name: doc.metadata.name, spec: doc.spec };
}

describe('poolpilot CRDs on the real API server', () => {
  let namespace: string;
  let scope: TestNamespace;

  beforeAll(async () => {
    scope = await openTestNamespace('crd');
    ({ namespace } = scope);
  });

  afterAll(async () => {
    await scope.close();
  });

  it('finds the samples to check', () => {
    expect(invalidFiles.length).toBeGreaterThanOrEqual(10);
    expect(validFiles.length).toBeGreaterThanOrEqual(4);
    expect(budgetInvalidFiles.length).toBeGreaterThanOrEqual(6);
  });

  it.each(invalidFiles)('refuses invalid/%s, naming the field in the error', (file) => {
    const field = expectedError(file);
    const result = kubectl('-n', namespace, 'apply', '-f', join(invalidDir, file));
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(field);
  });

  it('stored none of the invalid samples', () => {
    const names = JSON.parse(
      execFileSync('kubectl', ['--kubeconfig', readLocalEnv().KUBECONFIG, '-n', namespace, 'get', 'pp', '-o', 'json'], {
        encoding: 'utf8',
      }),
    ) as {
      items: Array<{ metadata: { name: string } }>;
    };
    expect(names.items.map((i) => i.metadata.name).filter((n) => n.startsWith('invalid-'))).toEqual([]);
    const budgets = kubectl('-n', namespace, 'get', 'connectionbudgets', '-o', 'jsonpath={.items[*].metadata.name}');
    expect(budgets.status).toBe(0);
    expect(budgets.stdout.split(' ').filter((n) => n.startsWith('invalid-'))).toEqual([]);
  });

  it.each(validFiles)('applies %s cleanly', (file) => {
    const result = kubectl('-n', namespace, 'apply', '-f', join(samplesDir, file));
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('created');
  });

  it.each(validFiles)('fills in the CRD defaults for %s', (file) => {
    const { name, spec } = sampleSpec(file);
    const result = kubectl('-n', namespace, 'get', 'pp', '-o', 'json');
    expect(result.status).toBe(0);
    const list = JSON.parse(result.stdout) as { items: StoredPolicy[] };
    const stored = list.items.find((i) => i.metadata.name === name);
    expect(stored).toBeDefined();
    if (stored === undefined) return;
    // What the file leaves out, the API server defaults; what it sets, it keeps.
    expect(stored.spec.mode).toBe(spec.mode ?? DEFAULTS.mode);
    expect(stored.spec.interval).toBe(spec.interval ?? DEFAULTS.interval);
    expect(stored.spec.metricsPrefix).toBe(spec.metricsPrefix ?? DEFAULTS.metricsPrefix);
    expect(stored.spec.thresholds).toEqual({
      scaleUpAbove: DEFAULTS.scaleUpAbove,
      scaleDownBelow: DEFAULTS.scaleDownBelow,
      target: DEFAULTS.target,
      ...spec.thresholds,
    });
    expect(stored.spec.behavior).toEqual({
      maxStepPercent: DEFAULTS.maxStepPercent,
      scaleUpStabilization: DEFAULTS.scaleUpStabilization,
      scaleDownStabilization: DEFAULTS.scaleDownStabilization,
      minChangeInterval: DEFAULTS.minChangeInterval,
      ...spec.behavior,
    });
  });

  it('defaults mode Auto, interval 30s and maxStepPercent 20 where a sample leaves them out', () => {
    const result = kubectl('-n', namespace, 'get', 'pp', 'example-medium', '-o', 'json');
    expect(result.status).toBe(0);
    const stored = JSON.parse(result.stdout) as StoredPolicy;
    const { spec } = sampleSpec('poolpolicy-medium.yaml');
    expect([spec.mode, spec.interval, spec.behavior]).toEqual([undefined, undefined, undefined]);
    expect(stored.spec.mode).toBe('Auto');
    expect(stored.spec.interval).toBe('30s');
    expect(stored.spec.behavior.maxStepPercent).toBe(20);
  });

  it('documents spec.behavior in kubectl explain', () => {
    const result = kubectl('explain', 'poolpolicy.spec.behavior');
    expect(result.status).toBe(0);
    const fieldDescription = (field: string): string => {
      const match = new RegExp(`^\\s*${field}\\s+<[^>]+>\\n((?:\\s{4,}\\S.*\\n?)+)`, 'm').exec(result.stdout);
      return match?.[1]?.trim() ?? '';
    };
    expect(fieldDescription('maxStepPercent')).not.toBe('');
    expect(fieldDescription('scaleUpStabilization')).not.toBe('');
  });

  it('prints the printer columns in kubectl get', () => {
    const result = kubectl('-n', namespace, 'get', 'pp');
    expect(result.status).toBe(0);
    const [header = '', ...rows] = result.stdout.trimEnd().split('\n');
    expect(header.trim().split(/\s{2,}/)).toEqual([
      'NAME',
      'TARGET',
      'MODE',
      'DB POOL',
      'REDIS MAX',
      'DB UTIL',
      'READY',
      'AGE',
    ]);
    expect(rows).toHaveLength(validFiles.length);
    const medium = rows.find((r) => r.startsWith('example-medium '));
    expect(medium?.split(/\s+/).slice(0, 3)).toEqual(['example-medium', 'example-medium', 'Auto']);
  });

  describe('spec.behavior.scaleUp / scaleDown', () => {
    const apply = (name: string, behavior: Record<string, unknown>): Kubectl => {
      const manifest = JSON.stringify({
        apiVersion: 'poolpilot.io/v1alpha1',
        kind: 'PoolPolicy',
        metadata: { name },
        spec: { targetRef: { name: 'example' }, redis: { maxConnections: { min: 5, max: 50 } }, behavior },
      });
      const result = spawnSync(
        'kubectl',
        ['--kubeconfig', readLocalEnv().KUBECONFIG, '-n', namespace, 'apply', '-f', '-'],
        { input: manifest, encoding: 'utf8', timeout: 60_000 },
      );
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    };

    it('documents type, value and period of the policies, and what applies without them, in kubectl explain', () => {
      const result = kubectl('explain', 'poolpolicy.spec.behavior.scaleUp.policies');
      expect(result.status).toBe(0);
      const text = result.stdout.replace(/\s+/g, ' ');
      expect(text).toContain('when absent, maxStepPercent per change applies (default 20 %)');
      for (const field of ['period', 'type', 'value'])
        expect(result.stdout).toMatch(new RegExp(`^\\s*${field}\\s+<\\w+> -required-`, 'm'));
      expect(text).toContain('Percent: the value may grow by value percent');
      expect(text).toContain('from 1s to 1h');
      const selectPolicy = kubectl('explain', 'poolpolicy.spec.behavior.scaleDown.selectPolicy').stdout.replace(
        /\s+/g,
        ' ',
      );
      expect(selectPolicy).toContain('Max (default)');
      expect(selectPolicy).toContain('Disabled forbids shrinking');
    });

    it('stores both blocks and defaults selectPolicy to Max', () => {
      const behavior = {
        scaleUp: {
          stabilizationWindow: '0s',
          policies: [
            { type: 'Percent', value: 100, period: '1m' },
            { type: 'Connections', value: 4, period: '1m' },
          ],
        },
        scaleDown: { selectPolicy: 'Min', policies: [{ type: 'Connections', value: 2, period: '5m' }] },
      };
      const result = apply('behavior-blocks', behavior);
      expect(result.stderr).toBe('');
      const stored = JSON.parse(
        kubectl('-n', namespace, 'get', 'pp', 'behavior-blocks', '-o', 'json').stdout,
      ) as StoredPolicy;
      expect(stored.spec.behavior).toEqual({
        maxStepPercent: DEFAULTS.maxStepPercent,
        scaleUpStabilization: DEFAULTS.scaleUpStabilization,
        scaleDownStabilization: DEFAULTS.scaleDownStabilization,
        minChangeInterval: DEFAULTS.minChangeInterval,
        scaleUp: { ...behavior.scaleUp, selectPolicy: 'Max' },
        scaleDown: behavior.scaleDown,
      });
    });

    it.each([
      [
        'behavior-both-windows',
        { scaleDownStabilization: '1h', scaleDown: { stabilizationWindow: '5m' } },
        'spec.behavior.scaleDownStabilization',
        'remove spec.behavior.scaleDownStabilization (scaleDown.stabilizationWindow replaces it)',
      ],
      [
        'behavior-step-and-policies',
        { maxStepPercent: 30, scaleDown: { policies: [{ type: 'Percent', value: 10, period: '1m' }] } },
        'spec.behavior.maxStepPercent',
        'remove spec.behavior.maxStepPercent',
      ],
      [
        'behavior-short-period',
        { scaleUp: { policies: [{ type: 'Percent', value: 10, period: '500ms' }] } },
        'spec.behavior.scaleUp.policies[0].period',
        'period must be a duration from 1s to 1h',
      ],
    ])('refuses %s, saying which field to remove or fix', (name, behavior, field, remedy) => {
      const result = apply(name, behavior);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(field);
      expect(result.stderr).toContain(remedy);
    });
  });

  describe('ConnectionBudget', () => {
    interface StoredBudget {
      spec: {
        postgres?: { maxConnections?: number; maxConnectionsQuery?: string; reserved: number };
        redis?: { maxClients?: number; maxClientsQuery?: string; reserved: number };
      };
    }

    it(`applies ${budgetSample} cleanly`, () => {
      const result = kubectl('-n', namespace, 'apply', '-f', join(samplesDir, budgetSample));
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toContain('connectionbudget.poolpilot.io/example-budget created');
    });

    it('keeps what the sample sets and defaults reserved where a budget leaves it out', () => {
      const sample = kubectl('-n', namespace, 'get', 'cb', 'example-budget', '-o', 'json');
      expect(sample.status).toBe(0);
      expect((JSON.parse(sample.stdout) as StoredBudget).spec).toEqual({
        postgres: { maxConnections: 100, reserved: 10 },
        redis: { maxClientsQuery: 'max(redis_config_maxclients{namespace="cache"})', reserved: 100 },
      });

      const manifest = JSON.stringify({
        apiVersion: 'poolpilot.io/v1alpha1',
        kind: 'ConnectionBudget',
        metadata: { name: 'defaults-budget' },
        spec: { postgres: { maxConnections: 50 }, redis: { maxClients: 1000 } },
      });
      const created = spawnSync(
        'kubectl',
        ['--kubeconfig', readLocalEnv().KUBECONFIG, '-n', namespace, 'apply', '-f', '-'],
        { input: manifest, encoding: 'utf8', timeout: 60_000 },
      );
      expect(created.stderr).toBe('');
      const stored = JSON.parse(
        kubectl('-n', namespace, 'get', 'cb', 'defaults-budget', '-o', 'json').stdout,
      ) as StoredBudget;
      expect(stored.spec.postgres?.reserved).toBe(CONNECTIONBUDGET_DEFAULTS.postgresReserved);
      expect(stored.spec.redis?.reserved).toBe(CONNECTIONBUDGET_DEFAULTS.redisReserved);
    });

    it('documents spec.postgres in kubectl explain', () => {
      const result = kubectl('explain', 'connectionbudget.spec.postgres');
      expect(result.status).toBe(0);
      for (const field of ['maxConnections', 'maxConnectionsQuery', 'reserved']) {
        const match = new RegExp(`^\\s*${field}\\s+<[^>]+>\\n((?:\\s{4,}\\S.*\\n?)+)`, 'm').exec(result.stdout);
        expect([field, (match?.[1]?.trim() ?? '') !== '']).toEqual([field, true]);
      }
    });

    it('prints the printer columns in kubectl get', () => {
      const result = kubectl('-n', namespace, 'get', 'cb');
      expect(result.status).toBe(0);
      const [header = ''] = result.stdout.trimEnd().split('\n');
      expect(header.trim().split(/\s{2,}/)).toEqual([
        'NAME',
        'PG CAPACITY',
        'PG ALLOCATED',
        'PG HEADROOM',
        'REDIS CAPACITY',
        'REDIS ALLOCATED',
        'REDIS HEADROOM',
        'READY',
        'AGE',
      ]);
    });

    it('accepts a negative headroom in status (over budget)', () => {
      const status = {
        status: {
          observedGeneration: 1,
          postgres: {
            capacity: 90,
            allocated: 120,
            headroom: -30,
            shares: [{ policy: 'api', replicas: 4, connections: 120, limited: true }],
          },
          lastUpdated: '2026-01-01T00:00:00Z',
        },
      };
      const result = kubectl(
        '-n',
        namespace,
        'patch',
        'cb',
        'example-budget',
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify(status),
      );
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const row = kubectl('-n', namespace, 'get', 'cb', 'example-budget', '--no-headers').stdout.trim().split(/\s+/);
      expect(row.slice(0, 4)).toEqual(['example-budget', '90', '120', '-30']);
    });
  });
});
