/**
 * The operator's port to Prometheus: one instant query (plus an optional freshness query) in,
 * one {@link UtilizationSample} out.
 *
 * Contract of {@link PrometheusClient.utilization}:
 * - It never throws and never rejects: every failure (connection, timeout, HTTP status, a body
 *   that is not a Prometheus reply, a query error, a result that is not exactly one finite
 *   sample, a stale sample) is `{ valid: false, problem, message }`, where the message says what
 *   happened and what to check.
 * - A number is produced only from a well-formed reply: `status: "success"`, `resultType`
 *   `vector` with exactly one series or `scalar`, whose value string is a decimal float literal
 *   (as Prometheus formats them). "NaN" → NaN, "+Inf"/"-Inf" (or an overflowing literal) →
 *   Infinite, an empty vector → NoData, more than one series → MultipleSeries, anything else →
 *   QueryFailed.
 * - With `query.freshness`, both queries run concurrently; the freshness value is the Unix
 *   time (seconds) of the newest underlying sample, which becomes `sampledAt`; when
 *   `now() - sampledAt > maxAgeMs` (or the age is not a number) the result is Stale. Without it
 *   `sampledAt` is the evaluation timestamp Prometheus returned and there is no age check.
 *   Problems of the utilization query are reported before those of the freshness query.
 * - `metrics.observe` is called exactly once per call, with 'ok' or the problem and the
 *   wall time taken in seconds; an exception from it is swallowed.
 */
import axios, { isAxiosError, isCancel, type AxiosInstance, type AxiosResponse } from 'axios';
import { z } from 'zod';
import type { MetricsProblem, UtilizationSample } from '../domain/decide.js';
import { formatDuration } from '../domain/duration.js';
import { requestOptions, type AuthRequestOptions, type PrometheusAuth } from './prometheus-auth.js';
import { podOwner, type DeploymentPods, type UtilizationQuery } from './prometheus-queries.js';

export type { UtilizationQuery } from './prometheus-queries.js';

/** Receives one observation per utilization() call (wire it to prom-client elsewhere). */
export interface QueryMetrics {
  observe(result: 'ok' | MetricsProblem, seconds: number): void;
}

export interface PrometheusClientOptions {
  /** Prometheus base URL, e.g. http://prometheus.monitoring:9090 (a path prefix is kept). */
  readonly baseUrl: string;
  /** Deadline for each HTTP query, > 0. */
  readonly timeoutMs: number;
  /** Wall clock for the staleness check. */
  readonly now: () => Date;
  /** Injected for tests; default: a fresh axios instance. */
  readonly http?: AxiosInstance;
  readonly metrics?: QueryMetrics;
  /** Receives one observation per HTTP round trip of a namespace-wide query pair. */
  readonly requests?: { observe(seconds: number): void };
  /** Credentials sent with every query (spec.prometheus.authSecretRef); never logged. */
  readonly auth?: PrometheusAuth;
}

/** A namespace-wide query's result, read per Deployment. */
export interface PodSamples {
  /**
   * The sample for the Deployment's pods. Costs the pods its name implies (podOwner), not every
   * pod of the namespace, unless its pods' names may be cut (DeploymentPods.owner undefined).
   */
  forPods(pods: DeploymentPods): UtilizationSample;
}

/** Replies larger than this are refused (a utilization query returns one series). */
const MAX_REPLY_BYTES = 8 * 1024 * 1024;
/** How much of a query or a body is quoted in a message. */
const QUOTE_LIMIT = 200;
/** How many series a MultipleSeries message names. */
const LIST_LIMIT = 5;

const sampleSchema = z.tuple([z.number(), z.string()]);
const replySchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('success'),
    data: z.discriminatedUnion('resultType', [
      z.object({
        resultType: z.literal('vector'),
        result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: sampleSchema })),
      }),
      z.object({ resultType: z.literal('scalar'), result: sampleSchema }),
      z.object({ resultType: z.enum(['matrix', 'string']) }),
    ]),
  }),
  z.object({ status: z.literal('error'), errorType: z.string().optional(), error: z.string() }),
]);

/** A decimal float literal as Prometheus writes sample values (strconv 'f' or 'e' format). */
const FLOAT_LITERAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly problem: MetricsProblem; readonly message: string };

interface Sample {
  readonly value: number;
  /** Evaluation time, Unix seconds. */
  readonly timestamp: number;
}

function fail(
  problem: MetricsProblem,
  message: string,
): { readonly ok: false; readonly problem: MetricsProblem; readonly message: string } {
  return { ok: false, problem, message };
}

function quote(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(oneLine.length > QUOTE_LIMIT ? `${oneLine.slice(0, QUOTE_LIMIT)}…` : oneLine);
}

export class PrometheusClient {
  private readonly baseUrl: string;
  private readonly queryUrl: string;
  private readonly timeoutMs: number;
  private readonly now: () => Date;
  private readonly http: AxiosInstance;
  private readonly metrics: QueryMetrics | undefined;
  private readonly requests: { observe(seconds: number): void } | undefined;
  private readonly auth: AuthRequestOptions;

  constructor(options: PrometheusClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.queryUrl = `${this.baseUrl}/api/v1/query`;
    this.timeoutMs = options.timeoutMs;
    this.now = options.now;
    this.http = options.http ?? axios.create();
    this.metrics = options.metrics;
    this.requests = options.requests;
    this.auth = requestOptions(options.auth);
  }

  /** See the module comment. Never rejects. */
  async utilization(query: UtilizationQuery, maxAgeMs: number): Promise<UtilizationSample> {
    const started = performance.now();
    let sample: UtilizationSample;
    try {
      sample = await this.evaluate(query, maxAgeMs);
    } catch (err) {
      // Not expected (every path above handles its failures); kept so the contract holds.
      sample = {
        valid: false,
        problem: 'QueryFailed',
        message: `querying Prometheus at ${this.baseUrl} failed unexpectedly: ${String(err)}`,
      };
    }
    try {
      const seconds = (performance.now() - started) / 1000;
      this.requests?.observe(seconds);
      this.metrics?.observe(sample.valid ? 'ok' : sample.problem, seconds);
    } catch {
      // A broken metrics hook must not turn into a failed query.
    }
    return sample;
  }

  private async evaluate(query: UtilizationQuery, maxAgeMs: number): Promise<UtilizationSample> {
    const [main, fresh] = await Promise.all([
      this.single(query.expr, 'utilization query'),
      query.freshness === undefined ? Promise.resolve(undefined) : this.single(query.freshness, 'freshness query'),
    ]);
    if (!main.ok) return { valid: false, problem: main.problem, message: main.message };
    if (fresh === undefined)
      return { valid: true, percent: main.value.value, sampledAt: new Date(main.value.timestamp * 1000) };
    if (!fresh.ok) return { valid: false, problem: fresh.problem, message: fresh.message };

    return this.fresh(main.value.value, fresh.value.value, maxAgeMs);
  }

  /** A valid sample, or Stale when the newest underlying sample (Unix seconds) is too old. */
  private fresh(percent: number, newestSeconds: number, maxAgeMs: number): UtilizationSample {
    const sampledAt = new Date(newestSeconds * 1000);
    const now = this.now();
    const ageMs = now.getTime() - sampledAt.getTime();
    if (!(ageMs <= maxAgeMs)) {
      const age = Number.isFinite(ageMs) ? formatDuration(ageMs) : 'of unknown age';
      const allowed = Number.isFinite(maxAgeMs) ? formatDuration(maxAgeMs) : String(maxAgeMs);
      const at = Number.isNaN(sampledAt.getTime()) ? String(newestSeconds) : sampledAt.toISOString();
      return {
        valid: false,
        problem: 'Stale',
        message:
          `the newest sample behind the utilization query is ${age} old (taken ${at}), more than the allowed ${allowed}; ` +
          `check that Prometheus still scrapes the pods (its targets page) and that they still export the metric`,
      };
    }
    return { valid: true, percent, sampledAt };
  }

  /** One instant query that must yield exactly one finite sample. Never rejects. */
  private async single(expr: string, what: string): Promise<Outcome<Sample>> {
    const reply = await this.get(expr, what);
    if (!reply.ok) return reply;
    const { data } = reply.value;
    let raw: readonly [number, string];
    if (data.resultType === 'scalar') {
      raw = data.result;
    } else if (data.resultType === 'vector') {
      const [first, ...rest] = data.result;
      if (first === undefined) {
        return fail(
          'NoData',
          `the ${what} ${quote(expr)} returned no series; check that the pods export the metric, ` +
            `that Prometheus scrapes them, and that the namespace/pod labels and spec.metricsPrefix match`,
        );
      }
      if (rest.length > 0) {
        return fail(
          'MultipleSeries',
          `the ${what} returned ${data.result.length} series (${describeSeries(data.result.map((s) => s.metric))}); aggregate it to one, e.g. max(...)`,
        );
      }
      raw = first.value;
    } else {
      return fail(
        'QueryFailed',
        `the ${what} ${quote(expr)} returned a ${data.resultType === 'matrix' ? 'range vector' : 'string'}; ` +
          `it must return an instant vector or a scalar (e.g. wrap a [range] selector in max_over_time(...))`,
      );
    }
    return this.classify(raw, expr, what);
  }

  /** One sample's value: a finite number, or NaN / Infinite / QueryFailed with a message. */
  private classify([timestamp, text]: readonly [number, string], expr: string, what: string): Outcome<Sample> {
    if (Number.isNaN(new Date(timestamp * 1000).getTime())) {
      return fail(
        'QueryFailed',
        `Prometheus at ${this.baseUrl} answered the ${what} with an impossible timestamp ${timestamp}`,
      );
    }
    const lower = text.toLowerCase();
    if (lower === 'nan') {
      return fail(
        'NaN',
        `the ${what} ${quote(expr)} returned NaN (e.g. 0/0: a pool size or maximum of 0, or a pool that has not reported yet)`,
      );
    }
    const infinite = /^[+-]?inf(?:inity)?$/.test(lower);
    const value = FLOAT_LITERAL.test(text) ? Number(text) : undefined;
    if (infinite || (value !== undefined && !Number.isFinite(value))) {
      return fail(
        'Infinite',
        `the ${what} ${quote(expr)} returned ${text} (a division by zero? check that the denominator, e.g. the pool size or maximum, is not 0)`,
      );
    }
    if (value === undefined) {
      return fail(
        'QueryFailed',
        `Prometheus at ${this.baseUrl} answered the ${what} with the sample value ${quote(text)}, which is not a number`,
      );
    }
    return { ok: true, value: { value, timestamp } };
  }

  /**
   * A namespace-wide query pair (see namespaceTemplates: one value and one newest-sample time
   * per pod), fetched once and then read for many Deployments with {@link PodSamples.forPods}.
   * A failure of either query is returned for every Deployment alike. Never rejects.
   */
  async podSamples(query: Required<UtilizationQuery>, maxAgeMs: number): Promise<PodSamples> {
    const started = performance.now();
    const [main, fresh] = await Promise.all([
      this.get(query.expr, 'utilization query'),
      this.get(query.freshness, 'freshness query'),
    ]);
    this.requests?.observe((performance.now() - started) / 1000);
    const failed = !main.ok ? main : !fresh.ok ? fresh : undefined;
    const byPod = (reply: typeof main): ReadonlyMap<string, readonly [number, string]> => {
      const map = new Map<string, readonly [number, string]>();
      if (reply.ok && reply.value.data.resultType === 'vector')
        for (const s of reply.value.data.result) map.set(s.metric.pod ?? '', s.value);
      return map;
    };
    const values = byPod(main);
    const times = byPod(fresh);
    const podsByOwner = new Map<string, string[]>();
    for (const pod of values.keys()) {
      const owner = podOwner(pod);
      if (owner === undefined) continue;
      const pods = podsByOwner.get(owner);
      if (pods) pods.push(pod);
      else podsByOwner.set(owner, [pod]);
    }
    return {
      forPods: (pods: DeploymentPods): UtilizationSample => {
        const candidates = pods.owner === undefined ? [...values.keys()] : (podsByOwner.get(pods.owner) ?? []);
        const matching = candidates.flatMap((pod) => {
          const value = values.get(pod);
          return value !== undefined && pods.includes(pod) ? [[pod, value] as const] : [];
        });
        const sample = failed
          ? { valid: false as const, problem: failed.problem, message: failed.message }
          : this.pickPods(matching, times, pods.description, query.expr, maxAgeMs);
        this.metrics?.observe(sample.valid ? 'ok' : sample.problem, (performance.now() - started) / 1000);
        return sample;
      },
    };
  }

  /**
   * An instant vector as (labels, value) pairs: for queries whose every series is read, such as
   * the pool-setting gauges a ConfigMap delivery is confirmed by. Never rejects.
   */
  async vector(
    expr: string,
    what: string,
  ): Promise<
    | { readonly ok: true; readonly series: ReadonlyArray<{ labels: Readonly<Record<string, string>>; value: number }> }
    | { readonly ok: false; readonly problem: MetricsProblem; readonly message: string }
  > {
    const started = performance.now();
    const reply = await this.get(expr, what);
    this.requests?.observe((performance.now() - started) / 1000);
    if (!reply.ok) return reply;
    const data = reply.value.data;
    if (data.resultType !== 'vector')
      return fail('QueryFailed', `the ${what} ${quote(expr)} returned a ${data.resultType}, not an instant vector`);
    return { ok: true, series: data.result.map((s) => ({ labels: s.metric, value: Number(s.value[1]) })) };
  }

  /**
   * The max over the matching pods, as PromQL's max() takes it (NaN only when every value is
   * NaN), sampled when the newest of their samples was taken; the same problems and messages
   * as a per-Deployment query.
   */
  private pickPods(
    matching: ReadonlyArray<readonly [string, readonly [number, string]]>,
    times: ReadonlyMap<string, readonly [number, string]>,
    describe: string,
    expr: string,
    maxAgeMs: number,
  ): UtilizationSample {
    if (matching.length === 0) {
      return {
        valid: false,
        problem: 'NoData',
        message: `the utilization query ${quote(expr)} returned no series for ${describe}; check that the pods export the metric, that Prometheus scrapes them, and that the namespace/pod labels and spec.metricsPrefix match`,
      };
    }
    let best: Sample | undefined;
    let nan: Outcome<Sample> | undefined;
    for (const [, raw] of matching) {
      const one = this.classify(raw, expr, `utilization query for ${describe}`);
      if (!one.ok && one.problem === 'NaN') nan = one;
      else if (!one.ok) return { valid: false, problem: one.problem, message: one.message };
      else if (!best || one.value.value > best.value) best = one.value;
    }
    if (!best)
      return nan && !nan.ok
        ? { valid: false, problem: nan.problem, message: nan.message }
        : { valid: false, problem: 'NoData', message: `no value for ${describe}` };
    // A pod whose time the freshness query missed (a scrape between the two) does not count.
    const stamps = matching.map(([pod]) => Number(times.get(pod)?.[1] ?? Number.NaN)).filter(Number.isFinite);
    if (stamps.length === 0) {
      return {
        valid: false,
        problem: 'NoData',
        message: `the freshness query returned no sample time for ${describe} (pods just replaced?); the next pass asks again`,
      };
    }
    return this.fresh(best.value, Math.max(...stamps), maxAgeMs);
  }

  /** GET /api/v1/query; any transport, HTTP or format failure is QueryFailed. Never rejects. */
  private async get(
    expr: string,
    what: string,
  ): Promise<Outcome<Extract<z.infer<typeof replySchema>, { status: 'success' }>>> {
    let response: AxiosResponse<unknown>;
    try {
      response = await this.http.get<unknown>(this.queryUrl, {
        params: { query: expr },
        timeout: this.timeoutMs,
        // axios's timeout is an idle timeout; the signal bounds the whole exchange.
        signal: AbortSignal.timeout(this.timeoutMs),
        responseType: 'text',
        transformResponse: [(body: unknown) => body],
        validateStatus: () => true,
        maxContentLength: MAX_REPLY_BYTES,
        headers: { Accept: 'application/json', ...this.auth.headers },
        ...(this.auth.httpsAgent === undefined ? {} : { httpsAgent: this.auth.httpsAgent }),
      });
    } catch (err) {
      return fail('QueryFailed', this.transportMessage(err));
    }

    const http = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    let body: unknown = response.data;
    if (typeof response.data === 'string') {
      const text = response.data;
      try {
        body = JSON.parse(text);
      } catch {
        return fail(
          'QueryFailed',
          `Prometheus at ${this.baseUrl} answered the ${what} with a body that is not JSON (${http}, starts with ${quote(text)}); ` +
            `check that spec.prometheus.address or --prometheus-url is the Prometheus server itself, not a UI, proxy or login page`,
        );
      }
    }
    const parsed = replySchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where =
        issue === undefined ? '' : ` (${issue.path.length > 0 ? issue.path.join('.') : 'body'}: ${issue.message})`;
      return fail(
        'QueryFailed',
        `Prometheus at ${this.baseUrl} answered the ${what} with JSON that is not a Prometheus query reply${where}, ${http}; ` +
          `check that the address serves the Prometheus HTTP API`,
      );
    }
    const reply = parsed.data;
    if (reply.status === 'error') {
      return fail(
        'QueryFailed',
        `Prometheus at ${this.baseUrl} rejected the ${what} ${quote(expr)} (${http}${reply.errorType === undefined ? '' : `, ${reply.errorType}`}): ${reply.error}; ` +
          `check the PromQL (spec.<pool>.utilization) and that Prometheus is healthy`,
      );
    }
    if (response.status < 200 || response.status > 299) {
      return fail(
        'QueryFailed',
        `Prometheus at ${this.baseUrl} answered the ${what} with ${http}; check spec.prometheus.address or --prometheus-url`,
      );
    }
    return { ok: true, value: reply };
  }

  private transportMessage(err: unknown): string {
    const where = `Prometheus at ${this.baseUrl}`;
    const timedOut = isCancel(err) || (isAxiosError(err) && (err.code === 'ECONNABORTED' || err.code === 'ETIMEDOUT'));
    if (timedOut) {
      return `${where}: no reply within ${formatDuration(this.timeoutMs)}; check that it is reachable (network policies) and not overloaded, or raise spec.prometheus.timeout`;
    }
    let detail = err instanceof Error ? err.message : String(err);
    if (isAxiosError(err)) {
      const code = err.code ?? '';
      // Node reports a refused dual-stack connect as an AggregateError with an empty message.
      if (detail === '') detail = code === '' ? 'connection failed' : code;
      else if (code !== '' && !detail.includes(code)) detail = `${detail} (${code})`;
    }
    return `${where}: ${detail}; check spec.prometheus.address or --prometheus-url`;
  }
}

/** "pods a, b, c" when every series has a pod label, else the label sets; at most LIST_LIMIT. */
function describeSeries(metrics: readonly Readonly<Record<string, string>>[]): string {
  const more = metrics.length > LIST_LIMIT ? `, … ${metrics.length - LIST_LIMIT} more` : '';
  const shown = metrics.slice(0, LIST_LIMIT);
  const pods = shown.map((m) => m.pod);
  if (pods.every((p): p is string => p !== undefined)) return `pods ${pods.join(', ')}${more}`;
  const sets = shown.map(
    (m) =>
      `{${Object.entries(m)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(', ')}}`,
  );
  return `${sets.join(', ')}${more}`;
}
