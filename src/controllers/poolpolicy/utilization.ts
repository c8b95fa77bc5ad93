/**
 * Utilization samples for the reconciler, from the Prometheus a policy names (or the operator's
 * default). One client per (address, timeout), reused across reconciles.
 *
 * Batching: the built-in database and Redis queries are asked once per namespace (one value per
 * pod) and read for every policy there; a result serves further policies for
 * {@link BATCH_REUSE_MS}, so a thousand policies in a namespace cost a few query pairs per
 * interval instead of a thousand. Overrides and PgBouncer's query are asked per policy.
 */
import type { PoolPolicySpec, PoolSection } from '../../api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../domain/decide.js';
import { PrometheusClient } from '../../adapters/prometheus.js';
import { namespaceUtilizationQuery, podPattern, utilizationQueryFor } from '../../adapters/prometheus-queries.js';
import type { PodSamples, UtilizationQuery } from '../../adapters/prometheus.js';
import type { OperatorMetrics } from '../../observability/metrics.js';
import type { Clock } from '../../runtime/clock.js';
import type { UtilizationSource } from './reconciler.js';

export interface PrometheusUtilizationOptions {
  /** --prometheus-url; used when a policy sets no spec.prometheus.address. */
  readonly defaultUrl: string | undefined;
  readonly clock: Clock;
  readonly metrics?: OperatorMetrics;
}

/** How long a namespace-wide result serves further policies: about one scrape interval. */
export const BATCH_REUSE_MS = 1000;

export class PrometheusUtilizationSource implements UtilizationSource {
  private readonly clients = new Map<string, PrometheusClient>();
  private readonly batches = new Map<string, { readonly fetchedAt: number; readonly result: Promise<PodSamples> }>();

  constructor(private readonly options: PrometheusUtilizationOptions) {}

  async sample(request: { namespace: string; deployment: string; spec: PoolPolicySpec; section: PoolSection }): Promise<UtilizationSample> {
    const { spec, section } = request;
    const address = spec.prometheus.address ?? this.options.defaultUrl;
    if (address === undefined) {
      return { valid: false, problem: 'QueryFailed', message: 'no Prometheus address: set spec.prometheus.address or start the operator with --prometheus-url' };
    }
    const override = spec[section]?.utilization;
    // A sample older than two intervals says nothing about now (KEDA #3065: never read as 0 or fresh).
    const maxAgeMs = 2 * spec.intervalMs;
    const client = this.client(address, spec.prometheus.timeoutMs);
    if (override === undefined && section !== 'pgbouncer') {
      const batch = this.batch(client, `${address} ${spec.prometheus.timeoutMs} ${section} ${spec.metricsPrefix} ${request.namespace} ${maxAgeMs}`, () =>
        namespaceUtilizationQuery(section, spec.metricsPrefix, request.namespace), maxAgeMs);
      return (await batch).forPods(podPattern(request.deployment), `the pods of deployment ${request.deployment}`);
    }
    const query = utilizationQueryFor(section, override, spec.metricsPrefix, { namespace: request.namespace, deployment: request.deployment });
    return client.utilization(query, maxAgeMs);
  }

  /** The namespace-wide result for `key`, fetched at most once per {@link BATCH_REUSE_MS}. */
  private batch(client: PrometheusClient, key: string, query: () => Required<UtilizationQuery>, maxAgeMs: number): Promise<PodSamples> {
    const now = this.options.clock.now().getTime();
    const cached = this.batches.get(key);
    if (cached && now - cached.fetchedAt <= BATCH_REUSE_MS) return cached.result;
    for (const [k, b] of this.batches) if (now - b.fetchedAt > BATCH_REUSE_MS) this.batches.delete(k);
    const result = client.podSamples(query(), maxAgeMs);
    this.batches.set(key, { fetchedAt: now, result });
    return result;
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
        ...(metrics
          ? {
              metrics: { observe: (result) => { metrics.prometheusQueries.inc({ result }); } },
              requests: { observe: (seconds) => { metrics.prometheusRequests.inc(); metrics.prometheusQueryDuration.observe(seconds); } },
            }
          : {}),
      });
      this.clients.set(key, client);
    }
    return client;
  }
}
