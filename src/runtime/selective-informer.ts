/**
 * An informer whose cache holds only the objects the controller reads, and of each only the
 * fields it reads (controller-runtime's cache `ByObject` selection and `TransformFunc`).
 *
 * It drives client-node's own ListWatch (relist on 410, reconnects), feeding it through two ends:
 * - the list: paged (`limit` 500, as client-go's pager), each page filtered by `wanted` and
 *   transformed at once, so neither the unwanted objects nor the fields dropped ever stay in
 *   memory, even during a (re)list;
 * - the watch: every event passes through {@link SelectiveInformer.route}. A wanted object's event
 *   goes on (transformed); the event of an object the cache holds but no longer wants becomes its
 *   deletion; any other event becomes a BOOKMARK carrying its resourceVersion, so the watch
 *   resumes after it on a reconnect without caching anything. Bookmarks are also asked of the
 *   API server (allowWatchBookmarks).
 *
 * The set of wanted objects changes as policies change: {@link SelectiveInformer.hold} brings an
 * object that became wanted into the cache with one GET (the watch does not resend objects), and
 * {@link SelectiveInformer.release} drops one no longer wanted. Both hand ListWatch a synthetic
 * event and then a BOOKMARK restoring the resourceVersion the watch was at, so the resume point
 * never moves. A watch event for the object during the GET wins over the GET's reply (it is as
 * new or newer, and any later change follows on the watch).
 *
 * Memory is then O(wanted objects), whatever the number of objects in the watched namespaces;
 * the API server still sends every event of the resource (a label or field selector cannot name
 * an arbitrary set of objects), which costs CPU per event, not memory.
 */
import { ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Clock } from './clock.js';

/** Objects asked for per list request (client-go's pager default). */
export const LIST_PAGE_SIZE = 500;

export interface SelectiveInformerOptions<T extends KubernetesObject> {
  /** The transport of the watch (client-node's Watch, or a test's). */
  readonly watch: Watch;
  /** Watch path, e.g. /apis/apps/v1/namespaces/prod/deployments. */
  readonly path: string;
  /** One page of the list, `limit` objects after `continueToken` (undefined: the first page). */
  readonly listPage: (limit: number, continueToken: string | undefined) => Promise<KubernetesListObject<T>>;
  /** What the cache keeps of an object; applied to every object before it is stored. */
  readonly transform: (object: T) => T;
  /** Whether the cache should hold the object; every object when absent (then hold/release are no-ops). */
  readonly wanted?: (namespace: string, name: string) => boolean;
  /** Reads one object (for {@link SelectiveInformer.hold}); undefined when it does not exist. */
  readonly read?: (namespace: string, name: string) => Promise<T | undefined>;
  /** For the delay between failed reads of a hold. */
  readonly clock: Clock;
  /** Told of every failed read of a hold, with the delay before the next attempt. */
  readonly onReadError?: (err: unknown, namespace: string, name: string, retryInMs: number) => void;
  /**
   * Waited for before each list, e.g. the list of the policies that decide what is wanted (so a
   * start-up lists the objects policies name instead of reading each one). Must not reject.
   */
  readonly before?: () => Promise<void>;
}

type WatchCallback = (phase: string, object: unknown, watchObject?: unknown) => void;

/** client-node's Watch, with every event routed and bookmarks asked for. */
class RoutingWatch extends Watch {
  constructor(
    private readonly inner: Watch,
    private readonly route: (phase: string, object: unknown) => readonly [string, unknown],
    private readonly onCallback: (callback: WatchCallback) => void,
  ) {
    super(inner.config);
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    this.onCallback(callback);
    return this.inner.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true },
      (phase: string, object: unknown, watchObject?: unknown) => {
        const [routedPhase, routed] = this.route(phase, object);
        callback(routedPhase, routed, watchObject);
      },
      done,
    );
  }
}

const RETRY_BASE_MS = 1000;
const RETRY_MAX_MS = 30_000;

export class SelectiveInformer<T extends KubernetesObject> {
  /** The ListWatch to hand to ResilientInformer. */
  readonly informer: ListWatch<T>;
  private readonly listWatch: ListWatch<T>;
  /** ListWatch's event handler, known once it opened its first watch. */
  private callback: WatchCallback | undefined;
  private resolveConnected: () => void = () => undefined;
  private readonly connected = new Promise<void>((resolve) => {
    this.resolveConnected = resolve;
  });
  private resolveFirstList: () => void = () => undefined;
  /** The (re)list last started, settled or not; a hold waits for it. */
  private listing = new Promise<void>((resolve) => {
    this.resolveFirstList = resolve;
  });
  /** Keys being read by a hold, and whether a watch event for them arrived meanwhile. */
  private readonly reading = new Map<string, { changed: boolean }>();

  constructor(private readonly options: SelectiveInformerOptions<T>) {
    const watch = new RoutingWatch(
      options.watch,
      (phase, object) => this.route(phase, object),
      (callback) => {
        this.callback = callback;
        this.resolveConnected();
      },
    );
    this.listWatch = new ListWatch<T>(options.path, watch, () => this.list(), false);
    this.informer = this.listWatch;
  }

  /**
   * Makes sure the cache holds the object if it is wanted and exists: waits for the list in
   * progress, then reads it if the cache does not have it. Never rejects: a failed read is
   * retried (1 s doubling to 30 s) until it succeeds or the object is no longer wanted.
   */
  async hold(namespace: string, name: string): Promise<void> {
    if (this.options.wanted === undefined || this.options.read === undefined) return;
    await this.listing;
    await this.connected;
    const key = `${namespace}/${name}`;
    for (let delay = RETRY_BASE_MS; ; delay = Math.min(2 * delay, RETRY_MAX_MS)) {
      if (!this.options.wanted(namespace, name) || this.listWatch.get(name, namespace) !== undefined) return;
      const race = { changed: false };
      this.reading.set(key, race);
      try {
        const object = await this.options.read(namespace, name);
        const stillMissing = this.listWatch.get(name, namespace) === undefined;
        if (object !== undefined && !race.changed && stillMissing && this.options.wanted(namespace, name))
          this.inject('ADDED', this.options.transform(object));
        return;
      } catch (err) {
        this.options.onReadError?.(err, namespace, name, delay);
        await new Promise<void>((resolve) => {
          this.options.clock.setTimeout(resolve, delay);
        });
      } finally {
        if (this.reading.get(key) === race) this.reading.delete(key);
      }
    }
  }

  /** Drops the object from the cache when it is held and no longer wanted. */
  release(namespace: string, name: string): void {
    const held = this.listWatch.get(name, namespace);
    if (held === undefined || this.options.wanted?.(namespace, name) !== false) return;
    this.inject('DELETED', held);
  }

  /** Resolves once the list last started has succeeded or failed (before the first: once the first has). */
  listSettled(): Promise<void> {
    return this.listing;
  }

  /** Hands ListWatch an event of its own, then restores the resourceVersion its watch resumes from. */
  private inject(phase: 'ADDED' | 'DELETED', object: T): void {
    const callback = this.callback;
    if (callback === undefined) return;
    const resumeFrom = this.listWatch.latestResourceVersion();
    callback(phase, object);
    callback('BOOKMARK', { metadata: { resourceVersion: resumeFrom } });
  }

  /** What ListWatch sees of one watch event (see the module comment). */
  private route(phase: string, object: unknown): readonly [string, unknown] {
    if (phase !== 'ADDED' && phase !== 'MODIFIED' && phase !== 'DELETED') return [phase, object];
    const typed = object as T;
    const namespace = typed.metadata?.namespace ?? '';
    const name = typed.metadata?.name ?? '';
    const race = this.reading.get(`${namespace}/${name}`);
    if (race) race.changed = true;
    const wanted = this.options.wanted?.(namespace, name) ?? true;
    if (wanted) return [phase, this.options.transform(typed)];
    if (this.listWatch.get(name, namespace) !== undefined) return ['DELETED', this.options.transform(typed)];
    return ['BOOKMARK', { metadata: { resourceVersion: typed.metadata?.resourceVersion } }];
  }

  private list(): Promise<KubernetesListObject<T>> {
    const run = this.listAll();
    // Settled one macrotask later: ListWatch stores the listed items in a continuation of `run`,
    // so whoever waits for this sees them in the cache (and its indexes).
    const settled = run
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    this.listing = settled;
    void settled.then(() => {
      this.resolveFirstList();
    });
    return run;
  }

  /** Every page, filtered and transformed as it arrives; the resourceVersion of the snapshot. */
  private async listAll(): Promise<KubernetesListObject<T>> {
    await this.options.before?.();
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const page = await this.options.listPage(LIST_PAGE_SIZE, continueToken);
      resourceVersion = page.metadata?.resourceVersion;
      for (const item of page.items) {
        const wanted = this.options.wanted?.(item.metadata?.namespace ?? '', item.metadata?.name ?? '') ?? true;
        if (wanted) items.push(this.options.transform(item));
      }
      continueToken = page.metadata?._continue || undefined;
    } while (continueToken !== undefined);
    return { metadata: { resourceVersion }, items };
  }
}
