import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { pino } from 'pino';
import type { UtilizationSample } from '../../../src/domain/decide.js';
import {
  PoolPolicyReconciler,
  type PolicyWriter,
  type UtilizationSource,
} from '../../../src/controllers/poolpolicy/reconciler.js';
import type { ClusterStores } from '../../../src/controllers/stores.js';
import { FakeClock } from '../../support/fake-clock.js';
import { MemoryStore } from '../../support/memory-store.js';

// Reconciler scenarios over in-memory stores: what is written, and what is not.

class RecordingWriter implements PolicyWriter {
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  constructor(private readonly policies: MemoryStore<KubernetesObject>) {}
  private record(method: string, args: unknown[]): Promise<undefined> {
    this.calls.push({ method, args });
    return Promise.resolve(undefined);
  }
  applyContainerEnv(...args: unknown[]): Promise<unknown> {
    return this.record('applyContainerEnv', args);
  }
  applyConfigMapData(...args: unknown[]): Promise<unknown> {
    return this.record('applyConfigMapData', args);
  }
  applyPodTemplateAnnotation(...args: unknown[]): Promise<unknown> {
    return this.record('applyPodTemplateAnnotation', args);
  }
  async annotatePods(...args: unknown[]): Promise<number> {
    await this.record('annotatePods', args);
    return 2;
  }
  emitEvent(...args: unknown[]): Promise<void> {
    return this.record('emitEvent', args);
  }
  async applyStatus(_resource: unknown, namespace: string, name: string, status: object): Promise<unknown> {
    await this.record('applyStatus', [namespace, name, status]);
    // Like the API server: the stored object now carries the status.
    const policy = this.policies.get(name, namespace);
    if (policy) Object.assign(policy, { status: structuredClone(status) });
    return undefined;
  }
  methods(): string[] {
    return this.calls.map((c) => c.method);
  }
}

/** Sets the resourceVersion the cache shows for an object. */
function setVersion(object: KubernetesObject, resourceVersion: string): void {
  object.metadata = Object.assign(object.metadata ?? {}, { resourceVersion });
}

const constant = (sample: UtilizationSample): UtilizationSource => ({ sample: () => Promise.resolve(sample) });

function policy(spec: unknown): KubernetesObject & { spec: unknown } {
  return {
    apiVersion: 'poolpilot.io/v1alpha1',
    kind: 'PoolPolicy',
    metadata: {
      name: 'api',
      namespace: 'prod',
      generation: 4,
      uid: 'u1',
      creationTimestamp: new Date('2026-01-01T00:00:00Z'),
    },
    spec,
  };
}

function deployment(env: Array<{ name: string; value: string }>): V1Deployment {
  return {
    metadata: { name: 'api', namespace: 'prod', generation: 2 },
    spec: { replicas: 1, selector: {}, template: { spec: { containers: [{ name: 'app', env }] } } },
    status: { observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
  };
}

/** Caches with the given policies and Deployments; no ConfigMaps, budgets or HPAs. */
function stores(objects: Pick<ClusterStores, 'policies' | 'deployments'>): ClusterStores {
  return {
    ...objects,
    configMaps: new MemoryStore<V1ConfigMap>(),
    budgets: new MemoryStore(),
    hpas: new MemoryStore<V2HorizontalPodAutoscaler>(),
  };
}

function setup(
  policySpec: unknown,
  deployments: V1Deployment[],
  sample: UtilizationSample,
): { reconciler: PoolPolicyReconciler; writer: RecordingWriter; clock: FakeClock } {
  const policies = new MemoryStore<KubernetesObject>([policy(policySpec)]);
  const writer = new RecordingWriter(policies);
  const clock = new FakeClock(new Date('2026-03-01T12:00:00Z'));
  const reconciler = new PoolPolicyReconciler({
    stores: stores({ policies, deployments: new MemoryStore(deployments) }),
    writer,
    utilization: constant(sample),
    clock,
    log: pino({ level: 'silent' }),
  });
  return { reconciler, writer, clock };
}

const SPEC = { targetRef: { name: 'api' }, interval: '30s', database: { poolSize: { min: 10, max: 50 } } };

describe('PoolPolicyReconciler', () => {
  it('an invalid stored spec gets Ready=False/InvalidSpec once, no target write, no requeue, and no rewrite on the next pass', async () => {
    const { reconciler, writer } = setup(
      { targetRef: { name: 'api' }, database: { poolSize: { min: 60, max: 50 } } },
      [deployment([])],
      { valid: true, percent: 90, sampledAt: new Date() },
    );
    const first = await reconciler.reconcile('prod/api');
    expect(first.requeueAfterMs).toBeUndefined();
    expect(writer.methods()).toEqual(['applyStatus', 'emitEvent']);
    const status = writer.calls[0]?.args[2] as {
      conditions: Array<{ type: string; status: string; reason: string; message: string; observedGeneration: number }>;
    };
    expect(status.conditions[0]).toMatchObject({
      type: 'Ready',
      status: 'False',
      reason: 'InvalidSpec',
      observedGeneration: 4,
    });
    expect(status.conditions[0]?.message).toMatch(/spec\.database\.poolSize.*min.*max/);
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toEqual(['applyStatus', 'emitEvent']);
  });

  it('a missing target is revisited after the interval, without a retry storm of writes', async () => {
    const { reconciler, writer } = setup(SPEC, [], { valid: true, percent: 90, sampledAt: new Date() });
    expect((await reconciler.reconcile('prod/api')).requeueAfterMs).toBe(30000);
    expect((await reconciler.reconcile('prod/api')).requeueAfterMs).toBe(30000);
    expect(writer.methods()).toEqual(['applyStatus', 'emitEvent']);
  });

  it('a deleted policy is dropped: nothing written, no requeue', async () => {
    const { reconciler, writer } = setup(SPEC, [deployment([])], { valid: true, percent: 90, sampledAt: new Date() });
    expect(await reconciler.reconcile('prod/gone')).toEqual({});
    expect(writer.calls).toEqual([]);
  });

  it('a missing env var is added at min, applying only the env entries poolpilot owns', async () => {
    const { reconciler, writer } = setup(SPEC, [deployment([{ name: 'OTHER', value: 'x' }])], {
      valid: true,
      percent: 50,
      sampledAt: new Date('2026-03-01T12:00:00Z'),
    });
    await reconciler.reconcile('prod/api');
    const apply = writer.calls.find((c) => c.method === 'applyContainerEnv');
    expect(apply?.args).toEqual(['prod', 'api', 'app', [{ name: 'DB_POOL_SIZE', value: '10' }]]);
  });

  it('Paused writes only its status, once', async () => {
    const { reconciler, writer } = setup(
      { ...SPEC, mode: 'Paused' },
      [deployment([{ name: 'DB_POOL_SIZE', value: '20' }])],
      { valid: true, percent: 99, sampledAt: new Date() },
    );
    await reconciler.reconcile('prod/api');
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toEqual(['applyStatus']);
  });

  it('every sample invalid: the revisit backs off 1, 2, 4 … intervals from the stored MetricsAvailable=False, also across a restart; a valid sample resets it', async () => {
    const failing: UtilizationSample = {
      valid: false,
      problem: 'QueryFailed',
      message: 'Prometheus at http://prometheus:9090: connection refused',
    };
    const { reconciler, writer, clock } = setup(SPEC, [deployment([{ name: 'DB_POOL_SIZE', value: '20' }])], failing);
    const delays: number[] = [];
    for (let pass = 0; pass < 4; pass++) {
      const delay = (await reconciler.reconcile('prod/api')).requeueAfterMs ?? 0;
      delays.push(delay);
      clock.advance(delay);
    }
    expect(delays).toEqual([30_000, 60_000, 120_000, 240_000]);
    expect(writer.methods()).not.toContain('applyContainerEnv');

    // A new process (nothing in memory) over the same stored status continues the sequence.
    const stored = writer.calls.filter((c) => c.method === 'applyStatus').at(-1)?.args[2];
    const policies = new MemoryStore<KubernetesObject>([Object.assign(policy(SPEC), { status: stored })]);
    const restarted = (sample: UtilizationSample): PoolPolicyReconciler =>
      new PoolPolicyReconciler({
        stores: stores({
          policies,
          deployments: new MemoryStore([deployment([{ name: 'DB_POOL_SIZE', value: '20' }])]),
        }),
        writer: new RecordingWriter(policies),
        utilization: constant(sample),
        clock,
        log: pino({ level: 'silent' }),
      });
    const backingOff = await restarted(failing).reconcile('prod/api');
    // A backoff is not a regular interval: the caller must not move it onto a shared tick.
    expect({ after: backingOff.requeueAfterMs, onInterval: backingOff.onInterval }).toEqual({
      after: 300_000,
      onInterval: false,
    });
    const recovered = await restarted({ valid: true, percent: 60, sampledAt: clock.now() }).reconcile('prod/api');
    expect({ after: recovered.requeueAfterMs, onInterval: recovered.onInterval }).toEqual({
      after: 30_000,
      onInterval: true,
    });
  });

  it('a pass that finds the cache behind its own status write waits for the cache instead of planning from the older status', async () => {
    const stale = policy({ ...SPEC, behavior: { scaleUpStabilization: '0s', minChangeInterval: '0s' } });
    setVersion(stale, '10');
    const policies = new MemoryStore<KubernetesObject>([stale]);
    // The API server answers the status write with version 11; the cache does not show it yet.
    class LaggingCacheWriter extends RecordingWriter {
      override applyStatus(_resource: unknown, namespace: string, name: string, status: object): Promise<unknown> {
        this.calls.push({ method: 'applyStatus', args: [namespace, name, status] });
        return Promise.resolve({ metadata: { name, namespace, resourceVersion: '11' } });
      }
    }
    const writer = new LaggingCacheWriter(policies);
    const clock = new FakeClock(new Date('2026-03-01T12:00:00Z'));
    const reconciler = new PoolPolicyReconciler({
      stores: stores({ policies, deployments: new MemoryStore([deployment([{ name: 'DB_POOL_SIZE', value: '20' }])]) }),
      writer,
      utilization: { sample: () => Promise.resolve({ valid: true, percent: 95, sampledAt: clock.now() }) },
      clock,
      log: pino({ level: 'silent' }),
    });
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toEqual(['applyContainerEnv', 'applyStatus', 'emitEvent']);
    clock.advance(60_000);
    expect(await reconciler.reconcile('prod/api')).toEqual({ requeueAfterMs: 250 });
    expect(writer.methods()).toHaveLength(3);

    const written = writer.calls[1]?.args[2];
    Object.assign(stale, { status: structuredClone(written) });
    setVersion(stale, '11');
    expect((await reconciler.reconcile('prod/api')).requeueAfterMs).toBe(30_000);
    // Planned from the status that recorded the first change: both changes are in its history.
    const statuses = writer.calls.filter((c) => c.method === 'applyStatus').map((c) => c.args[2]);
    expect(statuses).toHaveLength(2);
    expect((statuses[1] as { history?: unknown[] }).history).toHaveLength(2);
  });

  it('a pass that finds the target Deployment behind its own env write waits for the cache', async () => {
    const policies = new MemoryStore<KubernetesObject>([
      policy({ ...SPEC, behavior: { scaleUpStabilization: '0s', minChangeInterval: '0s' } }),
    ]);
    const target = deployment([{ name: 'DB_POOL_SIZE', value: '20' }]);
    setVersion(target, '6');
    class EnvVersionWriter extends RecordingWriter {
      override applyContainerEnv(namespace: string, name: string): Promise<unknown> {
        this.calls.push({ method: 'applyContainerEnv', args: [namespace, name] });
        return Promise.resolve({ metadata: { name, namespace, resourceVersion: '7' } });
      }
    }
    const writer = new EnvVersionWriter(policies);
    const clock = new FakeClock(new Date('2026-03-01T12:00:00Z'));
    const reconciler = new PoolPolicyReconciler({
      stores: stores({ policies, deployments: new MemoryStore([target]) }),
      writer,
      utilization: { sample: () => Promise.resolve({ valid: true, percent: 95, sampledAt: clock.now() }) },
      clock,
      log: pino({ level: 'silent' }),
    });
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toContain('applyContainerEnv');
    const writes = writer.calls.length;
    clock.advance(60_000);
    expect(await reconciler.reconcile('prod/api')).toEqual({ requeueAfterMs: 250 });
    expect(writer.calls).toHaveLength(writes);
    setVersion(target, '7');
    expect((await reconciler.reconcile('prod/api')).requeueAfterMs).toBe(30_000);
  });
});

describe('PoolPolicyReconciler: spec.delivery.refresh', () => {
  const FILE = 'DB_MAX_OVERFLOW=20\n';
  /** A policy delivering through ConfigMap api-pools, whose file lacks DB_POOL_SIZE: the first pass writes it at min. */
  function setupDelivery(
    refresh: string | undefined,
    writer?: (policies: MemoryStore<KubernetesObject>) => RecordingWriter,
  ) {
    const spec = {
      ...SPEC,
      delivery: { mode: 'ConfigMap', configMapRef: { name: 'api-pools' }, ...(refresh ? { refresh } : {}) },
    };
    const policies = new MemoryStore<KubernetesObject>([policy(spec)]);
    const recording = writer?.(policies) ?? new RecordingWriter(policies);
    const target = deployment([]);
    Object.assign(target.spec ?? {}, {
      selector: { matchLabels: { app: 'api' } },
      template: {
        spec: {
          volumes: [{ name: 'pools', configMap: { name: 'api-pools' } }],
          containers: [{ name: 'app', volumeMounts: [{ name: 'pools', mountPath: '/etc/poolpilot' }] }],
        },
      },
    });
    const configMap: V1ConfigMap = {
      metadata: { name: 'api-pools', namespace: 'prod', resourceVersion: '7' },
      data: { 'pools.env': FILE },
    };
    const reconciler = new PoolPolicyReconciler({
      stores: {
        ...stores({ policies, deployments: new MemoryStore([target]) }),
        configMaps: new MemoryStore([configMap]),
      },
      writer: recording,
      utilization: constant({ valid: true, percent: 50, sampledAt: new Date('2026-03-01T12:00:00Z') }),
      clock: new FakeClock(new Date('2026-03-01T12:00:00Z')),
      log: pino({ level: 'silent' }),
    });
    return { reconciler, writer: recording };
  }
  const written = `${FILE}DB_POOL_SIZE=10\n`;

  it('AnnotatePods: after the file is written, the pods of the target get its checksum', async () => {
    const { reconciler, writer } = setupDelivery('AnnotatePods');
    await reconciler.reconcile('prod/api');
    expect(writer.methods().slice(0, 2)).toEqual(['applyConfigMapData', 'annotatePods']);
    expect(writer.calls[0]?.args).toEqual(['prod', 'api-pools', { 'pools.env': written }, '7']);
    const checksum = createHash('sha256').update(written).digest('hex').slice(0, 16);
    expect(writer.calls[1]?.args).toEqual([
      'prod',
      { matchLabels: { app: 'api' } },
      'poolpilot.io/pool-config',
      checksum,
    ]);
  });

  it('KubeletSync (unset): the file is written, no pod is touched', async () => {
    const { reconciler, writer } = setupDelivery(undefined);
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toContain('applyConfigMapData');
    expect(writer.methods()).not.toContain('annotatePods');
  });

  it('AnnotatePods refused (no RBAC on pods): the pass completes, a Warning says what to grant', async () => {
    class ForbiddenPods extends RecordingWriter {
      override async annotatePods(...args: unknown[]): Promise<number> {
        await super.annotatePods(...args);
        throw new Error(
          'pods is forbidden: User "system:serviceaccount:poolpilot:poolpilot" cannot list resource "pods"',
        );
      }
    }
    const { reconciler, writer } = setupDelivery('AnnotatePods', (policies) => new ForbiddenPods(policies));
    await reconciler.reconcile('prod/api');
    expect(writer.methods()).toContain('applyStatus');
    const warning = writer.calls.find((c) => c.method === 'emitEvent' && c.args[2] === 'PodRefreshFailed');
    expect(warning?.args[1]).toBe('Warning');
    expect(warning?.args[4]).toMatch(
      /could not annotate the pods of deployment api \(pods is forbidden.*\); each kubelet writes the file at its next periodic sync instead\. Grant this operator list and patch on pods/,
    );
  });
});
