import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  AppsV1Api,
  type KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { Gauge } from 'prom-client';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import { readLocalEnv } from './support/local-env.js';
import { eventually, queryVector, startScrapeTarget } from './support/prometheus.js';

// Smoke tests that prove the local control plane is the real thing: kube-apiserver built from
// k8s.io/kubernetes with etcd behind it, and Prometheus scraping over HTTP.
describe('local control plane', () => {
  let kc: KubeConfig;
  let namespace: string;

  beforeAll(async () => {
    kc = adminKubeConfig();
    namespace = await createTestNamespace(kc, 'smoke');
  });
  afterAll(async () => {
    await deleteTestNamespace(kc, namespace);
  });

  it('serves the built-in APIs the operator uses', () => {
    const out = execFileSync('kubectl', ['--kubeconfig', readLocalEnv().KUBECONFIG, 'api-resources', '-o', 'name'], {
      encoding: 'utf8',
    });
    const names = out.split('\n');
    for (const resource of [
      'deployments.apps',
      'configmaps',
      'leases.coordination.k8s.io',
      'events.events.k8s.io',
      'horizontalpodautoscalers.autoscaling',
    ]) {
      expect(names).toContain(resource);
    }
    const version = JSON.parse(
      execFileSync('kubectl', ['--kubeconfig', readLocalEnv().KUBECONFIG, 'version', '-o', 'json'], {
        encoding: 'utf8',
      }),
    ) as { serverVersion: { gitVersion: string } };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.3[1-3]\./);
  });

  it('creates and reads a Deployment and a ConfigMap through client-node', async () => {
    await createDeployment(
      kc,
      namespace,
      deploymentManifest('web', [{ name: 'api', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]),
    );
    const read = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'web', namespace });
    expect(read.spec?.template.spec?.containers[0]?.env).toEqual([{ name: 'DB_POOL_SIZE', value: '20' }]);

    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'pgbouncer-config' }, data: { 'pgbouncer.ini': '[pgbouncer]\n' } },
    });
    const cm = await core.readNamespacedConfigMap({ name: 'pgbouncer-config', namespace });
    expect(cm.data).toEqual({ 'pgbouncer.ini': '[pgbouncer]\n' });
  });

  it('records a server-side apply by field manager poolpilot under managedFields', async () => {
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const applied: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'applied', namespace },
      data: { DEFAULT_POOL_SIZE: '20' },
    };
    const result = await objects.patch(applied, undefined, undefined, 'poolpilot', true, PatchStrategy.ServerSideApply);
    const managers = (result.metadata?.managedFields ?? []).map((f) => [f.manager, f.operation]);
    expect(managers).toContainEqual(['poolpilot', 'Apply']);
  });

  it('has Prometheus scrape a prom-client exporter found through file_sd', async () => {
    const target = await startScrapeTarget(`smoke-${namespace}`, { namespace, pod: 'smoke-0' });
    try {
      const gauge = new Gauge({
        name: 'smoke_db_pool_utilization_percent',
        help: 'test gauge',
        registers: [target.registry],
      });
      gauge.set(42.5);
      const value = await eventually(
        async () => {
          const result = await queryVector(`smoke_db_pool_utilization_percent{namespace="${namespace}"}`);
          return result[0]?.value[1];
        },
        30000,
        'Prometheus to scrape the exporter',
      );
      expect(Number(value)).toBe(42.5);
    } finally {
      await target.stop();
    }
  });
});
