/**
 * The demo's PostgreSQL 15 (max_connections 100, 3 reserved; role and database `app`) and Redis,
 * started by demo/up.sh in a fresh temporary state directory (about 2 s) and stopped by
 * demo/down.sh. Needs the Debian packages postgresql, postgresql-client and redis-server.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './local-env.js';

export interface DemoBackends {
  /** The state directory (scratch space for the test too; removed by stop()). */
  readonly state: string;
  /** demo/up.sh's env file: PG_PORT, REDIS_PORT, DATABASE_URL, REDIS_URL, … */
  readonly env: Readonly<Record<string, string>>;
  /** Runs SQL as the superuser `postgres` on database `postgres`; returns psql's unaligned output. */
  psql(sql: string): string;
  stop(): void;
}

/**
 * `nodeAddress`: PostgreSQL and Redis also listen on that address (a node's bridge, which its
 * Pods reach; demo/up.sh DEMO_NODE_ADDRESS), and the URLs in `env` name it instead of 127.0.0.1.
 */
export function startDemoBackends(options: { nodeAddress?: string } = {}): DemoBackends {
  const state = mkdtempSync(join(tmpdir(), 'poolpilot-demo-backends-'));
  const { nodeAddress } = options;
  const scriptEnv = {
    ...process.env,
    POOLPILOT_DEMO_STATE: state,
    ...(nodeAddress === undefined ? {} : { DEMO_NODE_ADDRESS: nodeAddress }),
  };
  execFileSync('bash', [join(repoRoot, 'demo/up.sh')], { env: scriptEnv, stdio: 'pipe', timeout: 60_000 });
  const env = Object.fromEntries(
    readFileSync(join(state, 'env'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => {
        const value = l.slice(l.indexOf('=') + 1);
        return [
          l.slice(0, l.indexOf('=')),
          nodeAddress === undefined ? value : value.replaceAll('127.0.0.1', nodeAddress),
        ];
      }),
  );
  return {
    state,
    env,
    psql: (sql) =>
      execFileSync(
        '/usr/bin/psql',
        ['-X', '-w', '-h', '127.0.0.1', '-p', env.PG_PORT ?? '', '-U', 'postgres', '-d', 'postgres', '-qAtc', sql],
        { encoding: 'utf8' },
      ).trim(),
    stop: () => {
      execFileSync('bash', [join(repoRoot, 'demo/down.sh')], { env: scriptEnv, stdio: 'pipe', timeout: 60_000 });
      rmSync(state, { recursive: true, force: true });
    },
  };
}
