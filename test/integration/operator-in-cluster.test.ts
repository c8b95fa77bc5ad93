import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Watch,
  type V1ContainerStateTerminated,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import type { RefreshKind } from '../../src/api/v1alpha1/poolpolicy.js';
import { startDemoBackends } from './support/demo-backends.js';
import { createTestNamespace } from './support/kube.js';
import { condition, createPolicy, envOf, getPolicy } from './support/operator.js';
import {
  IMAGE_BUILD_TIMEOUT_MS,
  installOperatorInCluster,
  loadImage,
  nodeTestsWanted,
  OWN_PLANE_START_TIMEOUT_MS,
  startOwnPlane,
  type OwnPlane,
} from './support/own-plane.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { FAST } from './support/suite.js';

// Issue 13, item 4: the operator in the cluster, installed as a user would (`kubectl apply -k`
// of deploy/ with a kustomize overlay that only names the image built here and says where the API
// server and Prometheus are: test/controlplane/in-cluster.sh, also `make run IN_CLUSTER=1`), on a plane with the real controllers and a real node (local-up.sh
// NODE=1). Two replicas under Pod Security "restricted", probes through the kubelet, one Lease
// holder, a PoolPolicy reconciled with the ServiceAccount's own token, and the leader's Pod
// deleted: it exits 0 on SIGTERM and a live replica takes over and goes on reconciling. The
// rollout gate against the real deployment controller, and a ConfigMap delivery to the demo app's
// Pods through the kubelet's volume update. Run by `make test-node` (see nodeTestsWanted).

const SYSTEM_NAMESPACE = 'poolpilot-system';
const LEASE = 'poolpilot-leader';
const METRIC = 'voiceassist_db_pool_utilization_percent';
const policyApi = { group: 'poolpilot.io', version: 'v1alpha1', plural: 'poolpolicies' };

/** The app the policy tunes: answers HTTP on 8080, exits at once on SIGTERM. */
const APP_SERVER = [
  "require('node:http').createServer((req, res) => res.end('ok')).listen(8080);",
  "process.on('SIGTERM', () => process.exit(0));",
].join(' ');

(nodeTestsWanted ? describe : describe.skip)('the operator in the cluster', () => {
  let plane: OwnPlane | undefined;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let workNamespace: string;
  const exporters: ScrapeTarget[] = [];

  beforeAll(async () => {
    plane = startOwnPlane('in-cluster', { controllers: true, node: true });
    installOperatorInCluster(plane);
    apps = plane.kc.makeApiClient(AppsV1Api);
    core = plane.kc.makeApiClient(CoreV1Api);
    workNamespace = await createTestNamespace(plane.kc, 'apps');
  }, OWN_PLANE_START_TIMEOUT_MS + IMAGE_BUILD_TIMEOUT_MS);
  afterAll(async () => {
    for (const exporter of exporters) await exporter.stop();
    plane?.stop();
  });

  function ownPlane(): OwnPlane {
    if (plane === undefined) throw new Error('the plane did not start (see beforeAll)');
    return plane;
  }

  async function operatorPods(): Promise<V1Pod[]> {
    const list = await core.listNamespacedPod({
      namespace: SYSTEM_NAMESPACE,
      labelSelector: 'app.kubernetes.io/name=poolpilot',
    });
    return list.items.filter(
      (pod) =>
        pod.metadata?.deletionTimestamp === undefined &&
        pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
  }

  /** The Lease holder's Pod name (the identity is `<pod>_<random>`), if one holds it. */
  async function leaderPod(): Promise<string | undefined> {
    const lease = await ownPlane()
      .kc.makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: LEASE, namespace: SYSTEM_NAMESPACE });
    // A Lease released on shutdown has an empty holder until the next replica takes it.
    const holder = lease.spec?.holderIdentity;
    return holder === undefined || holder === '' ? undefined : holder.split('_')[0];
  }

  async function leaderGauge(pod: V1Pod): Promise<string | undefined> {
    const response = await fetch(`http://${pod.status?.podIP ?? 'no-ip'}:8080/metrics`);
    const line = (await response.text()).split('\n').find((l) => l.startsWith('poolpilot_leader '));
    return line?.split(' ')[1];
  }

  async function poolSize(name = 'api'): Promise<string | undefined> {
    return envOf(await apps.readNamespacedDeployment({ name, namespace: workNamespace }), 'api').DB_POOL_SIZE;
  }

  /**
   * A Deployment `name` of `replicas` Pods running APP_SERVER from the operator's image (the only
   * image here), with the pool env poolpilot tunes, its utilization at `percent` (an exporter
   * on this machine that Prometheus scrapes, labelled as one of its Pods), and a PoolPolicy on
   * it that may grow DB_POOL_SIZE up to `max`.
   */
  async function tunedApp(name: string, replicas: number, percent: number, max: number): Promise<void> {
    const exporter = await startScrapeTarget(
      `in-cluster-${name}`,
      { namespace: workNamespace, pod: `${name}-5d8c7-x2x9q` },
      ownPlane().prometheusTargetsDir,
    );
    exporters.push(exporter);
    new Gauge({ name: METRIC, help: 'pool utilization', registers: [exporter.registry] }).set(percent);
    const image = (await operatorPods())[0]?.spec?.containers[0]?.image ?? '';
    await apps.createNamespacedDeployment({
      namespace: workNamespace,
      body: {
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              terminationGracePeriodSeconds: 5,
              containers: [
                {
                  name: 'api',
                  image,
                  command: ['/nodejs/bin/node', '-e', APP_SERVER],
                  env: [
                    { name: 'DB_POOL_SIZE', value: '20' },
                    { name: 'DB_MAX_OVERFLOW', value: '40' },
                  ],
                  readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
    });
    await createPolicy(ownPlane().kc, workNamespace, name, {
      targetRef: { name, container: 'api' },
      mode: 'Auto',
      interval: FAST.interval,
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: FAST.behavior,
    });
  }

  it('runs two replicas under Pod Security "restricted", Ready through the kubelet\'s probes, one holding the Lease', async () => {
    const namespace = await core.readNamespace({ name: SYSTEM_NAMESPACE });
    expect(namespace.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');

    const pods = await eventually(
      async () => {
        const ready = await operatorPods();
        return ready.length === 2 ? ready : undefined;
      },
      120_000,
      'two Ready operator Pods',
    );
    const leader = await eventually(leaderPod, 60_000, 'a Lease holder');
    expect(pods.map((pod) => pod.metadata?.name)).toContain(leader);

    const gauges = new Map<string, string | undefined>();
    for (const pod of pods) gauges.set(pod.metadata?.name ?? '', await leaderGauge(pod));
    expect([...gauges.values()].sort()).toEqual(['0', '1']);
    expect(gauges.get(leader)).toBe('1');
  });

  it('reconciles a PoolPolicy as its ServiceAccount: DB_POOL_SIZE 20 → 24, rolled out on the node', async () => {
    await tunedApp('api', 1, 90, 24);

    await eventually(async () => ((await poolSize()) === '24' ? true : undefined), 90_000, 'DB_POOL_SIZE 24');
    const deployment = await apps.readNamespacedDeployment({ name: 'api', namespace: workNamespace });
    const poolpilotFields = deployment.metadata?.managedFields?.find((f) => f.manager === 'poolpilot');
    expect(poolpilotFields?.operation).toBe('Apply');

    // The real deployment controller and kubelet roll it out: a Ready Pod with the new env.
    await eventually(
      async () => {
        const list = await core.listNamespacedPod({ namespace: workNamespace, labelSelector: 'app=api' });
        const ready = list.items.filter(
          (pod) =>
            pod.metadata?.deletionTimestamp === undefined &&
            pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        const env = ready[0]?.spec?.containers[0]?.env ?? [];
        return ready.length === 1 && env.some((e) => e.name === 'DB_POOL_SIZE' && e.value === '24') ? true : undefined;
      },
      120_000,
      'a Ready Pod with DB_POOL_SIZE 24',
    );
    const policy = await eventually(
      async () => {
        const p = await getPolicy(ownPlane().kc, workNamespace, 'api');
        return p.status?.current?.DB_POOL_SIZE === 24 ? p : undefined;
      },
      60_000,
      'status current 24',
    );
    expect(condition(policy, 'Ready')?.status).toBe('True');
  });

  it("deleting the leader's Pod: it exits 0 on SIGTERM, a live replica takes the Lease and goes on reconciling", async () => {
    const leader = await eventually(leaderPod, 60_000, 'a Lease holder');
    const follower = (await operatorPods()).map((pod) => pod.metadata?.name).find((name) => name !== leader);
    expect(follower).toBeDefined();

    // The kubelet writes the container's end into the Pod's status before the Pod goes away.
    let terminated: V1ContainerStateTerminated | undefined;
    const watch = await new Watch(ownPlane().kc).watch(
      `/api/v1/namespaces/${SYSTEM_NAMESPACE}/pods`,
      { fieldSelector: `metadata.name=${leader}` },
      (_type: string, pod: V1Pod) => {
        terminated = pod.status?.containerStatuses?.[0]?.state?.terminated ?? terminated;
      },
      () => undefined,
    );
    try {
      await core.deleteNamespacedPod({ name: leader, namespace: SYSTEM_NAMESPACE });
      const next = await eventually(
        async () => {
          const holder = await leaderPod();
          return holder !== undefined && holder !== leader ? holder : undefined;
        },
        60_000,
        'a new Lease holder',
      );
      // Released on SIGTERM, the Lease goes to whichever candidate asks first: the other replica or,
      // as often, the ReplicaSet's replacement Pod, which asks as soon as it starts.
      const live = await core.listNamespacedPod({
        namespace: SYSTEM_NAMESPACE,
        labelSelector: 'app.kubernetes.io/name=poolpilot',
      });
      const candidates = live.items.filter((pod) => pod.metadata?.deletionTimestamp === undefined);
      expect(candidates.map((pod) => pod.metadata?.name)).toContain(next);
      await eventually(() => Promise.resolve(terminated), 60_000, 'the old leader to end');
      expect(terminated?.exitCode).toBe(0);
    } finally {
      watch.abort();
    }

    // The new leader acts: a higher ceiling, and it raises the pool again.
    await ownPlane()
      .kc.makeApiClient(CustomObjectsApi)
      .patchNamespacedCustomObject({
        ...policyApi,
        namespace: workNamespace,
        name: 'api',
        body: [{ op: 'replace', path: '/spec/database/poolSize/max', value: 28 }],
      });
    await eventually(async () => ((await poolSize()) === '28' ? true : undefined), 90_000, 'DB_POOL_SIZE 28');
  });

  it('changes a Deployment again only once the real deployment controller finished rolling the last change out', async () => {
    // Every version of the Deployment, in order, from a watch: a change of its template (a new
    // generation) must come right after a version whose rollout was complete: every one of its
    // 4 Pods updated and available, no old Pod left (25 % surge and unavailability, the defaults).
    interface Version {
      readonly generation: number;
      readonly complete: boolean;
      readonly poolSize: string | undefined;
    }
    const versions: Version[] = [];
    const watch = await new Watch(ownPlane().kc).watch(
      `/apis/apps/v1/namespaces/${workNamespace}/deployments`,
      { fieldSelector: 'metadata.name=gate' },
      (_type: string, deployment: V1Deployment) => {
        const status = deployment.status;
        const generation = deployment.metadata?.generation ?? 0;
        versions.push({
          generation,
          complete:
            status?.observedGeneration === generation &&
            status.updatedReplicas === 4 &&
            status.availableReplicas === 4 &&
            status.replicas === 4,
          poolSize: envOf(deployment, 'api').DB_POOL_SIZE,
        });
      },
      () => undefined,
    );
    try {
      await tunedApp('gate', 4, 95, 28);
      // 20 → 24 → 28 (maxStepPercent 20, the ceiling 28): two changes, two rollouts.
      await eventually(async () => ((await poolSize('gate')) === '28' ? true : undefined), 180_000, 'DB_POOL_SIZE 28');
      await eventually(
        () => Promise.resolve(versions.at(-1)?.complete === true ? true : undefined),
        120_000,
        'the last rollout to complete',
      );
    } finally {
      watch.abort();
    }

    const changes = versions.flatMap((version, i) => {
      const before = versions[i - 1];
      return before !== undefined && version.generation > before.generation ? [{ before, after: version }] : [];
    });
    expect(changes.map((c) => `${c.before.poolSize ?? ''}→${c.after.poolSize ?? ''}`)).toEqual(['20→24', '24→28']);
    for (const change of changes) expect(change.before.complete).toBe(true);
  });

  // KubeletSync: the kubelet rewrites a ConfigMap volume on its next sync of the Pod, up to its
  // syncFrequency (1 min, the default here) and more; 3 min leaves room. AnnotatePods: the
  // annotation makes the kubelet sync each Pod at once, well within 30 s.
  it.each<[RefreshKind, string, string]>([
    ['KubeletSync', 'shop', '3m'],
    ['AnnotatePods', 'quick', '30s'],
  ])(
    "delivers pool settings through a mounted ConfigMap (refresh %s): the demo app's Pods reload them without a restart and confirm them",
    async (refresh, app, confirmTimeout) => {
      const plane = ownPlane();
      const image = loadImage(plane, 'demo-workload');
      const backends = startDemoBackends({ nodeAddress: new URL(plane.apiServerUrl).hostname });
      try {
        await core.createNamespacedConfigMap({
          namespace: workNamespace,
          body: { metadata: { name: `${app}-pools` }, data: { 'pools.env': 'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n' } },
        });
        await apps.createNamespacedDeployment({
          namespace: workNamespace,
          body: demoAppDeployment(app, image, backends.env, `${app}-pools`),
        });
        const started = await eventually(
          async () => {
            const list = await core.listNamespacedPod({ namespace: workNamespace, labelSelector: `app=${app}` });
            const ready = list.items.filter((pod) =>
              pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
            );
            return ready.length === 2 ? ready : undefined;
          },
          120_000,
          `both Pods of ${app} Ready`,
        );
        // Idle Pods report 0 % utilization: one step down, 10 → 8, then none for 10 minutes.
        await createPolicy(plane.kc, workNamespace, app, {
          targetRef: { name: app, container: 'api' },
          interval: FAST.interval,
          metricsPrefix: 'voiceassist_',
          database: { poolSize: { min: 4, max: 40 }, maxOverflow: { ratio: 2, min: 0, max: 80 } },
          behavior: { ...FAST.behavior, minChangeInterval: '10m' },
          delivery: { mode: 'ConfigMap', configMapRef: { name: `${app}-pools` }, confirmTimeout, refresh },
        });
        const applied = await eventually(
          async () => {
            const p = await getPolicy(plane.kc, workNamespace, app);
            return condition(p, 'Delivered')?.reason === 'Applied' ? p : undefined;
          },
          240_000,
          'the delivery confirmed by both Pods',
        );
        const delivery = (applied.status as { delivery?: DeliveryRecord } | undefined)?.delivery;
        expect(delivery?.written).toEqual({ DB_POOL_SIZE: 8, DB_MAX_OVERFLOW: 16 });
        expect(delivery?.pods?.map((p) => p.name).sort()).toEqual(started.map((pod) => pod.metadata?.name).sort());
        expect(condition(applied, 'Delivered')?.message).toMatch(/every pod \(2\) reported it by/);
        const file = (await core.readNamespacedConfigMap({ name: `${app}-pools`, namespace: workNamespace })).data;
        expect(file?.['pools.env']).toBe('DB_POOL_SIZE=8\nDB_MAX_OVERFLOW=16\n');

        // No rollout and no restart: the same Pods, none of their containers restarted.
        expect(
          (await apps.readNamespacedDeployment({ name: app, namespace: workNamespace })).metadata?.generation,
        ).toBe(1);
        const after = await core.listNamespacedPod({ namespace: workNamespace, labelSelector: `app=${app}` });
        expect(after.items.map((pod) => pod.metadata?.uid).sort()).toEqual(
          started.map((pod) => pod.metadata?.uid).sort(),
        );
        expect(after.items.map((pod) => pod.status?.containerStatuses?.[0]?.restartCount)).toEqual([0, 0]);
        const annotations = after.items.map((pod) => pod.metadata?.annotations?.['poolpilot.io/pool-config']);
        if (refresh === 'AnnotatePods') {
          const checksum = createHash('sha256')
            .update('DB_POOL_SIZE=8\nDB_MAX_OVERFLOW=16\n')
            .digest('hex')
            .slice(0, 16);
          expect(annotations).toEqual([checksum, checksum]);
        } else expect(annotations).toEqual([undefined, undefined]);
      } finally {
        backends.stop();
      }
    },
    IMAGE_BUILD_TIMEOUT_MS + 420_000,
  );
});

/** What the test reads of status.delivery. */
interface DeliveryRecord {
  readonly written: Record<string, number>;
  readonly pods?: ReadonlyArray<{ readonly name: string }>;
}

/**
 * Two Pods of the demo app (demo/workload/app.py in the image image/build.sh makes) on 8080 of
 * their Pod, scraped by Prometheus through kubernetes_sd, reading their pool settings from
 * `configMap` mounted as a directory, on the demo's PostgreSQL and Redis.
 */
function demoAppDeployment(
  name: string,
  image: string,
  backends: Readonly<Record<string, string>>,
  configMap: string,
): V1Deployment {
  return {
    metadata: { name },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080' },
        },
        spec: {
          terminationGracePeriodSeconds: 5,
          volumes: [{ name: 'pools', configMap: { name: configMap } }],
          containers: [
            {
              name: 'api',
              image,
              command: ['/usr/bin/python3', '/app/app.py'],
              env: [
                { name: 'POOL_CONFIG_FILE', value: '/etc/poolpilot/pools.env' },
                { name: 'PORT', value: '8080' },
                { name: 'LISTEN_ADDRESS', value: '0.0.0.0' },
                { name: 'DATABASE_URL', value: backends.DATABASE_URL ?? '' },
                { name: 'REDIS_URL', value: backends.REDIS_URL ?? '' },
              ],
              ports: [{ name: 'http', containerPort: 8080 }],
              volumeMounts: [{ name: 'pools', mountPath: '/etc/poolpilot' }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}
