import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { KubeConfig } from '@kubernetes/client-node';
import axios from 'axios';
import { load } from 'js-yaml';
import { Gauge } from 'prom-client';
import type { RunningController } from '../../src/main.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import {
  createPolicy,
  envOf,
  getDeployment,
  installCrds,
  simulateRollouts,
  startOperator,
} from './support/operator.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import { eventually, queryVector, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';

// The operator's /metrics after real reconciles, and deploy/monitoring/ against the real local
// Prometheus: every dashboard and alert expression parses and runs (Prometheus has no offline
// PromQL check in 2.42), and the operator panels show data once Prometheus scrapes the operator.

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text format (samples only; # HELP/# TYPE lines are checked as text). */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = l[2] ?? '';
    samples.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return samples;
}

interface Target {
  expr?: string;
}
interface Panel {
  title: string;
  type: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
  annotations: { list: Array<{ name: string; expr?: string }> };
}

function dashboard(): Dashboard {
  const cm = load(readFileSync(join(repoRoot, 'deploy/monitoring/dashboard.yaml'), 'utf8')) as {
    data: Record<string, string>;
  };
  return JSON.parse(cm.data['poolpilot.json'] ?? '{}') as Dashboard;
}

/** Every PromQL expression of the dashboard: panel targets, annotation queries, variable selectors. */
function dashboardExpressions(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? [])
        if (t.expr !== undefined) out.push({ where: `panel "${p.title}"`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const a of d.annotations.list)
    if (a.expr !== undefined) out.push({ where: `annotation "${a.name}"`, expr: a.expr });
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    // Grafana's label_values(<selector>, <label>): the selector is the PromQL part.
    const m = /^label_values\((.*),\s*\w+\)$/.exec(query);
    out.push({ where: `variable $${v.name}`, expr: m?.[1] ?? query });
  }
  return out;
}

/**
 * Grafana's variables, as Grafana would fill them in ("All" is the regex .*). Grafana leaves
 * `$1` (label_replace's capture reference) alone, as there is no variable "1"; any other unknown
 * name is a typo here.
 */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => {
    if (/^\d+$/.test(name)) return whole;
    const value = values[name];
    if (value === undefined) throw new Error(`no value for Grafana variable ${whole} in ${expr}`);
    return value;
  });
}

/** GET /api/v1/query as Grafana would; the response body even on HTTP 400 (a PromQL error). */
async function promQuery(expr: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
  const response = await axios.get<{ status: string; error?: string; data?: { result: unknown[] } }>(
    `${readLocalEnv().PROMETHEUS_URL}/api/v1/query`,
    { params: { query: expr }, timeout: 5000, validateStatus: () => true },
  );
  return response.data;
}

describe('operator metrics and deploy/monitoring against real Prometheus', () => {
  let kc: KubeConfig;
  let namespace: string;
  let operator: RunningController;
  let exporter: ScrapeTarget;
  let rollouts: ReturnType<typeof simulateRollouts>;
  let operatorTargetFile: string;
  let scraped: Sample[] = [];
  let scrapedText = '';

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'mon');
    rollouts = simulateRollouts(kc, namespace);
    exporter = await startScrapeTarget(`${namespace}-app`, { namespace, pod: 'api-6f7d9-x2x9q' });
    new Gauge({
      name: 'voiceassist_db_pool_utilization_percent',
      help: 'utilization',
      registers: [exporter.registry],
    }).set(90);
    new Gauge({ name: 'voiceassist_redis_pool_in_use', help: 'in use', registers: [exporter.registry] }).set(30);
    new Gauge({ name: 'voiceassist_redis_pool_max_connections', help: 'max', registers: [exporter.registry] }).set(50);
    operator = await startOperator(namespace);
    // Prometheus scrapes the operator too (no `namespace` target label: it would rename the
    // operator's own namespace label to exported_namespace, see the ServiceMonitor's honorLabels).
    operatorTargetFile = join(readLocalEnv().PROMETHEUS_TARGETS_DIR, `${namespace}-poolpilot.json`);
    writeFileSync(
      operatorTargetFile,
      JSON.stringify([{ targets: [`127.0.0.1:${operator.metricsPort}`], labels: { poolpilot_test: namespace } }]),
    );

    await createDeployment(
      kc,
      namespace,
      deploymentManifest('api', [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    );
    await createPolicy(kc, namespace, 'api', {
      targetRef: { name: 'api', container: 'app' },
      interval: '1s',
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: {
        maxStepPercent: 20,
        scaleUpStabilization: '1s',
        scaleDownStabilization: '1s',
        minChangeInterval: '0s',
      },
    });
    // One applied change (20 → 24) means at least one full reconcile with a query and a write.
    await eventually(
      async () => (envOf(await getDeployment(kc, namespace, 'api'), 'app').DB_POOL_SIZE === '20' ? undefined : true),
      60000,
      'DB_POOL_SIZE to grow',
    );
    await eventually(
      async () => {
        scrapedText = (
          await axios.get<string>(`http://127.0.0.1:${operator.metricsPort}/metrics`, {
            responseType: 'text',
            timeout: 5000,
          })
        ).data;
        scraped = parseSamples(scrapedText);
        return scraped.some((s) => s.name === 'poolpilot_changes_total' && s.labels.policy === 'api')
          ? true
          : undefined;
      },
      30000,
      'poolpilot_changes_total for the policy',
    );
  });

  afterAll(async () => {
    rmSync(operatorTargetFile, { force: true });
    await operator.stop();
    rollouts.stop();
    await exporter.stop();
    await deleteTestNamespace(kc, namespace);
  });

  const find = (name: string, labels: Readonly<Record<string, string>> = {}): Sample[] =>
    scraped.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

  it('counts reconciles by result and times them', () => {
    expect(find('poolpilot_reconciles_total', { result: 'success' })[0]?.value).toBeGreaterThanOrEqual(1);
    for (const s of find('poolpilot_reconciles_total'))
      expect(['success', 'error', 'terminal']).toContain(s.labels.result);
    expect(find('poolpilot_reconcile_duration_seconds_count')[0]?.value).toBeGreaterThanOrEqual(1);
    expect(find('poolpilot_reconcile_duration_seconds_bucket', { le: '+Inf' })).toHaveLength(1);
  });

  it('counts Prometheus queries by result and times them', () => {
    expect(find('poolpilot_prometheus_queries_total', { result: 'ok' })[0]?.value).toBeGreaterThanOrEqual(1);
    for (const s of find('poolpilot_prometheus_queries_total'))
      expect(['ok', 'QueryFailed', 'NoData', 'NaN', 'Infinite', 'MultipleSeries', 'Stale']).toContain(s.labels.result);
    expect(find('poolpilot_prometheus_query_duration_seconds_count')[0]?.value).toBeGreaterThanOrEqual(1);
  });

  it('reports the work queue depth', () => {
    expect(find('poolpilot_workqueue_depth')).toHaveLength(1);
  });

  it('reports current and recommended values per setting, and the change it applied', () => {
    const setting = (name: string, kind: string): number | undefined =>
      find('poolpilot_setting_value', { namespace, policy: 'api', setting: name, kind })[0]?.value;
    expect(setting('DB_POOL_SIZE', 'current')).toBeGreaterThanOrEqual(20);
    expect(setting('DB_POOL_SIZE', 'recommended')).toBeGreaterThanOrEqual(24);
    expect(setting('DB_MAX_OVERFLOW', 'current')).toBeGreaterThanOrEqual(40);
    expect(
      find('poolpilot_changes_total', { namespace, policy: 'api', setting: 'DB_POOL_SIZE', direction: 'up' })[0]?.value,
    ).toBeGreaterThanOrEqual(1);
    for (const s of find('poolpilot_changes_total')) expect(['up', 'down']).toContain(s.labels.direction);
  });

  it('exposes process metrics with the poolpilot_ prefix', () => {
    expect(find('poolpilot_process_cpu_user_seconds_total')).toHaveLength(1);
    expect(find('poolpilot_nodejs_heap_size_used_bytes')).toHaveLength(1);
  });

  it('declares poolpilot_policy_condition and poolpilot_budget_headroom_connections as gauges', () => {
    expect(scrapedText).toContain('# TYPE poolpilot_policy_condition gauge');
    expect(scrapedText).toContain('# TYPE poolpilot_budget_headroom_connections gauge');
  });

  it("poolpilot_policy_condition is 1 for the policy's Ready, MetricsAvailable and Limited conditions", () => {
    const conditions = find('poolpilot_policy_condition', { namespace, policy: 'api' }).filter((s) => s.value === 1);
    expect(conditions.map((s) => s.labels.type).sort()).toEqual(['Limited', 'MetricsAvailable', 'Ready']);
    expect(
      find('poolpilot_policy_condition', { namespace, policy: 'api', type: 'Ready', status: 'True' })[0]?.value,
    ).toBe(1);
  });

  it("every dashboard expression runs on Prometheus, with Grafana's variables filled in", async () => {
    const values = { namespace, policy: '.*', setting: '.*', __rate_interval: '1m', __interval: '1m', __range: '1h' };
    const exprs = dashboardExpressions(dashboard());
    expect(exprs.length).toBeGreaterThanOrEqual(18);
    const failures: string[] = [];
    for (const { where, expr } of exprs) {
      const result = await promQuery(substitute(expr, values));
      if (result.status !== 'success') failures.push(`${where}: ${result.error ?? result.status} — ${expr}`);
    }
    expect(failures).toEqual([]);
  });

  it('every alert expression runs on Prometheus', async () => {
    const rules = load(readFileSync(join(repoRoot, 'deploy/monitoring/rules/poolpilot.rules.yaml'), 'utf8')) as {
      groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
    };
    const failures: string[] = [];
    for (const rule of rules.groups.flatMap((g) => g.rules)) {
      const result = await promQuery(rule.expr);
      if (result.status !== 'success') failures.push(`${rule.alert}: ${result.error ?? result.status}`);
    }
    expect(failures).toEqual([]);
  });

  it('the pool and operator panels show data once Prometheus scrapes the app and the operator', async () => {
    const values = { namespace, policy: 'api', setting: '.*', __rate_interval: '1m', __interval: '1m', __range: '1h' };
    const withData = [
      'Database pool utilization by pod',
      'Redis pool utilization by pod',
      '$setting: current vs recommended',
      'Changes applied in range',
      'Reconciles by result',
      'Reconcile duration p95',
      'Work queue depth',
      'Prometheus query duration p95',
    ];
    const panels = dashboard().panels.filter((p) => withData.includes(p.title));
    expect(panels.map((p) => p.title).sort()).toEqual([...withData].sort());
    await eventually(
      async () =>
        (await queryVector(`poolpilot_changes_total{poolpilot_test="${namespace}"}`)).length > 0 ? true : undefined,
      30000,
      'Prometheus to scrape the operator',
    );
    for (const panel of panels) {
      const expr = substitute(panel.targets?.[0]?.expr ?? '', values);
      const series = await eventually(
        async () => {
          const result = await promQuery(expr);
          return result.status === 'success' && (result.data?.result.length ?? 0) > 0 ? result.data?.result : undefined;
        },
        30000,
        `data for panel "${panel.title}"`,
      );
      expect(series.length).toBeGreaterThanOrEqual(1);
    }
    // 30 in use of 50 on the one app pod: 60 %
    const redis = await queryVector(
      substitute(panels.find((p) => p.title === 'Redis pool utilization by pod')?.targets?.[0]?.expr ?? '', values),
    );
    expect(redis.map((s) => [s.metric.pod, Number(s.value[1])])).toEqual([['api-6f7d9-x2x9q', 60]]);
  });
});
