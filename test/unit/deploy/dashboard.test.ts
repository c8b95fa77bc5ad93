import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { load } from 'js-yaml';

// deploy/monitoring/dashboard.yaml: a ConfigMap Grafana's sidecar picks up, holding a dashboard
// that covers the operator's metric families. Its PromQL runs against a real Prometheus in
// test/integration/monitoring.test.ts (promtool 2.42 cannot parse PromQL on its own).

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Array<{ expr?: string; refId: string; datasource?: { uid: string } }>;
  repeat?: string;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string }> };
  annotations: { list: Array<{ name: string; expr?: string }> };
}

const configMap = load(readFileSync(join(root, 'deploy/monitoring/dashboard.yaml'), 'utf8')) as {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels: Record<string, string> };
  data: Record<string, string>;
};

function dashboard(): Dashboard {
  return JSON.parse(configMap.data['poolpilot.json'] ?? '') as Dashboard;
}

const queryPanels = (): Panel[] => dashboard().panels.filter((p) => p.type !== 'row');
const allExprs = (): string[] => [
  ...queryPanels().flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
  ...dashboard().annotations.list.map((a) => a.expr ?? ''),
];

describe('deploy/monitoring/dashboard.yaml', () => {
  it('is a ConfigMap labelled for the Grafana sidecar with one dashboard JSON', () => {
    expect(configMap).toMatchObject({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'poolpilot-dashboard', labels: { grafana_dashboard: '1' } },
    });
    expect(Object.keys(configMap.data)).toEqual(['poolpilot.json']);
    expect(dashboard()).toMatchObject({ uid: 'poolpilot', title: 'poolpilot' });
  });

  it('has unique panel ids, panels inside the 24-column grid, and queries on the $datasource variable', () => {
    const panels = dashboard().panels;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels)
      expect({ title: p.title, fits: p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24 }).toEqual({
        title: p.title,
        fits: true,
      });
    for (const p of queryPanels()) {
      expect({ title: p.title, uid: p.datasource?.uid }).toEqual({ title: p.title, uid: '${datasource}' });
      expect(p.targets?.length).toBeGreaterThanOrEqual(1);
      for (const t of p.targets ?? [])
        expect({ title: p.title, expr: t.expr !== undefined && t.expr !== '', uid: t.datasource?.uid }).toEqual({
          title: p.title,
          expr: true,
          uid: '${datasource}',
        });
    }
  });

  it("uses only variables it defines (or Grafana's built-ins)", () => {
    const defined = new Set([
      ...dashboard().templating.list.map((v) => v.name),
      '__rate_interval',
      '__interval',
      '__range',
    ]);
    const titles = queryPanels().map((p) => p.title);
    for (const text of [...allExprs(), ...titles]) {
      for (const m of text.matchAll(/\$\{?(\w+)\}?/g)) {
        const name = m[1] ?? '';
        if (!/^\d+$/.test(name))
          expect({ text, name, defined: defined.has(name) }).toEqual({ text, name, defined: true });
      }
    }
    const repeated = queryPanels().flatMap((p) => (p.repeat === undefined ? [] : [p.repeat]));
    for (const name of repeated) expect(defined.has(name)).toBe(true);
  });

  it("covers pool utilization, settings, changes, conditions, budgets and the operator's health", () => {
    const text = allExprs().join('\n');
    for (const metric of [
      'db_pool_utilization_percent',
      'redis_pool_in_use',
      'redis_pool_max_connections',
      'poolpilot_setting_value',
      'poolpilot_changes_total',
      'poolpilot_policy_condition',
      'poolpilot_budget_headroom_connections',
      'poolpilot_reconciles_total',
      'poolpilot_reconcile_duration_seconds_bucket',
      'poolpilot_workqueue_depth',
      'poolpilot_leader',
      'poolpilot_prometheus_queries_total',
      'poolpilot_prometheus_query_duration_seconds_bucket',
    ])
      expect({ metric, used: text.includes(metric) }).toEqual({ metric, used: true });
    expect(dashboard().annotations.list.find((a) => a.name === 'Pool changes')?.expr).toContain(
      'increase(poolpilot_changes_total',
    );
  });
});
