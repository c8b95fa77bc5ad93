/**
 * Whether PgBouncer runs the default_pool_size poolpilot last wrote, from the pool sizes its
 * exporter reports. Pure.
 *
 * Why: a PgBouncer setting reaches PgBouncer only when the kubelet has synced the ConfigMap and
 * something reloaded it (RELOAD / SIGHUP), seconds to minutes after the write. Until then every
 * utilization sample is of the old pool size, and a pass that acts on it again moves the size a
 * second time for the same load: the pool runs away to its max or min. A sample taken after the
 * write is not enough either (the reload may come later), so the section holds until the exporter
 * reports the written size.
 *
 * Contract: `Applied` when every series of at least one database reports `written` (all PgBouncer
 * instances of that database run it); `Unknown` when nothing can be said (no size was written, the
 * exporter reports no pool sizes, or the query failed): the caller then goes by time alone;
 * `Pending` otherwise, with a message naming what PgBouncer reports and when the write was.
 * A database with its own pool_size in [databases] never reports default_pool_size; one database
 * that uses the default is enough (and a database whose own pool_size happens to equal the
 * written value is taken for one).
 */
import { formatStatusTime } from '../api/v1alpha1/poolpolicy.js';

/** One series of the exporter's pool size: database, the instance that reported it, the size. */
export interface ReportedPoolSize {
  readonly database: string;
  readonly instance: string;
  readonly size: number;
}

export type PoolSizeReport =
  | { readonly valid: true; readonly series: readonly ReportedPoolSize[] }
  | { readonly valid: false; readonly message: string };

export type PgbouncerApplied =
  | { readonly state: 'Applied' }
  | { readonly state: 'Unknown' }
  | { readonly state: 'Pending'; readonly message: string };

export function pgbouncerApplied(input: {
  /** default_pool_size as the ConfigMap holds it; undefined when unset or unreadable. */
  readonly written: number | undefined;
  readonly report: PoolSizeReport | undefined;
  /** When poolpilot last wrote the ConfigMap (as recorded); undefined when it never did. */
  readonly writtenAt: Date | undefined;
}): PgbouncerApplied {
  const { written, report, writtenAt } = input;
  if (written === undefined || report === undefined || !report.valid || report.series.length === 0)
    return { state: 'Unknown' };
  const byDatabase = new Map<string, ReportedPoolSize[]>();
  for (const s of report.series) byDatabase.set(s.database, [...(byDatabase.get(s.database) ?? []), s]);
  for (const series of byDatabase.values()) if (series.every((s) => s.size === written)) return { state: 'Applied' };

  const runs = [...byDatabase]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(
      ([database, series]) => `${database} ${[...new Set(series.map((s) => s.size))].sort((a, b) => a - b).join('/')}`,
    )
    .join(', ');
  // The write's time, not its age: the message (and so the status) stays the same pass after pass.
  const since = writtenAt === undefined ? '' : ` written at ${formatStatusTime(writtenAt)}`;
  return {
    state: 'Pending',
    message:
      `PgBouncer does not run default_pool_size ${written}${since} yet (its exporter reports pool sizes: ${runs}); ` +
      `check that the ConfigMap reaches PgBouncer and that PgBouncer is reloaded (RELOAD or SIGHUP)`,
  };
}
