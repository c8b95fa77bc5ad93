import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { repoRoot } from './support/local-env.js';

/**
 * A Node older than 22.19 on this machine outside node_modules (this machine kind ships Node 20
 * as /usr/bin/node, which runs npm), or undefined when there is none.
 */
function machineNodeTooOld(): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter).filter((dir) => !dir.includes('node_modules')),
    '/usr/bin',
  ];
  for (const dir of dirs) {
    const candidate = join(dir, 'node');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const version = spawnSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    const [major = 0, minor = 0] = version.split('.').map(Number);
    if (major < 22 || (major === 22 && minor < 19)) return candidate;
  }
  return undefined;
}

// The built command as a person runs it: `make build`, then `npx poolpilot …` or `node dist/cli.js …`.
describe('poolpilot CLI (dist/cli.js)', () => {
  const node = join(repoRoot, 'node_modules/.bin/node');
  const cli = join(repoRoot, 'dist/cli.js');

  beforeAll(() => {
    execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'pipe' });
  });

  it('lists the commands and every flag with --help', () => {
    const run = spawnSync(node, [cli, 'run', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    for (const flag of [
      '--kubeconfig',
      '--namespace',
      '--prometheus-url',
      '--metrics-addr',
      '--health-addr',
      '--log-level',
      '--workers',
      '--leader-elect',
      '--enforce-namespace-label',
    ]) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toMatch(/once\s+reconcile every PoolPolicy once/);
  });

  it.each([
    [
      ['run', '--log-level', 'loud'],
      /invalid --log-level .*expected one of trace\|debug\|info\|warn\|error\|fatal, got 'loud'/,
    ],
    [['run', '--metrics-addr', '99999'], /invalid --metrics-addr .*HOST:PORT/],
    [['run', '--bogus'], /Unknown option '--bogus'/],
    [['fly'], /expected one command \(run or once\), got 'fly'/],
    [
      ['once', '--kubeconfig', '/nonexistent/kubeconfig'],
      /cannot load the kubeconfig \/nonexistent\/kubeconfig: ENOENT.*pass a readable kubeconfig file with --kubeconfig/,
    ],
  ])('refuses %j with exit code 2 and a message naming what to fix', (args, message) => {
    const run = spawnSync(node, [cli, ...args], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('runs as `npx poolpilot` (the package bin) with the Node 24 of node_modules', () => {
    const run = spawnSync('npx', ['poolpilot', 'run', '--help'], { cwd: repoRoot, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: poolpilot <command> \[flags\]/);
  });

  const oldNode = machineNodeTooOld();
  // Skipped (and counted as skipped) only on a machine whose every Node is new enough.
  (oldNode === undefined ? it.skip : it)(
    'refuses an older Node with one line saying what to run instead, before the client crashes at import',
    () => {
      const run = spawnSync(oldNode ?? 'node', [cli, 'run', '--help'], { encoding: 'utf8' });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(
        /^poolpilot needs Node >= 22\.19, found v\d+\.\d+\.\d+ \(.+\): in the repository run `npx poolpilot \.\.\.` or `node_modules\/\.bin\/node dist\/cli\.js \.\.\.` \(Node 24 from its devDependencies\)\n$/,
      );
    },
  );
});
