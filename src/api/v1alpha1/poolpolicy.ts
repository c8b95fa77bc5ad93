/**
 * Public API of PoolPolicy (`poolpilot.io/v1alpha1`): zod schemas that agree with
 * `crds/poolpilot.io_poolpolicies.yaml` (same fields, rules and defaults), the
 * normalized spec the controller works with, and the status shape.
 *
 * Contract:
 * - {@link parsePoolPolicySpec} refuses anything the CRD refuses (unknown fields,
 *   out-of-range values, CEL rules) with a message naming the field path
 *   (`spec.database.poolSize: min (60) must be <= max (50)`), and returns the spec
 *   with every default applied and durations converted to milliseconds.
 * - {@link parsePoolPolicyStatus} never fails: malformed or unknown parts of a stored
 *   status (possibly written by an older version) are dropped.
 * - {@link PoolPolicyStatus} is the shape the operator WRITES (times as RFC3339 strings).
 */
import { z } from 'zod';
import { DURATION_PATTERN, parseDuration } from '../../domain/duration.js';
import { SCALING_POLICY_TYPES, SELECT_POLICIES, type DirectionRules } from '../../domain/scaling-rules.js';

export const POOLPOLICY_GROUP = 'poolpilot.io';
export const POOLPOLICY_VERSION = 'v1alpha1';
export const POOLPOLICY_PLURAL = 'poolpolicies';
export const POOLPOLICY_KIND = 'PoolPolicy';
export const POOLPOLICY_API_VERSION = `${POOLPOLICY_GROUP}/${POOLPOLICY_VERSION}`;

/** Largest bound accepted (CRD `format: int32`). */
export const MAX_BOUND = 2_147_483_647;
/** status.history keeps at most this many entries (newest last). */
export const MAX_HISTORY = 10;

// Patterns shared with the CRD (the CRD test checks that both use the same source).
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const METRICS_PREFIX_PATTERN = /^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/;
export const DNS_SUBDOMAIN_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_LABEL_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const CONFIGMAP_KEY_PATTERN = /^[-._a-zA-Z0-9]+$/;
/**
 * Printable ASCII only (no spaces): the API server's RE2 `\s` is ASCII-only while JavaScript's also
 * matches Unicode spaces, so an explicit range is the only form both evaluate alike.
 */
export const HTTP_URL_PATTERN = /^https?:\/\/[!-.0-~]+(\/[!-~]*)?$/;
/** Largest Go `time.Duration` in ms (2562047h47m16.854s): CEL `duration()` fails above it. */
export const MAX_DURATION_MS = 9_223_372_036_854;
/** Longest period of a behavior policy (1h; the HPA allows 30 min). status.history keeps the last {@link MAX_HISTORY} changes. */
export const MAX_POLICY_PERIOD = '1h';
/** At most this many policies per direction (CRD maxItems). */
export const MAX_POLICIES = 10;

export const POOLPOLICY_MODES = ['Auto', 'Recommend', 'Paused'] as const;
export type PoolPolicyMode = (typeof POOLPOLICY_MODES)[number];
export const PGBOUNCER_FORMATS = ['ini', 'env'] as const;
/**
 * How maxOverflow is set: Ratio follows poolSize × ratio; FillToBudget makes poolSize + maxOverflow
 * the ConnectionBudget's share per process and lets poolSize follow typical demand (domain/fill.ts).
 */
export const OVERFLOW_MODES = ['Ratio', 'FillToBudget'] as const;
export type OverflowMode = (typeof OVERFLOW_MODES)[number];
/**
 * Utilization: moved by the staged decision; FillToBudget: set to the ConnectionBudget's share
 * (per process for Redis maxConnections, per server pool for PgBouncer default_pool_size).
 */
export const MAX_CONNECTIONS_MODES = ['Utilization', 'FillToBudget'] as const;
/** How new env-section values reach the app: a rolling restart, or a file the app re-reads. */
export const DELIVERY_MODES = ['Env', 'ConfigMap'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];
/**
 * How the app applies a delivered file: Swap opens a new pool beside the old one, whose busy
 * connections close as they come back; Resize changes the size of the pool it has (no second pool).
 */
export const RELOAD_KINDS = ['Swap', 'Resize'] as const;
export type ReloadKind = (typeof RELOAD_KINDS)[number];
/**
 * How a written file reaches the pods' volumes: KubeletSync waits for the kubelet's periodic sync
 * of each pod (syncFrequency, 1 min by default); AnnotatePods also sets an annotation on each of
 * the target's pods, and a pod update makes the kubelet sync that pod (and rewrite its ConfigMap
 * volumes) at once.
 */
export const REFRESH_KINDS = ['KubeletSync', 'AnnotatePods'] as const;
export type RefreshKind = (typeof REFRESH_KINDS)[number];
export type MaxConnectionsMode = (typeof MAX_CONNECTIONS_MODES)[number];
export type PgBouncerFormat = (typeof PGBOUNCER_FORMATS)[number];

/** Defaults, identical to the CRD `default:` values. */
export const DEFAULTS = {
  mode: 'Auto',
  interval: '30s',
  metricsPrefix: '',
  prometheusTimeout: '10s',
  dbPoolSizeEnv: 'DB_POOL_SIZE',
  dbMaxOverflowEnv: 'DB_MAX_OVERFLOW',
  dbMaxOverflowRatio: 2,
  dbMaxOverflowMode: 'Ratio',
  redisMaxConnectionsEnv: 'REDIS_MAX_CONNECTIONS',
  redisMaxConnectionsMode: 'Utilization',
  defaultPoolSizeMode: 'Utilization',
  pgbouncerKey: 'pgbouncer.ini',
  pgbouncerFormat: 'ini',
  maxClientConnRatio: 20,
  pgbouncerPools: 1,
  deliveryMode: 'Env',
  deliveryKey: 'pools.env',
  confirmTimeout: '3m',
  processesPerPod: 1,
  scaleUpAbove: 80,
  scaleDownBelow: 40,
  target: 65,
  maxStepPercent: 20,
  scaleUpStabilization: '5m',
  scaleDownStabilization: '30m',
  minChangeInterval: '10m',
  selectPolicy: 'Max',
} as const;

// ---------------------------------------------------------------------------
// Building blocks

/** A strict object whose unknown-field message lists the allowed fields. */
export function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? `allowed fields: ${allowed}` : undefined),
  });
}

/**
 * A string of at most `maxLength` characters counted as the API server counts them (code
 * points: an emoji is 1, not the 2 UTF-16 units of `.length`). JSON schema: `maxLength`.
 */
export function maxChars(maxLength: number) {
  return z
    .string()
    .refine((text) => codePoints(text) <= maxLength, {
      error: `must be at most ${maxLength} characters long`,
      abort: true,
    })
    .meta({ maxLength });
}

/** Length in Unicode code points (what Go's utf8.RuneCountInString and the CRD's maxLength count). */
function codePoints(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function boundedString(maxLength: number, pattern: RegExp, what: string) {
  return maxChars(maxLength).regex(pattern, { error: (iss) => `must be ${what} (got ${show(iss.input)})` });
}

const envName = boundedString(128, ENV_NAME_PATTERN, 'a valid env var name matching ^[A-Za-z_][A-Za-z0-9_]*$');
const resourceName = boundedString(253, DNS_SUBDOMAIN_PATTERN, 'a lowercase DNS-1123 subdomain name');
const containerName = boundedString(63, DNS_LABEL_PATTERN, 'a lowercase DNS-1123 label');
/** A PromQL expression (CRD: minLength 1, maxLength 4096). */
export const promql = maxChars(4096).min(1);

/**
 * Go-style duration string (`30s`, `5m`, `1h30m`, `500ms`).
 * `minMs` is the smallest accepted value in ms (0 allows `0s`).
 */
function duration(minMs: number, max?: { readonly ms: number; readonly text: string }) {
  return maxChars(32)
    .regex(DURATION_PATTERN, {
      error: (iss) => `must be a duration like 30s, 5m, 1h30m or 500ms (got ${show(iss.input)})`,
    })
    .superRefine((text, ctx) => {
      if (!DURATION_PATTERN.test(text)) return; // already reported by .regex()
      const ms = parseDuration(text);
      if (ms === undefined || ms > MAX_DURATION_MS)
        ctx.addIssue({ code: 'custom', message: `duration ${show(text)} is too large (at most 2562047h)` });
      else if (max !== undefined && ms > max.ms)
        ctx.addIssue({ code: 'custom', message: `must be at most ${max.text} (got ${show(text)})` });
      else if (ms < minMs)
        ctx.addIssue({
          code: 'custom',
          message:
            minMs === 1
              ? `must be greater than 0 (got ${show(text)})`
              : `must be at least ${minMs / 1000}s (got ${show(text)})`,
        });
    });
}

/** Integer in [min, {@link MAX_BOUND}] (CRD: `format: int32`). */
export function int32(min: number) {
  return z.int().min(min).max(MAX_BOUND);
}

/** Refinement shared by every bounds object: min <= max (CEL: "min must be <= max"). */
function minLeMax(value: { readonly min: number; readonly max: number }, ctx: z.core.$RefinementCtx): void {
  if (value.min > value.max) {
    ctx.addIssue({ code: 'custom', message: `min (${value.min}) must be <= max (${value.max})` });
  }
}

/** Multiplier > 0 (capped at 1000 to catch typos). */
const ratio = z.number().gt(0).max(1000);

/** Percentage in (0, 100]; fractions allowed. */
const percent = z.number().gt(0).max(100);

// ---------------------------------------------------------------------------
// Raw spec (as stored in the API server, after CRD defaulting)

export const TargetRefSchema = strict({
  name: resourceName,
  container: containerName.optional(),
});

export const PoolSizeSchema = strict({
  env: envName.default(DEFAULTS.dbPoolSizeEnv),
  min: int32(1),
  max: int32(1),
}).superRefine(minLeMax);

export const MaxOverflowSchema = strict({
  env: envName.default(DEFAULTS.dbMaxOverflowEnv),
  mode: z.enum(OVERFLOW_MODES).default(DEFAULTS.dbMaxOverflowMode),
  ratio: ratio.default(DEFAULTS.dbMaxOverflowRatio),
  min: int32(0),
  max: int32(0),
}).superRefine(minLeMax);

export const DatabaseSchema = strict({
  poolSize: PoolSizeSchema,
  maxOverflow: MaxOverflowSchema.optional(),
  utilization: promql.optional(),
}).superRefine((db, ctx) => {
  if (db.maxOverflow !== undefined && db.maxOverflow.env === db.poolSize.env) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxOverflow', 'env'],
      message: `must differ from poolSize.env (both are ${show(db.poolSize.env)})`,
    });
  }
});

export const MaxConnectionsSchema = strict({
  env: envName.default(DEFAULTS.redisMaxConnectionsEnv),
  mode: z.enum(MAX_CONNECTIONS_MODES).default(DEFAULTS.redisMaxConnectionsMode),
  min: int32(1),
  max: int32(1),
}).superRefine(minLeMax);

export const RedisSchema = strict({
  maxConnections: MaxConnectionsSchema,
  utilization: promql.optional(),
});

export const ConfigMapRefSchema = strict({
  name: resourceName,
  key: boundedString(253, CONFIGMAP_KEY_PATTERN, 'a ConfigMap key (letters, digits, -, _ and .)').default(
    DEFAULTS.pgbouncerKey,
  ),
});

export const DefaultPoolSizeSchema = strict({
  mode: z.enum(MAX_CONNECTIONS_MODES).default(DEFAULTS.defaultPoolSizeMode),
  min: int32(1),
  max: int32(1),
}).superRefine(minLeMax);

export const MaxClientConnSchema = strict({
  min: int32(1),
  max: int32(1),
  ratio: ratio.default(DEFAULTS.maxClientConnRatio),
}).superRefine(minLeMax);

/** A reference to an object by name in the same namespace (`{name}`). */
export const LocalObjectRefSchema = strict({ name: resourceName });

export const PgBouncerSchema = strict({
  configMapRef: ConfigMapRefSchema,
  format: z.enum(PGBOUNCER_FORMATS).default(DEFAULTS.pgbouncerFormat),
  defaultPoolSize: DefaultPoolSizeSchema,
  maxClientConn: MaxClientConnSchema.optional(),
  utilization: promql.optional(),
  rolloutRef: LocalObjectRefSchema.optional(),
  pools: int32(1).default(DEFAULTS.pgbouncerPools),
});

export const DeliverySchema = strict({
  mode: z.enum(DELIVERY_MODES).default(DEFAULTS.deliveryMode),
  configMapRef: strict({
    name: resourceName,
    key: boundedString(253, CONFIGMAP_KEY_PATTERN, 'a ConfigMap key (letters, digits, -, _ and .)').default(
      DEFAULTS.deliveryKey,
    ),
  }).optional(),
  confirmTimeout: duration(1000).default(DEFAULTS.confirmTimeout),
  // No default, so that it can be refused with mode Env: unset means Swap.
  reload: z.enum(RELOAD_KINDS).optional(),
  // No default either: unset means KubeletSync.
  refresh: z.enum(REFRESH_KINDS).optional(),
}).superRefine((delivery, ctx) => {
  if (delivery.mode === 'ConfigMap' && delivery.configMapRef === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['configMapRef'],
      message: 'mode ConfigMap writes the pool settings into a ConfigMap: set configMapRef.name',
    });
  if (delivery.mode === 'Env' && delivery.configMapRef !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['configMapRef'],
      message: 'configMapRef is used only with mode ConfigMap: set mode ConfigMap, or remove configMapRef',
    });
  if (delivery.mode === 'Env' && delivery.reload !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['reload'],
      message:
        'reload says how the app applies a delivered file, which mode Env does not write: set mode ConfigMap, or remove reload',
    });
  if (delivery.mode === 'Env' && delivery.refresh !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['refresh'],
      message:
        'refresh says how a delivered file reaches the pods, which mode Env does not write: set mode ConfigMap, or remove refresh',
    });
});

export const PrometheusSchema = strict({
  address: boundedString(2048, HTTP_URL_PATTERN, 'an http:// or https:// URL').optional(),
  timeout: duration(1).default(DEFAULTS.prometheusTimeout),
  authSecretRef: LocalObjectRefSchema.optional(),
});

export const ThresholdsSchema = strict({
  scaleUpAbove: percent.default(DEFAULTS.scaleUpAbove),
  scaleDownBelow: percent.default(DEFAULTS.scaleDownBelow),
  target: percent.default(DEFAULTS.target),
}).superRefine((t, ctx) => {
  if (!(t.scaleDownBelow < t.target && t.target < t.scaleUpAbove)) {
    ctx.addIssue({
      code: 'custom',
      message: `must satisfy 0 < scaleDownBelow (${t.scaleDownBelow}) < target (${t.target}) < scaleUpAbove (${t.scaleUpAbove}) <= 100`,
    });
  }
});

/** One rate-limit policy of spec.behavior.scaleUp / scaleDown (domain/scaling-rules.ts). */
export const ScalingPolicySchema = strict({
  type: z.enum(SCALING_POLICY_TYPES),
  value: int32(1),
  period: duration(1000, { ms: 3_600_000, text: MAX_POLICY_PERIOD }),
});

/** spec.behavior.scaleUp / scaleDown, shaped like the HPA v2 HPAScalingRules. */
export const ScalingRulesSchema = strict({
  stabilizationWindow: duration(0).optional(),
  selectPolicy: z.enum(SELECT_POLICIES).default(DEFAULTS.selectPolicy),
  policies: z.array(ScalingPolicySchema).min(1).max(MAX_POLICIES).optional(),
});

/** True when `text` is a duration other than `defaultText` (300s is 5m); false when it is no duration (reported elsewhere). */
function differsFromDefault(text: string, defaultText: string): boolean {
  const value = parseDuration(text);
  return value !== undefined && value !== parseDuration(defaultText);
}

/**
 * The flat fields and the scaleUp / scaleDown blocks must not both say the same thing (CEL: the
 * same three rules on spec.behavior). The API server fills in the flat fields' defaults before
 * validating, so a flat field counts as set only when it differs from its default.
 */
function noFlatFieldShadowed(behavior: z.output<typeof BehaviorFields>, ctx: z.core.$RefinementCtx): void {
  const windows = [
    ['scaleUpStabilization', 'scaleUp', DEFAULTS.scaleUpStabilization],
    ['scaleDownStabilization', 'scaleDown', DEFAULTS.scaleDownStabilization],
  ] as const;
  for (const [flat, block, defaultText] of windows) {
    if (behavior[block]?.stabilizationWindow !== undefined && differsFromDefault(behavior[flat], defaultText)) {
      ctx.addIssue({
        code: 'custom',
        path: [flat],
        message: `set either ${flat} or ${block}.stabilizationWindow, not both: remove spec.behavior.${flat} (${block}.stabilizationWindow replaces it)`,
      });
    }
  }
  const policies = behavior.scaleUp?.policies !== undefined || behavior.scaleDown?.policies !== undefined;
  if (policies && behavior.maxStepPercent !== DEFAULTS.maxStepPercent) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxStepPercent'],
      message:
        'set either maxStepPercent or scaleUp/scaleDown policies, not both: remove spec.behavior.maxStepPercent (write the step as a policy, e.g. {type: Percent, value: 20, period: 10m}, in each direction you want it)',
    });
  }
}

const BehaviorFields = strict({
  maxStepPercent: z.int().min(1).max(100).default(DEFAULTS.maxStepPercent),
  scaleUpStabilization: duration(0).default(DEFAULTS.scaleUpStabilization),
  scaleDownStabilization: duration(0).default(DEFAULTS.scaleDownStabilization),
  minChangeInterval: duration(0).default(DEFAULTS.minChangeInterval),
  scaleUp: ScalingRulesSchema.optional(),
  scaleDown: ScalingRulesSchema.optional(),
});

export const BehaviorSchema = BehaviorFields.superRefine(noFlatFieldShadowed);

/** The raw `spec` with CRD defaults applied (durations still strings). */
export const PoolPolicySpecSchema = strict({
  targetRef: TargetRefSchema,
  mode: z.enum(POOLPOLICY_MODES).default(DEFAULTS.mode),
  interval: duration(1000).default(DEFAULTS.interval),
  metricsPrefix: boundedString(
    128,
    METRICS_PREFIX_PATTERN,
    'empty or a Prometheus metric name prefix matching ^[a-zA-Z_:][a-zA-Z0-9_:]*$',
  ).default(DEFAULTS.metricsPrefix),
  prometheus: PrometheusSchema.optional(),
  database: DatabaseSchema.optional(),
  redis: RedisSchema.optional(),
  pgbouncer: PgBouncerSchema.optional(),
  delivery: DeliverySchema.optional(),
  budgetRef: LocalObjectRefSchema.optional(),
  processesPerPod: int32(1).default(DEFAULTS.processesPerPod),
  thresholds: ThresholdsSchema.default(() => ({
    scaleUpAbove: DEFAULTS.scaleUpAbove,
    scaleDownBelow: DEFAULTS.scaleDownBelow,
    target: DEFAULTS.target,
  })),
  behavior: BehaviorSchema.default(() => ({
    maxStepPercent: DEFAULTS.maxStepPercent,
    scaleUpStabilization: DEFAULTS.scaleUpStabilization,
    scaleDownStabilization: DEFAULTS.scaleDownStabilization,
    minChangeInterval: DEFAULTS.minChangeInterval,
  })),
}).superRefine((spec, ctx) => {
  if (spec.database === undefined && spec.redis === undefined && spec.pgbouncer === undefined) {
    ctx.addIssue({ code: 'custom', message: 'set at least one of spec.database, spec.redis or spec.pgbouncer' });
  }
  if (spec.database?.maxOverflow?.mode === 'FillToBudget' && spec.budgetRef === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['database', 'maxOverflow', 'mode'],
      message: 'FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef, or use mode Ratio',
    });
  }
  if (spec.redis?.maxConnections.mode === 'FillToBudget' && spec.budgetRef === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['redis', 'maxConnections', 'mode'],
      message: 'FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef, or use mode Utilization',
    });
  }
  if (spec.pgbouncer?.defaultPoolSize.mode === 'FillToBudget' && spec.budgetRef === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['pgbouncer', 'defaultPoolSize', 'mode'],
      message: 'FillToBudget fills the share of a ConnectionBudget: set spec.budgetRef, or use mode Utilization',
    });
  }
  if (spec.redis !== undefined && spec.database !== undefined) {
    const redisEnv = spec.redis.maxConnections.env;
    const dbEnvs = [spec.database.poolSize.env, spec.database.maxOverflow?.env];
    if (dbEnvs.includes(redisEnv)) {
      ctx.addIssue({
        code: 'custom',
        path: ['redis', 'maxConnections', 'env'],
        message: `must differ from the spec.database env names (both use ${show(redisEnv)})`,
      });
    }
  }
});

/** Input accepted by the API server (defaults optional). */
export type PoolPolicySpecInput = z.input<typeof PoolPolicySpecSchema>;
/** Raw spec after defaulting, before duration conversion. */
export type RawPoolPolicySpec = z.output<typeof PoolPolicySpecSchema>;

// ---------------------------------------------------------------------------
// Normalized spec

export interface EnvBounds {
  /** Container env var the value is written to. */
  readonly env: string;
  /** Inclusive lower bound. */
  readonly min: number;
  /** Inclusive upper bound (>= min). */
  readonly max: number;
}

export interface RatioEnvBounds extends EnvBounds {
  /** Value follows (primary setting × ratio), then is clamped to [min, max]. ratio > 0. */
  readonly ratio: number;
}

export interface OverflowEnvBounds extends RatioEnvBounds {
  /** Ratio: value = poolSize × ratio; FillToBudget: poolSize + value = the budget's share (ratio unused). */
  readonly mode: OverflowMode;
}

export interface Bounds {
  readonly min: number;
  readonly max: number;
}

export interface RatioBounds extends Bounds {
  readonly ratio: number;
}

/** Where and how to query Prometheus (spec.prometheus of a PoolPolicy or a ConnectionBudget). */
export interface PrometheusConnection {
  /** undefined = the operator-wide default (--prometheus-url). */
  readonly address: string | undefined;
  /** > 0; 10000 when spec.prometheus or its timeout is absent. */
  readonly timeoutMs: number;
  /**
   * A Secret in the object's own namespace with bearerToken, or username + password, and/or
   * tls.crt + tls.key (optional ca.crt); undefined = no authentication.
   */
  readonly authSecretRef: { readonly name: string } | undefined;
}

export interface PoolPolicySpec {
  /** Deployment in the PoolPolicy's namespace; container undefined = the first container. */
  readonly targetRef: { readonly name: string; readonly container: string | undefined };
  /** ConnectionBudget in the PoolPolicy's namespace whose capacity caps this policy; undefined = no budget. */
  readonly budgetRef: { readonly name: string } | undefined;
  /** Processes per pod that each hold their own pools (gunicorn-style workers), >= 1 (default 1). */
  readonly processesPerPod: number;
  readonly mode: PoolPolicyMode;
  /** Evaluation period, >= 1000. */
  readonly intervalMs: number;
  /** Prepended to default metric names; may be "". */
  readonly metricsPrefix: string;
  /**
   * Prometheus connection overrides. `address` undefined = the operator-wide default.
   * `timeoutMs` is always set (10000 when spec.prometheus or its timeout is absent), > 0.
   */
  readonly prometheus: PrometheusConnection;
  readonly database:
    | {
        readonly poolSize: EnvBounds;
        readonly maxOverflow: OverflowEnvBounds | undefined;
        /** PromQL override; undefined = the built-in query with metricsPrefix. */
        readonly utilization: string | undefined;
      }
    | undefined;
  readonly redis:
    | {
        readonly maxConnections: EnvBounds & { readonly mode: MaxConnectionsMode };
        readonly utilization: string | undefined;
      }
    | undefined;
  /**
   * How database and redis values reach the app: `Env` (container env, a rolling restart) or
   * `ConfigMap` (KEY=value lines in a ConfigMap key the app mounts and re-reads; no restart).
   */
  readonly delivery:
    | { readonly mode: 'Env' }
    | {
        readonly mode: 'ConfigMap';
        readonly configMapRef: { readonly name: string; readonly key: string };
        /** How long pods may take to report the written values before the delivery is NotConfirmed, > 0. */
        readonly confirmTimeoutMs: number;
        /** Swap when spec.delivery.reload is unset. */
        readonly reload: ReloadKind;
        /** KubeletSync when spec.delivery.refresh is unset. */
        readonly refresh: RefreshKind;
      };
  readonly pgbouncer:
    | {
        readonly configMapRef: { readonly name: string; readonly key: string };
        readonly format: PgBouncerFormat;
        readonly defaultPoolSize: Bounds & { readonly mode: MaxConnectionsMode };
        readonly maxClientConn: RatioBounds | undefined;
        readonly utilization: string | undefined;
        readonly rolloutRef: { readonly name: string } | undefined;
        /** (database, user) pairs PgBouncer keeps a server pool for, >= 1 (default 1). */
        readonly pools: number;
      }
    | undefined;
  /** Percentages with 0 < scaleDownBelow < target < scaleUpAbove <= 100. */
  readonly thresholds: { readonly scaleUpAbove: number; readonly scaleDownBelow: number; readonly target: number };
  readonly behavior: {
    /** 1..100: largest change per step, in percent of the current value (a direction without policies). */
    readonly maxStepPercent: number;
    /**
     * All >= 0. The stabilization windows in force: scaleUp.stabilizationWindow when set, else
     * scaleUpStabilization (the same for scale-down).
     */
    readonly scaleUpStabilizationMs: number;
    readonly scaleDownStabilizationMs: number;
    readonly minChangeIntervalMs: number;
    /** spec.behavior.scaleUp / scaleDown (selectPolicy and policies); undefined when the block is absent. */
    readonly scaleUp?: DirectionRules | undefined;
    readonly scaleDown?: DirectionRules | undefined;
  };
}

export type ParseSpecResult =
  { readonly ok: true; readonly spec: PoolPolicySpec } | { readonly ok: false; readonly message: string };

/**
 * Validates a raw `spec` (as read from the API server or a YAML file) and returns
 * the normalized spec. On failure, `message` lists every problem as
 * `<field path>: <what is allowed>`, separated by "; ".
 */
export function parsePoolPolicySpec(raw: unknown): ParseSpecResult {
  return parseSpecWith(PoolPolicySpecSchema, raw, normalizeSpec);
}

/**
 * Validates `raw` against a spec schema with the friendly messages of this module
 * (`spec.<path>: <what is allowed>`, joined with "; ") and normalizes the result.
 * Shared by every kind of this API group.
 */
export function parseSpecWith<S extends z.ZodType, Spec>(
  schema: S,
  raw: unknown,
  normalize: (parsed: z.output<S>) => Spec,
): { readonly ok: true; readonly spec: Spec } | { readonly ok: false; readonly message: string } {
  const result = schema.safeParse(withoutNulls(raw), { error: friendlyErrorMap });
  if (!result.success) return { ok: false, message: formatIssues(result.error.issues, 'spec') };
  return { ok: true, spec: normalize(result.data) };
}

/**
 * The API server prunes `null` fields of a (non-nullable) structural schema before defaulting and
 * validation, so `behavior: null` means "absent" there; the same here (objects only, recursively).
 */
function withoutNulls(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, withoutNulls(v)]),
  );
}

function ms(text: string): number {
  const value = parseDuration(text);
  // Unreachable after schema validation; kept as a guard rather than a `!`.
  if (value === undefined) throw new Error(`invalid duration survived validation: ${text}`);
  return value;
}

/** Normalizes an optional `spec.prometheus` section (shared with ConnectionBudget). */
export function normalizePrometheus(raw: z.output<typeof PrometheusSchema> | undefined): PrometheusConnection {
  return {
    address: raw?.address,
    timeoutMs: ms(raw?.timeout ?? DEFAULTS.prometheusTimeout),
    authSecretRef: raw?.authSecretRef === undefined ? undefined : { name: raw.authSecretRef.name },
  };
}

function directionRules(raw: z.output<typeof ScalingRulesSchema> | undefined): DirectionRules | undefined {
  if (raw === undefined) return undefined;
  return {
    selectPolicy: raw.selectPolicy,
    policies: raw.policies?.map((policy) => ({ type: policy.type, value: policy.value, periodMs: ms(policy.period) })),
  };
}

function normalizeSpec(raw: RawPoolPolicySpec): PoolPolicySpec {
  const { database, redis, pgbouncer } = raw;
  return {
    targetRef: { name: raw.targetRef.name, container: raw.targetRef.container },
    budgetRef: raw.budgetRef === undefined ? undefined : { name: raw.budgetRef.name },
    processesPerPod: raw.processesPerPod,
    mode: raw.mode,
    intervalMs: ms(raw.interval),
    metricsPrefix: raw.metricsPrefix,
    prometheus: normalizePrometheus(raw.prometheus),
    database:
      database === undefined
        ? undefined
        : {
            poolSize: { ...database.poolSize },
            maxOverflow: database.maxOverflow === undefined ? undefined : { ...database.maxOverflow },
            utilization: database.utilization,
          },
    redis:
      redis === undefined ? undefined : { maxConnections: { ...redis.maxConnections }, utilization: redis.utilization },
    pgbouncer:
      pgbouncer === undefined
        ? undefined
        : {
            configMapRef: { ...pgbouncer.configMapRef },
            format: pgbouncer.format,
            defaultPoolSize: { ...pgbouncer.defaultPoolSize },
            maxClientConn: pgbouncer.maxClientConn === undefined ? undefined : { ...pgbouncer.maxClientConn },
            utilization: pgbouncer.utilization,
            rolloutRef: pgbouncer.rolloutRef === undefined ? undefined : { name: pgbouncer.rolloutRef.name },
            pools: pgbouncer.pools,
          },
    delivery:
      raw.delivery?.mode === 'ConfigMap' && raw.delivery.configMapRef !== undefined
        ? {
            mode: 'ConfigMap',
            configMapRef: { ...raw.delivery.configMapRef },
            confirmTimeoutMs: ms(raw.delivery.confirmTimeout),
            reload: raw.delivery.reload ?? 'Swap',
            refresh: raw.delivery.refresh ?? 'KubeletSync',
          }
        : { mode: 'Env' },
    thresholds: { ...raw.thresholds },
    behavior: {
      maxStepPercent: raw.behavior.maxStepPercent,
      scaleUpStabilizationMs: ms(raw.behavior.scaleUp?.stabilizationWindow ?? raw.behavior.scaleUpStabilization),
      scaleDownStabilizationMs: ms(raw.behavior.scaleDown?.stabilizationWindow ?? raw.behavior.scaleDownStabilization),
      minChangeIntervalMs: ms(raw.behavior.minChangeInterval),
      scaleUp: directionRules(raw.behavior.scaleUp),
      scaleDown: directionRules(raw.behavior.scaleDown),
    },
  };
}

// ---------------------------------------------------------------------------
// Error messages

/** A value as quoted in error messages ("text", 3, null, a list, an object). */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}

const EXPECTED_NAMES: Readonly<Record<string, string>> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  object: 'an object',
  array: 'a list',
  boolean: 'true or false',
};

/** Per-parse error map: generic issues as "what is allowed (got X)". Schema-level messages win. */
export const friendlyErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'is required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      return `must be ${expected} (got ${show(iss.input)})`;
    }
    case 'too_small':
      if (iss.origin === 'string')
        return iss.minimum === 1 ? 'must not be empty' : `must be at least ${iss.minimum} characters long`;
      if (iss.origin === 'array') return `must have at least ${iss.minimum} items`;
      return `must be ${iss.inclusive === false ? '>' : '>='} ${iss.minimum} (got ${show(iss.input)})`;
    case 'too_big':
      if (iss.origin === 'string') return `must be at most ${iss.maximum} characters long`;
      if (iss.origin === 'array') return `must have at most ${iss.maximum} items`;
      return `must be ${iss.inclusive === false ? '<' : '<='} ${iss.maximum} (got ${show(iss.input)})`;
    case 'invalid_value':
      return `must be one of ${iss.values.map((v) => String(v)).join(', ')} (got ${show(iss.input)})`;
    case 'invalid_format':
      return `must match ${iss.pattern ?? iss.format} (got ${show(iss.input)})`;
    default:
      return undefined;
  }
};

function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const segment of path) {
    out += typeof segment === 'number' ? `[${segment}]` : `.${String(segment)}`;
  }
  return out;
}

/** One line per issue (one per key for unknown fields), joined with "; ". */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root: string): string {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        lines.push(`${formatPath(root, [...issue.path, key])}: unknown field (${issue.message})`);
    } else {
      lines.push(`${formatPath(root, issue.path)}: ${issue.message}`);
    }
  }
  return lines.join('; ');
}

// ---------------------------------------------------------------------------
// Status

export type BreachDirection = 'up' | 'down';
export const POOL_SECTIONS = ['database', 'redis', 'pgbouncer'] as const;
export type PoolSection = (typeof POOL_SECTIONS)[number];

export interface SettingChange {
  /** Env var name or PgBouncer key. */
  readonly setting: string;
  readonly from: number;
  readonly to: number;
}

export interface StatusCondition<Time> {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: Time;
  readonly observedGeneration?: number;
}

export interface Breach<Time> {
  readonly direction: BreachDirection;
  /** When the breach started (stabilization windows count from here). */
  readonly since: Time;
  /** When the breach was last observed. */
  readonly lastSeen: Time;
}

export interface StatusChange<Time> {
  readonly time: Time;
  readonly reason: string;
  readonly changes: readonly SettingChange[];
}

export interface HistoryEntry<Time> extends StatusChange<Time> {
  /** Utilization (percent) that triggered the change. */
  readonly utilizationBefore?: number;
  /** Utilization after the change, filled in when measured. */
  readonly utilizationAfter?: number;
}

/** A ConfigMap delivery (spec.delivery.mode ConfigMap) and what the app reported of it. */
export interface DeliveryRecord<Time> {
  /** The ConfigMap and data key written. */
  readonly configMap: string;
  readonly key: string;
  readonly writtenAt: Time;
  /** The values written, by env name. */
  readonly written: Readonly<Record<string, number>>;
  /** The values they replaced: the old pools, counted against the budget until every pod confirmed. */
  readonly replaced: Readonly<Record<string, number>>;
  /** When every reporting pod ran the written values with no old pool left draining; unset until then. */
  readonly confirmedAt?: Time;
  /** The pods that reported the written values, each with the first pass that saw it. */
  readonly pods?: ReadonlyArray<{ readonly name: string; readonly reportedAt: Time }>;
}

interface StatusShape<Time> {
  readonly observedGeneration?: number;
  readonly conditions?: readonly StatusCondition<Time>[];
  /** Values in place now, keyed by env var / PgBouncer key. */
  readonly current?: Readonly<Record<string, number>>;
  /** Values the operator would set, keyed like `current`. */
  readonly recommended?: Readonly<Record<string, number>>;
  readonly observed?: {
    readonly database?: number;
    readonly redis?: number;
    readonly pgbouncer?: number;
    readonly sampledAt?: Time;
  };
  /** Stabilization state; must survive operator restarts. */
  readonly breaches?: Partial<Readonly<Record<PoolSection, Breach<Time>>>>;
  readonly lastChange?: StatusChange<Time>;
  /** At most {@link MAX_HISTORY} entries, oldest first. */
  readonly history?: readonly HistoryEntry<Time>[];
  /** The last ConfigMap delivery (spec.delivery.mode ConfigMap). */
  readonly delivery?: DeliveryRecord<Time>;
}

/** Status as WRITTEN by the operator: times are RFC3339 strings (see {@link formatStatusTime}). */
export type PoolPolicyStatus = StatusShape<string>;
/** Status as READ back by {@link parsePoolPolicyStatus}: times are Dates. */
export type ParsedPoolPolicyStatus = StatusShape<Date>;

/** RFC3339 with second precision, UTC (the metav1.Time wire format). */
export function formatStatusTime(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

const time = z.iso.datetime({ offset: true }).transform((text) => new Date(text));
const finiteNumber = z.number();
const nonNegInt = z.int().min(0);
const settingChange = z.object({ setting: z.string().min(1), from: z.int(), to: z.int() });
const conditionSchema = z.object({
  type: z.string().min(1),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: time,
  observedGeneration: nonNegInt.optional(),
});
const breachSchema = z.object({ direction: z.enum(['up', 'down']), since: time, lastSeen: time });
const changeSchema = z.object({ time, reason: z.string(), changes: z.array(settingChange) });
const historySchema = changeSchema.extend({
  utilizationBefore: finiteNumber.optional(),
  utilizationAfter: finiteNumber.optional(),
});

const deliverySchema = z.object({
  configMap: z.string().min(1),
  key: z.string().min(1),
  writtenAt: time,
  written: z.record(z.string(), z.int()),
  replaced: z.record(z.string(), z.int()),
  confirmedAt: time.optional(),
  pods: z.array(z.object({ name: z.string().min(1), reportedAt: time })).optional(),
});

/** Zod schema of a well-formed stored status (times as Dates). Unknown keys are stripped. */
export const PoolPolicyStatusSchema = z.object({
  observedGeneration: nonNegInt.optional(),
  conditions: z.array(conditionSchema).optional(),
  current: z.record(z.string(), z.int()).optional(),
  recommended: z.record(z.string(), z.int()).optional(),
  observed: z
    .object({
      database: finiteNumber.optional(),
      redis: finiteNumber.optional(),
      pgbouncer: finiteNumber.optional(),
      sampledAt: time.optional(),
    })
    .optional(),
  breaches: z
    .object({ database: breachSchema.optional(), redis: breachSchema.optional(), pgbouncer: breachSchema.optional() })
    .optional(),
  lastChange: changeSchema.optional(),
  history: z.array(historySchema).optional(),
  delivery: deliverySchema.optional(),
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function pick<T>(schema: z.ZodType<T>, value: unknown): T | undefined {
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

/** Keeps the well-formed items of a list; undefined when `value` is not a list. */
function pickEach<T>(schema: z.ZodType<T>, value: unknown): T[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const out: T[] = [];
  for (const item of value) {
    const parsed = pick(schema, item);
    if (parsed !== undefined) out.push(parsed);
  }
  return out;
}

/** Keeps the integer entries of a map; undefined when `value` is not a map. */
function pickIntMap(value: unknown): Record<string, number> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Record<string, number> = {};
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === 'number' && Number.isSafeInteger(entry)) out[key] = entry;
  }
  return out;
}

/** Keeps the well-formed fields of an object; undefined when `value` is not an object. */
function pickFields<S extends Readonly<Record<string, z.ZodType>>>(
  shape: S,
  value: unknown,
): Partial<{ [K in keyof S]: z.output<S[K]> }> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Partial<{ [K in keyof S]: z.output<S[K]> }> = {};
  for (const key of Object.keys(shape) as (keyof S & string)[]) {
    const fieldSchema = shape[key];
    if (fieldSchema === undefined || value[key] === undefined) continue;
    const parsed = fieldSchema.safeParse(value[key]);
    if (parsed.success) out[key] = parsed.data as z.output<S[typeof key]>;
  }
  return out;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/**
 * Reads a stored status tolerantly: never throws, never fails. Each malformed part
 * (a field, a condition, a history entry, a breach, a map entry) is dropped; unknown
 * keys are ignored. Non-object input yields `{}`.
 */
export function parsePoolPolicyStatus(raw: unknown): ParsedPoolPolicyStatus {
  if (!isRecord(raw)) return {};
  const history = pickEach(historySchema, raw.history);
  const breaches = pickFields({ database: breachSchema, redis: breachSchema, pgbouncer: breachSchema }, raw.breaches);
  const observed = pickFields(
    { database: finiteNumber, redis: finiteNumber, pgbouncer: finiteNumber, sampledAt: time },
    raw.observed,
  );
  return withoutUndefined({
    observedGeneration: pick(nonNegInt, raw.observedGeneration),
    conditions: pickEach(conditionSchema, raw.conditions),
    current: pickIntMap(raw.current),
    recommended: pickIntMap(raw.recommended),
    observed,
    breaches,
    lastChange: pick(changeSchema, raw.lastChange),
    // Keep the newest entries if an older version stored more than allowed.
    history: history?.slice(-MAX_HISTORY),
    delivery: pick(deliverySchema, raw.delivery),
  });
}
