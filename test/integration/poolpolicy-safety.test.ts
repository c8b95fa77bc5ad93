import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import type { RunningController } from '../../src/main.js';
import { createDeployment, deploymentManifest } from './support/kube.js';
import { completeRollout, condition, createPolicy, envOf, getDeployment, getPolicy } from './support/operator.js';
import { startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';
import { morePasses, openTestNamespace, passesOfEach, policyWhen, type OperatorNamespace } from './support/suite.js';

// What the controller must never do: write on bad data, write in Recommend mode, write on an
// idle pass, or touch bytes of pgbouncer.ini it does not own. Real API server and Prometheus.

const FAST = {
  interval: '1s',
  behavior: { maxStepPercent: 20, scaleUpStabilization: '1s', scaleDownStabilization: '1s', minChangeInterval: '0s' },
};
const DATABASE = { poolSize: { min: 10, max: 50 }, maxOverflow: { ratio: 2, min: 0, max: 100 } };

describe('PoolPolicy controller safety', () => {
  let kc: KubeConfig;
  let namespace: string;
  let scope: OperatorNamespace;
  let operator: RunningController;
  const targets: ScrapeTarget[] = [];

  /** A Deployment `name` with pool env, rolled out, and an exporter for its pods at `percent`. */
  async function workload(
    name: string,
    percent: number,
    metric = 'voiceassist_db_pool_utilization_percent',
  ): Promise<Gauge> {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest(name, [
        {
          name: 'app',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    );
    await completeRollout(kc, namespace, name);
    const target = await startScrapeTarget(`${namespace}-${name}`, { namespace, pod: `${name}-6f7d9-x2x9q` });
    targets.push(target);
    const gauge = new Gauge({ name: metric, help: 'utilization', registers: [target.registry] });
    gauge.set(percent);
    return gauge;
  }

  beforeAll(async () => {
    scope = await openTestNamespace('safety', { operator: true });
    ({ kc, namespace, operator } = scope);
  });

  afterAll(async () => {
    await scope.close(() => Promise.all(targets.map((t) => t.stop())));
  });

  it.each([
    ['Prometheus down', 'down', { prometheus: { address: 'http://127.0.0.1:9', timeout: '1s' } }, 90, 'QueryFailed'],
    ['a NaN sample', 'nan', {}, Number.NaN, 'NaN'],
    ['an empty result', 'empty', { metricsPrefix: 'nosuchapp_' }, 90, 'NoData'],
  ])(
    '%s: holds, reports MetricsAvailable=False, writes nothing to the Deployment',
    async (_label, name, extra, percent, reason) => {
      await workload(name, percent);
      const before = await getDeployment(kc, namespace, name);
      await createPolicy(kc, namespace, name, {
        targetRef: { name },
        metricsPrefix: 'voiceassist_',
        database: DATABASE,
        ...FAST,
        ...extra,
      });
      const p = await policyWhen(
        kc,
        namespace,
        name,
        (x) => condition(x, 'MetricsAvailable')?.reason === reason,
        `MetricsAvailable reason ${reason}`,
      );
      expect(condition(p, 'MetricsAvailable')).toMatchObject({ status: 'False', reason, observedGeneration: 1 });
      expect(condition(p, 'MetricsAvailable')?.message).not.toBe('');
      // Three passes later (the failing policies back off, the newest most often) the Deployment
      // is still exactly as it was.
      await morePasses(operator, 3);
      const after = await getDeployment(kc, namespace, name);
      expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
      expect(envOf(after, 'app')).toEqual({ DB_POOL_SIZE: '20', DB_MAX_OVERFLOW: '40' });
      const warnings = await kc
        .makeApiClient(CoreV1Api)
        .listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name},reason=${reason}` });
      expect(warnings.items).toHaveLength(1);
    },
  );

  it('mode Recommend moves status.recommended and never writes the Deployment', async () => {
    await workload('rec', 95);
    const before = await getDeployment(kc, namespace, 'rec');
    await createPolicy(kc, namespace, 'rec', {
      targetRef: { name: 'rec' },
      mode: 'Recommend',
      metricsPrefix: 'voiceassist_',
      database: DATABASE,
      ...FAST,
    });
    const p = await policyWhen(
      kc,
      namespace,
      'rec',
      (x) => x.status?.recommended?.DB_POOL_SIZE === 24,
      'recommended DB_POOL_SIZE 24',
    );
    expect(p.status?.current).toEqual({ DB_POOL_SIZE: 20, DB_MAX_OVERFLOW: 40 });
    expect(p.status?.recommended).toEqual({ DB_POOL_SIZE: 24, DB_MAX_OVERFLOW: 48 });
    expect(condition(p, 'Ready')).toMatchObject({ status: 'True', reason: 'Recommending' });
    expect((await getDeployment(kc, namespace, 'rec')).metadata?.resourceVersion).toBe(
      before.metadata?.resourceVersion,
    );
  });

  it('three idle intervals write nothing: Deployment, ConfigMap and PoolPolicy keep their resourceVersions', async () => {
    await workload('idle', 60);
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace,
      body: {
        metadata: { name: 'idle-pgbouncer' },
        data: { 'pgbouncer.ini': '[pgbouncer]\ndefault_pool_size = 20\nmax_client_conn = 400\n' },
      },
    });
    const pgTarget = await startScrapeTarget(`${namespace}-idle-pgbouncer`, { namespace, pod: 'pgbouncer-1' });
    targets.push(pgTarget);
    new Gauge({ name: 'idle_pgbouncer_utilization', help: 'utilization', registers: [pgTarget.registry] }).set(55);
    await createPolicy(kc, namespace, 'idle', {
      targetRef: { name: 'idle' },
      metricsPrefix: 'voiceassist_',
      database: DATABASE,
      pgbouncer: {
        configMapRef: { name: 'idle-pgbouncer' },
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000, ratio: 20 },
        utilization: 'max(idle_pgbouncer_utilization{namespace="$namespace"})',
      },
      ...FAST,
    });
    const settled = await policyWhen(
      kc,
      namespace,
      'idle',
      (x) => condition(x, 'Limited')?.reason === 'DeadBand' && condition(x, 'MetricsAvailable')?.status === 'True',
      'a settled dead-band status',
    );
    expect(settled.status?.current).toEqual({
      DB_POOL_SIZE: 20,
      DB_MAX_OVERFLOW: 40,
      default_pool_size: 20,
      max_client_conn: 400,
    });
    const versions = async (): Promise<string[]> => [
      (await getDeployment(kc, namespace, 'idle')).metadata?.resourceVersion ?? '',
      (await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'idle-pgbouncer', namespace })).metadata
        ?.resourceVersion ?? '',
      (await getPolicy(kc, namespace, 'idle')).metadata.resourceVersion,
    ];
    const before = await versions();
    await passesOfEach(operator, kc, namespace, 3);
    expect(await versions()).toEqual(before);
  });

  it('edits only the owned keys of [pgbouncer] in pgbouncer.ini, byte for byte, and rolls the PgBouncer Deployment', async () => {
    await workload('web', 60);
    await createDeployment(kc, namespace, deploymentManifest('pgbouncer', [{ name: 'pgbouncer' }]));
    await completeRollout(kc, namespace, 'pgbouncer');
    const ini = [
      ';; PgBouncer for voiceassist — managed partly by poolpilot',
      '[databases]',
      'voiceassist = host=postgres port=5432 dbname=voiceassist',
      '',
      '[pgbouncer]',
      'listen_addr = 0.0.0.0',
      'pool_mode   = transaction',
      'default_pool_size = 20',
      '# keep this comment',
      'max_client_conn=400',
      'reserve_pool_size = 5',
      '',
      '[users]',
      'voiceassist = pool_mode=session',
      '',
    ].join('\n');
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace,
      body: {
        metadata: { name: 'pgbouncer-config' },
        data: { 'pgbouncer.ini': ini, 'userlist.txt': '"voiceassist" "md5abc"\n' },
      },
    });
    const pgTarget = await startScrapeTarget(`${namespace}-pgbouncer`, { namespace, pod: 'pgbouncer-7c9-xyz' });
    targets.push(pgTarget);
    new Gauge({ name: 'web_pgbouncer_utilization', help: 'utilization', registers: [pgTarget.registry] }).set(90);
    await createPolicy(kc, namespace, 'web', {
      targetRef: { name: 'web' },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config', key: 'pgbouncer.ini' },
        format: 'ini',
        defaultPoolSize: { min: 10, max: 40 },
        maxClientConn: { min: 100, max: 2000, ratio: 20 },
        utilization: 'max(web_pgbouncer_utilization{namespace="$namespace"})',
        rolloutRef: { name: 'pgbouncer' },
      },
      ...FAST,
      behavior: { ...FAST.behavior, minChangeInterval: '1h' },
    });
    const p = await policyWhen(
      kc,
      namespace,
      'web',
      (x) => x.status?.current?.default_pool_size === 24,
      'default_pool_size 24',
    );
    expect(p.status?.current).toEqual({ default_pool_size: 24, max_client_conn: 480 });
    const cm = await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
    expect(cm.data?.['pgbouncer.ini']).toBe(
      ini
        .replace('default_pool_size = 20', 'default_pool_size = 24')
        .replace('max_client_conn=400', 'max_client_conn=480'),
    );
    expect(cm.data?.['userlist.txt']).toBe('"voiceassist" "md5abc"\n');
    const pgbouncer = await getDeployment(kc, namespace, 'pgbouncer');
    expect(pgbouncer.spec?.template.metadata?.annotations?.['poolpilot.io/config-checksum']).toMatch(/^[0-9a-f]{16}$/);
    // The app Deployment was not touched by a PgBouncer-only policy.
    expect(envOf(await getDeployment(kc, namespace, 'web'), 'app')).toEqual({
      DB_POOL_SIZE: '20',
      DB_MAX_OVERFLOW: '40',
    });
  });

  it.each([
    [
      'a missing target',
      'ghost',
      { targetRef: { name: 'does-not-exist' } },
      'TargetNotFound',
      /deployment does-not-exist not found/,
    ],
    [
      'an unknown container',
      'nocontainer',
      { targetRef: { name: 'nocontainer', container: 'nope' } },
      'ContainerNotFound',
      /containers are: app/,
    ],
  ])('%s: Ready=False with a message that says what to fix', async (_label, name, spec, reason, message) => {
    if (name === 'nocontainer') await workload(name, 50);
    await createPolicy(kc, namespace, name, { ...spec, metricsPrefix: 'voiceassist_', database: DATABASE, ...FAST });
    const p = await policyWhen(
      kc,
      namespace,
      name,
      (x) => condition(x, 'Ready')?.reason === reason,
      `Ready reason ${reason}`,
    );
    expect(condition(p, 'Ready')).toMatchObject({ status: 'False', reason });
    expect(condition(p, 'Ready')?.message).toMatch(message);
  });

  it('a second policy on the same Deployment gets Conflict and does nothing; valueFrom env is not overwritten', async () => {
    await createDeployment(kc, namespace, deploymentManifest('shared', [{ name: 'app' }]));
    const d = await getDeployment(kc, namespace, 'shared');
    const container = d.spec?.template.spec?.containers[0];
    if (container)
      container.env = [{ name: 'DB_POOL_SIZE', valueFrom: { configMapKeyRef: { name: 'pool', key: 'size' } } }];
    await kc.makeApiClient(AppsV1Api).replaceNamespacedDeployment({ name: 'shared', namespace, body: d });
    await completeRollout(kc, namespace, 'shared');
    await createPolicy(kc, namespace, 'first', {
      targetRef: { name: 'shared' },
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 50 } },
      ...FAST,
    });
    await new Promise((resolve) => setTimeout(resolve, 1100)); // creationTimestamp has second precision
    await createPolicy(kc, namespace, 'second', {
      targetRef: { name: 'shared' },
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 50 } },
      ...FAST,
    });
    const second = await policyWhen(
      kc,
      namespace,
      'second',
      (x) => condition(x, 'Ready')?.reason === 'Conflict',
      'Conflict on the second policy',
    );
    expect(condition(second, 'Ready')?.message).toMatch(/PoolPolicy first already manages deployment shared/);
    const first = await policyWhen(
      kc,
      namespace,
      'first',
      (x) => condition(x, 'Ready')?.reason === 'ValueFromNotManaged',
      'ValueFromNotManaged on the first policy',
    );
    expect(condition(first, 'Ready')?.message).toMatch(/valueFrom/);
    const env = (await getDeployment(kc, namespace, 'shared')).spec?.template.spec?.containers[0]?.env;
    expect(env).toEqual([{ name: 'DB_POOL_SIZE', valueFrom: { configMapKeyRef: { name: 'pool', key: 'size' } } }]);
  });
});
