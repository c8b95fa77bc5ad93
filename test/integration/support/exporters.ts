/**
 * Real Prometheus exporters for integration tests, each on a fixed loopback port so that it can
 * be stopped and started again behind the same scrape target:
 * - pgbouncer_exporter (prometheus-community, built from its Go module by
 *   test/controlplane/build.sh into ~/.cache/poolpilot; `make install` builds it);
 * - prometheus-postgres-exporter (the Debian package).
 * stop() sends SIGTERM and waits for the exit; start() resolves once /metrics shows the exporter
 * reached its server (`pgbouncer_up 1` / `pg_up 1`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
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
  readonly args: (address: string) => string[];
  readonly env: Readonly<Record<string, string>>;
  /** The sample line that says the exporter reached its server. */
  readonly upLine: string;
}

async function startExporter(command: ExporterCommand): Promise<RunningExporter> {
  const address = `127.0.0.1:${await freePort()}`;
  let child: ChildProcess | undefined;
  let log = '';
  const metrics = async (): Promise<string> => (await fetch(`http://${address}/metrics`)).text();
  const exporter: RunningExporter = {
    address,
    metrics,
    start: async () => {
      const started = spawn(command.binary, command.args(address), { env: { PATH: '/usr/bin:/bin', ...command.env }, stdio: ['ignore', 'ignore', 'pipe'] });
      started.stderr.setEncoding('utf8');
      started.stderr.on('data', (chunk: string) => { log = (log + chunk).slice(-16_384); });
      child = started;
      await eventually(async () => {
        if (started.exitCode !== null) throw new Error(`${command.binary} exited ${String(started.exitCode)}: ${log}`);
        return (await metrics()).split('\n').includes(command.upLine) ? true : undefined;
      }, 20_000, `${command.binary} to show ${command.upLine}`);
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

/** pgbouncer_exporter's binary in the build cache; throws with what to run when it is missing. */
export function pgbouncerExporterBinary(): string {
  const path = execFileSync('bash', [join(repoRoot, 'test/controlplane/build.sh'), 'path', 'pgbouncer_exporter'], { encoding: 'utf8' }).trim();
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'make install' (it builds pgbouncer_exporter with test/controlplane/build.sh exporters)`);
  return path;
}

/** pgbouncer_exporter reading PgBouncer's admin console on 127.0.0.1:`port` as `adminUser` (no password). */
export function startPgbouncerExporter(port: number, adminUser: string): Promise<RunningExporter> {
  return startExporter({
    binary: pgbouncerExporterBinary(),
    args: (address) => [`--pgBouncer.connectionString=postgres://${adminUser}@127.0.0.1:${port}/pgbouncer?sslmode=disable`, `--web.listen-address=${address}`],
    env: {},
    upLine: 'pgbouncer_up 1',
  });
}

/** Debian's postgres_exporter on PostgreSQL at 127.0.0.1:`port` as the superuser `postgres` (trust auth). */
export function startPostgresExporter(port: number): Promise<RunningExporter> {
  const binary = '/usr/bin/prometheus-postgres-exporter';
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run 'make install' (Debian package prometheus-postgres-exporter)`);
  return startExporter({
    binary,
    args: (address) => [`--web.listen-address=${address}`],
    env: { DATA_SOURCE_NAME: `postgresql://postgres@127.0.0.1:${port}/postgres?sslmode=disable` },
    upLine: 'pg_up 1',
  });
}
