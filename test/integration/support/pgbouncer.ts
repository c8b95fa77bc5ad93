/**
 * Starts a real PgBouncer (Debian package `pgbouncer`) for integration tests
 * and talks to its admin console through `psql` (Debian `postgresql-client`).
 *
 * Contract of startPgbouncer(iniText):
 * - iniText must contain a [pgbouncer] section with `listen_addr = 127.0.0.1`,
 *   an `admin_users` entry for `options.adminUser` (default "admin") and
 *   should set `unix_socket_dir =` (empty) so parallel instances never share
 *   a socket path. `listen_port` is set (or added) by the helper to a free port.
 * - The file lives in a fresh temp dir that is also pgbouncer's working
 *   directory, so relative paths resolve there. The helper writes
 *   `userlist.txt` there with the admin user and an empty password; point
 *   `auth_file = userlist.txt` at it (PgBouncer 1.18 rejects unknown users
 *   even with auth_type = trust).
 * - PgBouncer refuses to run as root, so when we are root it is started with
 *   `-u nobody`; the dir and files are then made world-readable (not
 *   writable) so that it can re-read them on RELOAD. Tests that rewrite
 *   iniPath must keep it readable (writeFile on the existing file does).
 * - stop() sends SIGTERM, waits for exit (SIGKILL after 10 s) and removes the
 *   temp dir. Call it in afterAll even when the test failed.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, chmod, mkdtemp, rm, writeFile, constants } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setPgbouncerSettings } from '../../../src/domain/pgbouncer-ini.js';
import { freePort } from './ports.js';

const execFileAsync = promisify(execFile);

export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';
export const PSQL_BIN = '/usr/bin/psql';
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 64 * 1024;

/** One row of an admin-console result, by column name. */
export type AdminRow = ReadonlyMap<string, string>;

export interface RunningPgbouncer {
  readonly port: number;
  readonly pid: number;
  readonly iniPath: string;
  readonly dir: string;
  /**
   * Issues RELOAD on the admin console. PgBouncer 1.18 acknowledges RELOAD
   * even when the new file fails to load: it logs "config file loading
   * failed", applies the lines before the bad one and resets the bad setting
   * and every later one to its compiled-in default. Verify with showConfig().
   */
  reload(): Promise<void>;
  /** SHOW CONFIG as key → value. */
  showConfig(): Promise<Map<string, string>>;
  /** Runs one admin-console command and returns its rows by column name. */
  adminQuery(sql: string): Promise<AdminRow[]>;
  /** PgBouncer's stderr log so far (last 64 KiB), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly adminUser?: string;
}

async function requireExecutable(path: string, debianPackage: string): Promise<void> {
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new Error(
      `${path} not found: install the Debian package ${debianPackage} (apt-get install -y ${debianPackage})`,
    );
  }
}

/** Parses `psql -A -F US -P footer=off` output: a header line, then rows. */
function parseUnaligned(stdout: string): AdminRow[] {
  const lines = stdout.split('\n').filter((l) => l !== '');
  const header = lines.shift();
  if (header === undefined) return [];
  const columns = header.split('\x1f');
  return lines.map((line) => {
    const cells = line.split('\x1f');
    return new Map(columns.map((c, i) => [c, cells[i] ?? '']));
  });
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, timeoutMs);
  });
  const exited = once(child, 'exit').then(() => true);
  try {
    return await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startPgbouncer(iniText: string, options: StartOptions = {}): Promise<RunningPgbouncer> {
  const adminUser = options.adminUser ?? 'admin';
  await requireExecutable(PGBOUNCER_BIN, 'pgbouncer');
  await requireExecutable(PSQL_BIN, 'postgresql-client');

  const port = await freePort();
  const withPort = setPgbouncerSettings(iniText, new Map([['listen_port', port]]));
  if (!withPort.ok) throw new Error(`startPgbouncer: cannot set listen_port: ${withPort.reason}: ${withPort.message}`);

  const dir = await mkdtemp(join(tmpdir(), 'poolpilot-pgbouncer-'));
  const iniPath = join(dir, 'pgbouncer.ini');
  const asRoot = process.getuid?.() === 0;
  await writeFile(iniPath, withPort.text, { mode: 0o644 });
  await writeFile(join(dir, 'userlist.txt'), `"${adminUser}" ""\n`, { mode: 0o644 });
  if (asRoot) await chmod(dir, 0o755);

  const args = asRoot ? ['-u', 'nobody', iniPath] : [iniPath];
  const child = spawn(PGBOUNCER_BIN, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log = (log + chunk).slice(-LOG_LIMIT);
  });
  const pid = child.pid;

  const psql = async (sql: string): Promise<string> => {
    const { stdout } = await execFileAsync(
      PSQL_BIN,
      [
        '-X',
        '-w',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        adminUser,
        '-d',
        'pgbouncer',
        '-A',
        '-F',
        '\x1f',
        '-P',
        'footer=off',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ],
      // No PGPASSWORD/PGSERVICE etc. from the caller's environment; fail fast.
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', PGCONNECT_TIMEOUT: '5' }, timeout: 15_000 },
    );
    return stdout;
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!(await waitForExit(child, 0))) {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, STOP_TIMEOUT_MS))) {
        child.kill('SIGKILL');
        await waitForExit(child, STOP_TIMEOUT_MS);
      }
    }
    await rm(dir, { recursive: true, force: true });
  };

  try {
    if (pid === undefined) throw new Error('spawn returned no pid');
    const deadline = performance.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`pgbouncer exited (${String(child.exitCode ?? child.signalCode)}) during startup`);
      }
      try {
        await psql('SHOW VERSION');
        break;
      } catch (error: unknown) {
        if (performance.now() > deadline)
          throw new Error(`pgbouncer not ready after ${READY_TIMEOUT_MS} ms: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } catch (error: unknown) {
    await stop();
    throw new Error(
      `startPgbouncer failed: ${error instanceof Error ? error.message : String(error)}\n--- pgbouncer log ---\n${log}`,
    );
  }

  const adminQuery = async (sql: string): Promise<AdminRow[]> => parseUnaligned(await psql(sql));
  return {
    port,
    pid,
    iniPath,
    dir,
    adminQuery,
    reload: async () => {
      await psql('RELOAD');
    },
    showConfig: async () => {
      const rows = await adminQuery('SHOW CONFIG');
      return new Map(rows.map((r) => [r.get('key') ?? '', r.get('value') ?? '']));
    },
    logs: () => log,
    stop,
  };
}

/**
 * A pgbouncer.ini for the demo database `app` on `pgPort` (listening on 127.0.0.1:6432, which
 * startPgbouncer replaces with a free port; trust auth with the `admin` console user), with
 * `settings` (pool_mode, pool sizes, …) appended to its [pgbouncer] section.
 */
export function appPgbouncerIni(pgPort: string, settings: readonly string[]): string {
  return [
    '[databases]',
    `app = host=127.0.0.1 port=${pgPort} dbname=app user=app`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    'listen_port = 6432',
    'unix_socket_dir =',
    'auth_type = trust',
    'auth_file = userlist.txt',
    'admin_users = admin',
    ...settings,
  ].join('\n');
}
