/**
 * Public API of ConnectionBudget (`poolpilot.io/v1alpha1`): zod schemas that agree with
 * `crds/poolpilot.io_connectionbudgets.yaml` (same fields, rules and defaults), the
 * normalized spec the controller works with, and the status shape it writes.
 *
 * A ConnectionBudget states how many connections the shared PostgreSQL and Redis servers
 * accept; every PoolPolicy of the namespace whose `spec.budgetRef` names it gets a share.
 *
 * Contract: {@link parseConnectionBudgetSpec} refuses anything the CRD refuses (unknown
 * fields, out-of-range values, CEL rules) with a message naming the field path
 * (`spec.postgres.reserved: reserved (100) must be less than maxConnections (100)`), and
 * returns the spec with every default applied and the timeout in milliseconds.
 */
import { z } from 'zod';
import {
  int32,
  normalizePrometheus,
  parseSpecWith,
  POOLPOLICY_GROUP,
  POOLPOLICY_VERSION,
  PrometheusSchema,
  promql,
  strict,
  type PrometheusConnection,
  type StatusCondition,
} from './poolpolicy.js';

export const CONNECTIONBUDGET_GROUP = POOLPOLICY_GROUP;
export const CONNECTIONBUDGET_VERSION = POOLPOLICY_VERSION;
export const CONNECTIONBUDGET_PLURAL = 'connectionbudgets';
export const CONNECTIONBUDGET_KIND = 'ConnectionBudget';
export const CONNECTIONBUDGET_API_VERSION = `${CONNECTIONBUDGET_GROUP}/${CONNECTIONBUDGET_VERSION}`;

/** The servers a budget can describe, in the order of the spec and status. */
export const BUDGET_BACKENDS = ['postgres', 'redis'] as const;
export type BudgetBackend = (typeof BUDGET_BACKENDS)[number];

/** Defaults, identical to the CRD `default:` values. */
export const CONNECTIONBUDGET_DEFAULTS = {
  /** PostgreSQL's superuser_reserved_connections default. */
  postgresReserved: 3,
  redisReserved: 0,
} as const;

/** status.<backend>.shares keeps at most this many entries (CRD maxItems). */
export const MAX_SHARES = 256;

// ---------------------------------------------------------------------------
// Raw spec

/**
 * The CEL rules of a server section: exactly one of the fixed value and its query, and
 * `reserved` below the fixed value. Same messages (with the values) as the CRD.
 */
function capacityRules(section: string, valueKey: string, queryKey: string) {
  return (
    value: { readonly reserved: number } & Readonly<Record<string, unknown>>,
    ctx: z.core.$RefinementCtx,
  ): void => {
    const fixed = value[valueKey];
    const hasQuery = value[queryKey] !== undefined;
    if (fixed === undefined && !hasQuery) {
      ctx.addIssue({ code: 'custom', message: `set spec.${section}.${valueKey} or spec.${section}.${queryKey}` });
    }
    if (fixed !== undefined && hasQuery) {
      ctx.addIssue({
        code: 'custom',
        path: [queryKey],
        message: `set only one of ${valueKey} and ${queryKey}, not both`,
      });
    }
    if (typeof fixed === 'number' && value.reserved >= fixed) {
      ctx.addIssue({
        code: 'custom',
        path: ['reserved'],
        message: `reserved (${value.reserved}) must be less than ${valueKey} (${fixed})`,
      });
    }
  };
}

export const PostgresBudgetSchema = strict({
  maxConnections: int32(1).optional(),
  maxConnectionsQuery: promql.optional(),
  reserved: int32(0).default(CONNECTIONBUDGET_DEFAULTS.postgresReserved),
}).superRefine(capacityRules('postgres', 'maxConnections', 'maxConnectionsQuery'));

export const RedisBudgetSchema = strict({
  maxClients: int32(1).optional(),
  maxClientsQuery: promql.optional(),
  reserved: int32(0).default(CONNECTIONBUDGET_DEFAULTS.redisReserved),
}).superRefine(capacityRules('redis', 'maxClients', 'maxClientsQuery'));

/** The raw `spec` with CRD defaults applied (timeout still a string). */
export const ConnectionBudgetSpecSchema = strict({
  postgres: PostgresBudgetSchema.optional(),
  redis: RedisBudgetSchema.optional(),
  prometheus: PrometheusSchema.optional(),
}).superRefine((spec, ctx) => {
  if (spec.postgres === undefined && spec.redis === undefined) {
    ctx.addIssue({ code: 'custom', message: 'set spec.postgres or spec.redis' });
  }
});

/** Input accepted by the API server (defaults optional). */
export type ConnectionBudgetSpecInput = z.input<typeof ConnectionBudgetSpecSchema>;
/** Raw spec after defaulting. */
export type RawConnectionBudgetSpec = z.output<typeof ConnectionBudgetSpecSchema>;

// ---------------------------------------------------------------------------
// Normalized spec

export interface ConnectionBudgetSpec {
  /** Exactly one of maxConnections / maxConnectionsQuery is set; reserved < maxConnections when it is. */
  readonly postgres:
    | {
        readonly maxConnections: number | undefined;
        /** PromQL returning the server's max_connections (postgres_exporter). */
        readonly maxConnectionsQuery: string | undefined;
        /** >= 0 (default 3). */
        readonly reserved: number;
      }
    | undefined;
  /** Exactly one of maxClients / maxClientsQuery is set; reserved < maxClients when it is. */
  readonly redis:
    | {
        readonly maxClients: number | undefined;
        /** PromQL returning the server's maxclients (redis_exporter). */
        readonly maxClientsQuery: string | undefined;
        /** >= 0 (default 0). */
        readonly reserved: number;
      }
    | undefined;
  /** As PoolPolicySpec.prometheus: address undefined = the operator-wide default; timeoutMs > 0. */
  readonly prometheus: PrometheusConnection;
}

export type ParseConnectionBudgetSpecResult =
  { readonly ok: true; readonly spec: ConnectionBudgetSpec } | { readonly ok: false; readonly message: string };

/**
 * Validates a raw ConnectionBudget `spec` and returns the normalized spec. On failure,
 * `message` lists every problem as `<field path>: <what is allowed>`, separated by "; ".
 */
export function parseConnectionBudgetSpec(raw: unknown): ParseConnectionBudgetSpecResult {
  return parseSpecWith(ConnectionBudgetSpecSchema, raw, normalizeSpec);
}

function normalizeSpec(raw: RawConnectionBudgetSpec): ConnectionBudgetSpec {
  const { postgres, redis } = raw;
  return {
    postgres:
      postgres === undefined
        ? undefined
        : {
            maxConnections: postgres.maxConnections,
            maxConnectionsQuery: postgres.maxConnectionsQuery,
            reserved: postgres.reserved,
          },
    redis:
      redis === undefined
        ? undefined
        : { maxClients: redis.maxClients, maxClientsQuery: redis.maxClientsQuery, reserved: redis.reserved },
    prometheus: normalizePrometheus(raw.prometheus),
  };
}

// ---------------------------------------------------------------------------
// Status (as WRITTEN by the operator)

export interface BudgetShare {
  /** Name of the PoolPolicy in the budget's namespace. */
  readonly policy: string;
  /** Replicas of the policy's target counted (the most it may run), >= 0. */
  readonly replicas: number;
  /** Connections the policy's replicas may open together, >= 0. */
  readonly connections: number;
  /** True when the budget capped the policy below what its utilization asked for. */
  readonly limited: boolean;
}

export interface BackendBudgetStatus {
  /** Server maximum minus reserved. */
  readonly capacity: number;
  /** Sum of shares[].connections. */
  readonly allocated: number;
  /** capacity − allocated; negative when over budget. */
  readonly headroom: number;
  /** At most {@link MAX_SHARES}, one per policy. */
  readonly shares: readonly BudgetShare[];
}

/** Status as WRITTEN by the operator: times are RFC3339 strings (see formatStatusTime). */
export interface ConnectionBudgetStatus {
  readonly observedGeneration?: number;
  readonly conditions?: readonly StatusCondition<string>[];
  readonly postgres?: BackendBudgetStatus;
  readonly redis?: BackendBudgetStatus;
  readonly lastUpdated?: string;
}
