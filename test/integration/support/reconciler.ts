/**
 * The PoolPolicy reconciler driven directly (no work queue, no workers) against the real API
 * server and Prometheus, with real informer caches, and with a writer a test may wrap to force a
 * race (an edit just before a write) or a crash (a write that fails once) deterministically.
 */
import {
  makeInformer,
  type KubernetesObject,
  type ListPromise,
  type V1ConfigMap,
  type V1Deployment,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import pino from 'pino';
import { KubeClient, loadKubeConfig } from '../../../src/adapters/kube.js';
import {
  PoolPolicyReconciler,
  POOLPOLICY_RESOURCE,
  type PolicyWriter,
} from '../../../src/controllers/poolpolicy/reconciler.js';
import { PrometheusUtilizationSource } from '../../../src/controllers/poolpolicy/utilization.js';
import { systemClock } from '../../../src/runtime/clock.js';
import { POLICY_INDEXERS } from '../../../src/controllers/indexes.js';
import { ResilientInformer, type Indexers } from '../../../src/runtime/informer.js';
import { ExponentialBackoffRateLimiter } from '../../../src/runtime/rate-limiter.js';
import { MemoryStore } from '../../support/memory-store.js';
import { readLocalEnv } from './local-env.js';

export interface ReconcilerHarness {
  readonly reconciler: PoolPolicyReconciler;
  readonly kube: KubeClient;
  readonly policies: ResilientInformer<KubernetesObject>;
  readonly deployments: ResilientInformer<V1Deployment>;
  readonly configMaps: ResilientInformer<V1ConfigMap>;
  /** Stops the caches; idempotent. */
  stop(): Promise<void>;
}

/** Starts caches of one namespace and a reconciler writing through `wrap(kube)`. */
export async function startReconciler(
  namespace: string,
  wrap: (kube: KubeClient) => PolicyWriter = (kube) => kube,
): Promise<ReconcilerHarness> {
  const env = readLocalEnv();
  const kube = new KubeClient(loadKubeConfig(env.KUBECONFIG));
  const backoff = new ExponentialBackoffRateLimiter({ baseDelayMs: 500, maxDelayMs: 5000 });
  const { group, version, plural } = POOLPOLICY_RESOURCE;
  const informer = <T extends KubernetesObject>(
    path: string,
    list: ListPromise<T>,
    indexers?: Indexers<T>,
  ): ResilientInformer<T> =>
    new ResilientInformer({
      informer: makeInformer(kube.kubeConfig, path, list),
      path,
      clock: systemClock,
      backoff,
      ...(indexers ? { indexers } : {}),
    });
  const policies = informer(
    `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
    () => kube.listCustom(POOLPOLICY_RESOURCE, namespace),
    POLICY_INDEXERS,
  );
  const deployments = informer(`/apis/apps/v1/namespaces/${namespace}/deployments`, () =>
    kube.listDeployments(namespace),
  );
  const configMaps = informer(`/api/v1/namespaces/${namespace}/configmaps`, () => kube.listConfigMaps(namespace));
  await Promise.all([policies.start(), deployments.start(), configMaps.start()]);
  const reconciler = new PoolPolicyReconciler({
    // No ConnectionBudget support here: budgets and HPAs are never read.
    stores: {
      policies,
      deployments,
      configMaps,
      budgets: new MemoryStore(),
      hpas: new MemoryStore<V2HorizontalPodAutoscaler>(),
    },
    writer: wrap(kube),
    utilization: new PrometheusUtilizationSource({ defaultUrl: env.PROMETHEUS_URL, clock: systemClock }),
    clock: systemClock,
    log: pino({ level: process.env.POOLPILOT_TEST_LOG_LEVEL ?? 'silent' }),
  });
  let stopped: Promise<void> | undefined;
  return {
    reconciler,
    kube,
    policies,
    deployments,
    configMaps,
    stop: () => {
      stopped ??= Promise.all([policies.stop(), deployments.stop(), configMaps.stop()]).then(() => undefined);
      return stopped;
    },
  };
}

/** Polls (20 ms) until the informer holds `name` at least as new as `resourceVersion`. */
export async function cacheHas<T extends KubernetesObject>(
  store: ResilientInformer<T>,
  namespace: string,
  name: string,
  check: (obj: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const obj = store.get(name, namespace);
    if (obj && check(obj)) return obj;
    if (Date.now() > deadline) throw new Error(`the cache never showed the expected ${namespace}/${name}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
