import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { repoRoot } from './support/local-env.js';

// The built command as a person runs it: `npm run build && node dist/cli.js …`.
describe('poolpilot CLI (dist/cli.js)', () => {
  const node = join(repoRoot, 'node_modules/.bin/node');
  const cli = join(repoRoot, 'dist/cli.js');

  beforeAll(() => {
    execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'pipe' });
  });

  it('lists the commands and every flag with --help', () => {
    const run = spawnSync(node, [cli, 'run', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    for (const flag of ['--kubeconfig', '--namespace', '--prometheus-url', '--metrics-addr', '--health-addr', '--log-level', '--workers', '--leader-elect', '--enforce-namespace-label']) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toMatch(/once\s+reconcile every PoolPolicy once/);
  });

  it.each([
    [['run', '--log-level', 'loud'], /invalid --log-level .*expected one of trace\|debug\|info\|warn\|error\|fatal, got 'loud'/],
    [['run', '--metrics-addr', '99999'], /invalid --metrics-addr .*HOST:PORT/],
    [['run', '--bogus'], /Unknown option '--bogus'/],
    [['fly'], /expected one command \(run or once\), got 'fly'/],
  ])('refuses %j with exit code 2 and a message naming what to fix', (args, message) => {
    const run = spawnSync(node, [cli, ...args], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});
