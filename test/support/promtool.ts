/**
 * Runs promtool (Debian's `prometheus` package; `make install` installs it). A missing
 * binary fails the test with the package to install, never skips it.
 */
import { execFileSync } from 'node:child_process';

export interface PromtoolRun {
  readonly status: number;
  readonly output: string;
}

export function promtool(args: readonly string[], cwd?: string): PromtoolRun {
  try {
    const output = execFileSync('promtool', args, { cwd, encoding: 'utf8', stdio: 'pipe' });
    return { status: 0, output };
  } catch (err) {
    const e = err as { code?: string; status?: number | null; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('promtool is not on PATH: install the Debian package `prometheus` (`make install` does)');
    return { status: e.status ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
