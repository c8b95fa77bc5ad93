/**
 * Real Prometheus exporters for integration tests, each on a fixed loopback port so that it can
 * be stopped and started again behind the same scrape target; both are Debian packages
 * (`make install` installs them):
 * - prometheus-pgbouncer-exporter, through test/support/debian-pgbouncer-exporter.py (which
 *   lets it read PgBouncer 1.18's SHOW STATS);
 * - prometheus-postgres-exporter.
 * stop() sends SIGTERM and waits for the exit; start() resolves once /metrics shows the exporter
 * reached its server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './local-env.js';
import { freePort } from './ports.js';
import { eventually } from './prometheus.js';

export interface RunningExporter {
  /** host:port of its /metrics. */
  readonly address: string;
  /** Its /metrics text. */
  metrics(): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface ExporterCommand {
  readonly binary: string;
  /** Its arguments to serve /metrics on `host`:`port`. */
  readonly args: (host: string, port: number) => string[];
  readonly env: Readonly<Record<string, string>>;
  /** Matches the /metrics text once the exporter has reached its server. */
  readonly up: RegExp;
}

async function startExporter(command: ExporterCommand): Promise<RunningExporter> {
  const host = '127.0.0.1';
  const port = await freePort();
  const address = `${host}:${String(port)}`;
  let child: ChildProcess | undefined;
  let log = '';
  const metrics = async (): Promise<string> => (await fetch(`http://${address}/metrics`)).text();
  const exporter: RunningExporter = {
    address,
    metrics,
    start: async () => {
      const started = spawn(command.binary, command.args(host, port), {
        env: { PATH: '/usr/bin:/bin', ...command.env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      started.stderr.setEncoding('utf8');
      started.stderr.on('data', (chunk: string) => {
        log = (log + chunk).slice(-16_384);
      });
      child = started;
      await eventually(
        async () => {
          if (started.exitCode !== null)
            throw new Error(`${command.binary} exited ${String(started.exitCode)}: ${log}`);
          return command.up.test(await metrics()) ? true : undefined;
        },
        20_000,
        `${command.binary} to show ${String(command.up)}`,
      );
    },
    stop: async () => {
      const running = child;
      child = undefined;
      if (running?.exitCode !== null || running.signalCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGTERM');
      await exited;
    },
  };
  await exporter.start();
  return exporter;
}

/**
 * Debian's prometheus-pgbouncer-exporter reading PgBouncer's admin console on 127.0.0.1:`port`
 * as `adminUser` (no password), serving on 127.0.0.1 only. It connects once, at start-up, and
 * exits when it cannot; it has no `up` metric, so any of its samples says it is connected.
 */
export function startPgbouncerExporter(port: number, adminUser: string): Promise<RunningExporter> {
  const packaged = '/usr/bin/prometheus-pgbouncer-exporter';
  if (!existsSync(packaged))
    throw new Error(`${packaged} is missing: run 'make install' (Debian package prometheus-pgbouncer-exporter)`);
  return startExporter({
    binary: '/usr/bin/python3',
    args: (host, listenPort) => [
      join(repoRoot, 'test/support/debian-pgbouncer-exporter.py'),
      '--host',
      host,
      '--port',
      String(listenPort),
      '--pgbouncer-host',
      '127.0.0.1',
      '--pgbouncer-port',
      String(port),
      '--pgbouncer-user',
      adminUser,
    ],
    env: {},
    up: /^pgbouncer_databases /m,
  });
}

/** Debian's postgres_exporter on PostgreSQL at 127.0.0.1:`port` as the superuser `postgres` (trust auth). */
export function startPostgresExporter(port: number): Promise<RunningExporter> {
  const binary = '/usr/bin/prometheus-postgres-exporter';
  if (!existsSync(binary))
    throw new Error(`${binary} is missing: run 'make install' (Debian package prometheus-postgres-exporter)`);
  return startExporter({
    binary,
    args: (host, listenPort) => [`--web.listen-address=${host}:${String(listenPort)}`],
    env: { DATA_SOURCE_NAME: `postgresql://postgres@127.0.0.1:${port}/postgres?sslmode=disable` },
    up: /^pg_up 1$/m,
  });
}
