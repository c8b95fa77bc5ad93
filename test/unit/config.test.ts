import { describe, expect, it } from '@jest/globals';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('applies defaults and lets a flag win over its env var', () => {
    const config = loadConfig(
      { 'log-level': 'debug' },
      { POOLPILOT_LOG_LEVEL: 'warn', POOLPILOT_PROMETHEUS_URL: 'http://prom:9090', KUBECONFIG: '/k' },
    );
    expect(config).toEqual({
      kubeconfig: '/k',
      namespace: undefined,
      prometheusUrl: 'http://prom:9090',
      metricsAddr: { host: '0.0.0.0', port: 8080 },
      healthAddr: { host: '0.0.0.0', port: 8081 },
      logLevel: 'debug',
      workers: 8,
      kubeApiRateLimit: { qps: 200, burst: 400 },
    });
  });

  it('reads the Kubernetes API rate limit from flags or env, and 0 as no limit', () => {
    expect(loadConfig({ 'kube-api-qps': '20', 'kube-api-burst': '30' }, {}).kubeApiRateLimit).toEqual({
      qps: 20,
      burst: 30,
    });
    expect(loadConfig({}, { POOLPILOT_KUBE_API_QPS: '2.5', POOLPILOT_KUBE_API_BURST: '5' }).kubeApiRateLimit).toEqual({
      qps: 2.5,
      burst: 5,
    });
    expect(loadConfig({ 'kube-api-qps': '0' }, {}).kubeApiRateLimit).toBeUndefined();
  });

  it.each([
    [
      { 'log-level': 'loud' },
      /--log-level \(or POOLPILOT_LOG_LEVEL\): expected one of trace\|debug\|info\|warn\|error\|fatal, got 'loud'/,
    ],
    [{ 'metrics-addr': '99999' }, /--metrics-addr .*expected HOST:PORT or :PORT/],
    [{ 'health-addr': ':70000' }, /--health-addr .*port 0\.\.65535/],
    [{ 'prometheus-url': 'ftp://prom' }, /--prometheus-url .*http:\/\/ or https:\/\/ URL, got 'ftp:\/\/prom'/],
    [{ namespace: 'Prod_NS' }, /--namespace .*namespace name/],
    [{ workers: '0' }, /--workers .*at least 1/],
    [{ workers: 'many' }, /--workers .*whole number/],
    [{ 'kube-api-qps': '-1' }, /--kube-api-qps \(or POOLPILOT_KUBE_API_QPS\): expected a number >= 0/],
    [{ 'kube-api-qps': 'fast' }, /--kube-api-qps .*expected a number >= 0/],
    [{ 'kube-api-burst': '0' }, /--kube-api-burst \(or POOLPILOT_KUBE_API_BURST\): expected at least 1/],
    [{ 'kube-api-burst': '1.5' }, /--kube-api-burst .*whole number/],
  ])('refuses %j naming the flag and what is allowed', (flags, message) => {
    expect(() => loadConfig(flags, {})).toThrow(ConfigError);
    expect(() => loadConfig(flags, {})).toThrow(message);
  });

  it('reads an IPv6 listen address', () => {
    expect(loadConfig({ 'metrics-addr': '[::1]:9000' }, {}).metricsAddr).toEqual({ host: '::1', port: 9000 });
  });
});
