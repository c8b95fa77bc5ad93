import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join as joinPath } from 'node:path';
import { fileURLToPath } from 'node:url';

// Jest loads this file outside its module mapper, so it imports no project modules.
const repoRoot = joinPath(dirname(fileURLToPath(import.meta.url)), '..', '..');
const localStateDir = process.env.POOLPILOT_LOCAL ?? joinPath(repoRoot, '.local');

const startedMarker = joinPath(localStateDir, 'started-by-jest');

/**
 * Starts the local control plane (etcd, kube-apiserver, Prometheus) unless one is already up;
 * local-up.sh is idempotent. Remembers whether this run started it, so the teardown stops only
 * what it started.
 */
export default function globalSetup(): void {
  const alreadyUp = existsSync(joinPath(localStateDir, 'env'));
  execFileSync('bash', [joinPath(repoRoot, 'test/controlplane/local-up.sh')], { stdio: 'inherit' });
  if (!alreadyUp) execFileSync('touch', [startedMarker]);
}
