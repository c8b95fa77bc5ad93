/**
 * The PromQL the operator runs: the built-in utilization queries per pool kind and the
 * template rendering shared with user overrides (spec.<pool>.utilization). Pure: no I/O.
 *
 * Template contract ({@link renderTemplate}):
 * - `$namespace` / `${namespace}`, `$deployment` / `${deployment}` and `$pods` / `${pods}` are
 *   replaced; the bare form only when not followed by a letter, digit or `_` (`$namespaces` is
 *   left alone). `$pods` is the regex of the Deployment's own pod names ({@link deploymentPods}),
 *   made for `pod=~"$pods"`.
 * - The replacement can never end the string literal it sits in, whatever the value holds:
 *   - inside a "…" or '…' literal the value is escaped for that literal (backslash, the
 *     quote, newline, carriage return);
 *   - inside a `…` raw literal (which has no escapes) the whole literal is rewritten as an
 *     equivalent "…" literal;
 *   - outside any literal the value is inserted as a complete "…" literal, so
 *     `{namespace=$namespace}` works and a value can never become PromQL syntax;
 *   - in a `#` comment nothing is replaced.
 * - When the literal is the value of a regex matcher (directly after `=~` or `!~`), the
 *   namespace and deployment are first regex-escaped (RE2 metacharacters), so they match
 *   themselves literally: `d=~"$deployment"` with deployment `api.v2` matches `api.v2`, not
 *   `apixv2`. `$pods` is a regex already and is never regex-escaped.
 */

/** What the Prometheus client evaluates; see PrometheusClient.utilization. */
export interface UtilizationQuery {
  /** PromQL whose single-series (or scalar) instant value is the utilization in percent. */
  readonly expr: string;
  /**
   * PromQL whose single value is the Unix time in seconds of the newest underlying sample;
   * undefined = no staleness check (overrides cannot be analysed for their inputs).
   */
  readonly freshness?: string | undefined;
}

/** The values a template may refer to. */
export interface TemplateValues {
  readonly namespace: string;
  readonly deployment: string;
}

/** A Prometheus metric-name prefix, empty allowed (same rule as the CRD's spec.metricsPrefix). */
const METRICS_PREFIX = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/;

/**
 * Escapes `s` for the inside of a PromQL string literal delimited by `quote`: backslash, the
 * quote itself, newline and carriage return. The result between the quotes evaluates to `s`.
 */
export function escapePromqlString(s: string, quote: '"' | "'" = '"'): string {
  let out = '';
  for (const ch of s) {
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else out += ch;
  }
  return out;
}

/** Escapes RE2 metacharacters so that `s` as a Prometheus regex matches exactly `s`. */
export function escapeRegex(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}

const PLACEHOLDER = /\$(?:\{(namespace|deployment|pods)\}|(namespace|deployment|pods)(?![A-Za-z0-9_]))/g;
const PLACEHOLDER_AT = new RegExp(PLACEHOLDER.source, 'y');

/**
 * Renders a utilization template with `values`; see the module comment for the contract.
 * An unterminated literal is rendered as if it ended at the end of the text (Prometheus will
 * reject the query either way).
 */
export function renderTemplate(expr: string, values: TemplateValues): string {
  /** The text of a replacement for the inside of a literal; `regex` when it is a regex matcher value. */
  const inLiteral = (name: string, regex: boolean, quote: '"' | "'"): string => {
    if (name === 'pods') return escapePromqlString(deploymentPods(values.deployment).regex, quote);
    const value = name === 'namespace' ? values.namespace : values.deployment;
    return escapePromqlString(regex ? escapeRegex(value) : value, quote);
  };
  const replaceIn = (content: string, regex: boolean, quote: '"' | "'"): string =>
    content.replace(PLACEHOLDER, (_m, braced: string | undefined, bare: string | undefined) =>
      inLiteral(braced ?? bare ?? '', regex, quote),
    );

  let out = '';
  // The last two significant characters outside literals and comments: "=~" / "!~" mark the
  // next literal as a regex matcher value.
  let lastTwo = '';
  let i = 0;
  while (i < expr.length) {
    const ch = expr.charAt(i);
    if (ch === '#') {
      const end = expr.indexOf('\n', i);
      const stop = end === -1 ? expr.length : end;
      out += expr.slice(i, stop);
      i = stop;
      continue;
    }
    const regex = lastTwo === '=~' || lastTwo === '!~';
    if (ch === '"' || ch === "'") {
      let j = i + 1;
      while (j < expr.length && expr.charAt(j) !== ch && expr.charAt(j) !== '\n') j += expr.charAt(j) === '\\' ? 2 : 1;
      const stop = Math.min(j, expr.length);
      out += ch + replaceIn(expr.slice(i + 1, stop), regex, ch) + expr.slice(stop, stop + 1);
      i = stop + 1;
      lastTwo = ch + ch;
      continue;
    }
    if (ch === '`') {
      const end = expr.indexOf('`', i + 1);
      const stop = end === -1 ? expr.length : end;
      const content = expr.slice(i + 1, stop);
      if (content.search(PLACEHOLDER) === -1) {
        out += expr.slice(i, stop + 1);
      } else {
        // Raw literals cannot escape anything: rewrite as an equivalent "…" literal.
        let rewritten = '';
        let last = 0;
        for (const m of content.matchAll(PLACEHOLDER)) {
          rewritten += escapePromqlString(content.slice(last, m.index)) + inLiteral(m[1] ?? m[2] ?? '', regex, '"');
          last = m.index + m[0].length;
        }
        out += `"${rewritten}${escapePromqlString(content.slice(last))}"`;
      }
      i = stop + 1;
      lastTwo = '``';
      continue;
    }
    PLACEHOLDER_AT.lastIndex = i;
    const m = PLACEHOLDER_AT.exec(expr);
    if (m !== null) {
      out += `"${inLiteral(m[1] ?? m[2] ?? '', regex, '"')}"`;
      i += m[0].length;
      lastTwo = '""';
      continue;
    }
    out += ch;
    if (!/\s/.test(ch)) lastTwo = (lastTwo + ch).slice(-2);
    i += 1;
  }
  return out;
}

function checkPrefix(metricsPrefix: string): void {
  if (!METRICS_PREFIX.test(metricsPrefix)) {
    throw new RangeError(
      `metricsPrefix ${JSON.stringify(metricsPrefix)} is not a Prometheus metric-name prefix (^[a-zA-Z_:][a-zA-Z0-9_:]*$ or empty)`,
    );
  }
}

const APP_SELECTOR = '{namespace="$namespace",pod=~"$pods"}';

/**
 * Templates of the built-in queries (before rendering). The database and Redis metrics are
 * the application's own, on the Deployment's pods (`$pods`); PgBouncer's come from a PgBouncer
 * exporter (no prefix) anywhere in the namespace, for every database but the admin console.
 * Throws RangeError when `metricsPrefix` is not a metric-name prefix (the CRD forbids it).
 */
export function defaultTemplates(
  metricsPrefix: string,
): Readonly<Record<'database' | 'redis' | 'pgbouncer', Required<UtilizationQuery>>> {
  checkPrefix(metricsPrefix);
  const p = metricsPrefix;
  const ns = '{namespace="$namespace"}';
  // PgBouncer's admin console is a database too ("pgbouncer", pool size 2), and Debian's exporter
  // counts its own connection to it as an active client: 50 % or more, always. Not a pool of the app.
  const pools = '{namespace="$namespace",database!="pgbouncer"}';
  return {
    // The busiest pod's pool, as the app reports it.
    database: {
      expr: `max(${p}db_pool_utilization_percent${APP_SELECTOR})`,
      freshness: `max(timestamp(${p}db_pool_utilization_percent${APP_SELECTOR}))`,
    },
    // Both series carry the same labels, so the division matches one-to-one per pod.
    redis: {
      expr: `max(100 * ${p}redis_pool_in_use${APP_SELECTOR} / ${p}redis_pool_max_connections${APP_SELECTOR})`,
      freshness: `max(timestamp(${p}redis_pool_in_use${APP_SELECTOR}))`,
    },
    // The worst database: (connections in use + waiting clients) / its pool size. Two exporters'
    // names: prometheus-community/pgbouncer_exporter (server connections in use) and Debian's
    // prometheus-pgbouncer-exporter (SHOW POOLS cl_active, which in transaction pooling also
    // counts idle client connections: an over-read, README "Known limits").
    pgbouncer: {
      expr:
        `100 * max(` +
        `(sum by (database) (pgbouncer_pools_server_active_connections${pools})` +
        ` + sum by (database) (pgbouncer_pools_client_waiting_connections${pools}))` +
        ` / sum by (database) (pgbouncer_databases_pool_size${pools})` +
        ` or (sum by (database) (pgbouncer_active_clients${pools})` +
        ` + sum by (database) (pgbouncer_waiting_clients${pools}))` +
        ` / sum by (database) (pgbouncer_pool_size${pools}))`,
      freshness: `max(timestamp(pgbouncer_pools_server_active_connections${ns}) or timestamp(pgbouncer_active_clients${ns}))`,
    },
  };
}

/**
 * The pool size PgBouncer runs per database and instance, in either exporter's names (see the
 * built-in PgBouncer query), rendered for `namespace`: what confirms that a written
 * default_pool_size reached PgBouncer (domain/pgbouncer-applied.ts).
 */
export function pgbouncerPoolSizesQuery(namespace: string): string {
  const pools = '{namespace="$namespace",database!="pgbouncer"}';
  return renderTemplate(`pgbouncer_databases_pool_size${pools} or pgbouncer_pool_size${pools}`, {
    namespace,
    deployment: '',
  });
}

export function databaseUtilizationQuery(metricsPrefix: string, values: TemplateValues): UtilizationQuery {
  return renderQuery(defaultTemplates(metricsPrefix).database, values);
}

export function redisUtilizationQuery(metricsPrefix: string, values: TemplateValues): UtilizationQuery {
  return renderQuery(defaultTemplates(metricsPrefix).redis, values);
}

/** The PgBouncer exporters' metric names have no prefix. */
export function pgbouncerUtilizationQuery(values: TemplateValues): UtilizationQuery {
  return renderQuery(defaultTemplates('').pgbouncer, values);
}

/** A user's spec.<pool>.utilization: rendered, no freshness query. */
export function overrideUtilizationQuery(expr: string, values: TemplateValues): UtilizationQuery {
  return { expr: renderTemplate(expr, values) };
}

/**
 * The query for one pool: the override when given (not undefined), else the built-in one.
 * Throws RangeError for an invalid metricsPrefix (see {@link defaultTemplates}).
 */
export function utilizationQueryFor(
  pool: 'database' | 'redis' | 'pgbouncer',
  override: string | undefined,
  metricsPrefix: string,
  values: TemplateValues,
): UtilizationQuery {
  if (override !== undefined) return overrideUtilizationQuery(override, values);
  return renderQuery(defaultTemplates(pool === 'pgbouncer' ? '' : metricsPrefix)[pool], values);
}

function renderQuery(template: Required<UtilizationQuery>, values: TemplateValues): UtilizationQuery {
  return { expr: renderTemplate(template.expr, values), freshness: renderTemplate(template.freshness, values) };
}

/**
 * The built-in database and Redis queries for a whole namespace at once, one value per pod
 * (`max by (pod)`), so that every policy in the namespace is served by one query pair instead of
 * one per policy. {@link deploymentPods} then picks a Deployment's pods, exactly as the
 * per-policy selector `pod=~"$pods"` does.
 */
export function namespaceTemplates(
  metricsPrefix: string,
): Readonly<Record<'database' | 'redis', Required<UtilizationQuery>>> {
  checkPrefix(metricsPrefix);
  const p = metricsPrefix;
  const ns = '{namespace="$namespace"}';
  return {
    database: {
      expr: `max by (pod) (${p}db_pool_utilization_percent${ns})`,
      freshness: `max by (pod) (timestamp(${p}db_pool_utilization_percent${ns}))`,
    },
    redis: {
      expr: `max by (pod) (100 * ${p}redis_pool_in_use${ns} / ${p}redis_pool_max_connections${ns})`,
      freshness: `max by (pod) (timestamp(${p}redis_pool_in_use${ns}))`,
    },
  };
}

/** The namespace-wide query pair of a pool, rendered for `namespace`. */
export function namespaceUtilizationQuery(
  pool: 'database' | 'redis',
  metricsPrefix: string,
  namespace: string,
): Required<UtilizationQuery> {
  const template = namespaceTemplates(metricsPrefix)[pool];
  const values = { namespace, deployment: '' };
  return { expr: renderTemplate(template.expr, values), freshness: renderTemplate(template.freshness, values) };
}

/** The per-pod queries of a FillToBudget database section's demand (see domain/fill.ts DemandSample). */
export interface DemandQueries {
  readonly inUse: Required<UtilizationQuery>;
  readonly typical: Required<UtilizationQuery>;
  readonly floor: Required<UtilizationQuery>;
  /** Optional metrics: an app that does not export them gives NoData, and the law goes without. */
  readonly waiters: Required<UtilizationQuery>;
  readonly timeouts: Required<UtilizationQuery>;
}

/**
 * The demand queries for a whole namespace, one value per pod (`max by (pod)`), over a window of
 * `windowSeconds` (the scale-down stabilization window). Every pair's freshness is the newest
 * db_pool_checked_out sample: all four metrics come from the same scrape of the same pod.
 * Throws RangeError for an invalid metricsPrefix.
 */
export function namespaceDemandQueries(metricsPrefix: string, namespace: string, windowSeconds: number): DemandQueries {
  checkPrefix(metricsPrefix);
  const p = metricsPrefix;
  const ns = renderTemplate('{namespace="$namespace"}', { namespace, deployment: '' });
  const window = `[${Math.max(1, Math.round(windowSeconds))}s]`;
  const freshness = `max by (pod) (timestamp(${p}db_pool_checked_out${ns}))`;
  return {
    inUse: { expr: `max by (pod) (${p}db_pool_checked_out${ns})`, freshness },
    typical: { expr: `max by (pod) (avg_over_time(${p}db_pool_checked_out${ns}${window}))`, freshness },
    floor: { expr: `max by (pod) (min_over_time(${p}db_pool_checked_out${ns}${window}))`, freshness },
    waiters: { expr: `max by (pod) (max_over_time(${p}db_pool_waiters${ns}${window}))`, freshness },
    timeouts: { expr: `max by (pod) (increase(${p}db_pool_timeouts_total${ns}${window}))`, freshness },
  };
}

/**
 * The characters of generated Kubernetes names: a pod-template-hash is
 * `rand.SafeEncodeString` of a decimal FNV-32 hash and a generateName suffix is
 * `rand.String(5)`, both over this alphabet (k8s.io/apimachinery/pkg/util/rand: no vowels, no
 * 0/1/3, so no words).
 */
export const GENERATED_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const GENERATED = `[${GENERATED_NAME_ALPHABET}]`;
/** A pod-template-hash has 1 to 10 characters (the decimal digits of a uint32). */
const MAX_TEMPLATE_HASH = 10;
/** generateName appends this many random characters… */
const GENERATED_SUFFIX = 5;
/** …to a base cut to this length, so that the name fits 63 (apiserver storage/names). */
const MAX_GENERATE_NAME_BASE = 58;

/** The pods of one Deployment, told by name: see {@link deploymentPods}. */
export interface DeploymentPods {
  /** Whether `pod` is the name of one of the Deployment's pods. */
  readonly includes: (pod: string) => boolean;
  /**
   * The same names as an RE2 regex (valid in JavaScript too) for a PromQL matcher, which
   * anchors it: `pod=~"<regex>"` after {@link escapePromqlString}. A single group, so it can be
   * joined with `|`.
   */
  readonly regex: string;
  /** "the pods of deployment api (named api-<pod-template-hash>-<5 characters>)", for messages. */
  readonly description: string;
  /**
   * The Deployment's name when all its pods are named `<deployment>-<hash>-<suffix>` in full
   * (names of at most 46 characters), so {@link podOwner} of each is this name; undefined when
   * Kubernetes may cut its pods' names and only {@link DeploymentPods.includes} can tell.
   */
  readonly owner: string | undefined;
}

/**
 * The Deployment a pod name `<deployment>-<hash>-<suffix>` implies (the name without its last
 * two `-` parts; neither a template hash nor a suffix holds a `-`); undefined with fewer parts.
 */
export function podOwner(pod: string): string | undefined {
  const suffix = pod.lastIndexOf('-');
  const hash = suffix > 0 ? pod.lastIndexOf('-', suffix - 1) : -1;
  return hash > 0 ? pod.slice(0, hash) : undefined;
}

/**
 * Which pod names belong to Deployment `deployment`, from the name alone.
 *
 * The deployment controller names a ReplicaSet `<deployment>-<pod-template-hash>` and the
 * ReplicaSet controller gives its pods generateName `<replicaset>-`, which the API server cuts to
 * its first 58 characters and completes with 5 random ones. So a pod of `api` is exactly
 * `api-<hash>-<suffix>`: two dash-separated segments after `api-`, each of
 * {@link GENERATED_NAME_ALPHABET}, the hash 1–10 characters and the suffix 5.
 * `api-worker-5f6d8b7c9-x2x9q` (a pod of `api-worker`: three segments), `api-db-0` (a
 * StatefulSet's) and `api-migrate-x2x9q` (a Job's: `migrate` has vowels) are not pods of `api`.
 *
 * Why the name: the metrics carry the pod's name (the `pod` label kubernetes_sd gives them),
 * seldom its labels; the operator caches Deployments, not ReplicaSets; and the current hash
 * cannot be computed from the Deployment (Go's object hash plus status.collisionCount), and would
 * miss the old ReplicaSets' pods during a rollout anyway.
 *
 * Limits: the pods of a Deployment whose name has 47 characters or more keep only the first
 * 58 characters of `<deployment>-<hash>-` (part of the hash, or none of it at 57), so they can
 * be taken for the pods of a Deployment whose name begins the same way; the pods of shorter
 * names never are. A pod that some other controller (or a person) named exactly like a pod of
 * the Deployment is taken for one.
 */
export function deploymentPods(deployment: string): DeploymentPods {
  const kept = MAX_GENERATE_NAME_BASE - deployment.length - 1; // characters of `<hash>-` that fit
  const bases: string[] = [];
  // Hashes short enough for `<deployment>-<hash>-` to be kept whole.
  const longestWholeHash = Math.min(MAX_TEMPLATE_HASH, kept - 1);
  if (longestWholeHash >= 1) bases.push(`${escapeRegex(deployment)}-${GENERATED}{1,${longestWholeHash}}-`);
  // Longer hashes (or names) are cut: the first `kept` characters of the hash, or of the name.
  if (kept <= MAX_TEMPLATE_HASH) {
    const cut = `${deployment}-`.slice(0, MAX_GENERATE_NAME_BASE);
    bases.push(kept > 0 ? `${escapeRegex(cut)}${GENERATED}{${kept}}` : escapeRegex(cut));
  }
  const regex = `(?:${bases.join('|')})${GENERATED}{${GENERATED_SUFFIX}}`;
  const anchored = new RegExp(`^${regex}$`);
  const description = `the pods of deployment ${deployment} (named ${deployment}-<pod-template-hash>-<5 characters>)`;
  const owner = longestWholeHash >= MAX_TEMPLATE_HASH ? deployment : undefined;
  return { includes: (pod) => anchored.test(pod), regex, description, owner };
}
