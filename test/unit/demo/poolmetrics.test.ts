/**
 * The demo workload's metrics (demo/workload/poolmetrics.py and the exporter in app.py) and the
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

describe('demo load generator (python unittest)', () => {
  it('sends the same requests for the same seed and phases', () => {
    const output = unittest('test_load');
    expect(output).toMatch(/Ran 3 tests/);
    expect(output).toMatch(/test_same_seed_same_requests .* ok/);
  });
});
