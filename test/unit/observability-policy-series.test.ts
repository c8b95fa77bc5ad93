import { describe, expect, it } from '@jest/globals';
import axios from 'axios';
import { Counter, Registry } from 'prom-client';
import { PolicySeries } from '../../src/observability/policy-series.js';
import { startHttpServer } from '../../src/observability/server.js';

const text = (series: PolicySeries, perChunk?: number): string => [...series.chunks(perChunk)].join('');
const samples = (body: string): string[] => body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));

describe('PolicySeries', () => {
  it('renders settings and conditions in the text format, with HELP and TYPE per family', () => {
    const series = new PolicySeries();
    series.showSettings('shop/api', 'shop', 'api', {
      current: { DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 },
      recommended: { DB_POOL_SIZE: 24 },
    });
    series.showConditions('shop/api', 'shop', 'api', [
      { type: 'Ready', status: 'True', reason: 'Reconciled' },
      { type: 'Limited', status: 'True', reason: 'AtMax' },
    ]);
    expect(text(series)).toBe(
      [
        '# HELP poolpilot_setting_value Current and recommended value per policy and setting (kind=current|recommended).',
        '# TYPE poolpilot_setting_value gauge',
        'poolpilot_setting_value{namespace="shop",policy="api",setting="DB_POOL_SIZE",kind="current"} 20',
        'poolpilot_setting_value{namespace="shop",policy="api",setting="DB_MAX_OVERFLOW",kind="current"} 40',
        'poolpilot_setting_value{namespace="shop",policy="api",setting="DB_POOL_SIZE",kind="recommended"} 24',
        '# HELP poolpilot_policy_condition PoolPolicy status conditions: 1 for the current status and reason of each condition type (Ready, MetricsAvailable, Limited).',
        '# TYPE poolpilot_policy_condition gauge',
        'poolpilot_policy_condition{namespace="shop",policy="api",type="Ready",status="True",reason="Reconciled"} 1',
        'poolpilot_policy_condition{namespace="shop",policy="api",type="Limited",status="True",reason="AtMax"} 1',
        '',
      ].join('\n'),
    );
  });

  it('keeps exactly the series of the latest show per policy, and none after forget', () => {
    const series = new PolicySeries();
    series.showConditions('ns/a', 'ns', 'a', [{ type: 'Limited', status: 'True', reason: 'AtMax' }]);
    series.showConditions('ns/b', 'ns', 'b', [{ type: 'Limited', status: 'False', reason: 'DeadBand' }]);
    series.showConditions('ns/a', 'ns', 'a', [{ type: 'Limited', status: 'False', reason: 'Scaled' }]);
    expect(samples(text(series))).toEqual([
      'poolpilot_policy_condition{namespace="ns",policy="a",type="Limited",status="False",reason="Scaled"} 1',
      'poolpilot_policy_condition{namespace="ns",policy="b",type="Limited",status="False",reason="DeadBand"} 1',
    ]);
    series.forget('ns/a');
    series.forget('ns/b');
    expect(samples(text(series))).toEqual([]);
  });

  it('escapes label values as the text format asks', () => {
    const series = new PolicySeries();
    series.showConditions('ns/a', 'ns', 'a', [{ type: 'Ready', status: 'False', reason: 'a"b\\c\nd' }]);
    expect(samples(text(series))).toEqual([
      'poolpilot_policy_condition{namespace="ns",policy="a",type="Ready",status="False",reason="a\\"b\\\\c\\nd"} 1',
    ]);
  });

  it('writes a chunk per so many policies, the same text as one chunk', () => {
    const series = new PolicySeries();
    for (let i = 0; i < 7; i++) {
      series.showSettings(`ns/p${i}`, 'ns', `p${i}`, { current: { DB_POOL_SIZE: i } });
      series.showConditions(`ns/p${i}`, 'ns', `p${i}`, [{ type: 'Ready', status: 'True', reason: 'Reconciled' }]);
    }
    const chunks = [...series.chunks(3)];
    // Two families of 7 policies: 3 + 3 + 1 each.
    expect(chunks).toHaveLength(6);
    expect(chunks.every((chunk) => chunk.endsWith('\n'))).toBe(true);
    expect(chunks.join('')).toBe(text(series, 1000));
    expect(samples(chunks.join(''))).toHaveLength(14);
  });
});

describe('/metrics', () => {
  it("serves the registry's families, then the policy series, whole", async () => {
    const registry = new Registry();
    new Counter({ name: 'test_total', help: 'a counter', registers: [registry] }).inc(3);
    const series = new PolicySeries();
    for (let i = 0; i < 2000; i++)
      series.showSettings(`ns/p${i}`, 'ns', `p${i}`, { current: { DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 } });
    const server = await startHttpServer(
      { host: '127.0.0.1', port: 0 },
      { registry, moreMetrics: () => series.chunks(100) },
    );
    try {
      const response = await axios.get<string>(`http://127.0.0.1:${server.port}/metrics`, { responseType: 'text' });
      expect(response.headers['content-type']).toBe(registry.contentType);
      const lines = samples(response.data);
      expect(lines[0]).toBe('test_total 3');
      expect(lines).toHaveLength(1 + 4000);
      expect(lines.at(-1)).toBe(
        'poolpilot_setting_value{namespace="ns",policy="p1999",setting="DB_MAX_OVERFLOW",kind="current"} 40',
      );
    } finally {
      await server.close();
    }
  });
});
