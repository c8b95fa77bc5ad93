import { cpus, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../test/integration/support/local-env.js';

/** The machine, as results.md states it next to the numbers. */
export function machineDescription(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, kube-apiserver v1.32.13, Prometheus 2.42 (Debian)`;
}

/** Replaces (or appends) the `## <title>` section of bench/results.md. */
export function writeResultsSection(title: string, body: string): void {
  const path = join(repoRoot, 'bench', 'results.md');
  const current = existsSync(path)
    ? readFileSync(path, 'utf8')
    : '# Benchmark results\n\nWritten by `make bench`; each section is replaced when its benchmark runs again.\n';
  const heading = `## ${title}\n`;
  const start = current.indexOf(heading);
  const section = `${heading}\n${body}\n`;
  let next: string;
  if (start < 0) next = `${current.trimEnd()}\n\n${section}`;
  else {
    const end = current.indexOf('\n## ', start + heading.length);
    // The blank line before the next heading went with the old section.
    next = current.slice(0, start) + section + (end < 0 ? '' : `\n${current.slice(end + 1)}`);
  }
  writeFileSync(path, next);
}

/** Prints the rows as a table and writes them as the `## <title>` section of bench/results.md. */
export function report(title: string, intro: string, rows: ReadonlyArray<readonly [string, string]>): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
  writeResultsSection(
    title,
    [intro, '', '| measure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n'),
  );
}
