/**
 * The sections of a PoolPolicy (database, redis, pgbouncer) as the decision sees them: which
 * setting leads, which follows, where they live, and what a ConnectionBudget allows each. Shared
 * by plan.ts (the decision) and budget.ts (the arithmetic), which therefore do not import each
 * other.
 */
import type { PoolPolicySpec, PoolSection } from '../api/v1alpha1/poolpolicy.js';
import type { Bounds } from './decide.js';

/** Where a section's settings live. */
export type SettingTarget = 'env' | 'pgbouncer';

export interface SectionSettings {
  readonly section: PoolSection;
  readonly target: SettingTarget;
  readonly leader: { readonly key: string; readonly bounds: Bounds };
  readonly follower: { readonly key: string; readonly bounds: Bounds; readonly ratio: number } | undefined;
  /**
   * FillToBudget: the budget's share is filled in one change (domain/fill.ts). Database: capacity
   * (leader + follower) fills it and the leader follows typical demand, instead of follower =
   * leader × ratio. Redis and PgBouncer: the leader is set to the share (max_client_conn follows
   * default_pool_size × ratio as in mode Utilization).
   */
  readonly fill: boolean;
}

/** PgBouncer keys as written in pgbouncer.ini, and as data keys for format `env`. */
export const PGBOUNCER_KEYS = {
  ini: { defaultPoolSize: 'default_pool_size', maxClientConn: 'max_client_conn' },
  env: { defaultPoolSize: 'DEFAULT_POOL_SIZE', maxClientConn: 'MAX_CLIENT_CONN' },
} as const;

/** The container spec.targetRef.container names, or the first one when it names none. */
export function targetContainer<C extends { readonly name: string }>(
  containers: readonly C[],
  wanted: string | undefined,
): C | undefined {
  return wanted === undefined ? containers[0] : containers.find((c) => c.name === wanted);
}

/** An env value poolpilot can manage: a whole number, blanks around it allowed; undefined otherwise. */
export function wholeNumber(text: string): number | undefined {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** The settings the env sections (database, redis) own: env names, leaders before followers. */
export function envSettingsOf(spec: PoolPolicySpec): string[] {
  return sectionsOf(spec)
    .filter((s) => s.target === 'env')
    .flatMap((s) => [s.leader.key, ...(s.follower ? [s.follower.key] : [])]);
}

/**
 * Whether the budget needs the app's pool demand for this spec: only a FillToBudget database
 * section shares its budget by demand (a single-setting fill shares by its bounds).
 */
export function readsDemand(spec: PoolPolicySpec): boolean {
  return sectionsOf(spec).some((s) => s.fill && s.section === 'database');
}

/** The sections a spec configures, in a fixed order (database, redis, pgbouncer). */
export function sectionsOf(spec: PoolPolicySpec): SectionSettings[] {
  const sections: SectionSettings[] = [];
  if (spec.database) {
    const { poolSize, maxOverflow } = spec.database;
    sections.push({
      section: 'database',
      target: 'env',
      leader: { key: poolSize.env, bounds: { min: poolSize.min, max: poolSize.max } },
      follower: maxOverflow && {
        key: maxOverflow.env,
        bounds: { min: maxOverflow.min, max: maxOverflow.max },
        ratio: maxOverflow.ratio,
      },
      fill: maxOverflow?.mode === 'FillToBudget',
    });
  }
  if (spec.redis) {
    const { maxConnections } = spec.redis;
    sections.push({
      section: 'redis',
      target: 'env',
      leader: { key: maxConnections.env, bounds: { min: maxConnections.min, max: maxConnections.max } },
      follower: undefined,
      fill: maxConnections.mode === 'FillToBudget',
    });
  }
  if (spec.pgbouncer) {
    const keys = PGBOUNCER_KEYS[spec.pgbouncer.format];
    const { defaultPoolSize, maxClientConn } = spec.pgbouncer;
    sections.push({
      section: 'pgbouncer',
      target: 'pgbouncer',
      leader: { key: keys.defaultPoolSize, bounds: { min: defaultPoolSize.min, max: defaultPoolSize.max } },
      follower: maxClientConn && {
        key: keys.maxClientConn,
        bounds: { min: maxClientConn.min, max: maxClientConn.max },
        ratio: maxClientConn.ratio,
      },
      fill: defaultPoolSize.mode === 'FillToBudget',
    });
  }
  return sections;
}

/** What a ConnectionBudget allows one section (see domain/budget.ts). */
export type SectionBudget =
  | {
      readonly kind: 'cap';
      readonly backend: string;
      /** Largest value allowed now: the lower of the fair share and what the others leave free. */
      readonly cap: number;
      /** The section's fair share; for FillToBudget claims weighted by recent demand. Defaults to cap. */
      readonly fair?: number;
      /** Largest value that fits beside what the others hold now; above it the sum crosses capacity. Defaults to cap. */
      readonly limit?: number;
      readonly needs: number;
      readonly free: number;
      readonly minimumsFit: boolean;
    }
  /** The budget cannot be evaluated (missing, or its capacity query failed): no growth. */
  | { readonly kind: 'unknown'; readonly reason: string; readonly message: string };
