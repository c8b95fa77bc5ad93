import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1PodSpec,
  type V1PolicyRule,
} from '@kubernetes/client-node';
import { load, loadAll } from 'js-yaml';
import { Gauge } from 'prom-client';
import { loadConfig } from '../../src/config.js';
import { startController, type RunningController } from '../../src/main.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
  serviceAccountKubeconfig,
} from './support/kube.js';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import {
  condition,
  createPolicy,
  envOf,
  getDeployment,
  getPolicy,
  installCrds,
  simulateRollouts,
} from './support/operator.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';

// The install manifests in deploy/ against the real kube-apiserver (RBAC authorization, Pod
// Security admission): server dry-runs of both kustomizations, Pod Security "restricted" for the
// operator's pod, and the RBAC proven for real — the operator runs in this process with a token
// of the poolpilot ServiceAccount, reconciles a policy, and is refused what it was not granted.
//
// The tests run in order: the last one replaces the ClusterRoleBinding with the namespaced
// overlay's Role. beforeAll applies deploy/'s RBAC objects again, so each run starts the same.
//
// poolpilot-system and apps are left in place: no namespace controller runs on this control
// plane, so a deleted namespace stays Terminating forever and a later run could not use it.

const SYSTEM_NAMESPACE = 'poolpilot-system';
const SERVICE_ACCOUNT = 'poolpilot';
const SA_USER = `system:serviceaccount:${SYSTEM_NAMESPACE}:${SERVICE_ACCOUNT}`;
const WATCHED_NAMESPACE = 'apps';
const RBAC_KINDS = new Set(['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
const FAST_BEHAVIOR = {
  maxStepPercent: 20,
  scaleUpStabilization: '1s',
  scaleDownStabilization: '2s',
  minChangeInterval: '0s',
};

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function kubectl(args: readonly string[], input?: string): Run {
  const result = spawnSync('kubectl', ['--kubeconfig', readLocalEnv().KUBECONFIG, ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    input,
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function kubectlOk(args: readonly string[], input?: string): string {
  const run = kubectl(args, input);
  if (run.status !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${String(run.status)}: ${run.stderr}`);
  return run.stdout;
}

type Manifest = KubernetesObject & { kind: string; spec?: Record<string, unknown>; rules?: V1PolicyRule[] };

/** The objects `kubectl kustomize <dir>` renders. */
function render(dir: string): Manifest[] {
  return loadAll(kubectlOk(['kustomize', dir])) as Manifest[];
}

function find(objects: readonly Manifest[], kind: string, name: string): Manifest {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found)
    throw new Error(`no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata?.name ?? ''}`).join(', ')}`);
  return found;
}

/** Applies (server-side, for real) the namespace and RBAC objects a kustomization renders. */
function applyRbacOf(dir: string): Manifest[] {
  const objects = render(dir).filter((o) => RBAC_KINDS.has(o.kind));
  kubectlOk(
    ['apply', '--server-side', '--force-conflicts', '--field-manager=deploy-test', '-f', '-'],
    JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
  );
  return objects;
}

/** `kubectl auth can-i … --as=<the operator's ServiceAccount>`: exit 0 = yes, 1 = no. */
function canI(verb: string, resource: string, scope: { namespace?: string; subresource?: string } = {}): boolean {
  const args = ['auth', 'can-i', verb, resource, `--as=${SA_USER}`];
  args.push(...(scope.namespace === undefined ? ['--all-namespaces'] : ['-n', scope.namespace]));
  if (scope.subresource !== undefined) args.push(`--subresource=${scope.subresource}`);
  const run = kubectl(args);
  if (run.status !== 0 && run.status !== 1)
    throw new Error(`kubectl ${args.join(' ')} exited ${String(run.status)}: ${run.stderr}`);
  return run.status === 0;
}

async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  try {
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if (!(err instanceof ApiException && err.code === 409)) throw err;
  }
}

/** The HTTP code a rejected client call failed with. */
async function failureCode(call: () => Promise<unknown>): Promise<number | string> {
  try {
    await call();
  } catch (err) {
    return err instanceof ApiException ? err.code : String(err);
  }
  return 'succeeded';
}

function podTemplateOf(objects: readonly Manifest[]): NonNullable<V1Deployment['spec']>['template'] {
  const template = (find(objects, 'Deployment', 'poolpilot') as V1Deployment).spec?.template;
  if (!template?.spec) throw new Error('the poolpilot Deployment has no pod template');
  return template;
}

describe('deploy/ manifests', () => {
  let admin: KubeConfig;
  let workNs: string;
  let otherNs: string;
  let tmp: string;
  let saKubeconfig: string;
  let operator: RunningController | undefined;
  let exporter: ScrapeTarget | undefined;
  let rollouts: ReturnType<typeof simulateRollouts> | undefined;
  let leaseName: string | undefined;

  beforeAll(async () => {
    admin = adminKubeConfig();
    installCrds();
    applyRbacOf('deploy');
    await ensureNamespace(admin, WATCHED_NAMESPACE);
    workNs = await createTestNamespace(admin, 'deploy');
    otherNs = await createTestNamespace(admin, 'deploy-other');
    tmp = mkdtempSync(join(tmpdir(), 'poolpilot-deploy-'));
    saKubeconfig = await serviceAccountKubeconfig(admin, SYSTEM_NAMESPACE, SERVICE_ACCOUNT, tmp);
  });

  afterAll(async () => {
    await operator?.stop();
    rollouts?.stop();
    await exporter?.stop();
    await deleteTestNamespace(admin, workNs);
    await deleteTestNamespace(admin, otherNs);
    if (leaseName !== undefined)
      await admin
        .makeApiClient(CoordinationV1Api)
        .deleteNamespacedLease({ name: leaseName, namespace: SYSTEM_NAMESPACE })
        .catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('crds/Kustomization lists every CRD file in crds/', () => {
    const kustomization = load(readFileSync(join(repoRoot, 'crds', 'Kustomization'), 'utf8')) as {
      resources: string[];
    };
    const files = readdirSync(join(repoRoot, 'crds'))
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    expect([...kustomization.resources].sort()).toEqual(files);
  });

  it('renders: the base with cluster RBAC, the namespaced overlay with the same rules as a Role in apps, a hardened Deployment', () => {
    const base = render('deploy');
    const namespaced = render('deploy/namespaced');
    const clusterRole = find(base, 'ClusterRole', 'poolpilot');
    expect(find(base, 'ClusterRoleBinding', 'poolpilot')).toMatchObject({
      subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE }],
    });
    expect(find(base, 'Namespace', SYSTEM_NAMESPACE).metadata?.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    expect(base.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata?.name)).toContain(
      'poolpolicies.poolpilot.io',
    );
    expect(clusterRole.rules?.flatMap((r) => r.resources ?? [])).not.toContain('secrets');

    expect(namespaced.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
    const role = find(namespaced, 'Role', 'poolpilot');
    expect(role.metadata?.namespace).toBe(WATCHED_NAMESPACE);
    expect(role.rules).toEqual(clusterRole.rules);
    expect(find(namespaced, 'RoleBinding', 'poolpilot')).toMatchObject({
      metadata: { namespace: WATCHED_NAMESPACE },
      subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: SYSTEM_NAMESPACE }],
    });
    expect(find(namespaced, 'Role', 'poolpilot-leader-election').metadata?.namespace).toBe(SYSTEM_NAMESPACE);
    expect(namespaced.filter((o) => o.kind === 'CustomResourceDefinition').length).toBeGreaterThan(0);

    const baseArgs = podTemplateOf(base).spec?.containers[0]?.args;
    expect(baseArgs).toEqual(['run', '--leader-elect', '--prometheus-url=http://prometheus-operated.monitoring:9090']);
    expect(podTemplateOf(namespaced).spec?.containers[0]?.args).toEqual([...(baseArgs ?? []), '--namespace=apps']);

    const deployment = find(base, 'Deployment', 'poolpilot') as V1Deployment;
    expect(deployment.spec?.replicas).toBe(2);
    const pod = podTemplateOf(base).spec;
    expect(pod).toMatchObject({
      serviceAccountName: SERVICE_ACCOUNT,
      automountServiceAccountToken: true,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    });
    const container = pod?.containers[0];
    expect(container).toMatchObject({
      image: 'ghcr.io/poolpilot/poolpilot:0.1.0',
      livenessProbe: { httpGet: { path: '/healthz', port: 'health' } },
      readinessProbe: { httpGet: { path: '/readyz', port: 'health' } },
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
      resources: {
        requests: { cpu: expect.any(String), memory: expect.any(String) },
        limits: { memory: expect.any(String) },
      },
    });
    expect(container?.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['metrics', 8080],
      ['health', 8081],
    ]);

    // The optional ServiceMonitor selects the metrics Service by its labels and port name.
    const service = find(base, 'Service', 'poolpilot-metrics') as Manifest & {
      spec: { selector: Record<string, string>; ports: Array<{ name: string }> };
    };
    expect(podTemplateOf(base).metadata?.labels).toMatchObject(service.spec.selector);
    const monitor = find(render('deploy/monitoring'), 'ServiceMonitor', 'poolpilot') as Manifest & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string }> };
    };
    expect(service.metadata?.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]?.port);
  });

  it('kubectl apply -k deploy/ and deploy/namespaced pass a server dry-run without Pod Security warnings', () => {
    for (const dir of ['deploy', 'deploy/namespaced']) {
      const run = kubectl(['apply', '-k', dir, '--dry-run=server']);
      expect({ dir, status: run.status }).toEqual({ dir, status: 0 });
      // kubectl's own notes (e.g. a missing last-applied annotation on objects applied server-side
      // earlier) may appear; warnings from the API server's admission may not.
      expect(run.stderr).not.toMatch(/PodSecurity|would violate|error/i);
      expect(run.stdout).toMatch(/deployment\.apps\/poolpilot (created|configured|unchanged) \(server dry run\)/);
    }
  });

  it('the operator pod is admitted where Pod Security "restricted" is enforced (and a weaker pod is not)', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const template = podTemplateOf(render('deploy'));
    const pod = {
      metadata: { name: 'poolpilot-pss-check', labels: template.metadata?.labels ?? {} },
      spec: template.spec,
    };
    const admitted = await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body: pod, dryRun: 'All' });
    expect(admitted.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);

    // Control: enforcement is on — the same pod without its container security context is refused.
    const weakerSpec = JSON.parse(JSON.stringify(template.spec)) as V1PodSpec;
    for (const c of weakerSpec.containers) c.securityContext = {};
    const weaker = { metadata: pod.metadata, spec: weakerSpec };
    const refused = await core.createNamespacedPod({ namespace: SYSTEM_NAMESPACE, body: weaker, dryRun: 'All' }).then(
      () => 'admitted',
      (err: unknown) => (err instanceof ApiException ? `${String(err.code)} ${String(err.body)}` : String(err)),
    );
    expect(refused).toMatch(/^403 .*violates PodSecurity .*restricted.*allowPrivilegeEscalation/);
  });

  it('as the poolpilot ServiceAccount (TokenRequest token), the operator elects itself and reconciles: DB_POOL_SIZE 20 → 24, status written, event recorded', async () => {
    expect(canI('watch', 'poolpolicies.poolpilot.io')).toBe(true);
    expect(canI('list', 'connectionbudgets.poolpilot.io')).toBe(true);
    expect(canI('patch', 'poolpolicies.poolpilot.io', { namespace: workNs, subresource: 'status' })).toBe(true);
    expect(canI('patch', 'deployments.apps', { namespace: workNs })).toBe(true);
    expect(canI('patch', 'configmaps', { namespace: workNs })).toBe(true);
    expect(canI('patch', 'pods', { namespace: workNs })).toBe(true);
    expect(canI('watch', 'horizontalpodautoscalers.autoscaling', { namespace: workNs })).toBe(true);
    expect(canI('create', 'events.events.k8s.io', { namespace: workNs })).toBe(true);
    expect(canI('create', 'events', { namespace: workNs })).toBe(true);
    expect(canI('update', 'leases.coordination.k8s.io', { namespace: SYSTEM_NAMESPACE })).toBe(true);

    const sa = new KubeConfig();
    sa.loadFromFile(saKubeconfig);
    expect(sa.getCurrentUser()?.token).toBeTruthy();

    rollouts = simulateRollouts(admin, workNs);
    exporter = await startScrapeTarget(`deploy-${workNs}`, { namespace: workNs, pod: 'api-5d8c7-x2x9q' });
    new Gauge({
      name: 'voiceassist_db_pool_utilization_percent',
      help: 'pool utilization',
      registers: [exporter.registry],
    }).set(90);
    await createDeployment(
      admin,
      workNs,
      deploymentManifest('api', [
        {
          name: 'api',
          env: [
            { name: 'DB_POOL_SIZE', value: '20' },
            { name: 'DB_MAX_OVERFLOW', value: '40' },
          ],
        },
      ]),
    );
    await createPolicy(admin, workNs, 'api', {
      targetRef: { name: 'api', container: 'api' },
      mode: 'Auto',
      interval: '1s',
      metricsPrefix: 'voiceassist_',
      database: { poolSize: { min: 10, max: 24 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: FAST_BEHAVIOR,
    });

    // With leader election as deployed (--leader-elect, Lease in the operator's namespace): it
    // reconciles only once the ServiceAccount could create and hold the Lease.
    leaseName = `deploy-test-${workNs.slice(-8)}`;
    operator = await startController(
      loadConfig(
        {
          kubeconfig: saKubeconfig,
          namespace: workNs,
          'prometheus-url': readLocalEnv().PROMETHEUS_URL,
          'metrics-addr': '127.0.0.1:0',
          'health-addr': '127.0.0.1:0',
          'log-level': process.env.POOLPILOT_TEST_LOG_LEVEL ?? 'error',
          'leader-elect': 'true',
          'leader-election-namespace': SYSTEM_NAMESPACE,
          'leader-election-id': leaseName,
        },
        {},
      ),
    );

    const env = await eventually(
      async () => {
        const e = envOf(await getDeployment(admin, workNs, 'api'), 'api');
        return e.DB_POOL_SIZE === '24' ? e : undefined;
      },
      60000,
      'DB_POOL_SIZE 24 written by the ServiceAccount',
    );
    expect(env).toEqual({ DB_POOL_SIZE: '24', DB_MAX_OVERFLOW: '48' });
    expect((await getDeployment(admin, workNs, 'api')).metadata?.managedFields?.map((f) => f.manager)).toContain(
      'poolpilot',
    );

    const policy = await eventually(
      async () => {
        const p = await getPolicy(admin, workNs, 'api');
        return condition(p, 'Limited')?.reason === 'AtMax' && p.status?.current?.DB_POOL_SIZE === 24 ? p : undefined;
      },
      30000,
      'status current 24, Limited=AtMax',
    );
    expect(condition(policy, 'Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(policy.status?.lastChange?.changes).toContainEqual({ setting: 'DB_POOL_SIZE', from: 20, to: 24 });

    const events = await admin.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: workNs });
    const resized = events.items.filter((e) => e.reason === 'PoolResized' && e.regarding?.name === 'api');
    expect(resized.map((e) => e.note)).toContainEqual(expect.stringMatching(/DB_POOL_SIZE 20→24/));
    expect(resized[0]?.reportingController).toBe('poolpilot.io/poolpilot');

    const lease = await admin
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: leaseName, namespace: SYSTEM_NAMESPACE });
    expect(lease.spec?.holderIdentity).toBeTruthy();
  });

  it('the same identity is refused Secrets, and with the namespaced Role only, Deployments outside apps', async () => {
    await operator?.stop();
    operator = undefined;
    const sa = new KubeConfig();
    sa.loadFromFile(saKubeconfig);
    const saCore = sa.makeApiClient(CoreV1Api);
    const saApps = sa.makeApiClient(AppsV1Api);

    expect(canI('get', 'secrets', { namespace: workNs })).toBe(false);
    expect(canI('list', 'secrets')).toBe(false);
    expect(canI('delete', 'deployments.apps', { namespace: workNs })).toBe(false);
    expect(canI('update', 'deployments.apps', { namespace: workNs })).toBe(false);
    expect(canI('delete', 'pods', { namespace: workNs })).toBe(false);
    expect(canI('watch', 'pods', { namespace: workNs })).toBe(false);
    expect(canI('create', 'leases.coordination.k8s.io', { namespace: workNs })).toBe(false);
    expect(await failureCode(() => saCore.listNamespacedSecret({ namespace: workNs }))).toBe(403);
    expect(
      await failureCode(() => saCore.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: 'anything' })),
    ).toBe(403);

    // Install as deploy/namespaced would on a cluster without the base's cluster-wide grant.
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.deleteClusterRoleBinding({ name: 'poolpilot' });
    await rbac.deleteClusterRole({ name: 'poolpilot' });
    const applied = applyRbacOf('deploy/namespaced');
    expect(
      applied
        .filter((o) => o.metadata?.namespace === WATCHED_NAMESPACE)
        .map((o) => o.kind)
        .sort(),
    ).toEqual(['Role', 'RoleBinding']);

    expect(canI('patch', 'deployments.apps', { namespace: WATCHED_NAMESPACE })).toBe(true);
    expect(canI('watch', 'poolpolicies.poolpilot.io', { namespace: WATCHED_NAMESPACE })).toBe(true);
    expect(canI('patch', 'deployments.apps', { namespace: otherNs })).toBe(false);
    expect(canI('watch', 'poolpolicies.poolpilot.io', { namespace: otherNs })).toBe(false);
    expect(canI('list', 'deployments.apps')).toBe(false);
    expect(canI('get', 'secrets', { namespace: WATCHED_NAMESPACE })).toBe(false);
    expect(canI('update', 'leases.coordination.k8s.io', { namespace: SYSTEM_NAMESPACE })).toBe(true);

    // For real: the same server-side apply the operator sends succeeds in apps, is 403 elsewhere.
    const name = `deploy-test-${workNs.slice(-8)}`;
    await createDeployment(admin, WATCHED_NAMESPACE, deploymentManifest(name, [{ name: 'api' }]));
    await createDeployment(admin, otherNs, deploymentManifest(name, [{ name: 'api' }]));
    const annotate = (namespace: string): Promise<unknown> =>
      saApps.patchNamespacedDeployment(
        {
          name,
          namespace,
          body: {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name, namespace, annotations: { 'poolpilot.io/deploy-test': 'x' } },
          },
          fieldManager: 'poolpilot',
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    try {
      await annotate(WATCHED_NAMESPACE);
      expect(
        (await admin.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace: WATCHED_NAMESPACE })).metadata
          ?.annotations,
      ).toMatchObject({ 'poolpilot.io/deploy-test': 'x' });
      expect(await failureCode(() => annotate(otherNs))).toBe(403);
      expect(await failureCode(() => saApps.listNamespacedDeployment({ namespace: otherNs }))).toBe(403);
      expect(await failureCode(() => saApps.listDeploymentForAllNamespaces())).toBe(403);
    } finally {
      await admin.makeApiClient(AppsV1Api).deleteNamespacedDeployment({ name, namespace: WATCHED_NAMESPACE });
    }
  });
});
