/**
 * Utilization samples for the reconciler, from the Prometheus a policy names (or the operator's
 * default). One client per (address, timeout), reused across reconciles.
 *
 * Batching: the built-in database and Redis queries are asked once per namespace (one value per
 * pod) and read for every policy there (its Deployment's own pods, by name: deploymentPods);
 * a result serves further policies for {@link batchReuseMs}, so a thousand policies in a namespace
 * cost a few query pairs per interval instead of a thousand. Overrides and PgBouncer's query are
 * asked per policy.
 */
import { createHash } from 'node:crypto';
import type { PoolPolicySpec, PoolSection, PrometheusConnection } from '../../api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../domain/decide.js';
import type { DemandReading } from '../../domain/fill.js';
import type { PodReports } from '../../domain/delivery.js';
import type { PoolSizeReport } from '../../domain/pgbouncer-applied.js';
import { PrometheusClient } from '../../adapters/prometheus.js';
import { authFromSecretData, type PrometheusAuth } from '../../adapters/prometheus-auth.js';
import { enforceNamespace } from '../../adapters/promql-namespace.js';
import {
  deploymentPods,
  escapePromqlString,
  escapeRegex,
  namespaceDemandQueries,
  namespaceUtilizationQuery,
  pgbouncerPoolSizesQuery,
  utilizationQueryFor,
  type DemandQueries,
} from '../../adapters/prometheus-queries.js';
import type { PodSamples, UtilizationQuery } from '../../adapters/prometheus.js';
import type { OperatorMetrics } from '../../observability/metrics.js';
import type { Clock } from '../../runtime/clock.js';
import { httpStatusOf } from '../../runtime/errors.js';
import type { UtilizationSource } from './reconciler.js';

export interface PrometheusUtilizationOptions {
  /** --prometheus-url; used when a policy sets no spec.prometheus.address. */
  readonly defaultUrl: string | undefined;
  readonly clock: Clock;
  readonly metrics?: OperatorMetrics;
  /** --enforce-namespace-label: every selector of a policy's query gets namespace="<its namespace>". */
  readonly enforceNamespaceLabel?: boolean;
  /**
   * Reads a Secret's `data` (spec.prometheus.authSecretRef) on demand; undefined when it does not
   * exist. Without it an authSecretRef is reported as unusable.
   */
  readonly readSecret?: (namespace: string, name: string) => Promise<Readonly<Record<string, string>> | undefined>;
}

/** How long a Secret read for Prometheus credentials is reused (a rotated Secret is seen after this). */
export const SECRET_REUSE_MS = 10_000;

/**
 * How long a namespace-wide result serves further policies, for policies whose samples may be
 * `maxAgeMs` (2 × spec.interval) old: a quarter of their interval, at least a second. The policies
 * of a namespace are due on one tick (aligned-schedule.ts), but under a CPU limit working through
 * them can take longer than a second; a reading reused for a quarter interval is still at most that
 * much older than a fresh one, and the sample-time gates (freshness, rollouts) see its real time.
 */
export function batchReuseMs(maxAgeMs: number): number {
  return Math.max(1000, maxAgeMs / 8);
}

export class PrometheusUtilizationSource implements UtilizationSource {
  private readonly clients = new Map<string, PrometheusClient>();
  private readonly batches = new Map<
    string,
    { readonly fetchedAt: number; readonly reuseMs: number; readonly result: Promise<PodSamples> }
  >();
  private readonly secrets = new Map<
    string,
    {
      readonly fetchedAt: number;
      readonly result: Promise<{ ok: true; auth: PrometheusAuth | undefined } | { ok: false; message: string }>;
    }
  >();

  constructor(private readonly options: PrometheusUtilizationOptions) {}

  async sample(request: {
    namespace: string;
    deployment: string;
    spec: PoolPolicySpec;
    section: PoolSection;
  }): Promise<UtilizationSample> {
    const { spec, section } = request;
    const connected = await this.policyClient(request.namespace, spec);
    if (!connected.ok) return connected.problem;
    const { client, address } = connected;
    const override = spec[section]?.utilization;
    // A sample older than two intervals says nothing about now (KEDA #3065: never read as 0 or fresh).
    const maxAgeMs = 2 * spec.intervalMs;
    if (override === undefined && section !== 'pgbouncer') {
      const batch = this.batch(
        client,
        `${address} ${spec.prometheus.timeoutMs} ${section} ${spec.metricsPrefix} ${request.namespace} ${maxAgeMs}`,
        () => namespaceUtilizationQuery(section, spec.metricsPrefix, request.namespace),
        maxAgeMs,
      );
      const pods = deploymentPods(request.deployment);
      return (await batch).forPods(pods);
    }
    const query = utilizationQueryFor(section, override, spec.metricsPrefix, {
      namespace: request.namespace,
      deployment: request.deployment,
    });
    if (this.options.enforceNamespaceLabel === true) {
      // The batched built-in queries above carry namespace="<namespace>" on every selector already.
      const expr = enforceNamespace(query.expr, request.namespace);
      const freshness =
        query.freshness === undefined ? undefined : enforceNamespace(query.freshness, request.namespace);
      if (!expr.ok)
        return {
          valid: false,
          problem: 'QueryRejected',
          message: `spec.${section}.utilization was not run: ${expr.message}`,
        };
      if (freshness !== undefined && !freshness.ok)
        return {
          valid: false,
          problem: 'QueryRejected',
          message: `the freshness query of ${section} was not run: ${freshness.message}`,
        };
      return client.utilization({ expr: expr.expr, freshness: freshness?.expr }, maxAgeMs);
    }
    return client.utilization(query, maxAgeMs);
  }

  /**
   * The database pool's demand per process for a FillToBudget section: checked-out connections now
   * and their mean and minimum over the scale-down window (required), and the most waiters and the timeouts
   * in that window (optional: an app that does not export them gives NoData, and the law does
   * without). Batched per namespace like the utilization queries.
   */
  async demand(request: { namespace: string; deployment: string; spec: PoolPolicySpec }): Promise<DemandReading> {
    const { spec, namespace, deployment } = request;
    const connected = await this.policyClient(namespace, spec);
    if (!connected.ok) return connected.problem;
    const { client, address } = connected;
    const maxAgeMs = 2 * spec.intervalMs;
    const windowSeconds = Math.max(spec.behavior.scaleDownStabilizationMs, maxAgeMs) / 1000;
    const queries = namespaceDemandQueries(spec.metricsPrefix, namespace, windowSeconds);
    const pods = deploymentPods(deployment);
    const read = async (name: keyof DemandQueries): Promise<UtilizationSample> => {
      const key = `${address} ${spec.prometheus.timeoutMs} demand-${name} ${spec.metricsPrefix} ${namespace} ${windowSeconds} ${maxAgeMs}`;
      return (await this.batch(client, key, () => queries[name], maxAgeMs)).forPods(pods);
    };
    const [inUse, typical, floor, waiters, timeouts] = await Promise.all([
      read('inUse'),
      read('typical'),
      read('floor'),
      read('waiters'),
      read('timeouts'),
    ]);
    if (!inUse.valid) return inUse;
    if (!typical.valid) return typical;
    if (!floor.valid) return floor;
    const waiting = optionalValue(waiters);
    if (!waiting.ok) return waiting.problem;
    const timedOut = optionalValue(timeouts);
    if (!timedOut.ok) return timedOut.problem;
    return {
      valid: true,
      demand: {
        inUse: inUse.percent,
        typical: typical.percent,
        floor: floor.percent,
        waiters: waiting.value,
        timeouts: timedOut.value,
      },
    };
  }

  /**
   * What the Deployment's pods report of their pool settings (`gauges`: setting → metric name) and
   * their draining connections, per pod: the min and max over each pod's series (processes of
   * one pod may differ while they reload). Two queries, asked only while a delivery is unconfirmed.
   */
  async reported(request: {
    namespace: string;
    deployment: string;
    spec: PoolPolicySpec;
    gauges: ReadonlyMap<string, string>;
    draining: string;
  }): Promise<PodReports> {
    const { namespace, deployment, spec, gauges, draining } = request;
    const connected = await this.policyClient(namespace, spec);
    if (!connected.ok) return { valid: false, message: connected.problem.message };
    const names = [...new Set([...gauges.values(), draining])];
    const selector =
      `{__name__=~"${escapePromqlString(names.map(escapeRegex).join('|'))}", ` +
      `namespace="${escapePromqlString(namespace)}", pod=~"${escapePromqlString(deploymentPods(deployment).regex)}"}`;
    const [high, low] = await Promise.all([
      connected.client.vector(`max by (pod, __name__) (${selector})`, 'pool-settings query'),
      connected.client.vector(`min by (pod, __name__) (${selector})`, 'pool-settings query'),
    ]);
    if (!high.ok) return { valid: false, message: high.message };
    if (!low.ok) return { valid: false, message: low.message };
    const pods = new Map<
      string,
      { settings: Map<string, { min: number; max: number }>; draining: number | undefined }
    >();
    const lows = new Map(low.series.map((s) => [`${s.labels.pod ?? ''} ${s.labels.__name__ ?? ''}`, s.value]));
    for (const { labels, value } of high.series) {
      const pod = labels.pod ?? '';
      const metric = labels.__name__ ?? '';
      const report = pods.get(pod) ?? { settings: new Map(), draining: undefined };
      pods.set(pod, report);
      if (metric === draining) report.draining = value;
      for (const [setting, gauge] of gauges)
        if (gauge === metric) report.settings.set(setting, { min: lows.get(`${pod} ${metric}`) ?? value, max: value });
    }
    return { valid: true, pods };
  }

  /** The pool size each PgBouncer instance runs per database, as its exporter reports it. Never throws. */
  async pgbouncerPoolSizes(request: { namespace: string; spec: PoolPolicySpec }): Promise<PoolSizeReport> {
    const connected = await this.policyClient(request.namespace, request.spec);
    if (!connected.ok) return { valid: false, message: connected.problem.message };
    const reply = await connected.client.vector(
      pgbouncerPoolSizesQuery(request.namespace),
      'PgBouncer pool-size query',
    );
    if (!reply.ok) return { valid: false, message: reply.message };
    return {
      valid: true,
      series: reply.series.map(({ labels, value }) => ({
        database: labels.database ?? '',
        instance: labels.pod ?? labels.instance ?? '',
        size: value,
      })),
    };
  }

  /** The client a policy's queries go through (its address and credentials), or why there is none. */
  private async policyClient(
    namespace: string,
    spec: PoolPolicySpec,
  ): Promise<
    | { ok: true; client: PrometheusClient; address: string }
    | { ok: false; problem: { valid: false; problem: 'QueryFailed'; message: string } }
  > {
    const address = spec.prometheus.address ?? this.options.defaultUrl;
    if (address === undefined) {
      const message = 'no Prometheus address: set spec.prometheus.address or start the operator with --prometheus-url';
      return { ok: false, problem: { valid: false, problem: 'QueryFailed', message } };
    }
    const auth = await this.auth(namespace, spec.prometheus);
    if (!auth.ok) return { ok: false, problem: { valid: false, problem: 'QueryFailed', message: auth.message } };
    return { ok: true, client: this.client(address, spec.prometheus.timeoutMs, auth.auth), address };
  }

  /** The namespace-wide result for `key`, fetched at most once per {@link batchReuseMs}. */
  private batch(
    client: PrometheusClient,
    key: string,
    query: () => Required<UtilizationQuery>,
    maxAgeMs: number,
  ): Promise<PodSamples> {
    const now = this.options.clock.now().getTime();
    const cached = this.batches.get(key);
    if (cached && now - cached.fetchedAt <= cached.reuseMs) return cached.result;
    for (const [k, b] of this.batches) if (now - b.fetchedAt > b.reuseMs) this.batches.delete(k);
    const result = client.podSamples(query(), maxAgeMs);
    this.batches.set(key, { fetchedAt: now, reuseMs: batchReuseMs(maxAgeMs), result });
    return result;
  }

  /**
   * A ConnectionBudget's capacity query (e.g. pg_settings_max_connections): one finite value.
   * The setting changes rarely, so its sample may be as old as Prometheus keeps it.
   */
  async capacity(query: string, prometheus: PrometheusConnection, namespace?: string): Promise<UtilizationSample> {
    const address = prometheus.address ?? this.options.defaultUrl;
    if (address === undefined) {
      return {
        valid: false,
        problem: 'QueryFailed',
        message:
          'no Prometheus address: set spec.prometheus.address on the ConnectionBudget or start the operator with --prometheus-url',
      };
    }
    if (prometheus.authSecretRef !== undefined && namespace === undefined) {
      return {
        valid: false,
        problem: 'QueryFailed',
        message: 'spec.prometheus.authSecretRef cannot be resolved without the namespace',
      };
    }
    const auth =
      namespace === undefined ? { ok: true as const, auth: undefined } : await this.auth(namespace, prometheus);
    if (!auth.ok) return { valid: false, problem: 'QueryFailed', message: auth.message };
    return this.client(address, prometheus.timeoutMs, auth.auth).utilization({ expr: query }, Number.MAX_SAFE_INTEGER);
  }

  /** The credentials of spec.prometheus.authSecretRef, read on demand (reused {@link SECRET_REUSE_MS}). */
  private auth(
    namespace: string,
    prometheus: PrometheusConnection,
  ): Promise<{ ok: true; auth: PrometheusAuth | undefined } | { ok: false; message: string }> {
    const ref = prometheus.authSecretRef;
    if (ref === undefined) return Promise.resolve({ ok: true, auth: undefined });
    const where = `secret ${ref.name} (spec.prometheus.authSecretRef)`;
    const readSecret = this.options.readSecret;
    if (readSecret === undefined)
      return Promise.resolve({ ok: false, message: `${where}: this operator was started without access to Secrets` });
    const key = `${namespace}/${ref.name}`;
    const now = this.options.clock.now().getTime();
    const cached = this.secrets.get(key);
    if (cached && now - cached.fetchedAt <= SECRET_REUSE_MS) return cached.result;
    const result = readSecret(namespace, ref.name).then(
      (data): { ok: true; auth: PrometheusAuth } | { ok: false; message: string } => {
        if (data === undefined)
          return { ok: false, message: `${where} not found in namespace ${namespace}; create it or fix the name` };
        const parsed = authFromSecretData(data, where);
        return parsed.ok ? { ok: true, auth: parsed.auth } : parsed;
      },
      (err: unknown) => ({
        ok: false as const,
        // Only the status: an API error body never carries the Secret's data, but keep it short.
        message: `${where} could not be read (${errorStatus(err)}); the operator needs get on secrets in namespace ${namespace} (see deploy/optional/secrets-reader/)`,
      }),
    );
    this.secrets.set(key, { fetchedAt: now, result });
    return result;
  }

  private client(address: string, timeoutMs: number, auth?: PrometheusAuth): PrometheusClient {
    // Clients differ by credentials too; the key holds a digest of them, never the values.
    const key = `${address} ${timeoutMs}${auth === undefined ? '' : ` ${createHash('sha256').update(JSON.stringify(auth)).digest('hex')}`}`;
    let client = this.clients.get(key);
    if (!client) {
      const metrics = this.options.metrics;
      client = new PrometheusClient({
        baseUrl: address,
        timeoutMs,
        now: () => this.options.clock.now(),
        ...(auth === undefined ? {} : { auth }),
        ...(metrics
          ? {
              metrics: {
                observe: (result) => {
                  metrics.prometheusQueries.inc({ result });
                },
              },
              requests: {
                observe: (seconds) => {
                  metrics.prometheusRequests.inc();
                  metrics.prometheusQueryDuration.observe(seconds);
                },
              },
            }
          : {}),
      });
      this.clients.set(key, client);
    }
    return client;
  }
}

/** An optional metric's value: undefined when the app does not export it (NoData); other problems count. */
function optionalValue(
  sample: UtilizationSample,
): { ok: true; value: number | undefined } | { ok: false; problem: DemandReading & { valid: false } } {
  if (sample.valid) return { ok: true, value: sample.percent };
  if (sample.problem === 'NoData') return { ok: true, value: undefined };
  return { ok: false, problem: { valid: false, problem: sample.problem, message: sample.message } };
}

function errorStatus(err: unknown): string {
  const status = httpStatusOf(err);
  if (status !== undefined) return `HTTP ${status}`;
  return err instanceof Error ? err.name : 'error';
}
