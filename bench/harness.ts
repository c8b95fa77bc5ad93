/** Pieces both benchmarks use: timing, batching, the operator process's RSS and CPU, its metrics. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import axios from 'axios';
import { parseMetrics, type MetricSample } from './metrics-text.js';
import { repoRoot } from '../test/integration/support/local-env.js';
import type { OperatorProcess } from '../test/integration/support/process.js';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const log = (text: string): void => {
  process.stdout.write(`bench: ${text}\n`);
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
  });
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function inBatches<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const item = items[next++];
        if (item !== undefined) await work(item);
      }
    }),
  );
}

export function processStats(pid: number): { rssMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0); // utime + stime (fields 14, 15)
  return { rssMiB: rssKiB / 1024, cpuSeconds: ticks / 100 };
}

export async function scrape(port: number): Promise<MetricSample[]> {
  return parseMetrics((await axios.get<string>(`http://127.0.0.1:${port}/metrics`, { responseType: 'text' })).data);
}

/** The Node flags the image runs the operator with: the Dockerfile ENTRYPOINT's, between node and dist/cli.js. */
export function imageNodeFlags(): string[] {
  const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  const words: unknown = entrypoint === undefined ? undefined : JSON.parse(entrypoint);
  if (!Array.isArray(words) || !words.every((w) => typeof w === 'string') || !words.includes('dist/cli.js')) {
    throw new Error('Dockerfile: expected ENTRYPOINT ["<node>", <flags>..., "dist/cli.js"]');
  }
  return words.slice(1, words.indexOf('dist/cli.js'));
}

/**
 * The operator's Node flags: the image's, then BENCH_OPERATOR_NODE_OPTIONS (e.g. `--cpu-prof
 * --cpu-prof-dir=.local/prof --heapsnapshot-signal=SIGUSR2`). Passed as arguments, not as
 * NODE_OPTIONS, which refuses V8 flags such as --optimize-for-size.
 */
export function operatorNodeFlags(): string[] {
  const extra = (process.env.BENCH_OPERATOR_NODE_OPTIONS ?? '').split(/\s+/).filter((flag) => flag !== '');
  return [...imageNodeFlags(), ...extra];
}

/** SIGTERM (a graceful stop writes a `--cpu-prof` profile), then SIGKILL after 15 s. */
export async function stopOperator(operator: OperatorProcess): Promise<void> {
  if (operator.hasExited()) return;
  operator.child.kill('SIGTERM');
  const killer = setTimeout(() => operator.child.kill('SIGKILL'), 15_000);
  await operator.exited;
  clearTimeout(killer);
}
