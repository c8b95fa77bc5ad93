import { z } from 'zod';
import { parseDuration } from './domain/duration.js';

/** Operator settings, from flags (which win) and environment variables. */
export interface OperatorConfig {
  /** Path to a kubeconfig; undefined = $KUBECONFIG, then in-cluster, then ~/.kube/config. */
  readonly kubeconfig: string | undefined;
  /** Watch only this namespace; undefined = all namespaces. */
  readonly namespace: string | undefined;
  /** Prometheus used by policies that do not set spec.prometheus.address. */
  readonly prometheusUrl: string | undefined;
  readonly metricsAddr: ListenAddress;
  readonly healthAddr: ListenAddress;
  readonly logLevel: LogLevel;
  /** Reconciles that may run at once (one key never runs twice at once). */
  readonly workers: number;
  /** Set with --leader-elect: reconcile only while holding this Lease. Undefined = always reconcile. */
  readonly leaderElection?: LeaderElectionConfig | undefined;
  /** --enforce-namespace-label: every query a policy runs is confined to namespace="<its namespace>". */
  readonly enforceNamespaceLabel?: boolean;
  /**
   * Client-side limit of Kubernetes API requests (a token bucket: `qps` per second, bursts of
   * `burst`); undefined (--kube-api-qps 0): no client-side limit, the API server's priority and fairness only.
   */
  readonly kubeApiRateLimit?: { readonly qps: number; readonly burst: number } | undefined;
}

/** Lease-based leader election (src/runtime/leader-election.ts); retryPeriodMs < renewDeadlineMs < leaseDurationMs. */
export interface LeaderElectionConfig {
  readonly namespace: string;
  /** Lease name. */
  readonly id: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One operator flag: its name, the env var that may also set it, its help and default. */
export interface FlagSpec {
  readonly flag: string;
  readonly env: string;
  readonly help: string;
  readonly default?: string;
}

export const FLAGS = [
  {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    help: 'path to a kubeconfig (default: in-cluster config, then ~/.kube/config)',
  },
  { flag: 'namespace', env: 'POOLPILOT_NAMESPACE', help: 'watch only this namespace (default: all namespaces)' },
  {
    flag: 'prometheus-url',
    env: 'POOLPILOT_PROMETHEUS_URL',
    help: 'Prometheus base URL for policies without spec.prometheus.address, e.g. http://prometheus.monitoring:9090',
  },
  { flag: 'metrics-addr', env: 'POOLPILOT_METRICS_ADDR', help: 'listen address of /metrics', default: ':8080' },
  {
    flag: 'health-addr',
    env: 'POOLPILOT_HEALTH_ADDR',
    help: 'listen address of /healthz and /readyz',
    default: ':8081',
  },
  { flag: 'log-level', env: 'POOLPILOT_LOG_LEVEL', help: `log level: ${LOG_LEVELS.join('|')}`, default: 'info' },
  // Each reconcile waits some 30 ms for its status write: 2 at once wrote about 65 statuses a second
  // at a start with 10,000 new policies (bench/results.md). The API server is protected by
  // --kube-api-qps, not by this.
  { flag: 'workers', env: 'POOLPILOT_WORKERS', help: 'reconciles that may run at once', default: '8' },
  {
    flag: 'kube-api-qps',
    env: 'POOLPILOT_KUBE_API_QPS',
    help: "Kubernetes API requests per second, sustained (client-side limit; 0 = none, rely on the API server's priority and fairness)",
    default: '200',
  },
  {
    flag: 'kube-api-burst',
    env: 'POOLPILOT_KUBE_API_BURST',
    help: 'Kubernetes API requests that may be sent at once before --kube-api-qps paces them (>= 1)',
    default: '400',
  },
  {
    flag: 'leader-elect',
    env: 'POOLPILOT_LEADER_ELECT',
    help: 'true|false: reconcile only while holding a coordination.k8s.io Lease, so replicas can run side by side; a bare --leader-elect means true',
    default: 'false',
  },
  {
    flag: 'leader-election-namespace',
    env: 'POOLPILOT_LEADER_ELECTION_NAMESPACE',
    help: 'namespace of the leader-election Lease (default: $POD_NAMESPACE, else default)',
  },
  {
    flag: 'leader-election-id',
    env: 'POOLPILOT_LEADER_ELECTION_ID',
    help: 'name of the leader-election Lease',
    default: 'poolpilot-leader',
  },
  {
    flag: 'leader-election-lease-duration',
    env: 'POOLPILOT_LEADER_ELECTION_LEASE_DURATION',
    help: 'how long followers wait after the Lease last changed before taking over (whole seconds)',
    default: '15s',
  },
  {
    flag: 'leader-election-renew-deadline',
    env: 'POOLPILOT_LEADER_ELECTION_RENEW_DEADLINE',
    help: 'the leader stops reconciling if it could not renew the Lease for this long (< lease duration)',
    default: '10s',
  },
  {
    flag: 'leader-election-retry-period',
    env: 'POOLPILOT_LEADER_ELECTION_RETRY_PERIOD',
    help: 'interval between attempts to acquire or renew the Lease (< renew deadline)',
    default: '2s',
  },
  {
    flag: 'enforce-namespace-label',
    env: 'POOLPILOT_ENFORCE_NAMESPACE_LABEL',
    help: 'true|false: add namespace="<policy namespace>" to every selector of a policy\'s queries and refuse (QueryRejected) queries that read another namespace; a bare --enforce-namespace-label means true',
    default: 'false',
  },
] as const satisfies readonly FlagSpec[];

export type FlagName = (typeof FLAGS)[number]['flag'];

const listenAddress = z.string().transform((text, ctx): ListenAddress => {
  const match = /^(?<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):(?<port>\d{1,5})$/.exec(text);
  const port = Number(match?.groups?.port);
  if (!match?.groups || port < 0 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT or :PORT with a port 0..65535, got '${text}'` });
    return z.NEVER;
  }
  const host = (match.groups.host ?? '').replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
});

const httpUrl = z.string().refine((text) => URL.canParse(text) && /^https?:$/.test(new URL(text).protocol), {
  error: (issue) => `expected an http:// or https:// URL, got '${String(issue.input)}'`,
});

const dns1123Label = z
  .string()
  .regex(
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    'expected a namespace name (lower-case letters, digits and -, at most 63)',
  );

const duration = z.string().transform((text, ctx): number => {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a positive duration such as 500ms, 2s or 1m, got '${text}'` });
    return z.NEVER;
  }
  return ms;
});

const configSchema = z
  .strictObject({
    kubeconfig: z.string().min(1).optional(),
    namespace: dns1123Label.optional(),
    'prometheus-url': httpUrl.optional(),
    'metrics-addr': listenAddress,
    'health-addr': listenAddress,
    'log-level': z.enum(LOG_LEVELS, {
      error: (issue) => `expected one of ${LOG_LEVELS.join('|')}, got '${String(issue.input)}'`,
    }),
    workers: z
      .string()
      .regex(/^\d+$/, 'expected a whole number')
      .transform(Number)
      .pipe(z.number().int().min(1, 'expected at least 1').max(64, 'expected at most 64')),
    'kube-api-qps': z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'expected a number >= 0, e.g. 200 or 0.5')
      .transform(Number)
      .pipe(z.number().max(100_000, 'expected at most 100000')),
    'kube-api-burst': z
      .string()
      .regex(/^\d+$/, 'expected a whole number')
      .transform(Number)
      .pipe(z.number().int().min(1, 'expected at least 1').max(100_000, 'expected at most 100000')),
    'leader-elect': z
      .enum(['true', 'false'], { error: (issue) => `expected true or false, got '${String(issue.input)}'` })
      .transform((text) => text === 'true'),
    'leader-election-namespace': dns1123Label,
    'leader-election-id': z
      .string()
      .regex(
        /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
        'expected a Lease name (lower-case letters, digits, - and ., at most 253)',
      ),
    'leader-election-lease-duration': duration.refine(
      (ms) => ms % 1000 === 0,
      'expected whole seconds (a Lease stores leaseDurationSeconds)',
    ),
    'leader-election-renew-deadline': duration,
    'leader-election-retry-period': duration,
    'enforce-namespace-label': z
      .enum(['true', 'false'], { error: (issue) => `expected true or false, got '${String(issue.input)}'` })
      .transform((text) => text === 'true'),
  })
  .superRefine((c, ctx) => {
    if (c['leader-election-renew-deadline'] >= c['leader-election-lease-duration']) {
      ctx.addIssue({
        code: 'custom',
        path: ['leader-election-renew-deadline'],
        message: 'expected less than --leader-election-lease-duration',
      });
    }
    if (c['leader-election-retry-period'] >= c['leader-election-renew-deadline']) {
      ctx.addIssue({
        code: 'custom',
        path: ['leader-election-retry-period'],
        message: 'expected less than --leader-election-renew-deadline',
      });
    }
  });

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Validates raw flag values (flag wins over env, then the default).
 * @throws ConfigError naming each bad flag and what it accepts.
 */
export function loadConfig(
  flags: Readonly<Partial<Record<FlagName, string>>>,
  env: Readonly<Record<string, string | undefined>>,
): OperatorConfig {
  const raw: Record<string, string> = {};
  for (const spec of FLAGS as readonly FlagSpec[]) {
    const value =
      flags[spec.flag as FlagName] ??
      nonEmpty(env[spec.env]) ??
      spec.default ??
      (spec.flag === 'leader-election-namespace' ? (nonEmpty(env.POD_NAMESPACE) ?? 'default') : undefined);
    if (value !== undefined) raw[spec.flag] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const flag = String(issue.path[0] ?? '');
      const spec = (FLAGS as readonly FlagSpec[]).find((f) => f.flag === flag);
      return `invalid --${flag}${spec ? ` (or ${spec.env})` : ''}: ${issue.message}`;
    });
    throw new ConfigError(problems.join('\n'));
  }
  const c = parsed.data;
  return {
    kubeconfig: c.kubeconfig,
    namespace: c.namespace,
    prometheusUrl: c['prometheus-url'],
    metricsAddr: c['metrics-addr'],
    healthAddr: c['health-addr'],
    logLevel: c['log-level'],
    workers: c.workers,
    kubeApiRateLimit: c['kube-api-qps'] === 0 ? undefined : { qps: c['kube-api-qps'], burst: c['kube-api-burst'] },
    leaderElection: c['leader-elect']
      ? {
          namespace: c['leader-election-namespace'],
          id: c['leader-election-id'],
          leaseDurationMs: c['leader-election-lease-duration'],
          renewDeadlineMs: c['leader-election-renew-deadline'],
          retryPeriodMs: c['leader-election-retry-period'],
        }
      : undefined,
    ...(c['enforce-namespace-label'] ? { enforceNamespaceLabel: true } : {}),
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
