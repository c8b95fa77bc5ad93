import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';

// Jest loads this file outside its module mapper, so it imports no project modules.
const repoRoot = joinPath(dirname(fileURLToPath(import.meta.url)), '..', '..');
const localStateDir = process.env.POOLPILOT_LOCAL ?? joinPath(repoRoot, '.local');

/** Stops the local control plane only if this test run started it. */
export default function globalTeardown(): void {
  const marker = joinPath(localStateDir, 'started-by-jest');
  if (!existsSync(marker)) return;
  rmSync(marker);
  execFileSync('bash', [joinPath(repoRoot, 'test/controlplane/local-down.sh')], { stdio: 'inherit' });
}
