/**
 * The demo workload's metrics (demo/workload/poolmetrics.py and the exporter in app.py), its pool
 * settings (poolconfig.py), live pool swap (app.py's LivePools) and in-place resize
 * (resizable_pools.py, on the real SQLAlchemy and redis-py pool classes), and the
 * seeded load of demo/load.py, tested with Python's unittest under Debian's /usr/bin/python3 (not
 * a pyenv python3 on PATH). No PostgreSQL or Redis is contacted. Needs the Debian packages
 * python3-sqlalchemy python3-psycopg2 python3-redis python3-prometheus-client.
 */
import { describe, it, expect } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function unittest(module: string): string {
  const run = spawnSync('/usr/bin/python3', ['-m', 'unittest', '-v', module], {
    cwd: here,
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', PYTHONDONTWRITEBYTECODE: '1', LC_ALL: 'C.UTF-8' },
    timeout: 60_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  expect({ status: run.status, error: run.error?.message, output }).toMatchObject({ status: 0, error: undefined });
  return output;
}

describe('demo workload metrics (python unittest)', () => {
  it('computes the runbook metrics and exports exactly their names', () => {
    const output = unittest('test_poolmetrics');
    expect(output).toMatch(/Ran 8 tests/);
    expect(output).toMatch(/test_metric_names_and_values .* ok/);
  });
});

describe('demo workload pool settings and live reload (python unittest)', () => {
  it('reads the pool config file over env, rejects malformed lines, swaps pools and drains the old', () => {
    const output = unittest('test_poolconfig');
    expect(output).toMatch(/Ran 8 tests/);
    expect(output).toMatch(/test_a_leased_pool_set_drains_then_closes .* ok/);
  });
});

describe('demo workload in-place pool resize (python unittest)', () => {
  it('keeps warm connections, closes idle surplus at once and busy surplus as it comes back', () => {
    const output = unittest('test_resizable_pools');
    expect(output).toMatch(/Ran 7 tests/);
    expect(output).toMatch(/test_a_smaller_capacity_is_reached_as_busy_connections_come_back .* ok/);
  });
});

describe('demo load generator (python unittest)', () => {
  it('sends the same requests for the same seed and phases', () => {
    const output = unittest('test_load');
    expect(output).toMatch(/Ran 5 tests/);
    expect(output).toMatch(/test_same_seed_same_requests .* ok/);
    expect(output).toMatch(/test_not_ready_terminating_unscheduled_or_portless_pods_get_nothing .* ok/);
  });
});

describe('demo manifests for a real node (python unittest)', () => {
  it('runs the app from its image in its Pod, PgBouncer and the exporters in the node network', () => {
    const output = unittest('test_node_manifests');
    expect(output).toMatch(/Ran 3 tests/);
    expect(output).toMatch(/\nOK\s*$/);
  });

  it("writes PgBouncer's ConfigMap whole, from the API's watch events", () => {
    const output = unittest('test_pgbouncer_reloader');
    expect(output).toMatch(/Ran 2 tests/);
    expect(output).toMatch(/\nOK\s*$/);
  });
});
