/**
 * The demo's node agent: a stand-in for kubelet + the deployment controller on one machine.
 *
 * For every Deployment in one namespace it runs `spec.replicas` local processes ("pods") from
 * the pod template's first container: `command` + `args`, the literal `env` values (valueFrom is
 * ignored), plus PORT (a free loopback port), POD_NAME and POD_NAMESPACE (`$(VAR)` in command and
 * args expands from these), in the agent's working directory (or `workingDir`), as `securityContext.runAsUser`/`runAsGroup` when set. Pods are named
 * as Kubernetes names them, `<deployment>-<template hash>-<5 random characters>` (see {@link templateHash}).
 *
 * - ConfigMap volumes are written to `<stateDir>/volumes/<namespace>/<deployment>/<volume>/<key>`
 *   and every argument or env value that starts with the volumeMount's mountPath is rewritten to
 *   that directory (there are no mount namespaces here). When the ConfigMap changes the files are
 *   rewritten and each pod gets SIGHUP (PgBouncer reloads its config on SIGHUP, like RELOAD).
 * - Readiness: `readinessProbe.httpGet` (GET http://127.0.0.1:<port><path>) or `tcpSocket`; a
 *   named or missing port means PORT. Without a probe a pod is ready after 0.5 s alive.
 * - A pod template annotated `prometheus.io/scrape: "true"` is registered with Prometheus while
 *   ready: `<targetsDir>/demo-agent-<namespace>-<pod>.json` (file_sd) with labels namespace, pod
 *   and deployment; `prometheus.io/port` overrides the port.
 * - A template change is rolled out one pod at a time: start one new pod, wait until it is ready,
 *   deregister one old pod, wait 1 s, SIGTERM it (SIGKILL after the grace period, at most 10 s);
 *   repeat. With `strategy.rollingUpdate.maxSurge: 0` the old pod goes first, so there are never
 *   more pods than replicas (other maxSurge/maxUnavailable values act as surge 1 / unavailable 0). The Deployment's status is written as the deployment controller
 *   writes it: observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
 *   unavailableReplicas and the Available / Progressing conditions (Progressing ends with reason
 *   NewReplicaSetAvailable and a fresh lastUpdateTime). An unchanged status is not written again.
 * - A pod that exits by itself is replaced after 1 s (simplified crash-loop back-off).
 *
 * Run it: `node .local/demo/build/node-agent.js --kubeconfig K --namespace NS --targets-dir D
 * --state-dir S` (build with `tsc -p demo/tsconfig.json`); SIGTERM/SIGINT stop every pod first.
 */
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  makeInformer,
  type Informer,
  type ObjectCache,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Container,
  type V1Deployment,
  type V1DeploymentCondition,
  type V1DeploymentStatus,
  type V1PodTemplateSpec,
} from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

export interface NodeAgentOptions {
  readonly kubeconfig: string;
  readonly namespace: string;
  /** Prometheus file_sd directory (PROMETHEUS_TARGETS_DIR). */
  readonly targetsDir: string;
  /** Pod logs, pid files and ConfigMap volumes go here. */
  readonly stateDir: string;
  /** Working directory of every pod (default: the agent's). */
  readonly cwd?: string;
  readonly log?: (message: string) => void;
}

export interface PodView {
  readonly name: string;
  readonly hash: string;
  readonly pid: number;
  readonly port: number;
  readonly ready: boolean;
  readonly env: Readonly<Record<string, string>>;
}

export interface NodeAgent {
  /** Running pods of a Deployment, oldest first. */
  pods(deployment: string): readonly PodView[];
  stop(): Promise<void>;
}

interface Pod {
  readonly name: string;
  readonly hash: string;
  readonly slot: number;
  readonly port: number;
  readonly child: ChildProcess;
  readonly env: Record<string, string>;
  readonly exited: Promise<void>;
  ready: boolean;
  alive: boolean;
  stopping: boolean;
}

interface DeploymentState {
  pods: Pod[];
  busy: boolean;
  again: boolean;
  retry: NodeJS.Timeout | undefined;
  /** ConfigMap name → text of the files last written for it. */
  volumes: Map<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** JSON with sorted keys, without null/undefined/empty values: a typed object (from a GET) and the raw one from a watch give the same text. */
function canonical(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = canonical((value as Record<string, unknown>)[key]);
      if (v === undefined || v === null || (typeof v === 'object' && Object.keys(v).length === 0)) continue;
      out[key] = v;
    }
    return out;
  }
  return value;
}

/** The characters of generated Kubernetes names (k8s.io/apimachinery/pkg/util/rand). */
const GENERATED_NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** rand.SafeEncodeString: each character mapped into {@link GENERATED_NAME_ALPHABET}. */
function safeEncode(text: string): string {
  return Array.from({ length: text.length }, (_, i) =>
    GENERATED_NAME_ALPHABET.charAt(text.charCodeAt(i) % GENERATED_NAME_ALPHABET.length),
  ).join('');
}

/**
 * The pod-template hash in pod names, shaped like the deployment controller's pod-template-hash
 * (the safe encoding of a 32-bit hash's decimal digits), so that the operator reads the demo's
 * pods as it reads real ones. Not the same value: that one hashes Go's rendering of the template.
 */
export function templateHash(template: V1PodTemplateSpec | undefined): string {
  return safeEncode(
    String(
      createHash('sha256')
        .update(JSON.stringify(canonical(template ?? {})))
        .digest()
        .readUInt32BE(0),
    ),
  );
}

/** generateName's 5 random characters, not used by another pod of `pods`. */
function podSuffix(pods: readonly Pod[], base: string): string {
  for (;;) {
    const suffix = Array.from({ length: 5 }, () =>
      GENERATED_NAME_ALPHABET.charAt(randomInt(GENERATED_NAME_ALPHABET.length)),
    ).join('');
    if (!pods.some((p) => p.name === `${base}${suffix}`)) return suffix;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise<void>((r) =>
    server.close(() => {
      r();
    }),
  );
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

function probeOnce(kind: 'http' | 'tcp', port: number, path: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    if (kind === 'tcp') {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(1000);
      socket.once('connect', () => {
        socket.destroy();
        resolvePromise(true);
      });
      socket.once('error', () => {
        resolvePromise(false);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolvePromise(false);
      });
      return;
    }
    const req = request({ host: '127.0.0.1', port, path, timeout: 1000 }, (res) => {
      res.resume();
      resolvePromise((res.statusCode ?? 500) >= 200 && (res.statusCode ?? 500) < 400);
    });
    req.once('error', () => {
      resolvePromise(false);
    });
    req.once('timeout', () => {
      req.destroy();
      resolvePromise(false);
    });
    req.end();
  });
}

function numericPort(port: unknown, fallback: number): number {
  return typeof port === 'number' ? port : /^\d+$/.test(String(port)) ? Number(port) : fallback;
}

function writeAtomic(path: string, text: string, mode = 0o644): void {
  writeFileSync(`${path}.tmp`, text, { mode });
  renameSync(`${path}.tmp`, path);
}

export function startNodeAgent(options: NodeAgentOptions): NodeAgent {
  const log =
    options.log ??
    ((m: string) => {
      process.stderr.write(`${new Date().toISOString()} node-agent: ${m}\n`);
    });
  const ns = options.namespace;
  const kc = new KubeConfig();
  kc.loadFromFile(options.kubeconfig);
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const cwd = options.cwd ?? process.cwd();
  const pidDir = join(options.stateDir, 'pids');
  const logDir = join(options.stateDir, 'logs');
  mkdirSync(pidDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  mkdirSync(options.targetsDir, { recursive: true });

  const states = new Map<string, DeploymentState>();
  let stopped = false;
  // Closures change these flags; the helpers keep the linter from narrowing them to constants.
  const isStopped = (): boolean => stopped;
  const isAlive = (pod: Pod): boolean => pod.alive;
  const wantsAgain = (st: DeploymentState): boolean => st.again;

  const deployments: Informer<V1Deployment> & ObjectCache<V1Deployment> = makeInformer(
    kc,
    `/apis/apps/v1/namespaces/${ns}/deployments`,
    () => apps.listNamespacedDeployment({ namespace: ns }),
  );
  const configMaps: Informer<V1ConfigMap> & ObjectCache<V1ConfigMap> = makeInformer(
    kc,
    `/api/v1/namespaces/${ns}/configmaps`,
    () => core.listNamespacedConfigMap({ namespace: ns }),
  );

  const stateOf = (name: string): DeploymentState => {
    let st = states.get(name);
    if (st === undefined) {
      st = { pods: [], busy: false, again: false, retry: undefined, volumes: new Map() };
      states.set(name, st);
    }
    return st;
  };

  const targetFile = (pod: string): string => join(options.targetsDir, `demo-agent-${ns}-${pod}.json`);

  const firstContainer = (d: V1Deployment): V1Container => {
    const c = d.spec?.template.spec?.containers[0];
    if (c === undefined) throw new Error(`deployment ${d.metadata?.name ?? ''} has no container`);
    return c;
  };

  /** mountPath → directory on disk, for the ConfigMap volumes of the first container. */
  const volumeDirs = (d: V1Deployment): Array<{ mountPath: string; dir: string; configMap: string }> => {
    const name = d.metadata?.name ?? '';
    const volumes = d.spec?.template.spec?.volumes ?? [];
    const out: Array<{ mountPath: string; dir: string; configMap: string }> = [];
    for (const mount of firstContainer(d).volumeMounts ?? []) {
      const volume = volumes.find((v) => v.name === mount.name);
      if (volume?.configMap === undefined) continue;
      out.push({
        mountPath: mount.mountPath.replace(/\/$/, ''),
        dir: join(options.stateDir, 'volumes', ns, name, volume.name),
        configMap: volume.configMap.name ?? '',
      });
    }
    return out;
  };

  /** Writes the ConfigMap volumes; returns true when any file changed. Throws when a ConfigMap is missing. */
  const writeVolumes = (d: V1Deployment, st: DeploymentState): boolean => {
    let changed = false;
    for (const v of volumeDirs(d)) {
      const cm = configMaps.get(v.configMap, ns);
      if (cm === undefined) throw new Error(`ConfigMap ${v.configMap} not found (waiting for it)`);
      const data: Record<string, string> = cm.data ?? {};
      const text = JSON.stringify(data);
      if (st.volumes.get(v.dir) === text) continue;
      mkdirSync(v.dir, { recursive: true, mode: 0o755 });
      chmodSync(v.dir, 0o755);
      for (const [key, value] of Object.entries(data)) writeAtomic(join(v.dir, key), value);
      st.volumes.set(v.dir, text);
      changed = true;
    }
    return changed;
  };

  const rewrite = (value: string, mounts: ReadonlyArray<{ mountPath: string; dir: string }>): string => {
    for (const m of mounts) {
      if (value === m.mountPath || value.startsWith(`${m.mountPath}/`)) return m.dir + value.slice(m.mountPath.length);
    }
    return value;
  };

  const register = (d: V1Deployment, pod: Pod): void => {
    const annotations = d.spec?.template.metadata?.annotations ?? {};
    if (annotations['prometheus.io/scrape'] !== 'true') return;
    const port = numericPort(annotations['prometheus.io/port'], pod.port);
    writeAtomic(
      targetFile(pod.name),
      JSON.stringify([
        {
          targets: [`127.0.0.1:${port}`],
          labels: { namespace: ns, pod: pod.name, deployment: d.metadata?.name ?? '' },
        },
      ]),
    );
  };

  const stopPod = async (st: DeploymentState, pod: Pod, graceSeconds: number, drainMs = 1000): Promise<void> => {
    pod.stopping = true;
    rmSync(targetFile(pod.name), { force: true });
    if (pod.alive && drainMs > 0) await sleep(drainMs);
    if (pod.alive) {
      log(`stopping pod ${pod.name} (pid ${pod.child.pid ?? '?'})`);
      pod.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        pod.exited.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(
            () => {
              r(true);
            },
            Math.min(graceSeconds, 10) * 1000,
          );
        }),
      ]);
      clearTimeout(timer);
      if (killed && isAlive(pod)) {
        log(`pod ${pod.name} ignored SIGTERM; SIGKILL`);
        pod.child.kill('SIGKILL');
        await pod.exited;
      }
    }
    st.pods = st.pods.filter((p) => p !== pod);
    rmSync(join(pidDir, `pod-${pod.name}.pid`), { force: true });
  };

  const startPod = async (d: V1Deployment, st: DeploymentState, hash: string): Promise<Pod> => {
    const name = d.metadata?.name ?? '';
    const container = firstContainer(d);
    const mounts = volumeDirs(d);
    writeVolumes(d, st);
    const used = new Set(st.pods.filter((p) => p.hash === hash).map((p) => p.slot));
    let slot = 0;
    while (used.has(slot)) slot++;
    const base = `${name}-${hash}-`.slice(0, 58); // generateName's base is cut to fit 63 characters
    const podName = `${base}${podSuffix(st.pods, base)}`;
    const port = await freePort();
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = rewrite(e.value, mounts);
    Object.assign(env, { PORT: String(port), POD_NAME: podName, POD_NAMESPACE: ns });
    // $(VAR) in command and args expands from the container's env, as in Kubernetes.
    const expand = (a: string): string =>
      a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, v: string) => env[v] ?? whole);
    const argv = [...(container.command ?? []), ...(container.args ?? [])].map((a) => rewrite(expand(a), mounts));
    const [file, ...args] = argv;
    if (file === undefined) throw new Error(`deployment ${name}: container ${container.name} has no command`);
    const podSecurity = d.spec?.template.spec?.securityContext;
    const uid = container.securityContext?.runAsUser ?? podSecurity?.runAsUser;
    const gid = container.securityContext?.runAsGroup ?? podSecurity?.runAsGroup ?? uid;
    const logFd = openSync(join(logDir, `${podName}.log`), 'a');
    const child = spawn(file, args, {
      cwd: container.workingDir === undefined ? cwd : resolve(cwd, rewrite(container.workingDir, mounts)),
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/',
        PYTHONDONTWRITEBYTECODE: '1',
        ...env,
      },
      stdio: ['ignore', logFd, logFd],
      ...(uid === undefined ? {} : { uid }),
      ...(gid === undefined ? {} : { gid }),
    });
    closeSync(logFd);
    let markExited = (): void => undefined;
    const exited = new Promise<void>((r) => {
      markExited = r;
    });
    const pod: Pod = {
      name: podName,
      hash,
      slot,
      port,
      child,
      env,
      exited,
      ready: false,
      alive: true,
      stopping: false,
    };
    child.once('error', (err) => {
      log(`pod ${podName}: ${err.message}`);
      pod.alive = false;
      markExited();
    });
    child.once('exit', (code, signal) => {
      pod.alive = false;
      pod.ready = false;
      markExited();
      if (!pod.stopping && !stopped) {
        log(
          `pod ${podName} exited by itself (${String(code ?? signal)}); replacing it (log: ${join(logDir, `${podName}.log`)})`,
        );
        rmSync(targetFile(podName), { force: true });
        st.pods = st.pods.filter((p) => p !== pod);
        rmSync(join(pidDir, `pod-${podName}.pid`), { force: true });
        scheduleRetry(name, 1000);
      }
    });
    if (child.pid !== undefined) writeFileSync(join(pidDir, `pod-${podName}.pid`), `${child.pid}\n`);
    st.pods.push(pod);
    log(`started pod ${podName} (pid ${child.pid ?? '?'}, PORT ${port}): ${argv.join(' ')}`);

    const probe = container.readinessProbe;
    const kind = probe?.httpGet !== undefined ? 'http' : probe?.tcpSocket !== undefined ? 'tcp' : undefined;
    const probePort = numericPort(probe?.httpGet?.port ?? probe?.tcpSocket?.port, port);
    const deadline = Date.now() + 30_000;
    if (kind === undefined) await sleep(500);
    else
      while (pod.alive && !(await probeOnce(kind, probePort, probe?.httpGet?.path ?? '/'))) {
        if (Date.now() > deadline) {
          await stopPod(st, pod, 1, 0);
          throw new Error(`pod ${podName} not ready after 30 s`);
        }
        await sleep(200);
      }
    if (!pod.alive) throw new Error(`pod ${podName} exited before it was ready`);
    pod.ready = true;
    register(d, pod);
    log(`pod ${podName} is ready`);
    return pod;
  };

  const condition = (
    type: string,
    status: string,
    reason: string,
    message: string,
    previous: V1DeploymentCondition | undefined,
    now: Date,
  ): V1DeploymentCondition => {
    const same = previous?.status === status && previous.reason === reason;
    return {
      type,
      status,
      reason,
      message,
      lastUpdateTime: same && previous.message === message ? (previous.lastUpdateTime ?? now) : now,
      lastTransitionTime: previous?.status === status ? (previous.lastTransitionTime ?? now) : now,
    };
  };

  const writeStatus = async (name: string, st: DeploymentState): Promise<void> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const d = await apps.readNamespacedDeployment({ name, namespace: ns });
      const desired = d.spec?.replicas ?? 1;
      const hash = templateHash(d.spec?.template);
      const alive = st.pods.filter((p) => p.alive);
      const updated = alive.filter((p) => p.hash === hash).length;
      const ready = alive.filter((p) => p.ready).length;
      const done = updated >= desired && alive.length === desired && ready >= desired;
      const old = d.status ?? {};
      const now = new Date();
      const prevAvailable = old.conditions?.find((c) => c.type === 'Available');
      const prevProgressing = old.conditions?.find((c) => c.type === 'Progressing');
      const rs = `${name}-${hash}`;
      const status: V1DeploymentStatus = {
        observedGeneration: d.metadata?.generation ?? 1,
        replicas: alive.length,
        updatedReplicas: updated,
        readyReplicas: ready,
        availableReplicas: ready,
        ...(desired - ready > 0 ? { unavailableReplicas: desired - ready } : {}),
        conditions: [
          condition(
            'Available',
            ready >= desired ? 'True' : 'False',
            ready >= desired ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
            ready >= desired
              ? 'Deployment has minimum availability.'
              : 'Deployment does not have minimum availability.',
            prevAvailable,
            now,
          ),
          done
            ? condition(
                'Progressing',
                'True',
                'NewReplicaSetAvailable',
                `ReplicaSet "${rs}" has successfully progressed.`,
                prevProgressing,
                now,
              )
            : {
                type: 'Progressing',
                status: 'True',
                reason: 'ReplicaSetUpdated',
                message: `ReplicaSet "${rs}" is progressing.`,
                lastUpdateTime: now,
                lastTransitionTime: prevProgressing?.lastTransitionTime ?? now,
              },
        ],
      };
      const comparable = (s: V1DeploymentStatus): string =>
        JSON.stringify([
          s.observedGeneration,
          s.replicas ?? 0,
          s.updatedReplicas ?? 0,
          s.readyReplicas ?? 0,
          s.availableReplicas ?? 0,
          s.unavailableReplicas ?? 0,
          (s.conditions ?? []).map((c) => [c.type, c.status, c.reason, c.message]),
        ]);
      if (comparable(status) === comparable(old)) return;
      d.status = status;
      try {
        await apps.replaceNamespacedDeploymentStatus({ name, namespace: ns, body: d });
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
    }
  };

  /** spec.strategy.rollingUpdate.maxSurge as a pod count (Kubernetes' default 25 %, rounded up). */
  const maxSurge = (d: V1Deployment): number => {
    const raw: unknown = d.spec?.strategy?.rollingUpdate?.maxSurge ?? '25%';
    const desired = d.spec?.replicas ?? 1;
    if (typeof raw === 'number') return raw;
    const text = String(raw);
    return text.endsWith('%') ? Math.ceil((desired * Number(text.slice(0, -1))) / 100) : Number(text);
  };

  const sync = async (name: string, st: DeploymentState): Promise<void> => {
    for (;;) {
      if (stopped) return;
      const d = deployments.get(name, ns);
      if (d === undefined) {
        await Promise.all(st.pods.map((p) => stopPod(st, p, 10, 0)));
        states.delete(name);
        return;
      }
      const desired = d.spec?.replicas ?? 1;
      const hash = templateHash(d.spec?.template);
      const grace = d.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      if (writeVolumes(d, st)) {
        for (const p of st.pods)
          if (p.alive && p.hash === hash) {
            log(`ConfigMap changed: SIGHUP to ${p.name}`);
            p.child.kill('SIGHUP');
          }
      }
      const current = st.pods.filter((p) => p.hash === hash);
      const old = st.pods.filter((p) => p.hash !== hash);
      await writeStatus(name, st);
      if (current.length < desired) {
        const victim = old[0];
        if (maxSurge(d) === 0 && victim !== undefined && st.pods.length >= desired) {
          await stopPod(st, victim, grace); // maxSurge 0: make room first, never more pods than replicas
        } else {
          await startPod(d, st, hash);
          if (victim !== undefined) await stopPod(st, victim, grace);
        }
      } else if (current.length > desired) {
        const victim = [...current].sort((a, b) => b.slot - a.slot)[0];
        if (victim !== undefined) await stopPod(st, victim, grace);
      } else if (old[0] !== undefined) {
        await stopPod(st, old[0], grace);
      } else {
        return;
      }
      await writeStatus(name, st);
    }
  };

  function scheduleRetry(name: string, ms: number): void {
    const st = stateOf(name);
    if (st.retry !== undefined || stopped) return;
    st.retry = setTimeout(() => {
      st.retry = undefined;
      reconcile(name);
    }, ms);
  }

  function reconcile(name: string): void {
    if (stopped) return;
    const st = stateOf(name);
    if (st.busy) {
      st.again = true;
      return;
    }
    st.busy = true;
    void (async () => {
      try {
        do {
          st.again = false;
          await sync(name, st);
        } while (wantsAgain(st) && !isStopped());
        // A final status write reflects the converged state.
        if (!isStopped() && deployments.get(name, ns) !== undefined) await writeStatus(name, st);
      } catch (err) {
        log(`deployment ${name}: ${err instanceof Error ? err.message : String(err)}; retrying in 2 s`);
        scheduleRetry(name, 2000);
      } finally {
        st.busy = false;
      }
    })();
  }

  const onDeployment = (d: KubernetesObject): void => {
    reconcile(d.metadata?.name ?? '');
  };
  deployments.on('add', onDeployment);
  deployments.on('update', onDeployment);
  deployments.on('delete', onDeployment);
  const onConfigMap = (cm: KubernetesObject): void => {
    for (const d of deployments.list(ns)) {
      if (volumeDirs(d).some((v) => v.configMap === cm.metadata?.name)) reconcile(d.metadata?.name ?? '');
    }
  };
  configMaps.on('add', onConfigMap);
  configMaps.on('update', onConfigMap);
  for (const informer of [deployments, configMaps] as Array<Informer<KubernetesObject>>) {
    informer.on('error', (err: unknown) => {
      if (stopped) return;
      log(`watch error: ${err instanceof Error ? err.message : String(err)}; restarting in 1 s`);
      setTimeout(() => {
        if (!stopped) void informer.start().catch(() => undefined);
      }, 1000);
    });
  }
  void configMaps
    .start()
    .then(() => deployments.start())
    .catch((err: unknown) => {
      log(`informers: ${String(err)}`);
    });
  // Level-triggered safety net: revisit every Deployment now and then.
  const resync = setInterval(() => {
    for (const d of deployments.list(ns)) reconcile(d.metadata?.name ?? '');
  }, 5000);

  return {
    pods: (deployment) =>
      (states.get(deployment)?.pods ?? [])
        .filter((p) => p.alive)
        .map((p) => ({ name: p.name, hash: p.hash, pid: p.child.pid ?? 0, port: p.port, ready: p.ready, env: p.env })),
    stop: async () => {
      stopped = true;
      clearInterval(resync);
      await Promise.allSettled([deployments.stop(), configMaps.stop()]);
      const all: Array<Promise<void>> = [];
      for (const st of states.values()) {
        if (st.retry !== undefined) clearTimeout(st.retry);
        for (const p of st.pods) all.push(stopPod(st, p, 10, 0));
      }
      await Promise.all(all);
    },
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'targets-dir': { type: 'string' },
      'state-dir': { type: 'string' },
      cwd: { type: 'string' },
    },
  });
  const required = (v: string | undefined, flag: string): string => {
    if (v === undefined || v === '') throw new Error(`--${flag} is required`);
    return v;
  };
  const agent = startNodeAgent({
    kubeconfig: required(values.kubeconfig, 'kubeconfig'),
    namespace: required(values.namespace, 'namespace'),
    targetsDir: resolve(required(values['targets-dir'], 'targets-dir')),
    stateDir: resolve(required(values['state-dir'], 'state-dir')),
    cwd: resolve(values.cwd ?? process.cwd()),
  });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`node-agent: ${signal}: stopping every pod\n`);
    void agent.stop().then(() => {
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });
}

// Started as a program (not imported by a test).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`node-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

/** For scripts: the pids of every pod the agent recorded in `<stateDir>/pids`. */
export function recordedPid(stateDir: string, pod: string): number {
  return Number(readFileSync(join(stateDir, 'pids', `pod-${pod}.pid`), 'utf8').trim());
}
