import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { localStateDir, repoRoot } from './local-env.js';

/** What a plane of a test's own runs besides etcd, kube-apiserver and Prometheus. */
export interface OwnPlaneOptions {
  /** kube-controller-manager and kube-scheduler (local-up.sh CONTROLLERS=1). */
  readonly controllers: boolean;
  /** A node: containerd and a kubelet (local-up.sh NODE=1; implies controllers). */
  readonly node?: boolean;
}

/** A control plane that one test file started beside the shared one, in a state dir of its own. */
export interface OwnPlane {
  readonly stateDir: string;
  readonly kubeconfigPath: string;
  /** A KubeConfig for its admin. */
  readonly kc: KubeConfig;
  /** https://host:port; with a node the bridge's address, which its pods reach too. */
  readonly apiServerUrl: string;
  /** http://host:port of its own Prometheus (likewise). */
  readonly prometheusUrl: string;
  /** Its Prometheus's file_sd directory (for startScrapeTarget). */
  readonly prometheusTargetsDir: string;
  /** Stops exactly what it started (local-down.sh). */
  stop(): void;
}

/** How long local-up.sh may take when the binaries are cached (a beforeAll's timeout). */
export const OWN_PLANE_START_TIMEOUT_MS = 180_000;

/**
 * Whether the tests that run a node are wanted (POOLPILOT_NODE_TESTS=1). They need root, change
 * machine-wide settings while they run (a bridge, kernel tunables; local-down.sh puts them back)
 * and only one node may run on a machine at a time: `make test` runs them as root in its
 * test-node step, one suite after the other, and keeps them out of the parallel integration run.
 */
export const nodeTestsWanted = process.env.POOLPILOT_NODE_TESTS === '1';

/**
 * Builds an image (image/build.sh: the operator's from the Dockerfile, the demo app's from Debian
 * packages; cached by the hash of their inputs) and imports it into the plane's containerd, where
 * the kubelet finds it without a pull. Returns the image's name.
 */
export function loadImage(plane: OwnPlane, which: 'operator' | 'demo-workload'): string {
  const [image, archive] = execFileSync('bash', [join(repoRoot, 'image/build.sh'), 'archive', which], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .trim()
    .split('\n');
  if (image === undefined || archive === undefined) throw new Error('image/build.sh printed no image and archive');
  const address = join(plane.stateDir, 'node/containerd/containerd.sock');
  execFileSync('ctr', ['--address', address, '--namespace', 'k8s.io', 'images', 'import', archive], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return image;
}

/**
 * Installs the operator into the plane's cluster with test/controlplane/in-cluster.sh: the image
 * built and imported as above, then `kubectl apply -k` of an overlay on deploy/ that changes only
 * the image, the Prometheus URL and the API server's address; waits for the rollout. Returns the
 * image's name.
 */
export function installOperatorInCluster(plane: OwnPlane): string {
  return execFileSync('bash', [join(repoRoot, 'test/controlplane/in-cluster.sh')], {
    env: { ...process.env, POOLPILOT_LOCAL: plane.stateDir },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** How long building an image may take from cold (the operator's: the bases, `npm ci` twice). */
export const IMAGE_BUILD_TIMEOUT_MS = 600_000;

/**
 * Starts a plane under .local/<name>/ with test/controlplane/local-up.sh. The shared plane that
 * the other tests use has no controllers on purpose (they drive Deployment status by hand, which
 * a real deployment controller would overwrite), so a test that needs real controllers runs its
 * own. The state dir is per name, so a plane a killed run left behind is stopped and replaced.
 */
export function startOwnPlane(name: string, options: OwnPlaneOptions): OwnPlane {
  const stateDir = join(localStateDir, name);
  const env = {
    ...process.env,
    POOLPILOT_LOCAL: stateDir,
    CONTROLLERS: options.controllers ? '1' : '0',
    NODE: options.node === true ? '1' : '0',
  };
  const down = (): void => {
    execFileSync('bash', [join(repoRoot, 'test/controlplane/local-down.sh')], { env, stdio: 'inherit' });
  };
  try {
    execFileSync('bash', [join(repoRoot, 'test/controlplane/local-up.sh')], { env, stdio: 'inherit' });
  } catch (err) {
    // local-up.sh leaves what it started when a later component fails: stop it here, since the
    // test's afterAll has no plane to stop.
    down();
    throw err;
  }
  const kubeconfigPath = join(stateDir, 'kubeconfig');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const planeEnv = new Map(
    readFileSync(join(stateDir, 'env'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const),
  );
  const fromEnv = (key: string): string => {
    const value = planeEnv.get(key);
    if (value === undefined) throw new Error(`${join(stateDir, 'env')} has no ${key}`);
    return value;
  };
  return {
    stateDir,
    kubeconfigPath,
    kc,
    apiServerUrl: fromEnv('KUBE_APISERVER_URL'),
    prometheusUrl: fromEnv('PROMETHEUS_URL'),
    prometheusTargetsDir: fromEnv('PROMETHEUS_TARGETS_DIR'),
    stop: down,
  };
}
