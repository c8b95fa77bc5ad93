import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import axios from 'axios';
import { Gauge } from 'prom-client';
import { loadConfig } from '../../src/config.js';
import { startController, type RunningController } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import { readLocalEnv } from './support/local-env.js';
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
import { passesOfEach } from './support/suite.js';

// Hostile and multi-tenant input against the real kube-apiserver and real Prometheus 2.42:
// - Prometheus credentials from a Secret (spec.prometheus.authSecretRef): basic auth against a
//   Prometheus started with --web.config.file (bcrypt hash from `htpasswd`, Debian apache2-utils),
//   a bearer token against a proxy that demands it; the operator's captured logs (level trace),
//   the policies' status and the events never contain the secret values.
// - --enforce-namespace-label: a query selecting another namespace is refused (QueryRejected, no
//   write); one without a namespace gets its own injected and reads only its own series.
// - Namespace isolation: same names in another namespace are never touched.

const PASSWORD = 'Pw-7f3c9e1a-basic';
const WRONG_PASSWORD = 'Wrong-0d1e2f3a';
const TOKEN = 'Tok-5b8d2c4e6f-bearer';
const USER = 'poolpilot-reader';
const FAST = { maxStepPercent: 20, scaleUpStabilization: '0s', scaleDownStabilization: '0s', minChangeInterval: '0s' };

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** A second Prometheus that answers only with basic auth (Prometheus web config, bcrypt). */
async function startAuthPrometheus(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'poolpilot-prom-auth-'));
  let hash: string;
  try {
    hash = execFileSync('htpasswd', ['-nbBC', '10', USER, PASSWORD], { encoding: 'utf8' })
      .trim()
      .split(':')
      .slice(1)
      .join(':');
  } catch (err) {
    throw new Error(`htpasswd failed (install the Debian package apache2-utils): ${String(err)}`);
  }
  writeFileSync(join(dir, 'prometheus.yml'), 'global:\n  scrape_interval: 15s\nscrape_configs: []\n');
  writeFileSync(join(dir, 'web.yml'), `basic_auth_users:\n  ${USER}: '${hash}'\n`);
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--web.config.file=${join(dir, 'web.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => {
      const res = await axios.get(`${url}/-/ready`, {
        auth: { username: USER, password: PASSWORD },
        validateStatus: () => true,
        timeout: 2000,
      });
      return res.status === 200 ? true : undefined;
    },
    30_000,
    'the basic-auth Prometheus to be ready',
  );
  // Without credentials it refuses: the test is only meaningful if auth is really required.
  const anonymous = await axios.get(`${url}/api/v1/query`, { params: { query: '1' }, validateStatus: () => true });
  if (anonymous.status !== 401) throw new Error(`expected 401 without credentials, got ${anonymous.status}`);
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A proxy to the local Prometheus that demands `Authorization: Bearer <TOKEN>`. */
async function startBearerProxy(target: string): Promise<{ url: string; stop(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'Content-Type': 'text/plain' });
      res.end('Unauthorized\n');
      return;
    }
    axios
      .get<string>(`${target}${req.url ?? '/'}`, {
        responseType: 'text',
        transformResponse: [(b: unknown) => b],
        validateStatus: () => true,
      })
      .then(
        (upstream) => {
          res.writeHead(upstream.status, { 'Content-Type': 'application/json' });
          res.end(upstream.data);
        },
        (err: unknown) => {
          res.writeHead(502);
          res.end(String(err));
        },
      );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      ),
  };
}

describe('security: Prometheus credentials, namespace enforcement, isolation', () => {
  let kc: KubeConfig;
  let nsA: string;
  let nsB: string;
  let operator: RunningController;
  let authProm: Awaited<ReturnType<typeof startAuthPrometheus>>;
  let proxy: Awaited<ReturnType<typeof startBearerProxy>>;
  let exporterA: ScrapeTarget;
  let exporterB: ScrapeTarget;
  let rollouts: ReturnType<typeof simulateRollouts>;
  let logs = '';

  beforeAll(async () => {
    kc = adminKubeConfig();
    installCrds();
    nsA = await createTestNamespace(kc, 'sec-a');
    nsB = await createTestNamespace(kc, 'sec-b');
    rollouts = simulateRollouts(kc, nsA);
    authProm = await startAuthPrometheus();
    proxy = await startBearerProxy(readLocalEnv().PROMETHEUS_URL);
    // The same metric in both namespaces; B's is higher, so reading B would show.
    exporterA = await startScrapeTarget(`sec-${nsA}`, { namespace: nsA, pod: 'own-1' });
    exporterB = await startScrapeTarget(`sec-${nsB}`, { namespace: nsB, pod: 'own-1' });
    new Gauge({ name: 'sec_pool_utilization_percent', help: 'test', registers: [exporterA.registry] }).set(50);
    new Gauge({ name: 'sec_pool_utilization_percent', help: 'test', registers: [exporterB.registry] }).set(97);

    const core = kc.makeApiClient(CoreV1Api);
    const secret = (name: string, data: Record<string, string>): Promise<unknown> =>
      core.createNamespacedSecret({
        namespace: nsA,
        body: { metadata: { name }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) },
      });
    await secret('prom-basic', { username: USER, password: PASSWORD });
    await secret('prom-wrong', { username: USER, password: WRONG_PASSWORD });
    await secret('prom-bearer', { bearerToken: `${TOKEN}\n` });

    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs += chunk.toString();
        done();
      },
    });
    const config = loadConfig(
      {
        kubeconfig: readLocalEnv().KUBECONFIG,
        namespace: nsA,
        'prometheus-url': readLocalEnv().PROMETHEUS_URL,
        'metrics-addr': '127.0.0.1:0',
        'health-addr': '127.0.0.1:0',
        'log-level': 'trace',
        'enforce-namespace-label': 'true',
      },
      {},
    );
    operator = await startController(config, createLogger('trace', sink));
  }, 120_000);

  afterAll(async () => {
    await operator.stop();
    rollouts.stop();
    await exporterA.stop();
    await exporterB.stop();
    await proxy.stop();
    await authProm.stop();
    await deleteTestNamespace(kc, nsA);
    await deleteTestNamespace(kc, nsB);
  });

  const app = (name: string) =>
    deploymentManifest(name, [{ name: 'app', env: [{ name: 'DB_POOL_SIZE', value: '20' }] }]);
  const policy = (
    target: string,
    database: Record<string, unknown>,
    prometheus?: Record<string, unknown>,
  ): Record<string, unknown> => ({
    targetRef: { name: target, container: 'app' },
    interval: '1s',
    database: { poolSize: { min: 10, max: 40 }, ...database },
    behavior: FAST,
    ...(prometheus === undefined ? {} : { prometheus }),
  });

  it('basic auth and a bearer token from Secrets reach Prometheus; wrong or missing credentials are QueryFailed; no secret value in logs, status or events', async () => {
    for (const name of ['basic', 'bearer', 'wrong', 'missing']) await createDeployment(kc, nsA, app(name));
    await createPolicy(
      kc,
      nsA,
      'basic',
      policy('basic', { utilization: 'vector(90)' }, { address: authProm.url, authSecretRef: { name: 'prom-basic' } }),
    );
    await createPolicy(
      kc,
      nsA,
      'bearer',
      policy('bearer', { utilization: 'vector(90)' }, { address: proxy.url, authSecretRef: { name: 'prom-bearer' } }),
    );
    await createPolicy(
      kc,
      nsA,
      'wrong',
      policy('wrong', { utilization: 'vector(90)' }, { address: authProm.url, authSecretRef: { name: 'prom-wrong' } }),
    );
    await createPolicy(
      kc,
      nsA,
      'missing',
      policy(
        'missing',
        { utilization: 'vector(90)' },
        { address: authProm.url, authSecretRef: { name: 'no-such-secret' } },
      ),
    );

    for (const name of ['basic', 'bearer']) {
      // 90 % with no stabilization: 20→24→28… while the test watches.
      await eventually(
        async () => (Number(envOf(await getDeployment(kc, nsA, name), 'app').DB_POOL_SIZE) >= 24 ? true : undefined),
        30_000,
        `${name}: DB_POOL_SIZE grown from 20 with utilization read through auth`,
      );
    }
    const wrong = await eventually(
      async () => {
        const p = await getPolicy(kc, nsA, 'wrong');
        return condition(p, 'MetricsAvailable')?.reason === 'QueryFailed' ? p : undefined;
      },
      30_000,
      'wrong password: QueryFailed',
    );
    expect(condition(wrong, 'MetricsAvailable')?.message).toContain('401');
    const missing = await eventually(
      async () => {
        const p = await getPolicy(kc, nsA, 'missing');
        return condition(p, 'MetricsAvailable')?.reason === 'QueryFailed' ? p : undefined;
      },
      30_000,
      'missing Secret: QueryFailed',
    );
    expect(condition(missing, 'MetricsAvailable')?.message).toContain(
      'secret no-such-secret (spec.prometheus.authSecretRef) not found',
    );
    for (const name of ['wrong', 'missing'])
      expect(envOf(await getDeployment(kc, nsA, name), 'app').DB_POOL_SIZE).toBe('20');

    // Nothing the operator wrote or logged carries a credential, in clear or base64.
    const statuses = JSON.stringify(
      await Promise.all(['basic', 'bearer', 'wrong', 'missing'].map((n) => getPolicy(kc, nsA, n))),
    );
    const events = JSON.stringify(await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: nsA }));
    // The capture is real: it holds the operator's own line for the change it made.
    expect(logs).toContain('applied pool env');
    for (const secret of [
      PASSWORD,
      WRONG_PASSWORD,
      TOKEN,
      b64(PASSWORD),
      b64(`${USER}:${PASSWORD}`),
      b64(`${USER}:${WRONG_PASSWORD}`),
      b64(`${TOKEN}\n`),
    ]) {
      expect({
        secret,
        inLogs: logs.includes(secret),
        inStatus: statuses.includes(secret),
        inEvents: events.includes(secret),
      }).toEqual({ secret, inLogs: false, inStatus: false, inEvents: false });
    }
  }, 90_000);

  it('--enforce-namespace-label: a query selecting another namespace is QueryRejected and writes nothing; one without a namespace reads only its own series', async () => {
    await createDeployment(kc, nsA, app('cross'));
    await createDeployment(kc, nsA, app('own'));
    await createPolicy(
      kc,
      nsA,
      'cross',
      policy('cross', { utilization: `max(sec_pool_utilization_percent{namespace="${nsB}"})` }),
    );
    await createPolicy(kc, nsA, 'own', policy('own', { utilization: 'max(sec_pool_utilization_percent)' }));

    const cross = await eventually(
      async () => {
        const p = await getPolicy(kc, nsA, 'cross');
        return condition(p, 'MetricsAvailable')?.reason === 'QueryRejected' ? p : undefined;
      },
      30_000,
      'cross: QueryRejected',
    );
    expect(condition(cross, 'MetricsAvailable')).toMatchObject({ status: 'False' });
    expect(condition(cross, 'MetricsAvailable')?.message).toContain(
      `reads namespace "${nsB}", not this policy's namespace "${nsA}"`,
    );
    expect(condition(cross, 'MetricsAvailable')?.message).toContain('remove that matcher');

    // The injected matcher makes it read A's 50 (dead band: hold), not B's 97 (which would grow it).
    const own = await eventually(
      async () => {
        const p = await getPolicy(kc, nsA, 'own');
        return p.status?.observed?.database === 50 ? p : undefined;
      },
      45_000,
      'own: observed utilization 50 from its own namespace',
    );
    expect(condition(own, 'MetricsAvailable')).toMatchObject({ status: 'True' });
    await passesOfEach(operator, kc, nsA, 3);
    const apps = kc.makeApiClient(AppsV1Api);
    for (const name of ['cross', 'own']) {
      const d = await apps.readNamespacedDeployment({ name, namespace: nsA });
      expect([name, envOf(d, 'app').DB_POOL_SIZE, d.metadata?.generation]).toEqual([name, '20', 1]);
    }
  }, 90_000);

  it('objects of the same names in another namespace are never touched', async () => {
    // Same names as in A: a Deployment and a PoolPolicy with the override that grows A's target.
    await createDeployment(kc, nsB, app('basic'));
    await createPolicy(kc, nsB, 'basic', policy('basic', { utilization: 'vector(90)' }));
    const before = await getDeployment(kc, nsB, 'basic');
    // A's policy of that name keeps working meanwhile (a further step).
    const grownBefore = Number(envOf(await getDeployment(kc, nsA, 'basic'), 'app').DB_POOL_SIZE);
    await eventually(
      async () => {
        const now = Number(envOf(await getDeployment(kc, nsA, 'basic'), 'app').DB_POOL_SIZE);
        return now > grownBefore || now === 40 ? true : undefined;
      },
      30_000,
      'A: basic keeps growing (or is at max 40)',
    );
    // The operator of A has had its passes since B's objects exist.
    await passesOfEach(operator, kc, nsA, 2);
    const after = await getDeployment(kc, nsB, 'basic');
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(envOf(after, 'app').DB_POOL_SIZE).toBe('20');
    expect((await getPolicy(kc, nsB, 'basic')).status).toBeUndefined();
  }, 60_000);
});
