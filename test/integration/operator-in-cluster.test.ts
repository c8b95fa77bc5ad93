import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Watch,
  type V1ContainerStateTerminated,
  type V1Pod,
} from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { createTestNamespace } from './support/kube.js';
import { condition, envOf, getPolicy } from './support/operator.js';
import {
  IMAGE_BUILD_TIMEOUT_MS,
  installOperatorInCluster,
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
// deleted: it exits 0 on SIGTERM and the other replica takes over and goes on reconciling.
// Opt-in: POOLPILOT_NODE_TESTS=1 (see nodeTestsWanted).

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
  let exporter: ScrapeTarget | undefined;

  beforeAll(async () => {
    plane = startOwnPlane('in-cluster', { controllers: true, node: true });
    installOperatorInCluster(plane);
    apps = plane.kc.makeApiClient(AppsV1Api);
    core = plane.kc.makeApiClient(CoreV1Api);
    workNamespace = await createTestNamespace(plane.kc, 'apps');
  }, OWN_PLANE_START_TIMEOUT_MS + IMAGE_BUILD_TIMEOUT_MS);
  afterAll(async () => {
    await exporter?.stop();
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

  async function poolSize(): Promise<string | undefined> {
    return envOf(await apps.readNamespacedDeployment({ name: 'api', namespace: workNamespace }), 'api').DB_POOL_SIZE;
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
    exporter = await startScrapeTarget(
      'in-cluster-api',
      { namespace: workNamespace, pod: 'api-5d8c7-x2x9q' },
      ownPlane().prometheusTargetsDir,
    );
    new Gauge({ name: METRIC, help: 'pool utilization', registers: [exporter.registry] }).set(90);
    const image = (await operatorPods())[0]?.spec?.containers[0]?.image ?? '';
    await apps.createNamespacedDeployment({
      namespace: workNamespace,
      body: {
        metadata: { name: 'api' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'api' } },
          template: {
            metadata: { labels: { app: 'api' } },
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
    await ownPlane()
      .kc.makeApiClient(CustomObjectsApi)
      .createNamespacedCustomObject({
        ...policyApi,
        namespace: workNamespace,
        body: {
          apiVersion: 'poolpilot.io/v1alpha1',
          kind: 'PoolPolicy',
          metadata: { name: 'api' },
          spec: {
            targetRef: { name: 'api', container: 'api' },
            mode: 'Auto',
            interval: FAST.interval,
            metricsPrefix: 'voiceassist_',
            database: { poolSize: { min: 10, max: 24 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
            behavior: FAST.behavior,
          },
        },
      });

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

  it("deleting the leader's Pod: it exits 0 on SIGTERM, the other replica takes the Lease and goes on reconciling", async () => {
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
      expect(next).toBe(follower);
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
});
