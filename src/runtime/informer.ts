/**
 * An informer that keeps itself running and never claims a cache it does not have.
 *
 * client-node's informer (ListWatch) relists on 410 Gone by itself, but on any other error it
 * emits `error` and stops for good. This wrapper restarts it after an exponential backoff.
 * Handlers see every add, update and delete as "this object changed" (the reconciler is
 * level-triggered: it never learns why).
 *
 * How client-node reports the outcome of `start()` (dist/cache.js, 2.x), which this relies on:
 * - `start()` resolves in all of these cases: the list succeeded and the watch request was
 *   answered 200; the list failed; the watch request failed. In the two failures it emits
 *   `error` before resolving. It rejects only if the watch request could not be built (e.g. the
 *   credentials plugin failed).
 * - `connect` is emitted before the list is even sent: it says nothing about success.
 * - Once connected, a failing watch or relist emits `error` (and the informer stops); a watch
 *   that ends cleanly or with 410 Gone is resumed or relisted by the informer itself.
 * - Aborting a live request emits `error` with an AbortError: `stop()` does, and so would a
 *   `start()` over a live watch. Errors are ignored once `stop()` was called, and `start()` is
 *   called again only after a failure, when the informer has no live request left.
 *
 * So one attempt succeeded exactly when `start()` resolved with no `error` emitted since
 * it was called: the list (when one was needed) is in the cache and the watch is open.
 *
 * Contract:
 * - `synced` turns true after the first successful attempt and stays true (the cache then holds
 *   a complete list, kept current while the watch runs); /readyz reports it.
 * - Every failed attempt, and every failure of an established watch, is retried after
 *   `backoff.when(path)`: the delay grows with consecutive failures and is forgotten only after
 *   a successful attempt.
 * - After `stop()` nothing is restarted, and a watch opened by a list still in flight at that
 *   moment is closed as soon as it opens.
 */
import type { Informer, KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from './clock.js';
import type { RateLimiter } from './rate-limiter.js';

/** What this wrapper drives: client-node's `makeInformer(...)` (a ListWatch), or a test's. */
export type ListWatchInformer<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

/**
 * Index functions by index name (client-go's cache.Indexers): the values under which an object
 * is found by {@link ObjectStore.byIndex}, e.g. `namespace/name` of the Deployment a policy targets.
 */
export type Indexers<T> = Readonly<Record<string, (object: T) => readonly string[]>>;

export interface InformerOptions<T extends KubernetesObject> {
  /** The informer to keep running; it must not have been started. */
  readonly informer: ListWatchInformer<T>;
  /** Watch path, e.g. /apis/apps/v1/deployments: the backoff key. */
  readonly path: string;
  readonly clock: Clock;
  /** Delay before each restart after a failure; forgotten after each successful attempt. */
  readonly backoff: RateLimiter;
  /** Called on every failure, with the delay before the next attempt. */
  readonly onError?: (err: unknown, restartInMs: number) => void;
  /** Called once, when `synced` turns true. */
  readonly onSynced?: () => void;
  /** Indexes kept current with the cache (updated before any change handler runs). */
  readonly indexers?: Indexers<T>;
}

export interface ObjectStore<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  /**
   * The cached objects whose index `index` holds `value`, in the time of the index's size for
   * that value, not of the cache's (client-go's Indexer.ByIndex).
   * @throws Error for an index the store does not keep
   */
  byIndex(index: string, value: string): readonly T[];
}

/** Keys (`namespace/name`) of the objects under each value of each index. */
export class StoreIndex<T extends KubernetesObject> {
  private readonly values = new Map<string, Map<string, Set<string>>>();
  /** The values each object was last indexed under, to take it out again. */
  private readonly indexed = new Map<string, ReadonlyArray<readonly [string, string]>>();

  constructor(private readonly indexers: Indexers<T>) {
    for (const index of Object.keys(indexers)) this.values.set(index, new Map());
  }

  /** Indexes `object` afresh (an add or an update). */
  set(object: T): void {
    const key = objectKey(object);
    this.remove(object);
    const entries = Object.entries(this.indexers).flatMap(([index, valuesOf]) =>
      valuesOf(object).map((value) => [index, value] as const),
    );
    for (const [index, value] of entries) {
      const byValue = this.values.get(index);
      let keys = byValue?.get(value);
      if (!keys) {
        keys = new Set();
        byValue?.set(value, keys);
      }
      keys.add(key);
    }
    if (entries.length > 0) this.indexed.set(key, entries);
  }

  /** Takes `object` out of every index (a delete). */
  remove(object: T): void {
    const key = objectKey(object);
    for (const [index, value] of this.indexed.get(key) ?? []) {
      const byValue = this.values.get(index);
      const keys = byValue?.get(value);
      keys?.delete(key);
      if (keys?.size === 0) byValue?.delete(value);
    }
    this.indexed.delete(key);
  }

  /** Keys of the objects under `value` of `index`. */
  keys(index: string, value: string): readonly string[] {
    const byValue = this.values.get(index);
    if (!byValue) throw new Error(`no index ${index} is kept for this store`);
    return [...(byValue.get(value) ?? [])];
  }
}

/** `namespace/name` (`/name` for a cluster-scoped object). */
export function objectKey(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export class ResilientInformer<T extends KubernetesObject> implements ObjectStore<T> {
  private readonly informer: ListWatchInformer<T>;
  private readonly handlers: Array<(obj: T) => void> = [];
  private syncedOnce = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** The first failure reported since the current attempt began (cleared when one begins). */
  private failure: { readonly err: unknown } | undefined;
  /** Wakes the run loop: a failure was reported, a restart is due, or stop() was called. */
  private wake: (() => void) | undefined;
  private restartTimer: TimerHandle | undefined;
  private resolveSynced: () => void = () => undefined;
  private readonly syncedOrStopped = new Promise<void>((resolve) => {
    this.resolveSynced = resolve;
  });

  private readonly index: StoreIndex<T>;
  private cached = 0;

  constructor(private readonly options: InformerOptions<T>) {
    this.informer = options.informer;
    // Registered first: change handlers (which may call byIndex) see the index updated.
    this.index = new StoreIndex(options.indexers ?? {});
    this.informer.on('add', (obj) => {
      this.cached++;
      this.index.set(obj);
    });
    this.informer.on('update', (obj) => {
      this.index.set(obj);
    });
    this.informer.on('delete', (obj) => {
      this.cached--;
      this.index.remove(obj);
    });
    const notify = (obj: T): void => {
      for (const handler of this.handlers) handler(obj);
    };
    this.informer.on('add', notify);
    this.informer.on('update', notify);
    this.informer.on('delete', notify);
    this.informer.on('error', (err: unknown) => {
      this.report(err);
    });
  }

  /** True once a complete list is in the cache (and stays true; see the module comment). */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** Objects in the cache (for the poolpilot_cached_objects metric). */
  get size(): number {
    return this.cached;
  }

  /** Registers a handler for every change (add, update, delete) of a watched object. */
  onChange(handler: (obj: T) => void): void {
    this.handlers.push(handler);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  byIndex(index: string, value: string): readonly T[] {
    return this.index.keys(index, value).flatMap((key) => {
      const slash = key.indexOf('/');
      const object = this.informer.get(key.slice(slash + 1), key.slice(0, slash) || undefined);
      return object ? [object] : [];
    });
  }

  /**
   * Starts listing and watching, retrying with backoff for as long as it takes. Resolves once the
   * first attempt has succeeded (the cache is synced), or once `stop()` was called.
   */
  start(): Promise<void> {
    this.running ??= this.run();
    return this.syncedOrStopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) this.options.clock.clearTimeout(this.restartTimer);
    this.wakeUp();
    this.resolveSynced();
    await this.informer.stop();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const attemptFailure = await this.attempt();
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may run during the attempt
      if (this.stopped) {
        // stop() came while the attempt ran: a list in flight then may have opened a watch.
        await this.informer.stop();
        return;
      }
      const failure = attemptFailure ?? (await this.watchUntilFailure());
      if (failure === undefined) return;
      const delay = this.options.backoff.when(this.options.path);
      this.options.onError?.(failure.err, delay);
      let due = false;
      this.restartTimer = this.options.clock.setTimeout(() => {
        due = true;
        this.wakeUp();
      }, delay);
      await this.until(() => due);
      this.restartTimer = undefined;
    }
  }

  /** After a successful attempt: marks the cache synced, then waits for the watch to fail (or stop()). */
  private async watchUntilFailure(): Promise<{ readonly err: unknown } | undefined> {
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.options.onSynced?.();
    }
    this.options.backoff.forget(this.options.path);
    this.resolveSynced();
    await this.until(() => this.failure !== undefined);
    return this.stopped ? undefined : this.failure;
  }

  /** One start of the informer; the failure that ended it, or undefined if it is now watching. */
  private async attempt(): Promise<{ readonly err: unknown } | undefined> {
    this.failure = undefined;
    try {
      await this.informer.start();
    } catch (err) {
      this.report(err);
    }
    return this.failure;
  }

  private report(err: unknown): void {
    if (this.stopped) return;
    this.failure ??= { err };
    this.wakeUp();
  }

  /** Waits until `condition()` holds or stop() was called. */
  private async until(condition: () => boolean): Promise<void> {
    while (!this.stopped && !condition()) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
