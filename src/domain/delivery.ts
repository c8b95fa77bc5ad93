/**
 * Whether a ConfigMap delivery (spec.delivery.mode ConfigMap) took effect, from what the app's
 * pods report: each pod's pool-setting gauges (db_pool_size, db_pool_max_overflow,
 * redis_pool_max_connections) and, when the app exports it, db_pool_draining_connections, the
 * connections it holds beyond the written values (in pools a reload retired, or above a smaller
 * capacity until they come back).
 *
 * A delivery is Applied once every pod that reports runs the written values with nothing left
 * draining, and at least as many pods report as the Deployment has ready (a ready pod missing from
 * Prometheus, say after a failed scrape, may still hold the old pools); until then it is Pending,
 * and after spec.delivery.confirmTimeout NotConfirmed.
 * While it is not Applied the policy's env sections (database, redis) write nothing more (the
 * next change would be decided on samples of the old pools), and the budget counts the old pools
 * beside the new ones
 * ({@link drainingValues}). A NotConfirmed delivery is reported, never written again: a pod that
 * starts later reads the file and confirms it then. Pure: `now` comes in.
 */
import { formatStatusTime, type DeliveryRecord, type SettingChange } from '../api/v1alpha1/poolpolicy.js';
import { formatDuration } from './duration.js';

/** What one pod reports: each setting's gauge (min and max over the pod's series), and its draining connections. */
export interface PodReport {
  readonly settings: ReadonlyMap<string, { readonly min: number; readonly max: number }>;
  /** undefined when the app does not export a draining gauge. */
  readonly draining: number | undefined;
}

export type PodReports =
  | { readonly valid: true; readonly pods: ReadonlyMap<string, PodReport> }
  | { readonly valid: false; readonly message: string };

export type DeliveryState = 'Applied' | 'Pending' | 'NotConfirmed';

export interface DeliveryView {
  readonly state: DeliveryState;
  /** For the Delivered condition and the hold message: what was written, who reported it, what to check. */
  readonly message: string;
  /** The record to store: confirmations of this pass added. */
  readonly record: DeliveryRecord<Date>;
}

export interface DeliveryCheck {
  readonly record: DeliveryRecord<Date>;
  readonly reports: PodReports;
  readonly now: Date;
  readonly timeoutMs: number;
  /** The Deployment's ready replicas: at least this many pods must report before a delivery is Applied. */
  readonly readyPods: number;
  /** Names of the gauges the pods must report, for messages. */
  readonly gauges: readonly string[];
}

/** `A=1 B=2`, keys sorted: the API server stores maps sorted, so a message must not depend on their order. */
export function describeSettings(values: Readonly<Record<string, number>>): string {
  return Object.entries(values)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
}

/** Whether a pod runs exactly the written values and holds no old pool any more. */
function podConfirms(report: PodReport, written: Readonly<Record<string, number>>): boolean {
  const runsWritten = Object.entries(written).every(([key, value]) => {
    const reported = report.settings.get(key);
    return reported !== undefined && reported.min === value && reported.max === value;
  });
  return runsWritten && (report.draining === undefined || report.draining === 0);
}

/** The delivery's state after this pass's reports; see the file comment. */
export function checkDelivery(check: DeliveryCheck): DeliveryView {
  const { record, reports, now, timeoutMs } = check;
  const where = `${record.configMap}/${record.key}`;
  const what = `${describeSettings(record.written)} written to ${where} at ${formatStatusTime(record.writtenAt)}`;
  if (record.confirmedAt !== undefined)
    return {
      state: 'Applied',
      message: `${what}; every pod reported it by ${formatStatusTime(record.confirmedAt)}`,
      record,
    };

  const pods = reports.valid ? reports.pods : new Map<string, PodReport>();
  const earlier = new Map((record.pods ?? []).map((p) => [p.name, p.reportedAt]));
  const confirmed: Array<{ name: string; reportedAt: Date }> = [];
  const waiting: string[] = [];
  for (const [name, report] of [...pods].sort(([a], [b]) => a.localeCompare(b))) {
    if (podConfirms(report, record.written)) confirmed.push({ name, reportedAt: earlier.get(name) ?? now });
    else waiting.push(name);
  }
  const updated: DeliveryRecord<Date> = { ...record, pods: confirmed };
  const missing = Math.max(0, check.readyPods - pods.size);
  if (reports.valid && pods.size > 0 && waiting.length === 0 && missing === 0)
    return {
      state: 'Applied',
      message: `${what}; every pod (${pods.size}) reported it by ${formatStatusTime(now)}`,
      record: { ...updated, confirmedAt: now },
    };

  const age = now.getTime() - record.writtenAt.getTime();
  const progress = reports.valid
    ? pods.size === 0
      ? `no pod reports ${check.gauges.join(', ')}`
      : `${confirmed.length} of ${pods.size + missing} pods run it (waiting for ${[
          ...waiting.slice(0, 5),
          ...(waiting.length > 5 ? ['…'] : []),
          ...(missing > 0 ? [`${missing} of the ${check.readyPods} ready pods, which report nothing`] : []),
        ].join(', ')})`
    : `the pods' reports could not be read: ${reports.message}`;
  if (age > timeoutMs)
    return {
      state: 'NotConfirmed',
      message:
        `${what}; not confirmed within ${formatDuration(timeoutMs)}: ${progress}. Check that the app re-reads ${where} ` +
        `(mounted without subPath), reports ${check.gauges.join(', ')}, and that Prometheus scrapes every ready pod; poolpilot changes these settings no more until the pods run them`,
      record: updated,
    };
  return {
    state: 'Pending',
    message: `${what}, ${formatDuration(age)} ago; ${progress}`,
    record: updated,
  };
}

/**
 * The values whose pools may still be open beside the written ones: a delivery's replaced values
 * until it is Applied, else none.
 */
export function drainingValues(record: DeliveryRecord<Date> | undefined): Readonly<Record<string, number>> {
  return record === undefined || record.confirmedAt !== undefined ? {} : record.replaced;
}

/**
 * What each setting's old value holds above its current one, where it is larger: the connections a
 * process may hold beyond the current values while it still runs the old ones, for an app whose
 * process runs either the old or the new pools, never both (an env rollout's old pods; an app that
 * resizes in place, spec.delivery.reload Resize).
 */
export function excessOver(
  old: Readonly<Record<string, number>>,
  current: Readonly<Record<string, number>>,
): Readonly<Record<string, number>> {
  return Object.fromEntries(
    Object.entries(old).flatMap(([setting, value]) => {
      const excess = value - (current[setting] ?? value);
      return excess > 0 ? [[setting, excess]] : [];
    }),
  );
}

/**
 * spec.delivery.mode Env: while old pods of the target remain, what the env values the last change
 * replaced hold above the current ones ({@link excessOver}): the old pods keep their pools until
 * they are replaced. The budget counts that beside the current values, as it counts a ConfigMap
 * delivery's replaced values until it is Applied. `current` holds the env sections' values now.
 * None when no old pod remains. A rollout poolpilot did not start (a new image) counts the last
 * change's excess too while it runs: an over-count, never an under-count.
 */
export function rolloutDrainingValues(
  lastChange: { readonly changes: readonly SettingChange[] } | undefined,
  current: Readonly<Record<string, number>>,
  oldPodsRemain: boolean,
): Readonly<Record<string, number>> {
  if (!oldPodsRemain || lastChange === undefined) return {};
  const replaced = Object.fromEntries(
    lastChange.changes.filter((change) => change.setting in current).map((change) => [change.setting, change.from]),
  );
  return excessOver(replaced, current);
}

interface ConfigMapSource {
  readonly name?: string;
  readonly items?: ReadonlyArray<{ readonly key: string; readonly path: string }>;
}

/** The parts of a pod template a delivery's mount is checked on (structural: no client-node here). */
export interface PodTemplateFacts {
  readonly volumes?: ReadonlyArray<{
    readonly name: string;
    readonly configMap?: ConfigMapSource;
    readonly projected?: { readonly sources?: ReadonlyArray<{ readonly configMap?: ConfigMapSource }> };
  }>;
  readonly containers: ReadonlyArray<{
    readonly name: string;
    readonly volumeMounts?: ReadonlyArray<{
      readonly name: string;
      readonly mountPath: string;
      readonly subPath?: string;
    }>;
  }>;
}

/** The file name `key` gets in a volume built from `source`, if the volume holds it. */
function fileOf(source: ConfigMapSource | undefined, configMap: string, key: string): string | undefined {
  if (source?.name !== configMap) return undefined;
  if (source.items === undefined) return key;
  return source.items.find((item) => item.key === key)?.path;
}

/**
 * Where a container of the pod template sees ConfigMap `configMap`'s key `key` so that the kubelet
 * updates it (a volume mounted without subPath), or what to fix.
 */
export function deliveryMount(
  deployment: string,
  pod: PodTemplateFacts,
  configMap: string,
  key: string,
):
  | { readonly ok: true; readonly container: string; readonly path: string }
  | { readonly ok: false; readonly message: string } {
  const files = new Map<string, string>();
  for (const volume of pod.volumes ?? []) {
    const file = [volume.configMap, ...(volume.projected?.sources ?? []).map((s) => s.configMap)]
      .map((source) => fileOf(source, configMap, key))
      .find((f) => f !== undefined);
    if (file !== undefined) files.set(volume.name, file);
  }
  let subPathOnly: string | undefined;
  for (const container of pod.containers)
    for (const mount of container.volumeMounts ?? []) {
      const file = files.get(mount.name);
      if (file === undefined) continue;
      if (mount.subPath !== undefined && mount.subPath !== '') {
        subPathOnly ??= container.name;
        continue;
      }
      return { ok: true, container: container.name, path: `${mount.mountPath.replace(/\/$/, '')}/${file}` };
    }
  if (subPathOnly !== undefined)
    return {
      ok: false,
      message: `container ${subPathOnly} of deployment ${deployment} mounts configmap ${configMap} with subPath, which the kubelet never updates; mount the volume as a directory and point the app at the file ${key} in it`,
    };
  return {
    ok: false,
    message:
      files.size === 0
        ? `no volume of deployment ${deployment} holds key ${key} of configmap ${configMap}; add a configMap volume for it (with ${key} among its items, if it lists items), mount it in the app's container and point the app at the file`
        : `no container of deployment ${deployment} mounts the volume ${[...files.keys()].join(', ')} holding configmap ${configMap}; add a volumeMount to the app's container`,
  };
}
