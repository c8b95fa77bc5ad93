/**
 * The demo's node agent (demo/node-agent.ts) against the real kube-apiserver: it runs a
 * Deployment's replicas as local processes, writes the Deployment status as the deployment
 * controller would, replaces the processes one at a time when the pod template changes (with a
 * surge pod by default, without one under maxSurge 0), and
 * writes a ConfigMap volume to disk and sends SIGHUP when it changes.
 *
 * Stand-in pods (no PostgreSQL needed): Debian's `/usr/bin/python3 -m http.server $(PORT)`
 * (readinessProbe httpGet /), and a small `/usr/bin/python3 -c` script that prints its config
 * file at start and again on SIGHUP.
 */
import { describe, it, expect, beforeAll, afterAll } from '@jest/globals';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { startNodeAgent, type NodeAgent, type PodView } from '../../demo/node-agent.js';
import { deploymentPods, GENERATED_NAME_ALPHABET } from '../../src/adapters/prometheus-queries.js';
import { rolloutCompletedAt } from '../../src/domain/rollout.js';
import { adminKubeConfig, createTestNamespace, deleteTestNamespace } from './support/kube.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import { eventually } from './support/prometheus.js';

const WEB = 'web';
const RELOADER = 'reloader';
const RELOADER_SCRIPT = [
  'import signal, sys, time',
  'path = sys.argv[1]',
  "signal.signal(signal.SIGHUP, lambda *a: print('reloaded', open(path).read().strip(), flush=True))",
  "print('loaded', open(path).read().strip(), flush=True)",
  'while True: time.sleep(1)',
].join('\n');

function webDeployment(greeting: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: WEB },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: WEB } },
      template: {
        metadata: { labels: { app: WEB }, annotations: { 'prometheus.io/scrape': 'true' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'web',
              image: 'example.invalid/web:1',
              command: ['/usr/bin/python3', '-m', 'http.server', '$(PORT)', '--bind', '127.0.0.1'],
              env: [{ name: 'GREETING', value: greeting }],
              readinessProbe: { httpGet: { path: '/', port: 'http' } },
            },
          ],
        },
      },
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('demo node agent', () => {
  let kc: KubeConfig;
  let namespace: string;
  let agent: NodeAgent | undefined;
  let stateDir: string;
  let targetsDir: string;
  const snapshots: Array<readonly PodView[]> = [];
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    kc = adminKubeConfig();
    namespace = await createTestNamespace(kc, 'demo-agent');
    stateDir = mkdtempSync(join(tmpdir(), 'poolpilot-demo-agent-'));
    targetsDir = join(stateDir, 'targets');
    agent = startNodeAgent({
      kubeconfig: readLocalEnv().KUBECONFIG,
      namespace,
      targetsDir,
      stateDir,
      cwd: repoRoot,
      ...(process.env.DEMO_AGENT_LOG === '1' ? {} : { log: () => undefined }),
    });
    sampler = setInterval(() => {
      if (agent) snapshots.push(agent.pods(WEB));
    }, 25);
  });

  afterAll(async () => {
    clearInterval(sampler);
    await agent?.stop();
    await deleteTestNamespace(kc, namespace);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const apps = (): AppsV1Api => kc.makeApiClient(AppsV1Api);

  it('runs spec.replicas processes with the template env, registers them, and writes a complete status', async () => {
    await apps().createNamespacedDeployment({ namespace, body: webDeployment('v1') });
    const d = await eventually(
      async () => {
        const got = await apps().readNamespacedDeployment({ name: WEB, namespace });
        return got.status?.conditions?.some((c) => c.reason === 'NewReplicaSetAvailable') === true ? got : undefined;
      },
      30000,
      'the first rollout',
    );
    const pods = agent?.pods(WEB) ?? [];
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      // Named as Kubernetes names a Deployment's pods, so the operator's built-in queries read them.
      expect(pod.name).toMatch(new RegExp(`^${WEB}-${pod.hash}-[${GENERATED_NAME_ALPHABET}]{5}$`));
      expect(deploymentPods(WEB).includes(pod.name)).toBe(true);
      expect(pod.env.GREETING).toBe('v1');
      expect(pod.ready).toBe(true);
      expect(alive(pod.pid)).toBe(true);
      // The process answers on its PORT, and Prometheus gets a file_sd entry with namespace and pod.
      expect((await fetch(`http://127.0.0.1:${pod.port}/`)).status).toBe(200);
      const target = JSON.parse(
        readFileSync(join(targetsDir, `demo-agent-${namespace}-${pod.name}.json`), 'utf8'),
      ) as unknown;
      expect(target).toEqual([
        { targets: [`127.0.0.1:${pod.port}`], labels: { namespace, pod: pod.name, deployment: WEB } },
      ]);
    }
    expect(d.status).toMatchObject({
      observedGeneration: 1,
      replicas: 2,
      updatedReplicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
    });
    expect(rolloutCompletedAt(d)).toBeInstanceOf(Date);
  });

  it('replaces the processes one at a time on a template change and reports the new generation', async () => {
    const before = agent?.pods(WEB) ?? [];
    const changedAt = new Date(Date.now() - 1000); // status times have second precision
    snapshots.length = 0;
    await apps().patchNamespacedDeployment({
      name: WEB,
      namespace,
      body: [{ op: 'replace', path: '/spec/template/spec/containers/0/env/0/value', value: 'v2' }],
    });
    const d = await eventually(
      async () => {
        const got = await apps().readNamespacedDeployment({ name: WEB, namespace });
        return got.metadata?.generation === 2 && rolloutCompletedAt(got) !== undefined ? got : undefined;
      },
      60000,
      'the rollout of generation 2',
    );

    const after = agent?.pods(WEB) ?? [];
    expect(after.map((p) => p.env.GREETING)).toEqual(['v2', 'v2']);
    expect(new Set(after.map((p) => p.hash)).size).toBe(1);
    expect(after[0]?.hash).not.toBe(before[0]?.hash);
    for (const old of before) {
      expect(alive(old.pid)).toBe(false);
      expect(existsSync(join(targetsDir, `demo-agent-${namespace}-${old.name}.json`))).toBe(false);
    }
    // One at a time (maxSurge 1, maxUnavailable 0): never more than 3 processes, never fewer
    // than 2 ready, and the old ones went one by one.
    expect(snapshots.length).toBeGreaterThan(10);
    expect(Math.max(...snapshots.map((s) => s.length))).toBe(3);
    expect(Math.min(...snapshots.map((s) => s.filter((p) => p.ready).length))).toBeGreaterThanOrEqual(2);
    const oldCounts = snapshots.map((s) => s.filter((p) => p.hash === before[0]?.hash).length);
    expect(oldCounts).toContain(1);

    expect(d.status).toMatchObject({
      observedGeneration: 2,
      replicas: 2,
      updatedReplicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
    });
    const progressing = d.status?.conditions?.find((c) => c.type === 'Progressing');
    expect(progressing?.reason).toBe('NewReplicaSetAvailable');
    expect(rolloutCompletedAt(d)?.getTime()).toBeGreaterThanOrEqual(changedAt.getTime());
  });

  it('with maxSurge 0 stops an old process before starting its replacement: never more than replicas', async () => {
    const before = agent?.pods(WEB) ?? [];
    snapshots.length = 0;
    await apps().patchNamespacedDeployment({
      name: WEB,
      namespace,
      body: [
        {
          op: 'add',
          path: '/spec/strategy',
          value: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
        },
        { op: 'replace', path: '/spec/template/spec/containers/0/env/0/value', value: 'v3' },
      ],
    });
    const d = await eventually(
      async () => {
        const got = await apps().readNamespacedDeployment({ name: WEB, namespace });
        return got.metadata?.generation === 3 && rolloutCompletedAt(got) !== undefined ? got : undefined;
      },
      60000,
      'the rollout of generation 3',
    );
    expect(agent?.pods(WEB).map((p) => p.env.GREETING)).toEqual(['v3', 'v3']);
    for (const old of before) expect(alive(old.pid)).toBe(false);
    expect(Math.max(...snapshots.map((s) => s.length))).toBe(2);
    expect(Math.min(...snapshots.map((s) => s.filter((p) => p.ready).length))).toBe(1);
    expect(d.status).toMatchObject({ observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 });
  });

  it('writes a ConfigMap volume to disk and sends SIGHUP when the ConfigMap changes', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'reloader-config' }, data: { 'app.ini': 'pool = 20\n' } },
    });
    await apps().createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: RELOADER },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: RELOADER } },
          template: {
            metadata: { labels: { app: RELOADER } },
            spec: {
              volumes: [{ name: 'config', configMap: { name: 'reloader-config' } }],
              containers: [
                {
                  name: 'reloader',
                  image: 'example.invalid/reloader:1',
                  command: ['/usr/bin/python3', '-c', RELOADER_SCRIPT, '/etc/reloader/app.ini'],
                  volumeMounts: [{ name: 'config', mountPath: '/etc/reloader' }],
                },
              ],
            },
          },
        },
      },
    });
    const pod = await eventually(
      async () => Promise.resolve(agent?.pods(RELOADER).find((p) => p.ready)),
      30000,
      'the reloader pod',
    );
    const logFile = join(stateDir, 'logs', `${pod.name}.log`);
    await eventually(
      async () =>
        Promise.resolve(
          existsSync(logFile) && readFileSync(logFile, 'utf8').includes('loaded pool = 20') ? true : undefined,
        ),
      10000,
      'the first load',
    );

    await core.patchNamespacedConfigMap({
      name: 'reloader-config',
      namespace,
      body: [{ op: 'replace', path: '/data/app.ini', value: 'pool = 24\n' }],
    });
    await eventually(
      async () => Promise.resolve(readFileSync(logFile, 'utf8').includes('reloaded pool = 24') ? true : undefined),
      15000,
      'the SIGHUP reload',
    );
    expect(readFileSync(join(stateDir, 'volumes', namespace, RELOADER, 'config', 'app.ini'), 'utf8')).toBe(
      'pool = 24\n',
    );
    // Same process: a ConfigMap change is a reload, not a restart.
    expect(agent?.pods(RELOADER).map((p) => p.pid)).toEqual([pod.pid]);
  });
});
