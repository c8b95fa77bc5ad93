/**
 * Composition root: config → clients → informers → work queue → workers → HTTP servers →
 * signals. No decisions here.
 */
import { CoordinationV1Api, makeInformer, type KubernetesObject, type ListPromise, type V1ConfigMap, type V1Deployment, type V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { KubeClient, loadKubeConfig } from './adapters/kube.js';
import { secretReader } from './adapters/secrets.js';
import type { OperatorConfig } from './config.js';
import { PoolPolicyReconciler, POOLPOLICY_RESOURCE } from './controllers/poolpolicy/reconciler.js';
import { PrometheusUtilizationSource } from './controllers/poolpolicy/utilization.js';
import { budgetKeyOf, budgetPeers, keyOf, policiesReferring, type PolicyKey } from './controllers/poolpolicy/watches.js';
import { AppliedLedger } from './controllers/connectionbudget/facts.js';
import { CONNECTIONBUDGET_RESOURCE, ConnectionBudgetReconciler } from './controllers/connectionbudget/reconciler.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, PolicyGauge, type OperatorMetrics } from './observability/metrics.js';
import { startHttpServer } from './observability/server.js';
import { systemClock } from './runtime/clock.js';
import { runWorkers, type RunningWorkers } from './runtime/controller.js';
import { defaultIdentity, LeaderElector } from './runtime/leader-election.js';
import { ResilientInformer } from './runtime/informer.js';
import { ExponentialBackoffRateLimiter } from './runtime/rate-limiter.js';
import { WorkQueue, type WorkQueueSizes } from './runtime/workqueue.js';

export type Command = 'run' | 'once';

interface Informers {
  readonly policies: ResilientInformer<KubernetesObject>;
  readonly budgets: ResilientInformer<KubernetesObject>;
  readonly deployments: ResilientInformer<V1Deployment>;
  readonly configMaps: ResilientInformer<V1ConfigMap>;
  readonly hpas: ResilientInformer<V2HorizontalPodAutoscaler>;
}

function watchPath(namespace: string | undefined, prefix: string, plural: string): string {
  return namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${namespace}/${plural}`;
}

function createInformers(kube: KubeClient, config: OperatorConfig, log: Logger, metrics: OperatorMetrics): Informers {
  const backoff = new ExponentialBackoffRateLimiter({ baseDelayMs: 1000, maxDelayMs: 60_000 });
  const informer = <T extends KubernetesObject>(resource: string, path: string, list: ListPromise<T>): ResilientInformer<T> => {
    metrics.informerSynced.set({ resource }, 0);
    return new ResilientInformer({
      informer: makeInformer(kube.kubeConfig, path, list),
      path,
      clock: systemClock,
      backoff,
      onError: (err, restartInMs) => {
        metrics.informerFailures.inc({ resource });
        log.warn({ err, informer: resource, restartInMs }, 'informer failed; restarting');
      },
      onSynced: () => { metrics.informerSynced.set({ resource }, 1); },
    });
  };
  const ns = config.namespace;
  const { group, version, plural } = POOLPOLICY_RESOURCE;
  return {
    policies: informer(plural, watchPath(ns, `/apis/${group}/${version}`, plural), () => kube.listCustom(POOLPOLICY_RESOURCE, ns)),
    deployments: informer('deployments', watchPath(ns, '/apis/apps/v1', 'deployments'), () => kube.listDeployments(ns)),
    configMaps: informer('configmaps', watchPath(ns, '/api/v1', 'configmaps'), () => kube.listConfigMaps(ns)),
    budgets: informer(CONNECTIONBUDGET_RESOURCE.plural, watchPath(ns, `/apis/${group}/${version}`, CONNECTIONBUDGET_RESOURCE.plural), () => kube.listCustom(CONNECTIONBUDGET_RESOURCE, ns)),
    hpas: informer('horizontalpodautoscalers', watchPath(ns, '/apis/autoscaling/v2', 'horizontalpodautoscalers'), () => kube.listHorizontalPodAutoscalers(ns)),
  };
}

function createReconciler(kube: KubeClient, informers: Informers, utilization: PrometheusUtilizationSource, ledger: AppliedLedger, log: Logger, metrics: OperatorMetrics): PoolPolicyReconciler {
  const conditions = new PolicyGauge(metrics.policyCondition);
  const settings = new PolicyGauge(metrics.settingValue);
  informers.policies.onChange((policy) => {
    const key = keyOf(policy);
    if (key && !informers.policies.get(policy.metadata?.name ?? '', policy.metadata?.namespace)) {
      conditions.forget(key);
      settings.forget(key);
    }
  });
  return new PoolPolicyReconciler({
    policies: informers.policies,
    deployments: informers.deployments,
    configMaps: informers.configMaps,
    writer: kube,
    utilization,
    budget: { budgets: informers.budgets, hpas: informers.hpas, ledger, query: (query, prometheus, namespace) => utilization.capacity(query, prometheus, namespace) },
    clock: systemClock,
    log,
    onPlan: (key, plan) => {
      const [namespace = '', policy = ''] = key.split('/');
      settings.show(key, (['current', 'recommended'] as const).flatMap((kind) =>
        Object.entries(plan.status[kind] ?? {}).map(([setting, value]) => ({ labels: { namespace, policy, setting, kind }, value }))));
      for (const change of plan.changes) metrics.changes.inc({ namespace, policy, setting: change.setting, direction: change.to > change.from ? 'up' : 'down' });
    },
    onStatus: (key, status) => {
      const [namespace = '', policy = ''] = key.split('/');
      conditions.show(key, (status.conditions ?? []).map((c) => ({ labels: { namespace, policy, type: c.type, status: c.status, reason: c.reason }, value: 1 })));
    },
    onOwnTime: (seconds) => { metrics.reconcileOwnDuration.observe(seconds); },
  });
}

function allInformers(informers: Informers): Array<Pick<ResilientInformer<KubernetesObject>, 'start' | 'stop' | 'synced'>> {
  return [informers.policies, informers.budgets, informers.deployments, informers.configMaps, informers.hpas];
}

async function startInformers(informers: Informers): Promise<void> {
  await Promise.all(allInformers(informers).map((i) => i.start()));
}

async function stopInformers(informers: Informers): Promise<void> {
  await Promise.all(allInformers(informers).map((i) => i.stop()));
}

function createBudgetReconciler(kube: KubeClient, informers: Informers, utilization: PrometheusUtilizationSource, ledger: AppliedLedger, metrics: OperatorMetrics): ConnectionBudgetReconciler {
  return new ConnectionBudgetReconciler({
    stores: informers,
    ledger,
    query: (query, prometheus, namespace) => utilization.capacity(query, prometheus, namespace),
    writeStatus: (resource, namespace, name, status) => kube.applyStatus(resource, namespace, name, status),
    clock: systemClock,
    onHeadroom: (namespace, budget, backend, headroom) => { metrics.budgetHeadroom.set({ namespace, budget, backend }, headroom); },
  });
}

export async function main(command: Command, config: OperatorConfig): Promise<number> {
  const log = createLogger(config.logLevel);
  if (command === 'run') return runUntilSignalled(config, log);
  const kube = new KubeClient(loadKubeConfig(config.kubeconfig));
  const metrics = createMetrics();
  const informers = createInformers(kube, config, log, metrics);
  const utilization = new PrometheusUtilizationSource({ defaultUrl: config.prometheusUrl, clock: systemClock, metrics, enforceNamespaceLabel: config.enforceNamespaceLabel === true, readSecret: secretReader(kube.kubeConfig) });
  return runOnce(informers, createReconciler(kube, informers, utilization, new AppliedLedger(), log, metrics), log);
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
  /**
   * Resolves once every cache has synced and work has started (/readyz turns ready), or once
   * `stop()` was called first. Until then informers retry with backoff and nothing is reconciled.
   */
  readonly cachesSynced: Promise<void>;
  /** Sizes of the policy work queue's internals (a diagnostic: a deleted policy leaves nothing). */
  queueSizes(): WorkQueueSizes;
  stop(): Promise<void>;
}

/**
 * `target` with every method refused (it throws) while `allowed()` is false, e.g. once the leader
 * Lease was lost: a call already made finishes, no new one starts.
 */
function whileAllowed<T extends object>(target: T, allowed: () => boolean, why: string): T {
  return new Proxy(target, {
    get: (obj, prop): unknown => {
      const value: unknown = Reflect.get(obj, prop, obj);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        if (!allowed()) throw new Error(`${String(prop)} refused: ${why}`);
        return Reflect.apply(value, obj, args) as unknown;
      };
    },
  });
}

/** When this replica does work: always without --leader-elect, else while it holds the Lease. */
interface Leadership {
  /** True while this replica may reconcile and write. */
  leading(): boolean;
  /**
   * Runs `startWork` now (no election) or on each acquisition of the Lease; the term's work is
   * stopped the moment the Lease is lost. A new term starts only after the previous term's
   * reconciles have finished.
   */
  start(startWork: () => RunningWorkers): void;
  /** Stops taking work, waits for the reconciles in flight (still holding the Lease), then releases it. */
  stop(): Promise<void>;
}

function createLeadership(config: OperatorConfig, kube: KubeClient, log: Logger, metrics: OperatorMetrics): Leadership {
  const election = config.leaderElection;
  let startWork: (() => RunningWorkers) | undefined;
  let term: RunningWorkers | undefined;
  let termEnded: Promise<void> = Promise.resolve();
  let stopping = false;
  let elector: LeaderElector | undefined;
  const leading = (): boolean => elector === undefined || elector.isLeader();
  const begin = (): void => {
    if (term !== undefined || stopping || startWork === undefined || !leading()) return;
    term = startWork();
    metrics.leader.set(1);
    log.info({ leaderElection: elector !== undefined }, 'reconciling');
  };
  const end = (): Promise<void> => {
    const current = term;
    term = undefined;
    metrics.leader.set(0);
    if (current !== undefined) {
      log.info('stopped reconciling');
      termEnded = current.stop();
    }
    return termEnded;
  };
  if (election !== undefined) {
    elector = new LeaderElector({
      api: kube.kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: election.namespace,
      name: election.id,
      identity: defaultIdentity(),
      clock: systemClock,
      leaseDurationMs: election.leaseDurationMs,
      renewDeadlineMs: election.renewDeadlineMs,
      retryPeriodMs: election.retryPeriodMs,
      onStartedLeading: () => { void termEnded.then(begin); },
      onStoppedLeading: () => { void end(); },
      log,
    });
  }
  metrics.leader.set(0);
  return {
    leading,
    start: (fn) => {
      startWork = fn;
      if (elector === undefined) begin();
      else void elector.run();
    },
    stop: async () => {
      stopping = true;
      await end();
      await elector?.release();
    },
  };
}

/**
 * Starts the HTTP servers and the informers, and resolves once the servers listen; the workers
 * start when every cache has synced ({@link RunningController.cachesSynced}), however long the
 * API server takes to answer. With `config.leaderElection`, informers, caches, /healthz and
 * /readyz run on every replica and the workers only while this replica leads (see
 * {@link Leadership}).
 */
export async function startController(config: OperatorConfig, log: Logger = createLogger(config.logLevel)): Promise<RunningController> {
  const metrics = createMetrics();
  const kube = new KubeClient(loadKubeConfig(config.kubeconfig));
  const informers = createInformers(kube, config, log, metrics);
  const leadership = createLeadership(config, kube, log, metrics);
  // Reconcilers write through this: once the Lease is lost, no new write starts.
  const writes = whileAllowed(kube, () => leadership.leading(), 'this replica is not the leader');
  const utilization = new PrometheusUtilizationSource({ defaultUrl: config.prometheusUrl, clock: systemClock, metrics, enforceNamespaceLabel: config.enforceNamespaceLabel === true, readSecret: secretReader(kube.kubeConfig) });
  const ledger = new AppliedLedger();
  const reconciler = createReconciler(writes, informers, utilization, ledger, log, metrics);
  const budgetReconciler = createBudgetReconciler(writes, informers, utilization, ledger, metrics);
  let queue = new WorkQueue<PolicyKey>({ clock: systemClock });
  let budgetQueue = new WorkQueue<PolicyKey>({ clock: systemClock });
  /** Wakes these policies, everyone sharing a budget with them, and those budgets. */
  const wake = (keys: readonly PolicyKey[]): void => {
    const policies = informers.policies.list();
    for (const key of new Set([...keys, ...budgetPeers(policies, keys)])) queue.add(key);
    for (const policy of policies) {
      const budget = budgetKeyOf(policy);
      if (budget && keys.includes(keyOf(policy) ?? '/')) budgetQueue.add(budget);
    }
  };
  // A policy is queued when its generation (spec) changes, not on a status-only update: its own
  // status write must not wake it again (a message that changes every pass, e.g. a Stale age,
  // would otherwise reconcile it in a tight loop and defeat the metrics backoff).
  const queuedGeneration = new Map<PolicyKey, string>();
  informers.policies.onChange((policy) => {
    const key = keyOf(policy);
    if (!key) return;
    const budget = budgetKeyOf(policy);
    if (budget) budgetQueue.add(budget);
    if (informers.policies.get(policy.metadata?.name ?? '', policy.metadata?.namespace)) {
      const generation = `${policy.metadata?.uid ?? ''}/${String(policy.metadata?.generation ?? 0)}`; // a recreated policy is new
      if (queuedGeneration.get(key) === generation) return;
      queuedGeneration.set(key, generation);
      queue.add(key);
    } else {
      queuedGeneration.delete(key);
      queue.remove(key);
      ledger.forget(key);
    }
  });
  informers.deployments.onChange((deployment) => { wake(policiesReferring(informers.policies.list(), deployment, 'Deployment')); });
  informers.configMaps.onChange((configMap) => { wake(policiesReferring(informers.policies.list(), configMap, 'ConfigMap')); });
  informers.hpas.onChange((hpa) => {
    const target = hpa.spec.scaleTargetRef;
    if (target.kind !== 'Deployment') return;
    wake(policiesReferring(informers.policies.list(), { metadata: { name: target.name, namespace: hpa.metadata?.namespace } }, 'Deployment'));
  });
  informers.budgets.onChange((budget) => {
    const key = keyOf(budget);
    if (!key) return;
    budgetQueue.add(key);
    for (const policy of informers.policies.list()) if (budgetKeyOf(policy) === key) wake([keyOf(policy) ?? '/']);
  });

  const synced = (): boolean => allInformers(informers).every((i) => i.synced);
  const health = await startHttpServer(config.healthAddr, { ready: synced });
  const metricsServer = await startHttpServer(config.metricsAddr, { registry: metrics.registry });
  log.info({ healthPort: health.port, metricsPort: metricsServer.port, namespace: config.namespace ?? '(all)' }, 'poolpilot starting');

  const depthTimer = setInterval(() => { metrics.queueDepth.set(queue.len()); }, 1000);
  /** One term of work: fresh queues holding every object, and their workers. */
  const startWork = (): RunningWorkers => {
    queue = new WorkQueue<PolicyKey>({ clock: systemClock });
    budgetQueue = new WorkQueue<PolicyKey>({ clock: systemClock });
    for (const policy of informers.policies.list()) {
      const key = keyOf(policy);
      if (key) queue.add(key);
    }
    for (const budget of informers.budgets.list()) {
      const key = keyOf(budget);
      if (key) budgetQueue.add(key);
    }
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
    const budgetWorkers = runWorkers<PolicyKey>({
      queue: budgetQueue,
      workers: 1,
      clock: systemClock,
      reconcile: (key) => budgetReconciler.reconcile(key),
      onError: (key, err) => { log.error({ err, budget: key }, 'budget status failed; retrying with backoff'); },
    });
    return { stop: async () => { await Promise.all([workers.stop(), budgetWorkers.stop()]); } };
  };
  let stopping = false;
  const cachesSynced = startInformers(informers).then(() => {
    if (stopping) return;
    log.info({ leaderElection: config.leaderElection ?? false }, 'caches synced');
    leadership.start(startWork);
  });
  return {
    healthPort: health.port,
    metricsPort: metricsServer.port,
    cachesSynced,
    queueSizes: () => queue.sizes(),
    stop: async () => {
      stopping = true;
      clearInterval(depthTimer);
      await leadership.stop();
      await stopInformers(informers);
      await Promise.all([health.close(), metricsServer.close()]);
    },
  };
}

/** Longest graceful shutdown; past it the process exits with status 1. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * Runs until SIGTERM/SIGINT, then shuts down gracefully (stop taking work, finish the reconciles
 * in flight, release the Lease) and resolves 0; a shutdown that takes longer than
 * {@link SHUTDOWN_TIMEOUT_MS} exits the process with status 1.
 */
async function runUntilSignalled(config: OperatorConfig, log: Logger): Promise<number> {
  // Listening before startup: a signal during startup still shuts down in order.
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => { resolve('SIGTERM'); });
    process.once('SIGINT', () => { resolve('SIGINT'); });
  });
  const controller = await startController(config, log);
  const signal = await signalled;
  log.info({ signal }, 'shutting down');
  const hardStop = setTimeout(() => {
    log.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'graceful shutdown took too long; exiting');
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS);
  hardStop.unref();
  await controller.stop();
  clearTimeout(hardStop);
  log.info('shut down');
  return 0;
}
