/**
 * The PoolPolicy reconciler: a key in; the policy, its target and its PgBouncer ConfigMap read
 * from the informer caches; utilization read from Prometheus; the pure plan computed; then only
 * the writes the plan holds, and the status only if it changed. Never told why it runs.
 *
 * Outcomes: a plan pass revisits after spec.interval, or later while every utilization sample is
 * invalid (exponential backoff from how long MetricsAvailable has been False: metricsBackoffMs);
 * a blocked pass that only a change can fix (invalid spec, conflict, paused) waits for that change;
 * a missing target is revisited after the interval too (and woken by its creation). Thrown errors
 * (a failed write, a 409 from a concurrent edit) are retried with per-key backoff from a fresh read.
 * A pass that finds a cache still behind this process's own last write of an object (OwnWrites)
 * plans nothing and looks again shortly, so no change is planned twice or dropped from history.
 */
import { createHash } from 'node:crypto';
import type {
  KubernetesObject,
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1LabelSelector,
} from '@kubernetes/client-node';
import { ConditionReason, ConditionType } from '../../api/v1alpha1/conditions.js';
import {
  parsePoolPolicySpec,
  parsePoolPolicyStatus,
  POOLPOLICY_API_VERSION,
  POOLPOLICY_GROUP,
  POOLPOLICY_KIND,
  POOLPOLICY_PLURAL,
  POOLPOLICY_VERSION,
  type ParsedPoolPolicyStatus,
  type PoolPolicySpec,
  type PoolPolicyStatus,
  type PoolSection,
} from '../../api/v1alpha1/poolpolicy.js';
import type { UtilizationSample } from '../../domain/decide.js';
import type { DemandReading, RestartCost } from '../../domain/fill.js';
import { rolloutUnavailable, type BudgetFacts } from '../../domain/budget.js';
import { readPgbouncerSettings, setPgbouncerSettings } from '../../domain/pgbouncer-ini.js';
import { pgbouncerApplied, type PoolSizeReport } from '../../domain/pgbouncer-applied.js';
import { checkDelivery, deliveryMount, type DeliveryView, type PodReports } from '../../domain/delivery.js';
import { readPoolConfig, setPoolConfig } from '../../domain/pool-config-file.js';
import { planWithinBudget, type Plan, type PlanInput, type SettingReading } from '../../domain/plan.js';
import { blockedEvents, blockedStatus, type PlannedEvent } from '../../domain/policy-status.js';
import { envSettingsOf, readsDemand, sectionsOf, targetContainer, wholeNumber } from '../../domain/sections.js';
import { lastAppliedBy, rolloutCompletedAt } from '../../domain/rollout.js';
import { canonical, statusToWrite, toWrittenStatus } from '../../domain/status.js';
import { metricsBackoffMs } from '../../domain/backoff.js';
import {
  FIELD_MANAGER,
  type EnvValue,
  type EventType,
  type ObjectReference,
  type PoolPolicyResource,
} from '../../adapters/kube.js';
import type { Logger } from '../../observability/logger.js';
import type { Clock } from '../../runtime/clock.js';
import type { Outcome } from '../../runtime/controller.js';
import { OwnWrites } from '../../runtime/own-writes.js';
import { causeOf } from '../../runtime/errors.js';
import { KeyedMutex } from '../../runtime/keyed-mutex.js';
import { readBudgetFacts, type AppliedLedger, type CapacityQuery } from '../connectionbudget/facts.js';
import { POLICY_BY_TARGET } from '../indexes.js';
import type { ClusterStores } from '../stores.js';
import { splitKey, type PolicyKey } from './watches.js';

export const POOLPOLICY_RESOURCE: PoolPolicyResource = {
  group: POOLPOLICY_GROUP,
  version: POOLPOLICY_VERSION,
  plural: POOLPOLICY_PLURAL,
  kind: POOLPOLICY_KIND,
};
/**
 * How soon a pass that found a cache behind this process's own write looks again (the watch
 * event that catches it up normally arrives within milliseconds and wakes the policy anyway).
 */
const CACHE_LAG_RETRY_MS = 250;
/** Pod-template annotation that rolls the PgBouncer Deployment when its config changes. */
export const CONFIG_CHECKSUM_ANNOTATION = 'poolpilot.io/config-checksum';
/**
 * Pod annotation (spec.delivery.refresh AnnotatePods): a checksum of the delivered file; setting it
 * makes the kubelet sync the pod and rewrite its ConfigMap volume at once.
 */
export const POOL_CONFIG_ANNOTATION = 'poolpilot.io/pool-config';

/** The first 16 hex digits of the text's SHA-256: the value of the checksum annotations. */
function shortChecksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The writes a reconcile may make; KubeClient implements it. */
export interface PolicyWriter {
  applyContainerEnv(
    namespace: string,
    deployment: string,
    container: string,
    env: readonly EnvValue[],
  ): Promise<unknown>;
  applyConfigMapData(
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
    resourceVersion?: string,
  ): Promise<unknown>;
  applyPodTemplateAnnotation(namespace: string, deployment: string, key: string, value: string): Promise<unknown>;
  /** Sets a pod annotation on every pod the selector matches that lacks that value; returns how many. */
  annotatePods(namespace: string, selector: V1LabelSelector, key: string, value: string): Promise<number>;
  applyStatus(resource: PoolPolicyResource, namespace: string, name: string, status: object): Promise<unknown>;
  emitEvent(regarding: ObjectReference, type: EventType, reason: string, action: string, note: string): Promise<void>;
}

/** Reads one section's utilization for a policy; never throws (problems are invalid samples). */
export interface UtilizationSource {
  sample(request: {
    namespace: string;
    deployment: string;
    spec: PoolPolicySpec;
    section: PoolSection;
  }): Promise<UtilizationSample>;
  /** The database pool's demand per process (FillToBudget); never throws. Without it, FillToBudget holds. */
  demand?(request: { namespace: string; deployment: string; spec: PoolPolicySpec }): Promise<DemandReading>;
  /**
   * What each pod reports of its pool settings (`gauges`: setting → metric name) and of its
   * draining connections, to confirm a ConfigMap delivery; never throws. Without it, no delivery
   * is ever confirmed.
   */
  reported?(request: {
    namespace: string;
    deployment: string;
    spec: PoolPolicySpec;
    gauges: ReadonlyMap<string, string>;
    draining: string;
  }): Promise<PodReports>;
  /**
   * The pool sizes PgBouncer's exporter reports, to confirm that a written default_pool_size
   * reached PgBouncer; never throws. Without it, the PgBouncer section goes by time alone.
   */
  pgbouncerPoolSizes?(request: { namespace: string; spec: PoolPolicySpec }): Promise<PoolSizeReport>;
}

export interface ReconcilerDeps {
  readonly stores: ClusterStores;
  readonly writer: PolicyWriter;
  readonly utilization: UtilizationSource;
  readonly clock: Clock;
  readonly log: Logger;
  /** ConnectionBudget support; without it a budgetRef is not enforced (unit tests). */
  readonly budget?: {
    readonly ledger: AppliedLedger;
    readonly query: CapacityQuery;
  };
  /** Called with every decided value (for the operator's own metrics). */
  readonly onPlan?: (key: PolicyKey, plan: Plan) => void;
  /** Called after every reconcile with its time in seconds, not counting the wait for Prometheus. */
  readonly onOwnTime?: (seconds: number) => void;
  /** Called with every status a pass computes, written or not (for condition metrics). */
  readonly onStatus?: (key: PolicyKey, status: PoolPolicyStatus) => void;
}

/** A one-line summary of what a reconcile decided, for `poolpilot once` and the logs. */
export interface ReconcileReport {
  readonly key: PolicyKey;
  readonly ready: string;
  readonly current: Readonly<Record<string, number>>;
  readonly recommended: Readonly<Record<string, number>>;
  readonly changes: string;
  readonly wroteStatus: boolean;
}

type PolicyObject = KubernetesObject & { spec?: unknown; status?: unknown };

/** Why a pass cannot plan at all; `status` is Ready's. */
interface Blocked {
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
}

/** Who the pass is about, and what it found stored. */
interface PassIdentity {
  readonly key: PolicyKey;
  readonly ref: ObjectReference;
  readonly namespace: string;
  readonly now: Date;
  readonly generation: number;
  readonly previous: ParsedPoolPolicyStatus;
}

/** The PgBouncer side of a policy as read from its ConfigMap and rollout Deployment. */
interface PgbouncerReading {
  /** Readings of the pgbouncer section's settings (empty when the ConfigMap cannot be read). */
  readonly readings: ReadonlyMap<string, SettingReading>;
  readonly configMap: V1ConfigMap | undefined;
  /** Why its settings cannot be edited, if so. */
  readonly refusal: { readonly reason: string; readonly message: string } | undefined;
  /** When its rollout last completed; undefined while one runs (epoch without a rolloutRef). */
  readonly rolloutCompletedAt: Date | undefined;
}

/** spec.delivery.mode ConfigMap: the ConfigMap, its file's text, and the last delivery as the pods report it. */
interface DeliveryReading {
  readonly configMap: V1ConfigMap;
  readonly text: string;
  readonly view: DeliveryView | undefined;
}

/** Everything a pass of a policy that can plan reads before it plans. */
interface PolicySnapshot extends PassIdentity {
  readonly spec: PoolPolicySpec;
  readonly deployment: V1Deployment;
  readonly container: V1Container;
  readonly pgbouncer: PgbouncerReading;
  /** undefined with spec.delivery.mode Env. */
  readonly delivery: DeliveryReading | undefined;
  /** Every section's settings by key: env values from the container, PgBouncer's from its ConfigMap. */
  readonly readings: ReadonlyMap<string, SettingReading>;
  readonly samples: Readonly<Partial<Record<PoolSection, UtilizationSample>>>;
  /** What PgBouncer's exporter reports of its pool sizes, read before the PgBouncer sample. */
  readonly pgbouncerSizes: PoolSizeReport | undefined;
  readonly demand: DemandReading | undefined;
  readonly restart: RestartCost;
  /** The budget's capacity and peers; undefined without a budgetRef (or budget support). */
  readonly budget: BudgetFacts | undefined;
}

/** What {@link PoolPolicyReconciler.observe} found before the budget is read. */
type Observation =
  | { readonly kind: 'deleted' }
  | { readonly kind: 'lagging' }
  | (PassIdentity & { readonly kind: 'blocked'; readonly blocked: Blocked; readonly requeueAfterMs?: number })
  | (Omit<PolicySnapshot, 'budget'> & { readonly kind: 'observed' });

/**
 * `onInterval`: the revisit is the policy's regular spec.interval (not a metrics backoff or a
 * retry), so the caller may move it onto a tick shared with other policies.
 */
type Result = Outcome & { report?: ReconcileReport; onInterval?: boolean };

export class PoolPolicyReconciler {
  private readonly budgetLocks = new KeyedMutex();
  private readonly ownWrites: OwnWrites;

  constructor(private readonly deps: ReconcilerDeps) {
    this.ownWrites = new OwnWrites(() => deps.clock.now().getTime());
  }

  /** Reconcile one policy; see the file comment for the outcome contract. */
  async reconcile(key: PolicyKey): Promise<Result> {
    const started = performance.now();
    const waited = { ms: 0 };
    try {
      return await this.reconcileTimed(key, waited);
    } finally {
      this.deps.onOwnTime?.((performance.now() - started - waited.ms) / 1000);
    }
  }

  /** observe → plan → apply. */
  private async reconcileTimed(key: PolicyKey, waited: { ms: number }): Promise<Result> {
    const seen = await this.observe(key, waited);
    if (seen.kind === 'deleted') return {}; // its target is left as it is
    if (seen.kind === 'lagging') {
      this.deps.log.debug({ policy: key }, "a cache is behind this process's own last write: looking again shortly");
      return { requeueAfterMs: CACHE_LAG_RETRY_MS };
    }
    if (seen.kind === 'blocked') return this.applyBlocked(seen);
    // Policies sharing a budget are reconciled one at a time, so each sees what the one before
    // it applied (through the ledger, before the caches do) and their sum never crosses it.
    const budgetRef = this.deps.budget ? seen.spec.budgetRef : undefined;
    const release = budgetRef ? await this.budgetLocks.acquire(`${seen.namespace}/${budgetRef.name}`) : undefined;
    try {
      const snapshot: PolicySnapshot = { ...seen, budget: await this.observeBudget(seen) };
      const plan = planWithinBudget(planInputOf(snapshot), snapshot.budget);
      return await this.apply(snapshot, plan);
    } finally {
      release?.();
    }
  }

  /**
   * Reads the policy, its target, its PgBouncer ConfigMap (caches) and its samples and demand
   * (Prometheus; that wait is added to `waited`). The budget is read later, under its lock.
   */
  private async observe(key: PolicyKey, waited: { ms: number }): Promise<Observation> {
    const { namespace, name } = splitKey(key);
    const policy: PolicyObject | undefined = this.deps.stores.policies.get(name, namespace);
    if (this.ownWrites.lagging(POOLPOLICY_KIND, namespace, name, policy)) return { kind: 'lagging' };
    if (!policy) return { kind: 'deleted' };
    const ref: ObjectReference = {
      apiVersion: POOLPOLICY_API_VERSION,
      kind: POOLPOLICY_KIND,
      namespace,
      name,
      uid: policy.metadata?.uid,
    };
    const identity: PassIdentity = {
      key,
      ref,
      namespace,
      now: this.deps.clock.now(),
      generation: policy.metadata?.generation ?? 0,
      previous: parsePoolPolicyStatus(policy.status),
    };
    const parsed = parsePoolPolicySpec(policy.spec);
    if (!parsed.ok)
      return {
        ...identity,
        kind: 'blocked',
        blocked: { status: 'False', reason: ConditionReason.InvalidSpec, message: parsed.message },
      };
    const spec = parsed.spec;
    if (this.cachesLag(namespace, spec)) return { kind: 'lagging' };
    const target = this.resolveTarget(policy, spec, namespace);
    if ('blocked' in target) return { ...identity, kind: 'blocked', ...target };
    const { deployment, container } = target;
    const file = this.readDeliveryFile(spec, namespace, deployment);
    if (file !== undefined && 'blocked' in file)
      return { ...identity, kind: 'blocked', blocked: file.blocked, requeueAfterMs: spec.intervalMs };

    const pgbouncer = this.readPgbouncer(spec, namespace);
    const readings = new Map<string, SettingReading>(pgbouncer.readings);
    for (const setting of envSettingsOf(spec)) {
      const delivered = file?.values.get(setting);
      readings.set(
        setting,
        delivered === undefined ? readEnv(container, setting) : { kind: 'value', value: delivered },
      );
    }
    const asked = performance.now();
    const [{ samples, pgbouncerSizes }, demand, view] = await Promise.all([
      this.sampleSections(namespace, spec),
      this.readDemand(namespace, spec),
      file === undefined ? undefined : this.checkDelivery(namespace, spec, identity, deployment),
    ]);
    waited.ms += performance.now() - asked;
    const delivery = file === undefined ? undefined : { configMap: file.configMap, text: file.text, view };
    // A delivered change needs no restart: every process keeps serving while its pools are replaced or resized.
    const restart = restartCost(
      deployment,
      spec.processesPerPod,
      spec.delivery.mode === 'Env' ? 'restart' : spec.delivery.reload === 'Resize' ? 'resize' : 'swap',
    );
    return {
      ...identity,
      kind: 'observed',
      spec,
      deployment,
      container,
      pgbouncer,
      delivery,
      readings,
      samples,
      pgbouncerSizes,
      demand,
      restart,
    };
  }

  /**
   * spec.delivery.mode ConfigMap: the delivery ConfigMap's file and the owned values it sets, or
   * why nothing may be written (the ConfigMap is missing, its key is not KEY=VALUE lines, or no
   * container of the target mounts it so that updates reach the app). undefined for mode Env.
   */
  private readDeliveryFile(
    spec: PoolPolicySpec,
    namespace: string,
    deployment: V1Deployment,
  ):
    | { readonly configMap: V1ConfigMap; readonly text: string; readonly values: ReadonlyMap<string, number> }
    | { readonly blocked: Blocked }
    | undefined {
    const delivery = spec.delivery;
    if (delivery.mode !== 'ConfigMap') return undefined;
    const { name, key } = delivery.configMapRef;
    const refuse = (reason: string, message: string): { blocked: Blocked } => ({
      blocked: { status: 'False', reason, message },
    });
    const configMap = this.deps.stores.configMaps.get(name, namespace);
    if (!configMap)
      return refuse(
        ConditionReason.DeliveryConfigMapNotFound,
        `spec.delivery.configMapRef: configmap ${name} not found in namespace ${namespace}; create it (it may be empty) or fix the name`,
      );
    const mount = deliveryMount(spec.targetRef.name, deployment.spec?.template.spec ?? { containers: [] }, name, key);
    if (!mount.ok) return refuse(ConditionReason.DeliveryNotMounted, `spec.delivery: ${mount.message}`);
    const text = configMap.data?.[key] ?? '';
    const read = readPoolConfig(text, envSettingsOf(spec));
    if (!read.ok)
      return refuse(
        ConditionReason.DeliveryFormatRefused,
        `spec.delivery: configmap ${name} key ${key}: ${read.message}`,
      );
    return { configMap, text, values: read.values };
  }

  /** The last delivery recorded in status, checked against what the pods report now. */
  private async checkDelivery(
    namespace: string,
    spec: PoolPolicySpec,
    identity: PassIdentity,
    deployment: V1Deployment,
  ): Promise<DeliveryView | undefined> {
    const record = identity.previous.delivery;
    if (spec.delivery.mode !== 'ConfigMap' || record === undefined) return undefined;
    // A record of another ConfigMap (spec.delivery changed) says nothing of this one.
    if (record.configMap !== spec.delivery.configMapRef.name || record.key !== spec.delivery.configMapRef.key)
      return undefined;
    const gauges = settingGauges(spec);
    const source = this.deps.utilization;
    const reports: PodReports =
      record.confirmedAt !== undefined
        ? { valid: true, pods: new Map() }
        : source.reported === undefined
          ? { valid: false, message: 'this operator cannot read what pods report' }
          : await source.reported({
              namespace,
              deployment: spec.targetRef.name,
              spec,
              gauges,
              draining: `${spec.metricsPrefix}db_pool_draining_connections`,
            });
    return checkDelivery({
      record,
      reports,
      now: identity.now,
      timeoutMs: spec.delivery.confirmTimeoutMs,
      readyPods: deployment.status?.readyReplicas ?? 0,
      gauges: [...new Set(gauges.values())],
    });
  }

  /** The budget's capacity and peers, read while holding the budget's lock. */
  private async observeBudget(seen: Omit<PolicySnapshot, 'budget'>): Promise<BudgetFacts | undefined> {
    const budget = this.deps.budget;
    if (!budget) return undefined;
    const peerDemand = (namespace: string, spec: PoolPolicySpec): Promise<DemandReading | undefined> =>
      this.readDemand(namespace, spec);
    return readBudgetFacts(
      this.deps.stores,
      budget.ledger,
      budget.query,
      { policy: seen.key, namespace: seen.namespace, spec: seen.spec },
      peerDemand,
    );
  }

  /** True while a cached object the spec names is older than this process's last write of it. */
  private cachesLag(namespace: string, spec: PoolPolicySpec): boolean {
    const { deployments, configMaps } = this.deps.stores;
    const deploymentNames = [
      spec.targetRef.name,
      ...(spec.pgbouncer?.rolloutRef ? [spec.pgbouncer.rolloutRef.name] : []),
    ];
    const configMapNames = [
      ...(spec.delivery.mode === 'ConfigMap' ? [spec.delivery.configMapRef.name] : []),
      ...(spec.pgbouncer ? [spec.pgbouncer.configMapRef.name] : []),
    ];
    return (
      deploymentNames.some((n) => this.ownWrites.lagging('Deployment', namespace, n, deployments.get(n, namespace))) ||
      configMapNames.some((n) => this.ownWrites.lagging('ConfigMap', namespace, n, configMaps.get(n, namespace)))
    );
  }

  /**
   * The Deployment and container a valid spec names, or why the pass cannot plan: paused, a
   * conflict with an earlier policy, a missing target or container (revisited after the interval).
   */
  private resolveTarget(
    policy: PolicyObject,
    spec: PoolPolicySpec,
    namespace: string,
  ):
    | { readonly deployment: V1Deployment; readonly container: V1Container }
    | { readonly blocked: Blocked; readonly requeueAfterMs?: number } {
    const target = spec.targetRef.name;
    if (spec.mode === 'Paused') {
      const message = 'mode Paused: nothing is evaluated or written; set spec.mode to Auto or Recommend to resume';
      return { blocked: { status: 'True', reason: ConditionReason.Paused, message } };
    }
    const rival = this.earlierPolicyOnSameTarget(policy, target);
    if (rival) {
      const message = `PoolPolicy ${rival} already manages deployment ${target}; delete one of the two or point spec.targetRef elsewhere`;
      return { blocked: { status: 'False', reason: ConditionReason.Conflict, message } };
    }
    const deployment = this.deps.stores.deployments.get(target, namespace);
    if (!deployment) {
      const message = `deployment ${target} not found in namespace ${namespace}; create it or fix spec.targetRef.name`;
      return {
        blocked: { status: 'False', reason: ConditionReason.TargetNotFound, message },
        requeueAfterMs: spec.intervalMs,
      };
    }
    const containers = deployment.spec?.template.spec?.containers ?? [];
    const wanted = spec.targetRef.container;
    const container = targetContainer(containers, wanted);
    if (!container) {
      const names = containers.map((c) => c.name).join(', ') || 'none';
      const message = `deployment ${target} has no container ${wanted ?? '(none at all)'}; its containers are: ${names}; fix spec.targetRef.container`;
      return { blocked: { status: 'False', reason: ConditionReason.ContainerNotFound, message } };
    }
    return { deployment, container };
  }

  /**
   * Every section's sample. PgBouncer's pool sizes are read before its sample, never after: a
   * scrape between the two then cannot pair a new size with a sample of the old pool.
   */
  private async sampleSections(
    namespace: string,
    spec: PoolPolicySpec,
  ): Promise<{
    samples: Partial<Record<PoolSection, UtilizationSample>>;
    pgbouncerSizes: PoolSizeReport | undefined;
  }> {
    const samples: Partial<Record<PoolSection, UtilizationSample>> = {};
    let pgbouncerSizes: PoolSizeReport | undefined;
    const source = this.deps.utilization;
    await Promise.all(
      sectionsOf(spec).map(async ({ section }) => {
        if (section === 'pgbouncer' && source.pgbouncerPoolSizes)
          pgbouncerSizes = await source.pgbouncerPoolSizes({ namespace, spec });
        samples[section] = await source.sample({ namespace, deployment: spec.targetRef.name, spec, section });
      }),
    );
    return { samples, pgbouncerSizes };
  }

  /** Demand for a FillToBudget database section; undefined when no section needs it. */
  private async readDemand(namespace: string, spec: PoolPolicySpec): Promise<DemandReading | undefined> {
    const needed = readsDemand(spec);
    const source = this.deps.utilization;
    if (!needed || !source.demand) return undefined;
    return source.demand({ namespace, deployment: spec.targetRef.name, spec });
  }

  /** A pass that cannot plan writes only its status and Warning event. */
  private async applyBlocked(
    seen: PassIdentity & { readonly blocked: Blocked; readonly requeueAfterMs?: number },
  ): Promise<Result> {
    const { key, ref, previous, generation, now, blocked } = seen;
    const status = blockedStatus(previous, generation, now, blocked);
    const wrote = await this.writeStatus(key, previous, status);
    await this.emit(ref, blockedEvents(previous, status));
    const report: ReconcileReport = {
      key,
      ready: `${blocked.status}/${blocked.reason}: ${blocked.message}`,
      current: status.current ?? {},
      recommended: status.recommended ?? {},
      changes: '',
      wroteStatus: wrote,
    };
    return seen.requeueAfterMs === undefined ? { report } : { requeueAfterMs: seen.requeueAfterMs, report };
  }

  /** Performs the plan's writes, then the status and events; records applied values in the ledger. */
  private async apply(snapshot: PolicySnapshot, plan: Plan): Promise<Result & { report: ReconcileReport }> {
    const { key, ref, spec, namespace, container, previous } = snapshot;
    const configMap = snapshot.pgbouncer.configMap;
    // Every setting poolpilot owns, not just the changed ones: an apply drops the fields its manager
    // applied before and omits now, and the delivered file states them all.
    const owned = envSettingsOf(spec).flatMap((setting) => {
      const value = plan.envWrites.get(setting) ?? plan.status.current?.[setting];
      return value === undefined ? [] : [[setting, value] as const];
    });
    if (plan.envWrites.size > 0 && snapshot.delivery && spec.delivery.mode === 'ConfigMap') {
      const { name, key: dataKey } = spec.delivery.configMapRef;
      const values = new Map(owned);
      const edited = setPoolConfig(snapshot.delivery.text, values);
      // readPoolConfig accepted this text a moment ago; a refusal now is a bug, not input.
      if (!edited.ok) throw new Error(`pool config edit refused after a successful read: ${edited.message}`);
      // The read text is the base of the edit: a concurrent change fails with 409 and is retried from a fresh read.
      const written = await this.deps.writer.applyConfigMapData(
        namespace,
        name,
        { [dataKey]: edited.text },
        snapshot.delivery.configMap.metadata?.resourceVersion,
      );
      this.ownWrites.record('ConfigMap', written);
      this.deps.log.info(
        { policy: key, configMap: name, settings: Object.fromEntries(values) },
        'delivered pool settings',
      );
      if (spec.delivery.refresh === 'AnnotatePods') await this.refreshPods(snapshot, edited.text);
    } else if (plan.envWrites.size > 0) {
      const env = [...plan.envWrites].map(([envName, value]) => ({ name: envName, value: String(value) }));
      const full = owned.map(([envName, value]) => ({ name: envName, value: String(value) }));
      this.ownWrites.record(
        'Deployment',
        await this.deps.writer.applyContainerEnv(namespace, spec.targetRef.name, container.name, full),
      );
      this.deps.log.info({ policy: key, env }, 'applied pool env');
    }
    if (plan.pgbouncerWrites.size > 0 && spec.pgbouncer && configMap) {
      await this.writePgbouncer(spec.pgbouncer, namespace, configMap, plan.pgbouncerWrites);
      this.deps.log.info(
        { policy: key, settings: Object.fromEntries(plan.pgbouncerWrites) },
        'applied pgbouncer settings',
      );
    }

    if (plan.changes.length > 0) this.deps.budget?.ledger.record(key, plan.status.current ?? {});
    const wrote = await this.writeStatus(key, previous, plan.status);
    await this.emit(ref, plan.events);
    this.deps.onPlan?.(key, plan);
    const ready = plan.status.conditions?.find((c) => c.type === 'Ready');
    return {
      ...nextVisit(snapshot, plan),
      report: {
        key,
        ready: ready ? `${ready.status}/${ready.reason}: ${ready.message}` : 'unknown',
        current: plan.status.current ?? {},
        recommended: plan.status.recommended ?? {},
        changes: plan.changes.map((c) => `${c.setting} ${c.from}→${c.to}`).join(', '),
        wroteStatus: wrote,
      },
    };
  }

  /**
   * spec.delivery.refresh AnnotatePods: the delivered file's checksum on every pod of the target,
   * so that each kubelet rewrites the volume now instead of at its next periodic sync. A failure
   * is a Warning event, not a failed pass: the ConfigMap is written, and that sync delivers it.
   */
  private async refreshPods(snapshot: PolicySnapshot, text: string): Promise<void> {
    const { key, ref, namespace, deployment } = snapshot;
    const selector = deployment.spec?.selector ?? {};
    const checksum = shortChecksum(text);
    try {
      const pods = await this.deps.writer.annotatePods(namespace, selector, POOL_CONFIG_ANNOTATION, checksum);
      this.deps.log.info({ policy: key, pods, checksum }, 'annotated pods so that their kubelets sync the file now');
    } catch (err) {
      this.deps.log.warn({ err, policy: key }, 'could not annotate pods');
      const note =
        `spec.delivery.refresh AnnotatePods: could not annotate the pods of deployment ${deployment.metadata?.name ?? ''} ` +
        `(${causeOf(err)}); each kubelet writes the file at its next periodic sync instead. ` +
        'Grant this operator list and patch on pods (deploy/ does), or set spec.delivery.refresh to KubeletSync';
      await this.emit(ref, [{ type: 'Warning', reason: 'PodRefreshFailed', note }]);
    }
  }

  /** The earliest-created other policy in the namespace targeting the same Deployment, if any. */
  private earlierPolicyOnSameTarget(policy: PolicyObject, target: string): string | undefined {
    const namespace = policy.metadata?.namespace;
    const order = (p: KubernetesObject): string =>
      `${p.metadata?.creationTimestamp ? new Date(p.metadata.creationTimestamp).toISOString() : ''}/${p.metadata?.name ?? ''}`;
    const mine = order(policy);
    const rivals = this.deps.stores.policies
      .byIndex(POLICY_BY_TARGET, `${namespace ?? ''}/${target}`)
      .filter((other) => other.metadata?.name !== policy.metadata?.name && order(other) < mine);
    return rivals[0]?.metadata?.name;
  }

  private readPgbouncer(spec: PoolPolicySpec, namespace: string): PgbouncerReading {
    const readings = new Map<string, SettingReading>();
    const pg = spec.pgbouncer;
    if (!pg) return { readings, configMap: undefined, refusal: undefined, rolloutCompletedAt: new Date(0) };
    let rolloutAt: Date | undefined = new Date(0);
    if (pg.rolloutRef) {
      const rollout = this.deps.stores.deployments.get(pg.rolloutRef.name, namespace);
      if (!rollout) {
        const message = `spec.pgbouncer.rolloutRef: deployment ${pg.rolloutRef.name} not found in namespace ${namespace}`;
        return {
          readings,
          configMap: undefined,
          refusal: { reason: 'RolloutTargetNotFound', message },
          rolloutCompletedAt: undefined,
        };
      }
      rolloutAt = rolloutCompletedAt(rollout);
    }
    const configMap = this.deps.stores.configMaps.get(pg.configMapRef.name, namespace);
    const { name: configMapName, key: iniKey } = pg.configMapRef;
    const refused = (reason: string, message: string): PgbouncerReading => ({
      readings,
      configMap,
      refusal: { reason, message },
      rolloutCompletedAt: rolloutAt,
    });
    if (!configMap) {
      return refused(
        'ConfigMapNotFound',
        `configmap ${configMapName} not found in namespace ${namespace}; create it or fix spec.pgbouncer.configMapRef.name`,
      );
    }
    const section = sectionsOf(spec).find((s) => s.section === 'pgbouncer');
    const keys = section ? [section.leader.key, ...(section.follower ? [section.follower.key] : [])] : [];
    if (pg.format === 'env') {
      for (const key of keys)
        readings.set(key, parseSetting(configMap.data?.[key], `configmap ${configMapName} key ${key}`));
    } else {
      const text = configMap.data?.[iniKey];
      if (text === undefined)
        return refused(
          ConditionReason.IniRefused,
          `configmap ${configMapName} has no key ${iniKey}; fix spec.pgbouncer.configMapRef.key`,
        );
      const read = readPgbouncerSettings(text, keys);
      if (!read.ok)
        return refused(ConditionReason.IniRefused, `configmap ${configMapName} key ${iniKey}: ${read.message}`);
      for (const key of keys) {
        const value = read.values.get(key);
        readings.set(key, value === undefined ? { kind: 'missing' } : { kind: 'value', value });
      }
    }
    return { readings, configMap, refusal: undefined, rolloutCompletedAt: rolloutAt };
  }

  private async writePgbouncer(
    pg: NonNullable<PoolPolicySpec['pgbouncer']>,
    namespace: string,
    configMap: V1ConfigMap,
    writes: ReadonlyMap<string, number>,
  ): Promise<void> {
    const resourceVersion = configMap.metadata?.resourceVersion;
    let data: Record<string, string>;
    if (pg.format === 'env') {
      data = Object.fromEntries([...writes].map(([key, value]) => [key, String(value)]));
    } else {
      const edited = setPgbouncerSettings(configMap.data?.[pg.configMapRef.key] ?? '', writes);
      // readPgbouncerSettings accepted this text a moment ago; a refusal now is a bug, not input.
      if (!edited.ok) throw new Error(`pgbouncer.ini edit refused after a successful read: ${edited.message}`);
      data = { [pg.configMapRef.key]: edited.text };
    }
    // The read text is the base of the edit: a concurrent change since then fails with 409 and
    // the next attempt starts from a fresh read instead of overwriting it.
    this.ownWrites.record(
      'ConfigMap',
      await this.deps.writer.applyConfigMapData(namespace, pg.configMapRef.name, data, resourceVersion),
    );
    if (pg.rolloutRef) {
      const merged = { ...configMap.data, ...data };
      const checksum = shortChecksum(canonical(merged));
      this.ownWrites.record(
        'Deployment',
        await this.deps.writer.applyPodTemplateAnnotation(
          namespace,
          pg.rolloutRef.name,
          CONFIG_CHECKSUM_ANNOTATION,
          checksum,
        ),
      );
    }
  }

  private async writeStatus(
    key: PolicyKey,
    previous: ParsedPoolPolicyStatus,
    next: PoolPolicyStatus,
  ): Promise<boolean> {
    this.deps.onStatus?.(key, next);
    const status = statusToWrite(toWrittenStatus(previous), next);
    if (!status) return false;
    const { namespace, name } = splitKey(key);
    this.ownWrites.record(
      POOLPOLICY_KIND,
      await this.deps.writer.applyStatus(POOLPOLICY_RESOURCE, namespace, name, status),
    );
    return true;
  }

  private async emit(ref: ObjectReference, events: readonly PlannedEvent[]): Promise<void> {
    for (const event of events) {
      try {
        await this.deps.writer.emitEvent(
          ref,
          event.type,
          event.reason,
          event.reason === 'PoolResized' ? 'Resize' : 'Reconcile',
          event.note,
        );
      } catch (err) {
        // An event is an explanation, not state: losing one must not fail or repeat the reconcile.
        this.deps.log.warn({ err, reason: event.reason }, 'could not record event');
      }
    }
  }
}

/** What the pure plan reads from a snapshot. */
function planInputOf(snapshot: PolicySnapshot): PlanInput {
  const { spec, readings, deployment, pgbouncer, delivery } = snapshot;
  const pgbouncerWrittenAt = lastAppliedBy(pgbouncer.configMap, FIELD_MANAGER);
  const poolSizeKey = sectionsOf(spec).find((s) => s.section === 'pgbouncer')?.leader.key;
  const poolSize = poolSizeKey === undefined ? undefined : readings.get(poolSizeKey);
  return {
    delivery: delivery?.view,
    now: snapshot.now,
    generation: snapshot.generation,
    spec,
    previous: snapshot.previous,
    readings,
    samples: snapshot.samples,
    rolloutCompletedAt: { env: envSettledAt(deployment, delivery), pgbouncer: pgbouncer.rolloutCompletedAt },
    pgbouncerRefusal: pgbouncer.refusal,
    lastAppliedAt: {
      env: lastAppliedBy(delivery ? delivery.configMap : deployment, FIELD_MANAGER),
      pgbouncer: pgbouncerWrittenAt,
    },
    demand: snapshot.demand,
    restart: snapshot.restart,
    pgbouncerApplied:
      poolSizeKey === undefined
        ? undefined
        : pgbouncerApplied({
            written: poolSize?.kind === 'value' ? poolSize.value : undefined,
            report: snapshot.pgbouncerSizes,
            writtenAt: pgbouncerWrittenAt,
          }),
  };
}

/**
 * After spec.interval; while nothing usable comes from Prometheus at all, less and less often
 * (a change still wakes the policy).
 */
function nextVisit(snapshot: PolicySnapshot, plan: Plan): { requeueAfterMs: number; onInterval: boolean } {
  const sampled = Object.values(snapshot.samples);
  const metricsDown = sampled.length > 0 && sampled.every((s) => !s.valid);
  const metricsCondition = plan.status.conditions?.find((c) => c.type === ConditionType.MetricsAvailable);
  return metricsDown
    ? { requeueAfterMs: metricsBackoffMs(snapshot.now, metricsCondition, snapshot.spec.intervalMs), onInterval: false }
    : { requeueAfterMs: snapshot.spec.intervalMs, onInterval: true };
}

/**
 * Processes holding pools, and those that keep serving while a change reaches them: fewer during
 * a rolling restart (env), all of them when the app reloads a delivered file.
 */
function restartCost(deployment: V1Deployment, processesPerPod: number, change: RestartCost['change']): RestartCost {
  const replicas = deployment.spec?.replicas ?? 1;
  const unavailable = change === 'restart' ? rolloutUnavailable(replicas, deployment.spec?.strategy) : 0;
  return {
    processes: replicas * processesPerPod,
    processesDuringRollout: (replicas - unavailable) * processesPerPod,
    change,
  };
}

/**
 * From when samples of the env sections' pools count: the target's rollout completed, and with a
 * ConfigMap delivery also not before every pod confirmed the last delivered values.
 */
function envSettledAt(deployment: V1Deployment, delivery: DeliveryReading | undefined): Date | undefined {
  const completed = rolloutCompletedAt(deployment);
  const confirmed = delivery?.view?.record.confirmedAt;
  if (completed === undefined || confirmed === undefined) return completed;
  return confirmed > completed ? confirmed : completed;
}

/** The env-section settings (database, redis) a spec manages, leaders and followers. */
/**
 * The gauge each env setting is reported by (the runbook's metric names with spec.metricsPrefix):
 * a ConfigMap delivery is confirmed when every pod reports the written values.
 */
function settingGauges(spec: PoolPolicySpec): Map<string, string> {
  const p = spec.metricsPrefix;
  const gauges = new Map<string, string>();
  if (spec.database) {
    gauges.set(spec.database.poolSize.env, `${p}db_pool_size`);
    if (spec.database.maxOverflow) gauges.set(spec.database.maxOverflow.env, `${p}db_pool_max_overflow`);
  }
  if (spec.redis) gauges.set(spec.redis.maxConnections.env, `${p}redis_pool_max_connections`);
  return gauges;
}

function readEnv(container: V1Container, name: string): SettingReading {
  const entry = container.env?.find((e) => e.name === name);
  if (!entry) return { kind: 'missing' };
  if (entry.valueFrom) {
    const source = Object.keys(entry.valueFrom).join(', ');
    const message =
      `${name} on container ${container.name} is set via valueFrom (${source}); poolpilot manages literal values only: ` +
      'replace it with a literal value, or remove that section from the policy';
    return { kind: 'unmanageable', reason: ConditionReason.ValueFromNotManaged, message };
  }
  return parseSetting(entry.value, `${name} on container ${container.name}`);
}

function parseSetting(text: string | undefined, where: string): SettingReading {
  if (text === undefined) return { kind: 'missing' };
  const value = wholeNumber(text);
  if (value === undefined)
    return {
      kind: 'unmanageable',
      reason: 'InvalidValue',
      message: `${where} is '${text}', not a whole number; set it to an integer`,
    };
  return { kind: 'value', value };
}
