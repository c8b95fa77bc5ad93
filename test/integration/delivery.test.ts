/**
 * spec.delivery mode ConfigMap against the real kube-apiserver, the real Prometheus and the real
 * demo app (demo/workload/app.py on the demo's PostgreSQL and Redis), run as pods by the demo node
 * agent, which writes ConfigMap volumes to disk and sends SIGHUP on a change (the kubelet's part
 * until a real node runs here):
 * - the operator writes the pool settings into the mounted ConfigMap, byte-preserving, the pods
 *   reload them without a restart (metadata.generation stays 1), and Delivered turns True once
 *   every pod reports the written values in its gauges;
 * - an app that never reports them: NotConfirmed after confirmTimeout, one Warning event, and no
 *   further write (the ConfigMap's resourceVersion stays) while more passes run;
 * - a missing ConfigMap, a file it cannot edit safely, a ConfigMap no container mounts, or one
 *   mounted with subPath: Ready=False naming what to fix, nothing written.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, EventsV1Api, type V1Deployment } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { startNodeAgent, type NodeAgent } from '../../demo/node-agent.js';
import { startDemoBackends, type DemoBackends } from './support/demo-backends.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import { condition, createPolicy, getPolicy, type PolicyView } from './support/operator.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { FAST, openTestNamespace, passesOfEach, policyWhen, type OperatorNamespace } from './support/suite.js';

const PREFIX = 'voiceassist_';
const MOUNT = '/etc/poolpilot';

interface DeliveryStatus {
  configMap: string;
  written: Record<string, number>;
  replaced: Record<string, number>;
  writtenAt: string;
  confirmedAt?: string;
  pods?: Array<{ name: string; reportedAt: string }>;
}
const deliveryOf = (p: PolicyView): DeliveryStatus | undefined =>
  (p.status as { delivery?: DeliveryStatus } | undefined)?.delivery;

/** A Deployment whose container `api` mounts ConfigMap `configMap` at MOUNT (as `mount` says). */
function deployment(
  name: string,
  options: {
    replicas: number;
    configMap: string;
    mount: 'directory' | 'subPath' | 'none';
    env?: Array<{ name: string; value: string }>;
  },
): V1Deployment {
  const mounts =
    options.mount === 'none'
      ? []
      : [
          options.mount === 'subPath'
            ? { name: 'pools', mountPath: `${MOUNT}/pools.env`, subPath: 'pools.env' }
            : { name: 'pools', mountPath: MOUNT },
        ];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: options.replicas,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: { 'prometheus.io/scrape': 'true' } },
        spec: {
          terminationGracePeriodSeconds: 5,
          volumes: [{ name: 'pools', configMap: { name: options.configMap } }],
          containers: [
            {
              name: 'api',
              image: 'example.invalid/voiceassist-api:test',
              command: ['/usr/bin/python3', 'demo/workload/app.py'],
              env: [
                { name: 'POOL_CONFIG_FILE', value: `${MOUNT}/pools.env` },
                { name: 'DB_POOL_TIMEOUT', value: '2' },
                ...(options.env ?? []),
              ],
              volumeMounts: mounts,
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' } },
            },
          ],
        },
      },
    },
  };
}

/**
 * confirmTimeout bounds how long the pods may take to report a delivery: the ConfigMap watch, the
 * app's 1 s poll of its file, a 1 s scrape and the operator's next pass. 30 s leaves a loaded CI
 * machine room (with 4 s one CI run never saw its first delivery confirmed, likely timed out: a
 * NotConfirmed delivery is not repeated); a delivery that is confirmed ends the wait at once.
 */
function policySpec(
  target: string,
  configMap: string,
  confirmTimeout = '30s',
  minChangeInterval = '0s',
): Record<string, unknown> {
  return {
    targetRef: { name: target, container: 'api' },
    ...FAST,
    metricsPrefix: PREFIX,
    database: { poolSize: { min: 4, max: 40 }, maxOverflow: { ratio: 2, min: 0, max: 80 } },
    behavior: { ...FAST.behavior, minChangeInterval },
    delivery: { mode: 'ConfigMap', configMapRef: { name: configMap }, confirmTimeout },
  };
}

describe('spec.delivery ConfigMap: pools changed without a restart, confirmed by the pods', () => {
  let ns: OperatorNamespace;
  let backends: DemoBackends;
  let agent: NodeAgent;
  let agentState: string;
  let silentPod: ScrapeTarget | undefined;
  const apps = (): AppsV1Api => ns.kc.makeApiClient(AppsV1Api);
  const core = (): CoreV1Api => ns.kc.makeApiClient(CoreV1Api);
  const configMap = async (name: string) => core().readNamespacedConfigMap({ name, namespace: ns.namespace });
  const createConfigMap = async (name: string, text: string): Promise<void> => {
    await core().createNamespacedConfigMap({
      namespace: ns.namespace,
      body: { metadata: { name }, data: { 'pools.env': text } },
    });
  };

  beforeAll(async () => {
    ns = await openTestNamespace('delivery', { operator: true });
    backends = startDemoBackends();
    agentState = mkdtempSync(join(tmpdir(), 'poolpilot-delivery-agent-'));
    agent = startNodeAgent({
      kubeconfig: readLocalEnv().KUBECONFIG,
      namespace: ns.namespace,
      targetsDir: readLocalEnv().PROMETHEUS_TARGETS_DIR,
      stateDir: agentState,
      cwd: repoRoot,
      log: () => undefined,
    });
  }, 120_000);

  afterAll(async () => {
    await ns.close(
      () => silentPod?.stop(),
      () => agent.stop(),
      () => {
        backends.stop();
      },
    );
    rmSync(agentState, { recursive: true, force: true });
  }, 120_000);

  it('writes the settings into the mounted file, the pods reload them, Delivered=True: no rollout, other lines kept', async () => {
    const appFile = 'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n# the app reads these too\nREDIS_MAX_CONNECTIONS=10\n';
    await createConfigMap('api-pools', appFile);
    await apps().createNamespacedDeployment({
      namespace: ns.namespace,
      body: deployment('api', {
        replicas: 2,
        configMap: 'api-pools',
        mount: 'directory',
        env: [
          { name: 'DATABASE_URL', value: backends.env.DATABASE_URL ?? '' },
          { name: 'REDIS_URL', value: backends.env.REDIS_URL ?? '' },
        ],
      }),
    });
    await eventually(
      async () =>
        (await apps().readNamespacedDeployment({ name: 'api', namespace: ns.namespace })).status?.readyReplicas === 2
          ? true
          : undefined,
      60_000,
      'both pods of api ready',
    );
    // Idle pods sit at 0 % utilization: the policy steps DB_POOL_SIZE down 10 → 8 → 7 … → 4.
    // Each confirmed delivery stays in status for 3 s before the next step, so the test reads the
    // first one there (with 0 s a loaded CI machine stepped on to the min between two polls).
    await createPolicy(ns.kc, ns.namespace, 'api', policySpec('api', 'api-pools', '30s', '3s'));

    const applied = await policyWhen(
      ns.kc,
      ns.namespace,
      'api',
      (p) => condition(p, 'Delivered')?.reason === 'Applied' && deliveryOf(p)?.replaced.DB_POOL_SIZE === 10,
      'the first delivery confirmed by both pods',
      90_000,
    );
    const first = deliveryOf(applied);
    expect(first?.written).toEqual({ DB_POOL_SIZE: 8, DB_MAX_OVERFLOW: 16 });
    expect(first?.pods?.map((p) => p.name)).toHaveLength(2);
    expect(Date.parse(first?.confirmedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(first?.writtenAt ?? ''));
    expect(condition(applied, 'Delivered')?.message).toMatch(/every pod \(2\) reported it by/);

    // The next steps follow, each after the pods ran the one before, down to min 4.
    const settled = await policyWhen(
      ns.kc,
      ns.namespace,
      'api',
      (p) => condition(p, 'Delivered')?.reason === 'Applied' && deliveryOf(p)?.written.DB_POOL_SIZE === 4,
      'DB_POOL_SIZE delivered down to its min 4',
      120_000,
    );
    const history = (settled.status?.history ?? []) as Array<{ changes: Array<{ setting: string; to: number }> }>;
    expect(history.map((h) => h.changes.find((c) => c.setting === 'DB_POOL_SIZE')?.to)).toEqual([8, 7, 6, 5, 4]);
    const text = (await configMap('api-pools')).data?.['pools.env'];
    expect(text).toBe('DB_POOL_SIZE=4\nDB_MAX_OVERFLOW=8\n# the app reads these too\nREDIS_MAX_CONNECTIONS=10\n');
    const target = await apps().readNamespacedDeployment({ name: 'api', namespace: ns.namespace });
    expect(target.metadata?.generation).toBe(1);
    expect(target.spec?.template.spec?.containers[0]?.env?.map((e) => e.name)).toEqual([
      'POOL_CONFIG_FILE',
      'DB_POOL_TIMEOUT',
      'DATABASE_URL',
      'REDIS_URL',
    ]);
  }, 300_000);

  it('an app that never reports the written values: NotConfirmed once, a Warning, and nothing written again', async () => {
    await createConfigMap('silent-pools', 'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n');
    // No pod runs (replicas 0): a stand-in pod exports the old settings and never reloads.
    await apps().createNamespacedDeployment({
      namespace: ns.namespace,
      body: deployment('silent', { replicas: 0, configMap: 'silent-pools', mount: 'directory' }),
    });
    const pod = await startScrapeTarget(`delivery-silent-${ns.namespace}`, {
      namespace: ns.namespace,
      pod: 'silent-5d4f8b7c9-x2x9q',
    });
    silentPod = pod;
    const gauge = (name: string, value: number): void => {
      new Gauge({ name: `${PREFIX}${name}`, help: name, registers: [pod.registry] }).set(value);
    };
    gauge('db_pool_utilization_percent', 5);
    gauge('db_pool_size', 10);
    gauge('db_pool_max_overflow', 20);
    await createPolicy(ns.kc, ns.namespace, 'silent', policySpec('silent', 'silent-pools', '4s'));

    const refused = await policyWhen(
      ns.kc,
      ns.namespace,
      'silent',
      (p) => condition(p, 'Delivered')?.reason === 'NotConfirmed',
      'the delivery NotConfirmed after 4s',
      60_000,
    );
    expect(condition(refused, 'Delivered')?.message).toMatch(
      /DB_MAX_OVERFLOW=16 DB_POOL_SIZE=8 written to silent-pools\/pools.env at .*; not confirmed within 4s: 0 of 1 pods run it \(waiting for silent-5d4f8b7c9-x2x9q\)\. Check that the app re-reads silent-pools\/pools.env/,
    );
    expect(condition(refused, 'Limited')?.reason).toBe('DeliveryPending');
    const written = (await configMap('silent-pools')).metadata?.resourceVersion;

    await passesOfEach(ns.operator, ns.kc, ns.namespace, 5);
    expect((await configMap('silent-pools')).metadata?.resourceVersion).toBe(written);
    expect((await getPolicy(ns.kc, ns.namespace, 'silent')).status?.history).toHaveLength(1);
    const events = await ns.kc.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: ns.namespace });
    const warnings = events.items.filter((e) => e.regarding?.name === 'silent' && e.reason === 'NotConfirmed');
    expect(warnings.map((e) => e.type)).toEqual(['Warning']);
  }, 120_000);

  it.each<[string, string, string | undefined, 'directory' | 'subPath' | 'none', RegExp]>([
    [
      'a missing ConfigMap',
      'DeliveryConfigMapNotFound',
      undefined,
      'directory',
      /configmap gone-pools not found in namespace .*; create it \(it may be empty\) or fix the name/,
    ],
    [
      'a file it cannot edit safely',
      'DeliveryFormatRefused',
      'DB_POOL_SIZE 10\n',
      'directory',
      /key pools.env: line 1 "DB_POOL_SIZE 10" is not KEY=VALUE/,
    ],
    [
      'a ConfigMap no container mounts',
      'DeliveryNotMounted',
      'DB_POOL_SIZE=10\n',
      'none',
      /no container of deployment .* mounts the volume pools holding configmap .*; add a volumeMount/,
    ],
    [
      'a subPath mount',
      'DeliveryNotMounted',
      'DB_POOL_SIZE=10\n',
      'subPath',
      /mounts configmap .* with subPath, which the kubelet never updates/,
    ],
  ])(
    '%s: Ready=False %s, nothing written',
    async (_, reason, text, mount, message) => {
      const name = reason.toLowerCase().replace('delivery', 'd') + (mount === 'subPath' ? '-sub' : '');
      const cm = text === undefined ? 'gone-pools' : `${name}-pools`;
      if (text !== undefined) await createConfigMap(cm, text);
      await apps().createNamespacedDeployment({
        namespace: ns.namespace,
        body: deployment(name, { replicas: 0, configMap: cm, mount, env: [{ name: 'DB_POOL_SIZE', value: '10' }] }),
      });
      await createPolicy(ns.kc, ns.namespace, name, policySpec(name, cm));
      const p = await policyWhen(
        ns.kc,
        ns.namespace,
        name,
        (v) => condition(v, 'Ready')?.reason === reason,
        `Ready=False ${reason}`,
      );
      expect(condition(p, 'Ready')).toMatchObject({ status: 'False', message: expect.stringMatching(message) });
      const target = await apps().readNamespacedDeployment({ name, namespace: ns.namespace });
      expect(target.metadata?.generation).toBe(1);
      if (text !== undefined) expect((await configMap(cm)).data?.['pools.env']).toBe(text);
    },
    60_000,
  );
});
