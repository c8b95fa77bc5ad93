/**
 * spec.delivery mode ConfigMap against the real kube-apiserver and the real Prometheus, where no
 * Pod needs to run (the delivery to the demo app's Pods through a real kubelet, confirmed by what
 * they report, with and without refresh AnnotatePods, is in operator-in-cluster.test.ts, on the node):
 * - refresh AnnotatePods: after the write, the pods the target's selector matches carry the file's
 *   checksum, and no other pod does;
 * - an app that never reports the written values: NotConfirmed after confirmTimeout, one Warning
 *   event, and no further write (the ConfigMap's resourceVersion stays) while more passes run;
 * - a missing ConfigMap, a file it cannot edit safely, a ConfigMap no container mounts, or one
 *   mounted with subPath: Ready=False naming what to fix, nothing written.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoreV1Api, EventsV1Api, type V1Deployment } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import { condition, createPolicy, getPolicy } from './support/operator.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { FAST, openTestNamespace, passesOfEach, policyWhen, type OperatorNamespace } from './support/suite.js';

const PREFIX = 'voiceassist_';
const MOUNT = '/etc/poolpilot';

/**
 * A Deployment with no Pod (nothing here runs one) whose container `api` mounts ConfigMap
 * `configMap` at MOUNT (as `mount` says).
 */
function deployment(
  name: string,
  options: {
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
      replicas: 0,
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

/** A policy delivering through ConfigMap `configMap` that gives the pods `confirmTimeout` to report. */
function policySpec(target: string, configMap: string, confirmTimeout = '30s'): Record<string, unknown> {
  return {
    targetRef: { name: target, container: 'api' },
    ...FAST,
    metricsPrefix: PREFIX,
    database: { poolSize: { min: 4, max: 40 }, maxOverflow: { ratio: 2, min: 0, max: 80 } },
    delivery: { mode: 'ConfigMap', configMapRef: { name: configMap }, confirmTimeout },
  };
}

describe('spec.delivery ConfigMap: what is refused, and an app that never confirms', () => {
  let ns: OperatorNamespace;
  const scrapeTargets: ScrapeTarget[] = [];
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
    ns = await openTestNamespace('delivery', { operator: true, rollouts: true });
  }, 120_000);

  afterAll(async () => {
    await ns.close(async () => {
      await Promise.all(scrapeTargets.map((target) => target.stop()));
    });
  }, 120_000);

  it('an app that never reports the written values: NotConfirmed once, a Warning, and nothing written again', async () => {
    await createConfigMap('silent-pools', 'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n');
    // No pod runs (replicas 0): a stand-in pod exports the old settings and never reloads.
    await apps().createNamespacedDeployment({
      namespace: ns.namespace,
      body: deployment('silent', { configMap: 'silent-pools', mount: 'directory' }),
    });
    const pod = await startScrapeTarget(`delivery-silent-${ns.namespace}`, {
      namespace: ns.namespace,
      pod: 'silent-5d4f8b7c9-x2x9q',
    });
    scrapeTargets.push(pod);
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
        body: deployment(name, { configMap: cm, mount, env: [{ name: 'DB_POOL_SIZE', value: '10' }] }),
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

  it("refresh AnnotatePods: the target's pods get the written file's checksum, another app's pods do not", async () => {
    const text = 'DB_POOL_SIZE=10\nDB_MAX_OVERFLOW=20\n';
    await createConfigMap('nudged-pools', text);
    await apps().createNamespacedDeployment({
      namespace: ns.namespace,
      body: deployment('nudged', { configMap: 'nudged-pools', mount: 'directory' }),
    });
    // Pods named as the ReplicaSet would name them (the hash and suffix have no vowels); nothing schedules them here, the API stores them.
    const pod = (name: string, app: string) =>
      core().createNamespacedPod({
        namespace: ns.namespace,
        body: {
          metadata: { name, labels: { app } },
          spec: { containers: [{ name: 'api', image: 'example.invalid/voiceassist-api:test' }] },
        },
      });
    const [first, second, bystander] = ['nudged-5d4f8b7c9-b2b9q', 'nudged-5d4f8b7c9-c7d8x', 'other-6c9d7f5b8-x1y2z'];
    await Promise.all([pod(first, 'nudged'), pod(second, 'nudged'), pod(bystander, 'other')]);
    const target = await startScrapeTarget(`delivery-nudged-${ns.namespace}`, {
      namespace: ns.namespace,
      pod: first,
    });
    scrapeTargets.push(target);
    new Gauge({ name: `${PREFIX}db_pool_utilization_percent`, help: 'u', registers: [target.registry] }).set(5);
    await createPolicy(ns.kc, ns.namespace, 'nudged', {
      ...policySpec('nudged', 'nudged-pools'),
      delivery: { mode: 'ConfigMap', configMapRef: { name: 'nudged-pools' }, refresh: 'AnnotatePods' },
    });

    const file = 'DB_POOL_SIZE=8\nDB_MAX_OVERFLOW=16\n';
    await eventually(
      async () => ((await configMap('nudged-pools')).data?.['pools.env'] === file ? true : undefined),
      30_000,
      'the file written (one step down)',
    );
    const checksum = createHash('sha256').update(file).digest('hex').slice(0, 16);
    const annotation = async (name: string) =>
      (await core().readNamespacedPod({ name, namespace: ns.namespace })).metadata?.annotations?.[
        'poolpilot.io/pool-config'
      ];
    // The pass annotates the pods right after its ConfigMap write.
    await eventually(
      async () =>
        (await annotation(first)) === checksum && (await annotation(second)) === checksum ? true : undefined,
      10_000,
      "both of nudged's pods annotated with the file's checksum",
    );
    expect(await annotation(bystander)).toBeUndefined();
  }, 60_000);
});
