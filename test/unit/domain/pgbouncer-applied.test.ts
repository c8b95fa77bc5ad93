import { describe, expect, it } from '@jest/globals';
import { pgbouncerApplied, type PoolSizeReport, type ReportedPoolSize } from '../../../src/domain/pgbouncer-applied.js';

const writtenAt = new Date('2026-12-07T09:59:30Z');
const series = (...rows: Array<[string, string, number]>): PoolSizeReport => ({
  valid: true,
  series: rows.map(([database, instance, size]): ReportedPoolSize => ({ database, instance, size })),
});

describe('pgbouncerApplied', () => {
  it.each<[string, number, PoolSizeReport]>([
    ['the one database reports the written size', 12, series(['app', 'pgb-0', 12])],
    ['every instance of the database reports it', 12, series(['app', 'pgb-0', 12], ['app', 'pgb-1', 12])],
    [
      'one database uses the default, another its own pool_size',
      12,
      series(['app', 'pgb-0', 12], ['reports', 'pgb-0', 5]),
    ],
  ])('Applied when %s', (_label, written, report) => {
    expect(pgbouncerApplied({ written, report, writtenAt })).toEqual({ state: 'Applied' });
  });

  it.each<[string, number | undefined, PoolSizeReport | undefined]>([
    ['no size is written', undefined, series(['app', 'pgb-0', 12])],
    ['the sizes were not read', 12, undefined],
    ['the query failed', 12, { valid: false, message: 'HTTP 503' }],
    ['the exporter reports no pool size', 12, series()],
  ])('Unknown when %s (the caller goes by time alone)', (_label, written, report) => {
    expect(pgbouncerApplied({ written, report, writtenAt })).toEqual({ state: 'Unknown' });
  });

  it.each<[string, PoolSizeReport, string]>([
    ['PgBouncer still runs the old size', series(['app', 'pgb-0', 10]), 'app 10'],
    ['one of two instances has not reloaded', series(['app', 'pgb-0', 12], ['app', 'pgb-1', 10]), 'app 10/12'],
    [
      'no database runs the default (each sets its own pool_size)',
      series(['reports', 'pgb-0', 5], ['app', 'pgb-0', 20]),
      'app 20, reports 5',
    ],
  ])('Pending when %s, naming what PgBouncer reports', (_label, report, runs) => {
    expect(pgbouncerApplied({ written: 12, report, writtenAt })).toEqual({
      state: 'Pending',
      message:
        `PgBouncer does not run default_pool_size 12 written at 2026-12-07T09:59:30Z yet (its exporter reports pool sizes: ${runs}); ` +
        'check that the ConfigMap reaches PgBouncer and that PgBouncer is reloaded (RELOAD or SIGHUP)',
    });
  });

  it('Pending without a write time does not guess one', () => {
    const result = pgbouncerApplied({ written: 12, report: series(['app', 'pgb-0', 10]), writtenAt: undefined });
    expect(result.state).toBe('Pending');
    expect(result.state === 'Pending' && result.message).toMatch(/^PgBouncer does not run default_pool_size 12 yet /);
  });
});
