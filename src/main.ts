/**
 * Composition root: config → clients → informers → work queue → workers → HTTP servers →
 * signals. No decisions here.
 */
import type { KubernetesObject, V1ConfigMap, V1Deployment } from '@kubernetes/client-node';
import { KubeClient, loadKubeConfig } from './adapters/kube.js';
import type { OperatorConfig } from './config.js';
import { PoolPolicyReconciler, POOLPOLICY_RESOURCE } from './controllers/poolpolicy/reconciler.js';
import { PrometheusUtilizationSource } from './controllers/poolpolicy/utilization.js';
import { keyOf, policiesReferring, type PolicyKey } from './controllers/poolpolicy/watches.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, type OperatorMetrics } from './observability/metrics.js';
import { startHttpServer } from './observability/server.js';
import { systemClock } from './runtime/clock.js';
import { runWorkers } from './runtime/controller.js';
import { ResilientInformer } from './runtime/informer.js';
import { ExponentialBackoffRateLimiter } from './runtime/rate-limiter.js';
import { WorkQueue } from './runtime/workqueue.js';

export type Command = 'run' | 'once';

interface Informers {
  readonly policies: ResilientInformer<KubernetesObject>;
  readonly deployments: ResilientInformer<V1Deployment>;
  readonly configMaps: ResilientInformer<V1ConfigMap>;
}

function watchPath(namespace: string | undefined, prefix: string, plural: string): string {
  return namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${namespace}/${plural}`;
}

function createInformers(kube: KubeClient, config: OperatorConfig, log: Logger): Informers {
  const backoff = new ExponentialBackoffRateLimiter({ baseDelayMs: 1000, maxDelayMs: 60_000 });
  const onError = (what: string) => (err: unknown, restartInMs: number): void => {
    log.warn({ err, informer: what, restartInMs }, 'informer stopped; restarting');
  };
  const ns = config.namespace;
  const { group, version, plural } = POOLPOLICY_RESOURCE;
  return {
    policies: new ResilientInformer({ kubeConfig: kube.kubeConfig, path: watchPath(ns, `/apis/${group}/${version}`, plural), list: () => kube.listCustom(POOLPOLICY_RESOURCE, ns), clock: systemClock, backoff, onError: onError('poolpolicies') }),
    deployments: new ResilientInformer({ kubeConfig: kube.kubeConfig, path: watchPath(ns, '/apis/apps/v1', 'deployments'), list: () => kube.listDeployments(ns), clock: systemClock, backoff, onError: onError('deployments') }),
    configMaps: new ResilientInformer({ kubeConfig: kube.kubeConfig, path: watchPath(ns, '/api/v1', 'configmaps'), list: () => kube.listConfigMaps(ns), clock: systemClock, backoff, onError: onError('configmaps') }),
  };
}

function createReconciler(kube: KubeClient, informers: Informers, config: OperatorConfig, log: Logger, metrics: OperatorMetrics): PoolPolicyReconciler {
  return new PoolPolicyReconciler({
    policies: informers.policies,
    deployments: informers.deployments,
    configMaps: informers.configMaps,
    writer: kube,
    utilization: new PrometheusUtilizationSource({ defaultUrl: config.prometheusUrl, clock: systemClock, metrics }),
    clock: systemClock,
    log,
    onPlan: (key, plan) => {
      const [namespace = '', policy = ''] = key.split('/');
      for (const [kind, values] of [['current', plan.status.current], ['recommended', plan.status.recommended]] as const) {
        for (const [setting, value] of Object.entries(values ?? {})) metrics.settingValue.set({ namespace, policy, setting, kind }, value);
      }
      for (const change of plan.changes) metrics.changes.inc({ namespace, policy, setting: change.setting, direction: change.to > change.from ? 'up' : 'down' });
    },
  });
}

async function startInformers(informers: Informers): Promise<void> {
  await Promise.all([informers.policies.start(), informers.deployments.start(), informers.configMaps.start()]);
}

async function stopInformers(informers: Informers): Promise<void> {
  await Promise.all([informers.policies.stop(), informers.deployments.stop(), informers.configMaps.stop()]);
}

export async function main(command: Command, config: OperatorConfig): Promise<number> {
  const log = createLogger(config.logLevel);
  if (command === 'run') return runUntilSignalled(config, log);
  const kube = new KubeClient(loadKubeConfig(config.kubeconfig));
  const informers = createInformers(kube, config, log);
  return runOnce(informers, createReconciler(kube, informers, config, log, createMetrics()), log);
}

/** Reconciles every policy once and prints one JSON line per policy. */
async function runOnce(informers: Informers, reconciler: PoolPolicyReconciler, log: Logger): Promise<number> {
  await startInformers(informers);
  let failures = 0;
  try {
    for (const policy of informers.policies.list()) {
      const key = keyOf(policy);
      if (!key) continue;
      try {
        const outcome = await reconciler.reconcile(key);
        process.stdout.write(`${JSON.stringify(outcome.report ?? { key })}\n`);
      } catch (err) {
        failures++;
        log.error({ err, policy: key }, 'reconcile failed');
      }
    }
  } finally {
    await stopInformers(informers);
  }
  return failures === 0 ? 0 : 1;
}

/** A running controller; `stop()` drains in-flight reconciles, then stops watches and servers. */
export interface RunningController {
  readonly healthPort: number;
  readonly metricsPort: number;
  stop(): Promise<void>;
}

/** Starts servers, informers and workers; resolves once the caches have synced. */
export async function startController(config: OperatorConfig, log: Logger = createLogger(config.logLevel)): Promise<RunningController> {
  const metrics = createMetrics();
  const kube = new KubeClient(loadKubeConfig(config.kubeconfig));
  const informers = createInformers(kube, config, log);
  const reconciler = createReconciler(kube, informers, config, log, metrics);
  const queue = new WorkQueue<PolicyKey>({ clock: systemClock });
  informers.policies.onChange((policy) => {
    const key = keyOf(policy);
    if (!key) return;
    if (informers.policies.get(policy.metadata?.name ?? '', policy.metadata?.namespace)) queue.add(key);
    else queue.remove(key);
  });
  informers.deployments.onChange((deployment) => { for (const key of policiesReferring(informers.policies.list(), deployment, 'Deployment')) queue.add(key); });
  informers.configMaps.onChange((configMap) => { for (const key of policiesReferring(informers.policies.list(), configMap, 'ConfigMap')) queue.add(key); });

  const synced = (): boolean => informers.policies.synced && informers.deployments.synced && informers.configMaps.synced;
  const health = await startHttpServer(config.healthAddr, { ready: synced });
  const metricsServer = await startHttpServer(config.metricsAddr, { registry: metrics.registry });
  log.info({ healthPort: health.port, metricsPort: metricsServer.port, namespace: config.namespace ?? '(all)' }, 'poolpilot starting');

  await startInformers(informers);
  for (const policy of informers.policies.list()) {
    const key = keyOf(policy);
    if (key) queue.add(key);
  }
  const depthTimer = setInterval(() => { metrics.queueDepth.set(queue.len()); }, 1000);
  const workers = runWorkers<PolicyKey>({
    queue,
    workers: config.workers,
    clock: systemClock,
    reconcile: (key) => reconciler.reconcile(key),
    onError: (key, err) => { log.error({ err, policy: key }, 'reconcile failed; retrying with backoff'); },
    observe: ({ result, durationMs }) => {
      metrics.reconciles.inc({ result });
      metrics.reconcileDuration.observe(durationMs / 1000);
    },
  });
  log.info('caches synced; reconciling');
  return {
    healthPort: health.port,
    metricsPort: metricsServer.port,
    stop: async () => {
      clearInterval(depthTimer);
      await workers.stop();
      await stopInformers(informers);
      await Promise.all([health.close(), metricsServer.close()]);
    },
  };
}

async function runUntilSignalled(config: OperatorConfig, log: Logger): Promise<number> {
  const controller = await startController(config, log);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => { resolve('SIGTERM'); });
    process.once('SIGINT', () => { resolve('SIGINT'); });
  });
  log.info({ signal }, 'shutting down');
  await controller.stop();
  return 0;
}
