import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Repository root, from this file's location (test/integration/support/); POOLPILOT_REPO_ROOT
 * overrides it for the benchmarks, which run this file compiled elsewhere.
 */
export const repoRoot =
  process.env.POOLPILOT_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const localStateDir = process.env.POOLPILOT_LOCAL ?? join(repoRoot, '.local');

export interface LocalEnv {
  readonly KUBECONFIG: string;
  readonly KUBE_APISERVER_URL: string;
  readonly PROMETHEUS_URL: string;
  readonly PROMETHEUS_TARGETS_DIR: string;
}

/** Reads .local/env, written by test/controlplane/local-up.sh. */
export function readLocalEnv(): LocalEnv {
  const path = join(localStateDir, 'env');
  const values = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const get = (key: keyof LocalEnv): string => {
    const value = values.get(key);
    if (value === undefined) throw new Error(`${path} has no ${key}: run 'make local-up' again`);
    return value;
  };
  return {
    KUBECONFIG: get('KUBECONFIG'),
    KUBE_APISERVER_URL: get('KUBE_APISERVER_URL'),
    PROMETHEUS_URL: get('PROMETHEUS_URL'),
    PROMETHEUS_TARGETS_DIR: get('PROMETHEUS_TARGETS_DIR'),
  };
}
