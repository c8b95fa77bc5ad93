import type { KubernetesObject } from '@kubernetes/client-node';
import { z } from 'zod';
import { compareResourceVersions } from './resource-version.js';

/**
 * The resourceVersions this process's own writes returned, until the informer caches show them.
 *
 * A pass woken by the watch event of its own ConfigMap write can run before the event of the
 * status write that recorded the change: it would plan from a status without that change (its
 * history, lastChange and the rate limits that count them) and its status write would drop it.
 * A pass that finds a cached object older than what this process wrote waits for the cache.
 *
 * A record is forgotten once the cache shows that version or a newer one, when the object is
 * gone from the cache, when the versions are not comparable (then the cache is trusted as
 * before), and after `maxAgeMs`: a cache that far behind has a problem that waiting does not fix, and
 * an object no pass reads again (its policy deleted or pointed elsewhere) leaves no record behind.
 */
export class OwnWrites {
  private readonly written = new Map<string, { readonly version: string; readonly at: number }>();
  private sweptAt: number;

  /** `now`: the time in milliseconds (the reconciler passes its clock). */
  constructor(
    private readonly now: () => number,
    private readonly maxAgeMs = 5 * 60_000,
  ) {
    this.sweptAt = now();
  }

  /** Notes the resourceVersion in what a write returned, if it has one. */
  record(kind: string, written: unknown): void {
    const parsed = writtenObject.safeParse(written);
    if (!parsed.success) return;
    const { metadata } = parsed.data;
    const key = objectKey(kind, metadata.namespace, metadata.name);
    const known = this.written.get(key);
    const now = this.now();
    if (known === undefined || compareResourceVersions(known.version, metadata.resourceVersion) !== 1)
      this.written.set(key, { version: metadata.resourceVersion, at: now });
    if (now - this.sweptAt >= this.maxAgeMs) {
      for (const [k, record] of this.written) if (now - record.at >= this.maxAgeMs) this.written.delete(k);
      this.sweptAt = now;
    }
  }

  /** True while `cached` (the cache's copy of a `kind` object) is older than this process's last write of it. */
  lagging(kind: string, namespace: string, name: string, cached: KubernetesObject | undefined): boolean {
    const key = objectKey(kind, namespace, name);
    const written = this.written.get(key);
    if (written === undefined) return false;
    const seen = cached?.metadata?.resourceVersion;
    const fresh = this.now() - written.at < this.maxAgeMs;
    if (fresh && seen !== undefined && compareResourceVersions(seen, written.version) === -1) return true;
    this.written.delete(key);
    return false;
  }

  /** Objects with a write the caches have not shown yet (for leak checks). */
  size(): number {
    return this.written.size;
  }
}

function objectKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}

/** The identity and version in a write's response; undefined when it has none (e.g. a test's writer). */
const writtenObject = z.object({
  metadata: z.object({ name: z.string().min(1), namespace: z.string().optional(), resourceVersion: z.string().min(1) }),
});
