import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoreV1Api, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { createTestNamespace } from './support/kube.js';
import {
  IMAGE_BUILD_TIMEOUT_MS,
  loadImage,
  nodeTestsWanted,
  OWN_PLANE_START_TIMEOUT_MS,
  startOwnPlane,
  type OwnPlane,
} from './support/own-plane.js';
import { eventually } from './support/prometheus.js';

// Issue 13, item 2: a real node on this machine (local-up.sh NODE=1): containerd and runc from
// Debian, a kubelet built from k8s.io/kubernetes, a CNI bridge. The Pods run the operator image
// built here from the Dockerfile (image/build.sh), with a small HTTP server as their command, so
// that the kubelet's readiness probe and this test can reach them over the pod network.
// Run by `make test-node` (see nodeTestsWanted).

/**
 * Answers every request with $GREETING and the Pod's name; says so on stdout once listening;
 * exits at once on SIGTERM.
 */
const SERVER = [
  "const name = require('node:os').hostname();",
  "require('node:http').createServer((req, res) => res.end(process.env.GREETING + ' from ' + name))",
  ".listen(8080, () => console.log(name + ' listening on 8080'));",
  "process.on('SIGTERM', () => process.exit(0));",
].join(' ');

(nodeTestsWanted ? describe : describe.skip)('a real node', () => {
  let plane: OwnPlane | undefined;
  let image: string;
  let apps: AppsV1Api;
  let core: CoreV1Api;
  let namespace: string;

  beforeAll(async () => {
    plane = startOwnPlane('real-node', { controllers: true, node: true });
    image = loadImage(plane, 'operator');
    apps = plane.kc.makeApiClient(AppsV1Api);
    core = plane.kc.makeApiClient(CoreV1Api);
    namespace = await createTestNamespace(plane.kc, 'node');
  }, OWN_PLANE_START_TIMEOUT_MS + IMAGE_BUILD_TIMEOUT_MS);
  afterAll(() => {
    plane?.stop();
  });

  function webDeployment(replicas: number, greeting: string): V1Deployment {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            terminationGracePeriodSeconds: 5,
            containers: [
              {
                name: 'web',
                image,
                // Never pull: the image was imported into containerd, and no registry is reachable.
                imagePullPolicy: 'Never',
                command: ['/nodejs/bin/node', '-e', SERVER],
                env: [{ name: 'GREETING', value: greeting }],
                ports: [{ containerPort: 8080 }],
                readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
                securityContext: {
                  runAsNonRoot: true,
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  seccompProfile: { type: 'RuntimeDefault' },
                },
              },
            ],
          },
        },
      },
    };
  }

  async function readyPods(): Promise<V1Pod[]> {
    const list = await core.listNamespacedPod({ namespace, labelSelector: 'app=web' });
    return list.items.filter(
      (pod) =>
        pod.metadata?.deletionTimestamp === undefined &&
        pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
  }

  /** What each Pod answers over the pod network, by Pod name. */
  async function answers(pods: readonly V1Pod[]): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    for (const pod of pods) {
      const response = await fetch(`http://${pod.status?.podIP ?? 'no-ip'}:8080/`);
      result.set(pod.metadata?.name ?? '', await response.text());
    }
    return result;
  }

  async function rolledOut(replicas: number): Promise<V1Deployment | undefined> {
    const deployment = await apps.readNamespacedDeployment({ name: 'web', namespace });
    const status = deployment.status;
    if (status === undefined) return undefined;
    const done =
      status.observedGeneration === deployment.metadata?.generation &&
      status.replicas === replicas &&
      status.updatedReplicas === replicas &&
      status.availableReplicas === replicas;
    return done ? deployment : undefined;
  }

  it('runs Pods from the image built here; the kubelet probes them and they answer over the pod network', async () => {
    await apps.createNamespacedDeployment({ namespace, body: webDeployment(2, 'hello') });
    await eventually(() => rolledOut(2), 120_000, 'two ready Pods');

    const pods = await readyPods();
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.spec?.nodeName).toBe('poolpilot-node');
      expect(pod.status?.podIP).toMatch(/^10\.213\.0\./);
      expect(pod.status?.containerStatuses?.[0]?.image).toBe(image);
    }
    const byPod = await answers(pods);
    for (const [name, answer] of byPod) expect(answer).toBe(`hello from ${name}`);

    // The API server reaches the kubelet for a Pod's log (kubectl logs).
    const name = pods[0]?.metadata?.name ?? '';
    const log = await core.readNamespacedPodLog({ name, namespace });
    expect(log).toBe(`${name} listening on 8080\n`);
  });

  it('rolls a template change out to the end: every Pod replaced, the old ReplicaSet at 0', async () => {
    const before = new Set((await readyPods()).map((pod) => pod.metadata?.name));
    await apps.patchNamespacedDeployment({
      name: 'web',
      namespace,
      body: [{ op: 'replace', path: '/spec/template/spec/containers/0/env/0/value', value: 'hi' }],
    });
    await eventually(
      async () => {
        const deployment = await rolledOut(2);
        const pods = await readyPods();
        return deployment !== undefined && pods.length === 2 ? deployment : undefined;
      },
      120_000,
      'the rollout to complete',
    );

    const pods = await readyPods();
    for (const pod of pods) expect(before.has(pod.metadata?.name)).toBe(false);
    const byPod = await answers(pods);
    for (const [name, answer] of byPod) expect(answer).toBe(`hi from ${name}`);
    const sets = await apps.listNamespacedReplicaSet({ namespace });
    const sizes = sets.items.map((rs) => rs.spec?.replicas).sort();
    expect(sizes).toEqual([0, 2]);
  });

  it("delivers a ConfigMap change into a Pod's mounted directory without a restart", async () => {
    // As poolpilot's ConfigMap delivery needs it: a configMap volume mounted as a directory (no
    // subPath), which the kubelet rewrites in place after the change (on its next sync of the Pod).
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'pools' }, data: { 'pools.env': 'DB_POOL_SIZE=20\n' } },
    });
    const reader = [
      "const fs = require('node:fs');",
      "require('node:http').createServer((req, res) => res.end(fs.readFileSync('/etc/pools/pools.env')))",
      '.listen(8080);',
      "process.on('SIGTERM', () => process.exit(0));",
    ].join(' ');
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'reader', labels: { app: 'reader' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'reader',
              image,
              imagePullPolicy: 'Never',
              command: ['/nodejs/bin/node', '-e', reader],
              readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
              volumeMounts: [{ name: 'pools', mountPath: '/etc/pools' }],
            },
          ],
          volumes: [{ name: 'pools', configMap: { name: 'pools' } }],
        },
      },
    });
    const pod = await eventually(
      async () => {
        const current = await core.readNamespacedPod({ name: 'reader', namespace });
        const ready = current.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return ready === true ? current : undefined;
      },
      120_000,
      'the reader Pod Ready',
    );
    const url = `http://${pod.status?.podIP ?? 'no-ip'}:8080/`;
    expect(await (await fetch(url)).text()).toBe('DB_POOL_SIZE=20\n');

    await core.patchNamespacedConfigMap({
      name: 'pools',
      namespace,
      body: [{ op: 'replace', path: '/data/pools.env', value: 'DB_POOL_SIZE=24\n' }],
    });
    // The kubelet's sync period is 1 minute (plus jitter) by default.
    await eventually(
      async () => ((await (await fetch(url)).text()) === 'DB_POOL_SIZE=24\n' ? true : undefined),
      150_000,
      'the new file in the Pod',
    );
    const after = await core.readNamespacedPod({ name: 'reader', namespace });
    expect(after.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    expect(after.metadata?.uid).toBe(pod.metadata?.uid);
  }, 300_000);
});
