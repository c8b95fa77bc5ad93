import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { repoRoot } from './local-env.js';

/** One JSON log line of the operator (pino). */
export interface LogLine {
  readonly msg?: string;
  readonly level?: number;
  readonly [field: string]: unknown;
}

/** An operator process (`node dist/cli.js …`) whose stdout log lines are collected. */
export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed stdout lines so far, in order (non-JSON lines are kept as `{ msg: <text> }`). */
  readonly lines: LogLine[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (null if killed by a signal) and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
}

/**
 * Starts `node <nodeFlags> dist/cli.js <args>` with the repository's Node (node_modules/.bin/node),
 * through `launcher` when given (command words that `exec` the rest, keeping the PID).
 * The caller must build first and must kill the process (SIGKILL in afterAll is enough).
 */
export function spawnOperator(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  nodeFlags: readonly string[] = [],
  launcher: readonly string[] = [],
): OperatorProcess {
  const command = [join(repoRoot, 'node_modules/.bin/node'), ...nodeFlags, join(repoRoot, 'dist/cli.js'), ...args];
  const [program = '', ...programArgs] = [...launcher, ...command];
  const child = spawn(program, programArgs, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let pending = '';
  let stderr = '';
  let exited = false;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (text.trim() === '') continue;
      try {
        lines.push(JSON.parse(text) as LogLine);
      } catch {
        lines.push({ msg: text });
      }
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${args.join(' ')}`);
  return { child, pid: child.pid, lines, stderr: () => stderr, exited: done, hasExited: () => exited };
}

/** Sends SIGKILL unless the process has already exited; waits for the exit. */
export async function killHard(proc: OperatorProcess): Promise<void> {
  if (proc.hasExited()) return;
  process.kill(proc.pid, 'SIGKILL');
  await proc.exited;
}

/**
 * An integration file's teardown: SIGTERM to each child process still running (waiting for it to
 * exit), then the cleanups in reverse order of registration.
 */
export async function tearDown(
  children: readonly ChildProcess[],
  cleanups: ReadonlyArray<() => unknown>,
): Promise<void> {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  }
  for (const cleanup of [...cleanups].reverse()) await cleanup();
}
