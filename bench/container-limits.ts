/**
 * The operator's container limits, applied to the benchmark's operator process as its Pod would
 * have them: a cgroup (v1) with the memory and CPU limits of deploy/core/deployment.yaml.
 *
 * Why: Node sizes V8's heap from the memory it may use (the cgroup's limit when there is one), so
 * an operator measured without a limit on a 24 GiB machine collects garbage lazily and shows an
 * RSS it would never have in its Pod, and one that would be OOM-killed there looks fine here.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadYaml, type V1Deployment } from '@kubernetes/client-node';
import { repoRoot } from '../test/integration/support/local-env.js';

export interface ContainerLimits {
  readonly memoryBytes: number;
  /** CPU in thousandths of a core. */
  readonly cpuMillis: number;
}

const BINARY_SUFFIX: Readonly<Record<string, number>> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** A Kubernetes memory quantity with a binary suffix (`256Mi`) or none, in bytes. */
export function memoryBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!match) throw new Error(`memory limit "${quantity}": expected a number with Ki, Mi or Gi`);
  return Number(match[1]) * (BINARY_SUFFIX[match[2] ?? ''] ?? 1);
}

/** A Kubernetes CPU quantity (`500m` or `2`), in thousandths of a core. */
export function cpuMillis(quantity: string): number {
  const match = /^(\d+)(m?)$/.exec(quantity);
  if (!match) throw new Error(`cpu limit "${quantity}": expected 500m or a whole number of cores`);
  return match[2] === 'm' ? Number(match[1]) : Number(match[1]) * 1000;
}

/** The limits of the operator's container in deploy/core/deployment.yaml. */
export function deployedLimits(): ContainerLimits {
  const file = join(repoRoot, 'deploy/core/deployment.yaml');
  const deployment = loadYaml<V1Deployment>(readFileSync(file, 'utf8'));
  const limits = deployment.spec?.template.spec?.containers[0]?.resources?.limits;
  const memory = limits?.memory;
  const cpu = limits?.cpu;
  if (typeof memory !== 'string' || typeof cpu !== 'string') {
    throw new Error(`${file}: the first container has no memory and cpu limits`);
  }
  return { memoryBytes: memoryBytes(memory), cpuMillis: cpuMillis(cpu) };
}

/** What the kernel recorded for the cgroup: its peak memory and how often it OOM-killed. */
export interface CgroupUsage {
  readonly peakMiB: number;
  readonly oomKills: number;
}

export interface ContainerCgroup {
  readonly limits: ContainerLimits;
  /** Command words that start the rest of the command line inside the cgroup. */
  readonly launcher: readonly string[];
  usage(): CgroupUsage;
  /** Removes the cgroup; its processes must have exited. */
  remove(): void;
}

const CGROUP_V1 = '/sys/fs/cgroup';
const CFS_PERIOD_US = 100_000;

/**
 * A cgroup v1 memory + cpu group named `name` with `limits`, or why there can be none here (not
 * root, no cgroup v1 memory and cpu hierarchies). cgroup v2 is not supported yet.
 */
export function containerCgroup(name: string, limits: ContainerLimits): ContainerCgroup | string {
  const memoryDir = join(CGROUP_V1, 'memory', name);
  const cpuDir = join(CGROUP_V1, 'cpu', name);
  if (
    !existsSync(join(CGROUP_V1, 'memory/memory.limit_in_bytes')) ||
    !existsSync(join(CGROUP_V1, 'cpu/cpu.cfs_quota_us'))
  )
    return 'no cgroup v1 memory and cpu hierarchies under /sys/fs/cgroup';
  if (process.getuid?.() !== 0) return 'not root: cannot make a cgroup';
  mkdirSync(memoryDir, { recursive: true });
  mkdirSync(cpuDir, { recursive: true });
  writeFileSync(join(memoryDir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
  writeFileSync(join(cpuDir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
  writeFileSync(join(cpuDir, 'cpu.cfs_quota_us'), String((limits.cpuMillis * CFS_PERIOD_US) / 1000));
  const read = (file: string): string => readFileSync(join(memoryDir, file), 'utf8');
  return {
    limits,
    // The shell joins both groups, then becomes the command: its PID is the operator's.
    launcher: [
      '/bin/sh',
      '-c',
      'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"',
      'container-limits',
      join(memoryDir, 'cgroup.procs'),
      join(cpuDir, 'cgroup.procs'),
    ],
    usage: () => ({
      peakMiB: Number(read('memory.max_usage_in_bytes')) / 2 ** 20,
      oomKills: Number(/^oom_kill (\d+)$/m.exec(read('memory.oom_control'))?.[1] ?? 0),
    }),
    remove: () => {
      rmdirSync(memoryDir);
      rmdirSync(cpuDir);
    },
  };
}

/** Limits and where they come from, for the results table. */
export interface ChosenLimits {
  readonly limits: ContainerLimits;
  readonly source: string;
}

/**
 * BENCH_CONTAINER_LIMITS: `deploy` (the default: deploy/core/deployment.yaml's), `none`, or
 * `<memory>,<cpu>` in Kubernetes quantities (`512Mi,1`: the limits a larger install would give).
 */
export function chosenLimits(setting: string): ChosenLimits | undefined {
  if (setting === 'none') return undefined;
  if (setting === 'deploy') return { limits: deployedLimits(), source: 'deploy/core/deployment.yaml' };
  const [memory, cpu, ...rest] = setting.split(',');
  if (memory === undefined || cpu === undefined || rest.length > 0)
    throw new Error(`BENCH_CONTAINER_LIMITS=${setting}: expected deploy, none or <memory>,<cpu> (e.g. 512Mi,1)`);
  return { limits: { memoryBytes: memoryBytes(memory), cpuMillis: cpuMillis(cpu) }, source: 'BENCH_CONTAINER_LIMITS' };
}

/** The operator's container for a benchmark, as BENCH_CONTAINER_LIMITS asks ({@link chosenLimits}). */
export interface BenchContainer {
  /** Command words for spawnOperator's launcher: none without limits. */
  readonly launcher: readonly string[];
  /** For the results table: the limits and what the kernel recorded under them, or why there were none. */
  describe(): string;
  /** For an operator that exited early: the OOM kills in its cgroup, if it had one. */
  exitNote(): string;
  remove(): void;
}

export function benchContainer(name: string): BenchContainer {
  const chosen = chosenLimits(process.env.BENCH_CONTAINER_LIMITS ?? 'deploy');
  const unlimited = (why: string): BenchContainer => ({
    launcher: [],
    describe: () => `none: ${why}`,
    exitNote: () => '',
    remove: () => undefined,
  });
  if (chosen === undefined) return unlimited('BENCH_CONTAINER_LIMITS=none');
  const cgroup = containerCgroup(`${name}-${process.pid}`, chosen.limits);
  if (typeof cgroup === 'string') return unlimited(cgroup);
  return {
    launcher: cgroup.launcher,
    describe: () => {
      const { peakMiB, oomKills } = cgroup.usage();
      return `memory ${(cgroup.limits.memoryBytes / 2 ** 20).toFixed(0)} MiB, CPU ${cgroup.limits.cpuMillis}m (${chosen.source}, as a cgroup v1); peak memory over the run ${peakMiB.toFixed(0)} MiB, ${oomKills} OOM kills`;
    },
    exitNote: () => ` (OOM kills in its cgroup: ${cgroup.usage().oomKills})`,
    remove: () => {
      cgroup.remove();
    },
  };
}
