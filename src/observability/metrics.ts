import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PolicySeries } from './policy-series.js';

/** The operator's own metrics, on one registry served at /metrics. */
export interface OperatorMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly reconcileOwnDuration: Histogram;
  readonly prometheusQueries: Counter<'result'>;
  readonly prometheusQueryDuration: Histogram;
  readonly prometheusRequests: Counter;
  readonly queueDepth: Gauge;
  /** 1 while this replica holds the leader Lease and reconciles (always 1 without --leader-elect), else 0. */
  readonly leader: Gauge;
  readonly changes: Counter<'namespace' | 'policy' | 'setting' | 'direction'>;
  /** poolpilot_setting_value and poolpilot_policy_condition: rendered after the registry's families. */
  readonly policySeries: PolicySeries;
  /** Connections left in a connection budget, per backend (set by the budget controller). */
  readonly budgetHeadroom: Gauge<'namespace' | 'budget' | 'backend'>;
  /** 1 once the informer of a resource has listed it and watches it, else 0; /readyz needs all at 1. */
  readonly informerSynced: Gauge<'resource'>;
  /** Failed list or watch attempts of each informer (each is retried after a growing backoff). */
  readonly informerFailures: Counter<'resource'>;
  /** Requests sent to the Kubernetes API (a watch counts once, when it starts), by HTTP method. */
  readonly kubeApiRequests: Counter<'method'>;
  /** Objects each informer cache holds (Deployments and ConfigMaps: only those policies name). */
  readonly cachedObjects: Gauge<'resource'>;
}

export function createMetrics(): OperatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'poolpilot_' });
  return {
    registry,
    reconciles: new Counter({
      name: 'poolpilot_reconciles_total',
      help: 'Reconciles by result (success, error, terminal).',
      labelNames: ['result'],
      registers: [registry],
    }),
    reconcileDuration: new Histogram({
      name: 'poolpilot_reconcile_duration_seconds',
      help: 'Time one reconcile took.',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    prometheusQueries: new Counter({
      name: 'poolpilot_prometheus_queries_total',
      help: 'Utilization readings by result (ok or the MetricsAvailable reason), one per policy and section.',
      labelNames: ['result'],
      registers: [registry],
    }),
    reconcileOwnDuration: new Histogram({
      name: 'poolpilot_reconcile_own_duration_seconds',
      help: 'Time one PoolPolicy reconcile took, not counting the wait for Prometheus.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    prometheusRequests: new Counter({
      name: 'poolpilot_prometheus_requests_total',
      help: 'Round trips to Prometheus (a utilization query with its freshness query counts once; one namespace-wide pair serves many policies).',
      registers: [registry],
    }),
    prometheusQueryDuration: new Histogram({
      name: 'poolpilot_prometheus_query_duration_seconds',
      help: 'Time one round trip to Prometheus took (a query with its freshness query).',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'poolpilot_workqueue_depth',
      help: 'Policies waiting in the work queue.',
      registers: [registry],
    }),
    leader: new Gauge({
      name: 'poolpilot_leader',
      help: '1 while this replica is the leader and reconciles (always 1 without --leader-elect), else 0.',
      registers: [registry],
    }),
    changes: new Counter({
      name: 'poolpilot_changes_total',
      help: 'Setting changes applied, by direction (up, down).',
      labelNames: ['namespace', 'policy', 'setting', 'direction'],
      registers: [registry],
    }),
    policySeries: new PolicySeries(),
    budgetHeadroom: new Gauge({
      name: 'poolpilot_budget_headroom_connections',
      help: 'Connections a connection budget still allows per backend (budget max minus the sum of managed pool sizes).',
      labelNames: ['namespace', 'budget', 'backend'],
      registers: [registry],
    }),
    informerSynced: new Gauge({
      name: 'poolpilot_informer_synced',
      help: '1 once the informer of this resource has listed it and watches it (the operator is ready when all are 1), else 0.',
      labelNames: ['resource'],
      registers: [registry],
    }),
    cachedObjects: new Gauge({
      name: 'poolpilot_cached_objects',
      help: 'Objects each informer cache holds; Deployments and ConfigMaps only when a PoolPolicy names them.',
      labelNames: ['resource'],
      registers: [registry],
    }),
    kubeApiRequests: new Counter({
      name: 'poolpilot_kube_api_requests_total',
      help: 'Requests sent to the Kubernetes API (after the --kube-api-qps limit), by HTTP method; a watch counts once.',
      labelNames: ['method'],
      registers: [registry],
    }),
    informerFailures: new Counter({
      name: 'poolpilot_informer_failures_total',
      help: 'Failed list or watch attempts per informer resource; each is retried after a backoff that grows until one succeeds.',
      labelNames: ['resource'],
      registers: [registry],
    }),
  };
}
