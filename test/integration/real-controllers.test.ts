import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  AppsV1Api,
  CoreV1Api,
  type V1Deployment,
  type V1OwnerReference,
  type V1ReplicaSet,
} from '@kubernetes/client-node';
import { createDeployment, createTestNamespace, deploymentManifest } from './support/kube.js';
import { OWN_PLANE_START_TIMEOUT_MS, startOwnPlane, type OwnPlane } from './support/own-plane.js';
import { eventually } from './support/prometheus.js';

// Issue 13, item 1: the real kube-controller-manager and kube-scheduler, built from the same
// k8s.io/kubernetes module as kube-apiserver, on a plane of this file's own (local-up.sh
// CONTROLLERS=1). No node runs, so Pods stay Pending: what is checked is what the controllers
// themselves do with Deployments, ReplicaSets, Pods and namespaces.

const REVISION = 'deployment.kubernetes.io/revision';

describe('the real controllers', () => {
  let plane: OwnPlane;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let namespace: string;

  beforeAll(async () => {
    plane = startOwnPlane('real-controllers', { controllers: true });
    apps = plane.kc.makeApiClient(AppsV1Api);
    core = plane.kc.makeApiClient(CoreV1Api);
    namespace = await createTestNamespace(plane.kc, 'controllers');
  }, OWN_PLANE_START_TIMEOUT_MS);
  afterAll(() => {
    plane.stop();
  });

  async function replicaSetsOf(deployment: string): Promise<V1ReplicaSet[]> {
    const list = await apps.listNamespacedReplicaSet({ namespace });
    return list.items.filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.name === deployment));
  }

  function withReplicas(deployment: V1Deployment, replicas: number): V1Deployment {
    if (deployment.spec) deployment.spec.replicas = replicas;
    return deployment;
  }

  function ownedBy(owners: V1OwnerReference[] | undefined): string[] {
    return (owners ?? []).map((o) => `${o.kind}/${o.name}`);
  }

  it('gives a Deployment a ReplicaSet and Pods, which the scheduler reports unschedulable without a node', async () => {
    await createDeployment(plane.kc, namespace, withReplicas(deploymentManifest('web', [{ name: 'api' }]), 2));

    const [replicaSet] = await eventually(async () => {
      const sets = await replicaSetsOf('web');
      return sets.length === 1 && sets[0]?.spec?.replicas === 2 ? sets : undefined;
    }, 60_000);
    expect(ownedBy(replicaSet?.metadata?.ownerReferences)).toEqual(['Deployment/web']);

    const pods = await eventually(async () => {
      const list = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
      const unschedulable = list.items.filter((pod) =>
        pod.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable'),
      );
      return unschedulable.length === 2 ? list.items : undefined;
    }, 60_000);
    for (const pod of pods) {
      expect(ownedBy(pod.metadata?.ownerReferences)).toEqual([`ReplicaSet/${replicaSet?.metadata?.name ?? ''}`]);
      expect(pod.status?.phase).toBe('Pending');
    }
    // The ServiceAccount controller made the namespace's `default` account, and admission gave
    // the Pod its token volume from it.
    expect(pods[0]?.spec?.serviceAccountName).toBe('default');
  });

  it('rolls a template change out with the default 25 % surge, and stops where no new Pod is available', async () => {
    const manifest = deploymentManifest('api', [{ name: 'api', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]);
    await createDeployment(plane.kc, namespace, withReplicas(manifest, 4));
    await eventually(async () => ((await replicaSetsOf('api'))[0]?.status?.replicas === 4 ? true : undefined), 60_000);

    await apps.patchNamespacedDeployment({
      name: 'api',
      namespace,
      body: [{ op: 'replace', path: '/spec/template/spec/containers/0/env/0/value', value: '30' }],
    });

    // 4 replicas, maxSurge 25 % (1) and maxUnavailable 25 % (1): at most 5 Pods, at least 3
    // meant to be available. None ever is (no node), so the controller surges one new Pod, drops
    // one old unavailable one, surges again and then can go no further: 3 old + 2 new.
    const sizes = await eventually(async () => {
      const sets = await replicaSetsOf('api');
      const byRevision = new Map(sets.map((rs) => [rs.metadata?.annotations?.[REVISION], rs.spec?.replicas]));
      return byRevision.get('1') === 3 && byRevision.get('2') === 2 ? byRevision : undefined;
    }, 60_000);
    expect(sizes.size).toBe(2);

    // The Deployment's status follows its ReplicaSets' on the controller's next syncs of it: wait
    // for a status of this generation counting 3 old and 2 new Pods. (5 Pods alone also match the
    // step before, 4 old + 1 new, which a fresh-clone CI run read twice as updatedReplicas 1.)
    const deployment = await eventually(
      async () => {
        const d = await apps.readNamespacedDeployment({ name: 'api', namespace });
        const settled =
          d.status?.observedGeneration === d.metadata?.generation &&
          d.status?.replicas === 5 &&
          d.status.updatedReplicas === 2;
        return settled ? d : undefined;
      },
      60_000,
      'a Deployment status of this generation with 5 Pods, 2 of them updated',
    );
    expect(deployment.status?.observedGeneration).toBe(deployment.metadata?.generation);
    expect(deployment.status?.updatedReplicas).toBe(2);
    expect(deployment.status?.conditions?.find((c) => c.type === 'Available')?.status).toBe('False');
    const newSet = (await replicaSetsOf('api')).find((rs) => rs.metadata?.annotations?.[REVISION] === '2');
    expect(newSet?.spec?.template?.spec?.containers[0]?.env).toEqual([{ name: 'DB_POOL_SIZE', value: '30' }]);
  });

  it('collects the ReplicaSets and Pods of a deleted Deployment', async () => {
    await apps.deleteNamespacedDeployment({ name: 'web', namespace, body: { propagationPolicy: 'Background' } });
    await eventually(async () => {
      const sets = await replicaSetsOf('web');
      const pods = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
      return sets.length === 0 && pods.items.length === 0 ? true : undefined;
    }, 60_000);
  });

  it('deletes a namespace with its contents to the end', async () => {
    const doomed = await createTestNamespace(plane.kc, 'doomed');
    await createDeployment(plane.kc, doomed, deploymentManifest('web', [{ name: 'api' }]));
    await core.createNamespacedConfigMap({ namespace: doomed, body: { metadata: { name: 'settings' } } });
    await eventually(async () => {
      const pods = await core.listNamespacedPod({ namespace: doomed });
      return pods.items.length === 1 ? true : undefined;
    }, 60_000);

    await core.deleteNamespace({ name: doomed });
    const gone = await eventually(async () => {
      const all = await core.listNamespace();
      return all.items.some((ns) => ns.metadata?.name === doomed) ? undefined : true;
    }, 90_000);
    expect(gone).toBe(true);
  });
});
