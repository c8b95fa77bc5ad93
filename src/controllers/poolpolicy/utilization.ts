/**
 * Utilization samples for the reconciler, from the Prometheus a policy names (or the operator's
 * default). One client per (address, timeout), reused across reconciles.
 */
import type { PoolPolicySpec, PoolSection } from '../../api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../domain/decide.js';
import { PrometheusClient } from '../../adapters/prometheus.js';
import { utilizationQueryFor } from '../../adapters/prometheus-queries.js';
import type { OperatorMetrics } from '../../observability/metrics.js';
import type { Clock } from '../../runtime/clock.js';
import type { UtilizationSource } from './reconciler.js';

export interface PrometheusUtilizationOptions {
  /** --prometheus-url; used when a policy sets no spec.prometheus.address. */
  readonly defaultUrl: string | undefined;
  readonly clock: Clock;
  readonly metrics?: OperatorMetrics;
}

export class PrometheusUtilizationSource implements UtilizationSource {
  private readonly clients = new Map<string, PrometheusClient>();

  constructor(private readonly options: PrometheusUtilizationOptions) {}

  async sample(request: { namespace: string; deployment: string; spec: PoolPolicySpec; section: PoolSection }): Promise<UtilizationSample> {
    const { spec, section } = request;
    const address = spec.prometheus.address ?? this.options.defaultUrl;
    if (address === undefined) {
      return { valid: false, problem: 'QueryFailed', message: 'no Prometheus address: set spec.prometheus.address or start the operator with --prometheus-url' };
    }
    const override = spec[section]?.utilization;
    const query = utilizationQueryFor(section, override, spec.metricsPrefix, { namespace: request.namespace, deployment: request.deployment });
    // A sample older than two intervals says nothing about now (KEDA #3065: never read as 0 or fresh).
    return this.client(address, spec.prometheus.timeoutMs).utilization(query, 2 * spec.intervalMs);
  }

  /**
   * A ConnectionBudget's capacity query (e.g. pg_settings_max_connections): one finite value.
   * The setting changes rarely, so its sample may be as old as Prometheus keeps it.
   */
  async capacity(query: string, prometheus: { readonly address: string | undefined; readonly timeoutMs: number }): Promise<UtilizationSample> {
    const address = prometheus.address ?? this.options.defaultUrl;
    if (address === undefined) {
      return { valid: false, problem: 'QueryFailed', message: 'no Prometheus address: set spec.prometheus.address on the ConnectionBudget or start the operator with --prometheus-url' };
    }
    return this.client(address, prometheus.timeoutMs).utilization({ expr: query }, Number.MAX_SAFE_INTEGER);
  }

  private client(address: string, timeoutMs: number): PrometheusClient {
    const key = `${address} ${timeoutMs}`;
    let client = this.clients.get(key);
    if (!client) {
      const metrics = this.options.metrics;
      client = new PrometheusClient({
        baseUrl: address,
        timeoutMs,
        now: () => this.options.clock.now(),
        ...(metrics ? { metrics: { observe: (result, seconds) => { metrics.prometheusQueries.inc({ result }); metrics.prometheusQueryDuration.observe(seconds); } } } : {}),
      });
      this.clients.set(key, client);
    }
    return client;
  }
}
