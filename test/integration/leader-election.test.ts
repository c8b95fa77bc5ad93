import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoordinationV1Api, type KubeConfig, type V1LeaseSpec } from '@kubernetes/client-node';
import axios from 'axios';
import { Gauge } from 'prom-client';
import { readLocalEnv, repoRoot } from './support/local-env.js';
import {
  adminKubeConfig,
  createDeployment,
  createTestNamespace,
  deleteTestNamespace,
  deploymentManifest,
} from './support/kube.js';
import { createPolicy, envOf, getDeployment, getPolicy, installCrds, simulateRollouts } from './support/operator.js';
import { killHard, spawnOperator, type OperatorProcess } from './support/process.js';
import { eventually, startScrapeTarget, type ScrapeTarget } from './support/prometheus.js';

// Two operator processes (the built CLI) with --leader-elect against the real kube-apiserver:
// one holds the Lease and writes, the other watches and waits; killing the leader hands the
// policy over without a repeated or skipped step; SIGTERM releases the Lease.

const LEASE_NAME = 'poolpilot-leader';
/** Short lease settings (defaults are 15s/10s/2s) so a takeover happens within seconds. */
const LEASE_DURATION_MS = 4000;
const RETRY_PERIOD_MS = 500;
const LEASE_FLAGS = [
  '--leader-election-lease-duration',
  '4s',
  '--leader-election-renew-deadline',
  '3s',
  '--leader-election-retry-period',
  '500ms',
];

interface Step {
  readonly setting: string;
  readonly from: number;
  readonly to: number;
}
interface HistoryEntry {
  readonly reason?: string;
  readonly changes: readonly Step[];
}

describe('leader election (two operator processes)', () => {
  let kc: KubeConfig;
  let namespace: string;
  let exporter: ScrapeTarget;
  let rollouts: ReturnType<typeof simulateRollouts>;
  const procs: OperatorProcess[] = [];

  const readLease = async (): Promise<V1LeaseSpec | undefined> => {
    try {
      return (await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE_NAME, namespace })).spec;
    } catch {
      return undefined;
    }
  };
  /** The identity a process campaigns under, from its 'became leader' line or any line naming it. */
  const identityOf = (proc: OperatorProcess): string | undefined => {
    for (const line of proc.lines) if (typeof line.identity === 'string') return line.identity;
    return undefined;
  };
  const startedPorts = (proc: OperatorProcess): Promise<{ health: number; metrics: number }> =>
    eventually(
      () => {
        const line = proc.lines.find((l) => l.msg === 'poolpilot starting');
        return Promise.resolve(
          line ? { health: Number(line.healthPort), metrics: Number(line.metricsPort) } : undefined,
        );
      },
      30000,
      'operator to log its ports',
    );
  const leaderGauge = async (proc: OperatorProcess): Promise<string | undefined> => {
    const { metrics } = await startedPorts(proc);
    const body = (await axios.get<string>(`http://127.0.0.1:${metrics}/metrics`, { responseType: 'text' })).data;
    return /^poolpilot_leader (\S+)$/m.exec(body)?.[1];
  };
  const appliedLines = (proc: OperatorProcess): number => proc.lines.filter((l) => l.msg === 'applied pool env').length;

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'pipe' });
    kc = adminKubeConfig();
    installCrds();
    namespace = await createTestNamespace(kc, 'le');
    rollouts = simulateRollouts(kc, namespace);
    exporter = await startScrapeTarget(`le-${namespace}`, { namespace, pod: 'api-5d8c7-x2x9q' });
    const utilization = new Gauge({
      name: 'voiceassist_db_pool_utilization_percent',
      help: 'pool utilization',
      registers: [exporter.registry],
    });
    utilization.set(90);
    await createDeployment(
      kc,
      namespace,
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
  }, 180_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => killHard(p)));
    rollouts.stop();
    await exporter.stop();
    await deleteTestNamespace(kc, namespace);
  });

  it('one replica leads and writes; a killed leader is replaced within the lease duration without a repeated step; SIGTERM exits 0 and releases the Lease', async () => {
    const args = [
      'run',
      '--kubeconfig',
      readLocalEnv().KUBECONFIG,
      '--namespace',
      namespace,
      '--prometheus-url',
      readLocalEnv().PROMETHEUS_URL,
      '--metrics-addr',
      '127.0.0.1:0',
      '--health-addr',
      '127.0.0.1:0',
      '--leader-elect',
      '--leader-election-namespace',
      namespace,
      ...LEASE_FLAGS,
    ];
    procs.push(spawnOperator(args), spawnOperator(args));

    // Exactly one holds the Lease; both have synced caches and serve /readyz.
    const holder = await eventually(
      async () => {
        const spec = await readLease();
        return spec?.holderIdentity ? spec.holderIdentity : undefined;
      },
      30000,
      'a Lease holder',
    );
    const identities = await eventually(
      () => {
        const ids = procs.map(identityOf);
        return Promise.resolve(ids.every((id) => id !== undefined) ? ids : undefined);
      },
      30000,
      'both operators to log their identity',
    );
    expect(new Set(identities).size).toBe(2);
    expect(identities).toContain(holder);
    const leader = procs[identities.indexOf(holder)];
    const follower = procs[1 - identities.indexOf(holder)];
    if (leader === undefined || follower === undefined) throw new Error('two operator processes expected');
    for (const proc of procs) {
      const { health } = await startedPorts(proc);
      await eventually(
        async () =>
          (await axios.get(`http://127.0.0.1:${health}/readyz`, { validateStatus: () => true })).status === 200
            ? true
            : undefined,
        30000,
        '/readyz',
      );
    }
    expect(
      await eventually(
        () => leaderGauge(leader).then((v) => (v === '1' ? v : undefined)),
        10000,
        'poolpilot_leader 1 on the leader',
      ),
    ).toBe('1');
    expect(await leaderGauge(follower)).toBe('0');

    await createPolicy(kc, namespace, 'api', {
      targetRef: { name: 'api' },
      metricsPrefix: 'voiceassist_',
      interval: '1s',
      database: { poolSize: { min: 10, max: 30 }, maxOverflow: { ratio: 2, min: 0, max: 100 } },
      behavior: {
        maxStepPercent: 20,
        scaleUpStabilization: '1s',
        scaleDownStabilization: '1h',
        minChangeInterval: '3s',
      },
    });

    // The leader takes the first step (recorded in status); the follower has written nothing.
    await eventually(
      async () => {
        const history = ((await getPolicy(kc, namespace, 'api')).status?.history ?? []) as HistoryEntry[];
        return history.some((h) => h.changes.some((c) => c.setting === 'DB_POOL_SIZE' && c.from === 20 && c.to === 24))
          ? true
          : undefined;
      },
      60000,
      'the first step 20→24 in status.history',
    );
    expect(envOf(await getDeployment(kc, namespace, 'api'), 'api').DB_POOL_SIZE).toBe('24');
    expect(appliedLines(leader)).toBeGreaterThanOrEqual(1);
    expect(appliedLines(follower)).toBe(0);
    expect((await readLease())?.holderIdentity).toBe(holder);

    // kill -9 the leader: no release; the follower must wait for the Lease to expire.
    const killedAt = Date.now();
    await killHard(leader);
    const newHolder = await eventually(
      async () => {
        const spec = await readLease();
        return spec?.holderIdentity && spec.holderIdentity !== holder ? spec : undefined;
      },
      20000,
      'the follower to take over the Lease',
    );
    const takeoverMs = Date.now() - killedAt;
    expect(newHolder.holderIdentity).toBe(identityOf(follower));
    expect(newHolder.leaseTransitions).toBeGreaterThanOrEqual(1);
    // Expiry counts from when the follower last saw the Lease change (≤ one retry period before
    // the kill), and it looks once per retry period; plus polling and scheduling slack.
    expect(takeoverMs).toBeLessThan(LEASE_DURATION_MS + 2 * RETRY_PERIOD_MS + 1000);
    expect(
      await eventually(
        () => leaderGauge(follower).then((v) => (v === '1' ? v : undefined)),
        10000,
        'poolpilot_leader 1 on the new leader',
      ),
    ).toBe('1');

    // The new leader continues stepping to max, from where the old one stopped.
    await eventually(
      async () => (envOf(await getDeployment(kc, namespace, 'api'), 'api').DB_POOL_SIZE === '30' ? true : undefined),
      60000,
      'DB_POOL_SIZE to reach 30',
    );
    expect(appliedLines(follower)).toBeGreaterThanOrEqual(1);
    const policy = await eventually(
      async () => {
        const p = await getPolicy(kc, namespace, 'api');
        const steps = ((p.status?.history ?? []) as HistoryEntry[]).flatMap((h) =>
          h.changes.filter((c) => c.setting === 'DB_POOL_SIZE'),
        );
        return steps.at(-1)?.to === 30 ? p : undefined;
      },
      30000,
      'the step to 30 in status.history',
    );
    const history = (policy.status?.history ?? []) as HistoryEntry[];
    const steps = history.flatMap((h) => h.changes.filter((c) => c.setting === 'DB_POOL_SIZE'));
    expect(steps.map((s) => [s.from, s.to])).toEqual([
      [20, 24],
      [24, 28],
      [28, 30],
    ]);
    for (const [i, step] of steps.entries()) {
      expect(step.to).toBeGreaterThan(step.from);
      expect(step.to - step.from).toBeLessThanOrEqual(Math.max(1, Math.floor(step.from * 0.2)));
      if (i > 0) expect(step.from).toBe(steps[i - 1]?.to);
    }
    expect(envOf(await getDeployment(kc, namespace, 'api'), 'api')).toEqual({
      DB_POOL_SIZE: '30',
      DB_MAX_OVERFLOW: '60',
    });

    // SIGTERM: graceful shutdown, exit 0 within 10 s, the Lease released for the next replica.
    const termAt = Date.now();
    process.kill(follower.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      follower.exited,
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => {
          resolve('timeout');
        }, 12_000);
      }),
    ]);
    clearTimeout(timer);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - termAt).toBeLessThan(10_000);
    const released = await readLease();
    expect(released?.holderIdentity ?? '').toBe('');
    expect(follower.lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['shutting down', 'released leader lease', 'shut down']),
    );
  }, 180_000);
});
