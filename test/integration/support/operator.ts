import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  AppsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
} from '@kubernetes/client-node';
import axios from 'axios';
import { load } from 'js-yaml';
import { loadConfig } from '../../../src/config.js';
import { startController, type RunningController } from '../../../src/main.js';
import { readLocalEnv, repoRoot } from './local-env.js';

/** Installs (or updates) the CRDs from crds/ and waits until they are established. */
export function installCrds(): void {
  const kubeconfig = readLocalEnv().KUBECONFIG;
  execFileSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '-f', join(repoRoot, 'crds')],
    { stdio: 'pipe' },
  );
  execFileSync(
    'kubectl',
    ['--kubeconfig', kubeconfig, 'wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'],
    { stdio: 'pipe' },
  );
}

/** The operator, in this process, watching one namespace of the local control plane; resolves once its caches synced. */
export async function startOperator(
  namespace: string,
  prometheusUrl = readLocalEnv().PROMETHEUS_URL,
): Promise<RunningController> {
  const config = loadConfig(
    {
      kubeconfig: readLocalEnv().KUBECONFIG,
      namespace,
      'prometheus-url': prometheusUrl,
      'metrics-addr': '127.0.0.1:0',
      'health-addr': '127.0.0.1:0',
      'log-level': process.env.POOLPILOT_TEST_LOG_LEVEL ?? 'error',
    },
    {},
  );
  const operator = await startController(config);
  await operator.cachesSynced;
  return operator;
}

/** The HTTP status of the operator's /readyz: 200 once its caches synced, else 503. */
export async function readiness(operator: Pick<RunningController, 'healthPort'>): Promise<number> {
  return (
    await axios.get(`http://127.0.0.1:${operator.healthPort}/readyz`, { validateStatus: () => true, timeout: 5000 })
  ).status;
}

/**
 * The sum of the operator's own /metrics samples named `name` whose labels include `labels`
 * (0 when there is none).
 */
export async function operatorMetric(
  operator: Pick<RunningController, 'metricsPort'>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const { data } = await axios.get<string>(`http://127.0.0.1:${operator.metricsPort}/metrics`, {
    responseType: 'text',
    timeout: 5000,
  });
  const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  let sum = 0;
  for (const line of data.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const present = (match[2] ?? '').split(',');
    if (wanted.every((pair) => present.includes(pair))) sum += Number(match[3]);
  }
  return sum;
}

/** A sample from deploy/samples/, parsed. */
export function loadSample(file: string): KubernetesObject & { spec: Record<string, unknown> } {
  return load(readFileSync(join(repoRoot, 'deploy/samples', file), 'utf8')) as KubernetesObject & {
    spec: Record<string, unknown>;
  };
}

const policyApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies' } as const;
const budgetApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'connectionbudgets' } as const;

async function createCustom(
  kc: KubeConfig,
  api: typeof policyApi | typeof budgetApi,
  kind: string,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    ...api,
    namespace,
    body: { apiVersion: 'poolpilot.io/v1alpha1', kind, metadata: { name, namespace }, spec },
  });
}

export async function createPolicy(
  kc: KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await createCustom(kc, policyApi, 'PoolPolicy', namespace, name, spec);
}

export async function createBudget(
  kc: KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  await createCustom(kc, budgetApi, 'ConnectionBudget', namespace, name, spec);
}

export interface PolicyView {
  metadata: { resourceVersion: string; generation: number };
  spec: Record<string, unknown>;
  status?: {
    observedGeneration?: number;
    conditions?: Array<{ type: string; status: string; reason: string; message: string; observedGeneration?: number }>;
    current?: Record<string, number>;
    recommended?: Record<string, number>;
    observed?: Record<string, number | string>;
    lastChange?: { reason: string; changes: Array<{ setting: string; from: number; to: number }> };
    history?: unknown[];
  };
}

export async function getPolicy(kc: KubeConfig, namespace: string, name: string): Promise<PolicyView> {
  return (await kc
    .makeApiClient(CustomObjectsApi)
    .getNamespacedCustomObject({ ...policyApi, namespace, name })) as PolicyView;
}

export function condition(
  policy: PolicyView,
  type: string,
): { status: string; reason: string; message: string; observedGeneration?: number } | undefined {
  return policy.status?.conditions?.find((c) => c.type === type);
}

export function envOf(deployment: V1Deployment, container: string): Record<string, string | undefined> {
  const c = deployment.spec?.template.spec?.containers.find((x) => x.name === container);
  return Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
}

export async function getDeployment(kc: KubeConfig, namespace: string, name: string): Promise<V1Deployment> {
  return kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace });
}

/**
 * Stands in for the deployment controller (none runs here): whenever a Deployment in the
 * namespace has a generation its status has not observed, it marks that rollout complete.
 */
export function simulateRollouts(kc: KubeConfig, namespace: string): { stop(): void; completed(): number } {
  const apps = kc.makeApiClient(AppsV1Api);
  let completed = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      try {
        const list = await apps.listNamespacedDeployment({ namespace });
        for (const d of list.items) {
          const generation = d.metadata?.generation ?? 0;
          if ((d.status?.observedGeneration ?? 0) >= generation) continue;
          await completeRollout(kc, namespace, d.metadata?.name ?? '');
          completed++;
        }
      } catch {
        // the next tick retries
      } finally {
        busy = false;
      }
    })();
  }, 200);
  return {
    stop: () => {
      clearInterval(timer);
    },
    completed: () => completed,
  };
}

/**
 * Writes a Deployment status that says its latest generation is fully rolled out now. A test and
 * simulateRollouts may both complete the same rollout: a write that loses that race (409) reads
 * the Deployment again and writes once more.
 */
export async function completeRollout(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    try {
      await writeCompletedRollout(kc, namespace, name);
      return;
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 409) || attempt === attempts) throw error;
    }
  }
}

async function writeCompletedRollout(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  const apps = kc.makeApiClient(AppsV1Api);
  const d = await apps.readNamespacedDeployment({ name, namespace });
  const replicas = d.spec?.replicas ?? 1;
  const now = new Date();
  d.status = {
    observedGeneration: d.metadata?.generation ?? 1,
    replicas,
    updatedReplicas: replicas,
    readyReplicas: replicas,
    availableReplicas: replicas,
    conditions: [
      {
        type: 'Progressing',
        status: 'True',
        reason: 'NewReplicaSetAvailable',
        message: 'simulated by the test',
        lastUpdateTime: now,
        lastTransitionTime: now,
      },
    ],
  };
  await apps.replaceNamespacedDeploymentStatus({ name, namespace, body: d });
}
