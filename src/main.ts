/**
 * Composition root: config → clients → informers → work queue → workers → HTTP servers →
 * signals. No decisions here.
 */
import {
  CoordinationV1Api,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Deployment,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { KubeClient, loadKubeConfig, type ListPage } from './adapters/kube.js';
import { secretReader } from './adapters/secrets.js';
import type { OperatorConfig } from './config.js';
import { PoolPolicyReconciler, POOLPOLICY_RESOURCE, type PolicyWriter } from './controllers/poolpolicy/reconciler.js';
import { PrometheusUtilizationSource } from './controllers/poolpolicy/utilization.js';
import {
  budgetOfPolicy,
  budgetsOf,
  GenerationChangedPredicate,
  keyOf,
  NamedObjects,
  ownKey,
  policiesOfBudget,
  policiesReferring,
  splitKey,
  watch,
  whenDeleted,
  withBudgetPeers,
  type Connectable,
  type PolicyKey,
} from './controllers/poolpolicy/watches.js';
import { AppliedLedger } from './controllers/connectionbudget/facts.js';
import { keepReadMetadata, keepReadOfConfigMap, keepReadOfDeployment } from './controllers/cache-transforms.js';
import {
  configMapsNamedBy,
  deploymentsNamedBy,
  HPA_INDEXERS,
  POLICY_BY_CONFIGMAP,
  POLICY_BY_DEPLOYMENT,
  POLICY_INDEXERS,
} from './controllers/indexes.js';
import { CONNECTIONBUDGET_RESOURCE, ConnectionBudgetReconciler } from './controllers/connectionbudget/reconciler.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, type OperatorMetrics } from './observability/metrics.js';
import { startHttpServer, type RunningServer } from './observability/server.js';
import { alignedDelay } from './runtime/aligned-schedule.js';
import { systemClock } from './runtime/clock.js';
import { logRetry } from './runtime/errors.js';
import { runWorkers, type RunningWorkers } from './runtime/controller.js';
import { defaultIdentity, LeaderElector } from './runtime/leader-election.js';
import { ResilientInformer, type Indexers } from './runtime/informer.js';
import { SelectiveInformer, type SelectiveInformerOptions } from './runtime/selective-informer.js';
import { ExponentialBackoffRateLimiter } from './runtime/rate-limiter.js';
import { TokenBucket } from './runtime/token-bucket.js';
import { WorkQueue, type WorkQueueSizes } from './runtime/workqueue.js';

export type Command = 'run' | 'once';

interface Informers {
  readonly policies: ResilientInformer<KubernetesObject>;
  readonly budgets: ResilientInformer<KubernetesObject>;
  readonly deployments: ResilientInformer<V1Deployment>;
  readonly configMaps: ResilientInformer<V1ConfigMap>;
  readonly hpas: ResilientInformer<V2HorizontalPodAutoscaler>;
  /** The Deployment and ConfigMap caches hold only what some policy names (see holdNamedObjects). */
  readonly named: {
    readonly deployments: SelectiveInformer<V1Deployment>;
    readonly configMaps: SelectiveInformer<V1ConfigMap>;
  };
}

function watchPath(namespace: string | undefined, prefix: string, plural: string): string {
  return namespace === undefined ? `${prefix}/${plural}` : `${prefix}/namespaces/${namespace}/${plural}`;
}

/**
 * The caches. Each keeps only the fields the controllers read (cache-transforms.ts); the
 * Deployment and ConfigMap caches keep only the objects some PoolPolicy names, so objects no
 * policy names cost no memory however many there are.
 */
function createInformers(kube: KubeClient, config: OperatorConfig, log: Logger, metrics: OperatorMetrics): Informers {
  const backoff = new ExponentialBackoffRateLimiter({ baseDelayMs: 1000, maxDelayMs: 60_000 });
  const transport = new Watch(kube.kubeConfig);
  const informer = <T extends KubernetesObject>(
    resource: string,
    selective: SelectiveInformer<T>,
    path: string,
    indexers?: Indexers<T>,
  ): ResilientInformer<T> => {
    metrics.informerSynced.set({ resource }, 0);
    return new ResilientInformer({
      informer: selective.informer,
      path,
      ...(indexers ? { indexers } : {}),
      clock: systemClock,
      backoff,
      onError: (err, restartInMs) => {
        metrics.informerFailures.inc({ resource });
        logRetry(log, 'warn', { informer: resource, restartInMs }, 'informer failed; restarting', err);
      },
      onSynced: () => {
        metrics.informerSynced.set({ resource }, 1);
      },
    });
  };
  const selective = <T extends KubernetesObject>(
    path: string,
    list: (page: ListPage) => Promise<KubernetesListObject<T>>,
    transform: (object: T) => T,
    named?: Pick<SelectiveInformerOptions<T>, 'wanted' | 'read' | 'before'>,
  ): SelectiveInformer<T> =>
    new SelectiveInformer<T>({
      watch: transport,
      path,
      listPage: (limit, continueToken) => list({ limit, continueToken }),
      transform,
      clock: systemClock,
      onReadError: (err, namespace, name, retryInMs) => {
        // The policy naming it waits for this read before its first reconcile.
        logRetry(log, 'warn', { path, namespace, name, retryInMs }, 'could not read an object a policy names', err);
      },
      ...named,
    });
  const ns = config.namespace;
  const { group, version, plural } = POOLPOLICY_RESOURCE;
  const policiesPath = watchPath(ns, `/apis/${group}/${version}`, plural);
  const policySelection = selective(
    policiesPath,
    (page) => kube.listCustom(POOLPOLICY_RESOURCE, ns, page),
    keepReadMetadata,
  );
  const policies = informer(plural, policySelection, policiesPath, POLICY_INDEXERS);
  const namedBy =
    (index: string) =>
    (namespace: string, name: string): boolean =>
      policies.byIndex(index, `${namespace}/${name}`).length > 0;
  const deploymentsPath = watchPath(ns, '/apis/apps/v1', 'deployments');
  const deployments = selective(deploymentsPath, (page) => kube.listDeployments(ns, page), keepReadOfDeployment, {
    wanted: namedBy(POLICY_BY_DEPLOYMENT),
    read: (namespace, name) => kube.readDeployment(namespace, name),
    // The policies' list (started first by startInformers) decides what is wanted.
    before: () => policySelection.listSettled(),
  });
  const configMapsPath = watchPath(ns, '/api/v1', 'configmaps');
  const configMaps = selective(configMapsPath, (page) => kube.listConfigMaps(ns, page), keepReadOfConfigMap, {
    wanted: namedBy(POLICY_BY_CONFIGMAP),
    read: (namespace, name) => kube.readConfigMap(namespace, name),
    before: () => policySelection.listSettled(),
  });
  const budgetsPath = watchPath(ns, `/apis/${group}/${version}`, CONNECTIONBUDGET_RESOURCE.plural);
  const hpasPath = watchPath(ns, '/apis/autoscaling/v2', 'horizontalpodautoscalers');
  return {
    policies,
    deployments: informer('deployments', deployments, deploymentsPath),
    configMaps: informer('configmaps', configMaps, configMapsPath),
    budgets: informer(
      CONNECTIONBUDGET_RESOURCE.plural,
      selective(budgetsPath, (page) => kube.listCustom(CONNECTIONBUDGET_RESOURCE, ns, page), keepReadMetadata),
      budgetsPath,
    ),
    hpas: informer(
      'horizontalpodautoscalers',
      selective(hpasPath, (page) => kube.listHorizontalPodAutoscalers(ns, page), keepReadMetadata),
      hpasPath,
      HPA_INDEXERS,
    ),
    named: { deployments, configMaps },
  };
}

/** The PoolPolicy reconciler, its metrics fed from its hooks; `forget` drops a deleted policy's gauges. */
function createReconciler(
  writer: PolicyWriter,
  informers: Informers,
  utilization: PrometheusUtilizationSource,
  ledger: AppliedLedger,
  log: Logger,
  metrics: OperatorMetrics,
): { reconciler: PoolPolicyReconciler; forget: (key: PolicyKey) => void } {
  const series = metrics.policySeries;
  const reconciler = new PoolPolicyReconciler({
    stores: informers,
    writer,
    utilization,
    budget: { ledger, query: (query, prometheus, namespace) => utilization.capacity(query, prometheus, namespace) },
    clock: systemClock,
    log,
    onPlan: (key, plan) => {
      const { namespace, name: policy } = splitKey(key);
      const { current, recommended } = plan.status;
      series.showSettings(key, namespace, policy, { current, recommended });
      for (const change of plan.changes)
        metrics.changes.inc({
          namespace,
          policy,
          setting: change.setting,
          direction: change.to > change.from ? 'up' : 'down',
        });
    },
    onStatus: (key, status) => {
      const { namespace, name: policy } = splitKey(key);
      series.showConditions(key, namespace, policy, status.conditions ?? []);
    },
    onOwnTime: (seconds) => {
      metrics.reconcileOwnDuration.observe(seconds);
    },
  });
  return {
    reconciler,
    forget: (key) => {
      series.forget(key);
    },
  };
}

function cachesByResource(informers: Informers): Record<string, { readonly size: number }> {
  return {
    [POOLPOLICY_RESOURCE.plural]: informers.policies,
    [CONNECTIONBUDGET_RESOURCE.plural]: informers.budgets,
    deployments: informers.deployments,
    configmaps: informers.configMaps,
    horizontalpodautoscalers: informers.hpas,
  };
}

function allInformers(
  informers: Informers,
): Array<Pick<ResilientInformer<KubernetesObject>, 'start' | 'stop' | 'synced'>> {
  return [informers.policies, informers.budgets, informers.deployments, informers.configMaps, informers.hpas];
}

async function startInformers(informers: Informers): Promise<void> {
  await Promise.all(allInformers(informers).map((i) => i.start()));
}

async function stopInformers(informers: Informers): Promise<void> {
  await Promise.all(allInformers(informers).map((i) => i.stop()));
}

function createBudgetReconciler(
  writer: Pick<PolicyWriter, 'applyStatus'>,
  informers: Informers,
  utilization: PrometheusUtilizationSource,
  ledger: AppliedLedger,
  metrics: OperatorMetrics,
): ConnectionBudgetReconciler {
  return new ConnectionBudgetReconciler({
    stores: informers,
    ledger,
    query: (query, prometheus, namespace) => utilization.capacity(query, prometheus, namespace),
    writeStatus: async (resource, namespace, name, status) => {
      await writer.applyStatus(resource, namespace, name, status);
    },
    clock: systemClock,
    onHeadroom: (namespace, budget, backend, headroom) => {
      metrics.budgetHeadroom.set({ namespace, budget, backend }, headroom);
    },
  });
}

function createUtilizationSource(
  config: OperatorConfig,
  kube: KubeClient,
  metrics: OperatorMetrics,
): PrometheusUtilizationSource {
  return new PrometheusUtilizationSource({
    defaultUrl: config.prometheusUrl,
    clock: systemClock,
    metrics,
    enforceNamespaceLabel: config.enforceNamespaceLabel === true,
    readSecret: secretReader(kube.kubeConfig),
  });
}

/** The client of every request but the Lease's, limited by --kube-api-qps / --kube-api-burst. */
function kubeClient(config: OperatorConfig, metrics: OperatorMetrics): KubeClient {
  const limit = config.kubeApiRateLimit;
  const limiter = limit && new TokenBucket({ ...limit, clock: systemClock });
  return new KubeClient(
    loadKubeConfig(config.kubeconfig, limiter, (method) => {
      metrics.kubeApiRequests.inc({ method });
    }),
  );
}

export async function main(command: Command, config: OperatorConfig): Promise<number> {
  const log = createLogger(config.logLevel);
  if (command === 'run') return runUntilSignalled(config, log);
  const metrics = createMetrics();
  const kube = kubeClient(config, metrics);
  const informers = createInformers(kube, config, log, metrics);
  const utilization = createUtilizationSource(config, kube, metrics);
  return runOnce(
    informers,
    createReconciler(kube, informers, utilization, new AppliedLedger(), log, metrics).reconciler,
    log,
  );
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
 * The writes reconcilers make, each refused (it rejects) while `allowed()` is false, e.g. once the
 * leader Lease was lost: a write already started finishes, no new one starts.
 */
function writerWhile(kube: KubeClient, allowed: () => boolean, why: string): PolicyWriter {
  const check = (name: string): void => {
    if (!allowed()) throw new Error(`${name} refused: ${why}`);
  };
  return {
    applyContainerEnv: async (...args) => {
      check('applyContainerEnv');
      return kube.applyContainerEnv(...args);
    },
    applyConfigMapData: async (...args) => {
      check('applyConfigMapData');
      return kube.applyConfigMapData(...args);
    },
    applyPodTemplateAnnotation: async (...args) => {
      check('applyPodTemplateAnnotation');
      return kube.applyPodTemplateAnnotation(...args);
    },
    annotatePods: async (...args) => {
      check('annotatePods');
      return kube.annotatePods(...args);
    },
    applyStatus: async (...args) => {
      check('applyStatus');
      return kube.applyStatus(...args);
    },
    emitEvent: async (...args) => {
      check('emitEvent');
      return kube.emitEvent(...args);
    },
  };
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

function createLeadership(config: OperatorConfig, log: Logger, metrics: OperatorMetrics): Leadership {
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
      // Its own connection and no rate limit: a start-up's queued writes never delay a renewal.
      api: loadKubeConfig(config.kubeconfig).makeApiClient(CoordinationV1Api),
      namespace: election.namespace,
      name: election.id,
      identity: defaultIdentity(),
      clock: systemClock,
      leaseDurationMs: election.leaseDurationMs,
      renewDeadlineMs: election.renewDeadlineMs,
      retryPeriodMs: election.retryPeriodMs,
      onStartedLeading: () => {
        void termEnded.then(begin);
      },
      onStoppedLeading: () => {
        void end();
      },
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
 * What wakes what: each change of a source that passes the predicate queues the keys its mapper
 * names. A policy change wakes the policy itself (only for a new generation) and its budget; a
 * change to a Deployment, ConfigMap or HPA wakes the policies referring to it, everyone sharing a
 * budget with them, and those budgets; a budget change wakes the budget and its policies.
 */
function watchTable(informers: Informers, generations: GenerationChangedPredicate, named: NamedObjects): Connectable[] {
  const policies = informers.policies;
  const stored = storedPolicy(informers);
  const referring = (object: KubernetesObject, kind: 'Deployment' | 'ConfigMap'): PolicyKey[] =>
    policiesReferring(policies, object, kind);
  const scaledDeployment = (hpa: V2HorizontalPodAutoscaler): KubernetesObject => ({
    metadata: { name: hpa.spec.scaleTargetRef.name, namespace: hpa.metadata?.namespace },
  });
  const scalesDeployment = (hpa: V2HorizontalPodAutoscaler): boolean => hpa.spec.scaleTargetRef.kind === 'Deployment';
  return [
    watch({
      source: informers.policies,
      predicate: (p) => stored(p) && generations.test(p),
      before: (p) => named.hold(p),
      keys: ownKey,
      queue: 'policies',
    }),
    watch({ source: informers.policies, keys: budgetOfPolicy, queue: 'budgets' }),
    watch({
      source: informers.deployments,
      keys: (d) => withBudgetPeers(policies, referring(d, 'Deployment')),
      queue: 'policies',
    }),
    watch({
      source: informers.deployments,
      keys: (d) => budgetsOf(policies, referring(d, 'Deployment')),
      queue: 'budgets',
    }),
    watch({
      source: informers.configMaps,
      keys: (c) => withBudgetPeers(policies, referring(c, 'ConfigMap')),
      queue: 'policies',
    }),
    watch({
      source: informers.configMaps,
      keys: (c) => budgetsOf(policies, referring(c, 'ConfigMap')),
      queue: 'budgets',
    }),
    watch({
      source: informers.hpas,
      predicate: scalesDeployment,
      keys: (h) => withBudgetPeers(policies, referring(scaledDeployment(h), 'Deployment')),
      queue: 'policies',
    }),
    watch({
      source: informers.hpas,
      predicate: scalesDeployment,
      keys: (h) => budgetsOf(policies, referring(scaledDeployment(h), 'Deployment')),
      queue: 'budgets',
    }),
    watch({ source: informers.budgets, keys: ownKey, queue: 'budgets' }),
    watch({
      source: informers.budgets,
      keys: (b) => withBudgetPeers(policies, policiesOfBudget(policies, b)),
      queue: 'policies',
    }),
  ];
}

/** What the Deployment and ConfigMap caches hold follows what the policies name. */
function namedObjects(informers: Informers): NamedObjects {
  const named = new NamedObjects(informers.named, (policy) => ({
    deployments: deploymentsNamedBy(policy),
    configMaps: configMapsNamedBy(policy),
  }));
  const stored = storedPolicy(informers);
  informers.policies.onChange((policy) => {
    named.onPolicyChange(policy, stored(policy));
  });
  return named;
}

/** Whether a changed policy is still in the cache (false: the change was its deletion). */
function storedPolicy(informers: Informers): (policy: KubernetesObject) => boolean {
  return (policy) => informers.policies.get(policy.metadata?.name ?? '', policy.metadata?.namespace) !== undefined;
}

/** One leadership term's work queues, holding every object when the term starts. */
function termQueues(informers: Informers): { policies: WorkQueue<PolicyKey>; budgets: WorkQueue<PolicyKey> } {
  const queues = {
    policies: new WorkQueue<PolicyKey>({ clock: systemClock }),
    budgets: new WorkQueue<PolicyKey>({ clock: systemClock }),
  };
  for (const key of informers.policies.list().flatMap(ownKey)) queues.policies.add(key);
  for (const key of informers.budgets.list().flatMap(ownKey)) queues.budgets.add(key);
  return queues;
}

/** /healthz and /readyz (ready once every cache synced) on one address, /metrics on another. */
async function startServers(
  config: OperatorConfig,
  informers: Informers,
  metrics: OperatorMetrics,
): Promise<{ health: RunningServer; metrics: RunningServer }> {
  const synced = (): boolean => allInformers(informers).every((i) => i.synced);
  return {
    health: await startHttpServer(config.healthAddr, { ready: synced }),
    metrics: await startHttpServer(config.metricsAddr, {
      registry: metrics.registry,
      moreMetrics: () => metrics.policySeries.chunks(),
    }),
  };
}

/**
 * Starts the HTTP servers and the informers, and resolves once the servers listen; the workers
 * start when every cache has synced ({@link RunningController.cachesSynced}), however long the
 * API server takes to answer. With `config.leaderElection`, informers, caches, /healthz and
 * /readyz run on every replica and the workers only while this replica leads (see
 * {@link Leadership}).
 */
export async function startController(
  config: OperatorConfig,
  log: Logger = createLogger(config.logLevel),
): Promise<RunningController> {
  const metrics = createMetrics();
  const kube = kubeClient(config, metrics);
  const informers = createInformers(kube, config, log, metrics);
  const leadership = createLeadership(config, log, metrics);
  // Reconcilers write through this: once the Lease is lost, no new write starts.
  const writer = writerWhile(kube, () => leadership.leading(), 'this replica is not the leader');
  const utilization = createUtilizationSource(config, kube, metrics);
  const ledger = new AppliedLedger();
  const policyReconciler = createReconciler(writer, informers, utilization, ledger, log, metrics);
  const budgetReconciler = createBudgetReconciler(writer, informers, utilization, ledger, metrics);

  // Each term replaces the queues; until the first one, changes land in queues nobody works.
  let queues = termQueues(informers);
  const generations = new GenerationChangedPredicate();
  const named = namedObjects(informers);
  for (const row of watchTable(informers, generations, named)) row.connect(() => queues);
  whenDeleted(informers.policies, storedPolicy(informers), (key) => {
    generations.forget(key);
    queues.policies.remove(key);
    ledger.forget(key);
    policyReconciler.forget(key);
  });

  const servers = await startServers(config, informers, metrics);
  log.info(
    { healthPort: servers.health.port, metricsPort: servers.metrics.port, namespace: config.namespace ?? '(all)' },
    'poolpilot starting',
  );
  const depthTimer = setInterval(() => {
    metrics.queueDepth.set(queues.policies.len());
    for (const [resource, informer] of Object.entries(cachesByResource(informers)))
      metrics.cachedObjects.set({ resource }, informer.size);
  }, 1000);
  /** One term of work: fresh queues holding every object, and their workers. */
  const startTerm = (): RunningWorkers => {
    queues = termQueues(informers);
    const workers = runWorkers<PolicyKey>({
      queue: queues.policies,
      workers: config.workers,
      clock: systemClock,
      reconcile: async (key) => {
        const outcome = await policyReconciler.reconciler.reconcile(key);
        const after = outcome.requeueAfterMs;
        // The policies of a namespace are revisited together: one Prometheus batch serves them all.
        // Only the regular interval moves: a metrics backoff keeps its doubling delays.
        return after === undefined || outcome.onInterval !== true
          ? outcome
          : { ...outcome, requeueAfterMs: alignedDelay(Date.now(), after, splitKey(key).namespace) };
      },
      onError: (key, err) => {
        logRetry(log, 'error', { policy: key }, 'reconcile failed; retrying with backoff', err);
      },
      observe: ({ result, durationMs }) => {
        metrics.reconciles.inc({ result });
        metrics.reconcileDuration.observe(durationMs / 1000);
      },
    });
    const budgetWorkers = runWorkers<PolicyKey>({
      queue: queues.budgets,
      workers: 1,
      clock: systemClock,
      reconcile: (key) => budgetReconciler.reconcile(key),
      onError: (key, err) => {
        logRetry(log, 'error', { budget: key }, 'budget status failed; retrying with backoff', err);
      },
    });
    return {
      stop: async () => {
        await Promise.all([workers.stop(), budgetWorkers.stop()]);
      },
    };
  };
  let stopping = false;
  const cachesSynced = startInformers(informers).then(() => {
    if (stopping) return;
    log.info({ leaderElection: config.leaderElection ?? false }, 'caches synced');
    leadership.start(startTerm);
  });
  return {
    healthPort: servers.health.port,
    metricsPort: servers.metrics.port,
    cachesSynced,
    queueSizes: () => queues.policies.sizes(),
    stop: async () => {
      stopping = true;
      clearInterval(depthTimer);
      await leadership.stop();
      await stopInformers(informers);
      await Promise.all([servers.health.close(), servers.metrics.close()]);
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
    process.once('SIGTERM', () => {
      resolve('SIGTERM');
    });
    process.once('SIGINT', () => {
      resolve('SIGINT');
    });
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
