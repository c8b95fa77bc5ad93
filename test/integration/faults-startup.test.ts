import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import {
  CoreV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type V1PolicyRule,
  type V1Role,
} from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { loadConfig } from '../../src/config.js';
import { startController, type RunningController } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
  serviceAccountKubeconfig,
} from './support/kube.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import {
  condition,
  createPolicy,
  getPolicy,
  installCrds,
  operatorMetric,
  readiness,
  type PolicyView,
} from './support/operator.js';
import { eventually } from './support/prometheus.js';

// The operator started against an API server it cannot read (yet), on the real control plane:
// (a) kube-apiserver is down (killed by test/controlplane/restart.sh --stop, started again with
//     --start: same ports, data and kubeconfig);
// (b) its ServiceAccount's Role (deploy/namespaced/role.yaml's rules) lacks `list` on Deployments.
// Each time: /readyz says not ready, nothing is reconciled and no status written, the restart
// delays grow; after the repair the very next attempt succeeds (ready within one backoff) and the
// policy is reconciled against its real Deployment, never reported TargetNotFound.

const execFileAsync = promisify(execFile);
const RESOURCES = [
  'poolpolicies',
  'connectionbudgets',
  'deployments',
  'configmaps',
  'horizontalpodautoscalers',
] as const;

async function apiServer(action: '--stop' | '--start'): Promise<void> {
  const args = action === '--stop' ? ['--stop', '--kill'] : ['--start'];
  await execFileAsync('bash', [join(repoRoot, 'test/controlplane/restart.sh'), 'kube-apiserver', ...args], {
    timeout: 120_000,
  });
}

/** An operator on one namespace, its log lines (level warn and up) parsed. */
async function startLoggedOperator(
  namespace: string,
  kubeconfig: string,
): Promise<{ operator: RunningController; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const config = loadConfig(
    {
      kubeconfig,
      namespace,
      'prometheus-url': readLocalEnv().PROMETHEUS_URL,
      'metrics-addr': '127.0.0.1:0',
      'health-addr': '127.0.0.1:0',
      'log-level': 'warn',
    },
    {},
  );
  return { operator: await startController(config, createLogger('warn', sink)), logs };
}

/** The restart delays the operator announced for one informer, in order. */
function restartDelays(logs: ReadonlyArray<Record<string, unknown>>, resource: string): unknown[] {
  return logs
    .filter((l) => l.msg === 'informer failed; restarting' && l.informer === resource)
    .map((l) => l.restartInMs);
}

async function failures(operator: RunningController, resource: string): Promise<number> {
  return operatorMetric(operator, 'poolpilot_informer_failures_total', { resource });
}

async function app(kc: KubeConfig, namespace: string): Promise<void> {
  await createDeployment(
    kc,
    namespace,
    deploymentManifest('app', [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]),
  );
  await createPolicy(kc, namespace, 'app', {
    targetRef: { name: 'app', container: 'app' },
    interval: '1s',
    database: { poolSize: { min: 10, max: 40 }, utilization: 'vector(50)' },
  });
}

async function readyStatus(kc: KubeConfig, namespace: string): Promise<PolicyView> {
  return eventually(
    async () => {
      const p = await getPolicy(kc, namespace, 'app');
      return condition(p, 'Ready') === undefined ? undefined : p;
    },
    60_000,
    'a Ready condition in the policy status',
  );
}

describe('starting the operator against an API server it cannot read yet', () => {
  let kc: KubeConfig;
  const namespaces: string[] = [];
  let operator: RunningController | undefined;
  let tmp: string;

  beforeAll(() => {
    kc = adminKubeConfig();
    installCrds();
    tmp = mkdtempSync(join(tmpdir(), 'poolpilot-startup-'));
  });

  afterEach(async () => {
    await operator?.stop();
    operator = undefined;
    await apiServer('--start');
  });

  afterAll(async () => {
    for (const namespace of namespaces) await deleteTestNamespace(kc, namespace);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('kube-apiserver down at start: not ready, nothing reconciled, growing restart delays; ready within one backoff once it is back, and the policy reconciled', async () => {
    const namespace = await createTestNamespace(kc, 'startup-down');
    namespaces.push(namespace);
    await app(kc, namespace);
    await apiServer('--stop');

    const started = await startLoggedOperator(namespace, readLocalEnv().KUBECONFIG);
    const running = started.operator;
    operator = running;
    // Facts first: every informer has failed three times (1 s, 2 s, then 4 s to wait).
    await eventually(
      async () => {
        const counts = await Promise.all(RESOURCES.map((r) => failures(running, r)));
        return counts.every((n) => n >= 3) ? true : undefined;
      },
      60_000,
      'three failures of every informer',
    );
    expect(await readiness(running)).toBe(503);
    expect(await operatorMetric(running, 'poolpilot_informer_synced')).toBe(0);
    expect(await operatorMetric(running, 'poolpilot_reconciles_total')).toBe(0);
    for (const resource of RESOURCES)
      expect(restartDelays(started.logs, resource).slice(0, 3)).toEqual([1000, 2000, 4000]);

    const failuresAtRepair = await Promise.all(RESOURCES.map((r) => failures(running, r)));
    await apiServer('--start');
    await eventually(
      async () => ((await readiness(running)) === 200 ? true : undefined),
      90_000,
      '/readyz 200 after the API server is back',
    );
    await running.cachesSynced;
    // Within one backoff of the repair: the attempt due next succeeded. (One attempt may still
    // fail if it raced the API server's last readiness steps.)
    const failuresAfter = await Promise.all(RESOURCES.map((r) => failures(running, r)));
    failuresAfter.forEach((n, i) => {
      expect(n - (failuresAtRepair[i] ?? 0)).toBeLessThanOrEqual(1);
    });
    expect(await operatorMetric(running, 'poolpilot_informer_synced')).toBe(RESOURCES.length);

    const policy = await readyStatus(kc, namespace);
    expect(condition(policy, 'Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
  });

  it('RBAC without `list deployments`: not ready, no status written, nothing reconciled; once granted, ready within one backoff and the policy reconciled', async () => {
    const namespace = await createTestNamespace(kc, 'startup-rbac');
    namespaces.push(namespace);
    await app(kc, namespace);
    // The operator's own namespaced Role (deploy/namespaced/role.yaml), minus one verb.
    const granted = (load(readFileSync(join(repoRoot, 'deploy/namespaced/role.yaml'), 'utf8')) as V1Role).rules ?? [];
    const withoutListDeployments: V1PolicyRule[] = granted.map((rule) =>
      rule.resources?.includes('deployments') === true
        ? { apiGroups: rule.apiGroups, resources: rule.resources, verbs: rule.verbs.filter((v) => v !== 'list') }
        : rule,
    );
    expect(withoutListDeployments).not.toEqual(granted);
    await kc
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'poolpilot' } } });
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: { metadata: { name: 'poolpilot' }, rules: withoutListDeployments },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'poolpilot' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'poolpilot' },
        subjects: [{ kind: 'ServiceAccount', name: 'poolpilot', namespace }],
      },
    });

    const started = await startLoggedOperator(
      namespace,
      await serviceAccountKubeconfig(kc, namespace, 'poolpilot', tmp),
    );
    const running = started.operator;
    operator = running;
    // Facts first: the other four caches hold their objects (the policy among them), and the
    // Deployment informer has been refused three times.
    await eventually(
      async () => {
        const others = await Promise.all(
          RESOURCES.filter((r) => r !== 'deployments').map((r) =>
            operatorMetric(running, 'poolpilot_informer_synced', { resource: r }),
          ),
        );
        return others.every((v) => v === 1) && (await failures(running, 'deployments')) >= 3 ? true : undefined;
      },
      60_000,
      'four informers synced and three failures of the Deployment informer',
    );
    expect(await readiness(running)).toBe(503);
    expect(await operatorMetric(running, 'poolpilot_informer_synced', { resource: 'deployments' })).toBe(0);
    expect(await operatorMetric(running, 'poolpilot_reconciles_total')).toBe(0);
    expect((await getPolicy(kc, namespace, 'app')).status).toBeUndefined();
    expect(restartDelays(started.logs, 'deployments').slice(0, 3)).toEqual([1000, 2000, 4000]);
    const refusal = started.logs.find((l) => l.informer === 'deployments');
    expect(refusal?.error).toMatch(/forbidden.*cannot list resource .*deployments/);

    const failuresAtRepair = await failures(running, 'deployments');
    await rbac.replaceNamespacedRole({
      name: 'poolpilot',
      namespace,
      body: { metadata: { name: 'poolpilot', namespace }, rules: granted },
    });
    await eventually(
      async () => ((await readiness(running)) === 200 ? true : undefined),
      90_000,
      '/readyz 200 once list is granted',
    );
    expect((await failures(running, 'deployments')) - failuresAtRepair).toBeLessThanOrEqual(1);

    const policy = await readyStatus(kc, namespace);
    expect(condition(policy, 'Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
  });
});
