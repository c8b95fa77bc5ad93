import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { load } from 'js-yaml';
import { promtool } from '../../support/promtool.js';

// The alert rules in deploy/monitoring/: promtool accepts the plain rule file, its unit tests
// (rules/poolpilot.rules.test.yaml) pass, and the PrometheusRule wraps the very same groups.
// promtool comes with Debian's `prometheus` package.

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const rulesDir = join(root, 'deploy/monitoring/rules');
const ruleFile = join(rulesDir, 'poolpilot.rules.yaml');
const ruleTestFile = join(rulesDir, 'poolpilot.rules.test.yaml');
const crdFile = join(root, 'deploy/monitoring/prometheusrule.yaml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Group {
  name: string;
  rules: Rule[];
}

const ALERTS = [
  'PostgreSQLPoolHighUtilization',
  'RedisPoolHighUtilization',
  'PoolPolicyAtMaxOrBudgetLimited',
  'PoolPolicyMetricsUnavailable',
  'PoolpilotReconcileErrors',
  'PoolpilotNoLeader',
];

function plainGroups(): Group[] {
  return (load(readFileSync(ruleFile, 'utf8')) as { groups: Group[] }).groups;
}

function alerts(): Rule[] {
  return plainGroups()
    .flatMap((g) => g.rules)
    .filter((r) => r.alert !== undefined);
}

describe('deploy/monitoring alert rules', () => {
  it('promtool check rules accepts the plain rule file', () => {
    const result = promtool(['check', 'rules', ruleFile], rulesDir);
    expect(result.output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(result.status).toBe(0);
  });

  it('promtool test rules passes every alert test', () => {
    const result = promtool(['test', 'rules', ruleTestFile], rulesDir);
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it("the PrometheusRule holds exactly the plain file's groups", () => {
    const crd = load(readFileSync(crdFile, 'utf8')) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string };
      spec: { groups: Group[] };
    };
    expect(crd.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(crd.kind).toBe('PrometheusRule');
    expect(crd.metadata.name).toBe('poolpilot');
    expect(crd.spec.groups).toEqual(plainGroups());
  });

  it("defines the runbook's and the operator's alerts, each with severity, summary, description and a README runbook_url", () => {
    expect(
      alerts()
        .map((r) => r.alert)
        .sort(),
    ).toEqual([...ALERTS].sort());
    for (const rule of alerts()) {
      expect({ alert: rule.alert, severity: rule.labels?.severity }).toEqual({
        alert: rule.alert,
        severity: expect.stringMatching(/^(warning|critical)$/),
      });
      expect(rule.for).toMatch(/^\d+m$/);
      expect(rule.annotations?.summary).toEqual(expect.any(String));
      expect(rule.annotations?.description).toEqual(expect.any(String));
      expect(rule.annotations?.runbook_url).toBe(`README.md#${(rule.alert ?? '').toLowerCase()}`);
    }
  });

  it('the promtool tests cover every alert both quiet and firing', () => {
    interface AlertTest {
      alertname: string;
      exp_alerts: unknown[];
    }
    const tests = (load(readFileSync(ruleTestFile, 'utf8')) as { tests: Array<{ alert_rule_test?: AlertTest[] }> })
      .tests;
    const cases = tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const name of ALERTS) {
      const mine = cases.filter((c) => c.alertname === name);
      expect({
        name,
        quiet: mine.some((c) => c.exp_alerts.length === 0),
        firing: mine.some((c) => c.exp_alerts.length > 0),
      }).toEqual({ name, quiet: true, firing: true });
    }
  });
});
