import { describe, expect, it } from '@jest/globals';
import {
  ApiException,
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { ResilientInformer, type Indexers } from '../../../src/runtime/informer.js';
import { ExponentialBackoffRateLimiter } from '../../../src/runtime/rate-limiter.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

// ResilientInformer drives client-node's real ListWatch here; only its two I/O ends are fakes: the
// list function and the Watch transport (FakeWatch answers each watch request as the real one
// does: a refused request calls `done(err)` before `watch()` resolves; an aborted live one ends
// with an AbortError). So these tests hold the wrapper to client-node's actual error reporting.

const PATH = '/api/v1/namespaces/ns/configmaps';

function configMap(name: string, resourceVersion: string): V1ConfigMap {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'ns', resourceVersion } };
}

function listOf(resourceVersion: string, ...items: V1ConfigMap[]): KubernetesListObject<V1ConfigMap> {
  return { apiVersion: 'v1', kind: 'ConfigMapList', metadata: { resourceVersion }, items };
}

function apiError(code: number, message: string): ApiException<string> {
  return new ApiException(code, message, message, {});
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** One watch request FakeWatch received. */
interface WatchRequest {
  readonly resourceVersion: unknown;
  /** Delivers a watch event, as the API server's stream would. */
  send(phase: 'ADDED' | 'MODIFIED' | 'DELETED', obj: V1ConfigMap): void;
  /** Ends the stream: `null` cleanly, else with that error. */
  end(err: Error | null): void;
  readonly aborted: boolean;
}

/** How FakeWatch answers the next request: open a stream, refuse it (done(err)), or throw. */
type WatchOutcome = 'open' | { readonly refuse: Error } | { readonly throws: Error };

class FakeWatch extends Watch {
  readonly requests: WatchRequest[] = [];
  readonly outcomes: WatchOutcome[] = [];

  constructor() {
    super(new KubeConfig());
  }

  override watch(
    _path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, obj: V1ConfigMap) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const outcome = this.outcomes.shift() ?? 'open';
    if (typeof outcome === 'object' && 'throws' in outcome) return Promise.reject(outcome.throws);
    const controller = new AbortController();
    let ended = false;
    const end = (err: unknown): void => {
      if (ended) return;
      ended = true;
      done(err);
    };
    controller.signal.addEventListener('abort', () => {
      queueMicrotask(() => {
        end(new DOMException('This operation was aborted', 'AbortError'));
      });
    });
    this.requests.push({
      resourceVersion: queryParams.resourceVersion,
      send: (phase, obj) => {
        callback(phase, obj);
      },
      end,
      get aborted() {
        return controller.signal.aborted;
      },
    });
    if (outcome !== 'open') end(outcome.refuse);
    return Promise.resolve(controller);
  }
}

function setup(indexers?: Indexers<V1ConfigMap>) {
  const clock = new FakeClock(new Date(0));
  const backoff = new ExponentialBackoffRateLimiter({ baseDelayMs: 1000, maxDelayMs: 60_000 });
  const watch = new FakeWatch();
  /** Answers of the next list calls, in order. */
  const lists: Array<() => Promise<KubernetesListObject<V1ConfigMap>>> = [];
  let listCalls = 0;
  const list = (): Promise<KubernetesListObject<V1ConfigMap>> => {
    listCalls++;
    const next = lists.shift();
    return next ? next() : Promise.reject(new Error('the test queued no answer for this list'));
  };
  /** The delay announced with each failure. */
  const restartDelays: number[] = [];
  const errors: unknown[] = [];
  let syncedCallbacks = 0;
  const informer = new ResilientInformer<V1ConfigMap>({
    informer: new ListWatch<V1ConfigMap>(PATH, watch, list, false, undefined, undefined, {
      delayFn: () => Promise.resolve(),
    }),
    path: PATH,
    clock,
    backoff,
    onError: (err, restartInMs) => {
      errors.push(err);
      restartDelays.push(restartInMs);
    },
    onSynced: () => {
      syncedCallbacks++;
    },
    ...(indexers ? { indexers } : {}),
  });
  const changed: string[] = [];
  informer.onChange((obj) => {
    changed.push(`${obj.metadata?.name ?? ''}@${obj.metadata?.resourceVersion ?? ''}`);
  });
  let startResolved = false;
  const start = (): void => {
    void informer.start().then(() => {
      startResolved = true;
    });
  };
  return {
    clock,
    backoff,
    watch,
    lists,
    informer,
    restartDelays,
    errors,
    changed,
    start,
    listCalls: () => listCalls,
    startResolved: () => startResolved,
    syncedCallbacks: () => syncedCallbacks,
    /** Advances the fake clock, then lets the promise continuations it triggered run. */
    advance: async (ms: number) => {
      clock.advance(ms);
      await flushMicrotasks();
    },
  };
}

const forbidden = (): Promise<never> =>
  Promise.reject(apiError(403, 'configmaps is forbidden: cannot list resource "configmaps"'));

describe('ResilientInformer', () => {
  it('a failed initial list is no sync: not synced, start() pending, retried with a growing backoff until a list and its watch succeed', async () => {
    const t = setup();
    t.lists.push(forbidden, forbidden, forbidden, () => Promise.resolve(listOf('7', configMap('a', '5'))));
    t.start();
    await flushMicrotasks();

    expect(t.informer.synced).toBe(false);
    expect(t.startResolved()).toBe(false);
    expect(t.restartDelays).toEqual([1000]);
    expect(t.errors[0]).toBeInstanceOf(ApiException);
    expect(t.watch.requests).toHaveLength(0);

    await t.advance(999);
    expect(t.listCalls()).toBe(1);
    await t.advance(1);
    expect(t.listCalls()).toBe(2);
    expect(t.restartDelays).toEqual([1000, 2000]);
    await t.advance(2000);
    expect(t.restartDelays).toEqual([1000, 2000, 4000]);
    expect(t.informer.synced).toBe(false);

    await t.advance(4000);
    expect(t.listCalls()).toBe(4);
    expect(t.informer.synced).toBe(true);
    expect(t.startResolved()).toBe(true);
    expect(t.syncedCallbacks()).toBe(1);
    expect(t.informer.get('a', 'ns')?.metadata?.resourceVersion).toBe('5');
    expect(t.changed).toEqual(['a@5']);
    expect(t.watch.requests.map((r) => r.resourceVersion)).toEqual(['7']);
    expect(t.backoff.failures(PATH)).toBe(0);
    expect(t.clock.pendingTimers()).toBe(0);
  });

  it('a list that succeeds but whose watch is refused is no sync either; the next attempt watches from the listed version', async () => {
    const t = setup();
    t.lists.push(() => Promise.resolve(listOf('7', configMap('a', '5'))));
    t.watch.outcomes.push({ refuse: apiError(403, 'configmaps is forbidden: cannot watch resource "configmaps"') });
    t.start();
    await flushMicrotasks();
    expect(t.informer.synced).toBe(false);
    expect(t.startResolved()).toBe(false);
    expect(t.restartDelays).toEqual([1000]);

    await t.advance(1000);
    expect(t.informer.synced).toBe(true);
    expect(t.startResolved()).toBe(true);
    expect(t.listCalls()).toBe(1);
    expect(t.watch.requests.map((r) => r.resourceVersion)).toEqual(['7', '7']);
  });

  it('a start() that rejects (the watch request could not be built) is a failure like the others', async () => {
    const t = setup();
    t.lists.push(() => Promise.resolve(listOf('7')));
    t.watch.outcomes.push({ throws: new Error('exec credential plugin failed') });
    t.start();
    await flushMicrotasks();
    expect(t.informer.synced).toBe(false);
    expect(t.errors).toEqual([new Error('exec credential plugin failed')]);

    await t.advance(1000);
    expect(t.informer.synced).toBe(true);
  });

  it('after a sync, a failing watch is restarted from the base delay, the delay grows while it keeps failing and resets after a successful restart', async () => {
    const t = setup();
    t.lists.push(() => Promise.resolve(listOf('7')));
    t.start();
    await flushMicrotasks();
    expect(t.informer.synced).toBe(true);

    t.watch.requests[0]?.send('ADDED', configMap('b', '8'));
    expect(t.changed).toEqual(['b@8']);
    t.watch.requests[0]?.end(apiError(500, 'etcdserver: request timed out'));
    await flushMicrotasks();
    expect(t.restartDelays).toEqual([1000]);
    expect(t.informer.synced).toBe(true);
    expect(t.informer.get('b', 'ns')).toBeDefined();

    t.watch.outcomes.push({ refuse: new Error('connect ECONNREFUSED 127.0.0.1:6443') });
    await t.advance(1000);
    expect(t.restartDelays).toEqual([1000, 2000]);
    await t.advance(2000);
    expect(t.watch.requests.map((r) => r.resourceVersion)).toEqual(['7', '8', '8']);

    t.watch.requests[2]?.end(apiError(500, 'etcdserver: leader changed'));
    await flushMicrotasks();
    expect(t.restartDelays).toEqual([1000, 2000, 1000]);
    expect(t.listCalls()).toBe(1);
  });

  it('a watch that ends cleanly, or with 410 Gone, is resumed by client-node itself: no failure, no restart', async () => {
    const t = setup();
    t.lists.push(
      () => Promise.resolve(listOf('7', configMap('a', '5'), configMap('b', '6'))),
      () => Promise.resolve(listOf('9', configMap('a', '5'))),
    );
    t.start();
    await flushMicrotasks();

    t.watch.requests[0]?.end(null);
    await flushMicrotasks();
    expect(t.watch.requests.map((r) => r.resourceVersion)).toEqual(['7', '7']);

    t.watch.requests[1]?.end(Object.assign(new Error('Gone'), { statusCode: 410 }));
    await flushMicrotasks();
    expect(t.listCalls()).toBe(2);
    expect(t.informer.list().map((o) => o.metadata?.name)).toEqual(['a']);
    expect(t.changed).toEqual(['a@5', 'b@6', 'b@6']);
    expect(t.restartDelays).toEqual([]);
    expect(t.clock.pendingTimers()).toBe(0);
  });

  it('stop() aborts the watch, and the AbortError that raises restarts nothing', async () => {
    const t = setup();
    t.lists.push(() => Promise.resolve(listOf('7')));
    t.start();
    await flushMicrotasks();

    await t.informer.stop();
    await flushMicrotasks();
    expect(t.watch.requests[0]?.aborted).toBe(true);
    expect(t.errors).toEqual([]);
    expect(t.clock.pendingTimers()).toBe(0);
    await t.advance(3_600_000);
    expect(t.watch.requests).toHaveLength(1);
  });

  it('stop() during the backoff wait: no further attempt, and start() resolves without a sync', async () => {
    const t = setup();
    t.lists.push(forbidden);
    t.start();
    await flushMicrotasks();
    expect(t.restartDelays).toEqual([1000]);

    await t.informer.stop();
    await flushMicrotasks();
    expect(t.startResolved()).toBe(true);
    expect(t.informer.synced).toBe(false);
    await t.advance(3_600_000);
    expect(t.listCalls()).toBe(1);
  });

  it('stop() while the first list is in flight: the watch that list then opens is closed at once, and nothing is synced', async () => {
    const t = setup();
    const answer = deferred<KubernetesListObject<V1ConfigMap>>();
    t.lists.push(() => answer.promise);
    t.start();
    await flushMicrotasks();

    await t.informer.stop();
    answer.resolve(listOf('7', configMap('a', '5')));
    await flushMicrotasks();
    expect(t.watch.requests).toHaveLength(1);
    expect(t.watch.requests[0]?.aborted).toBe(true);
    expect(t.informer.synced).toBe(false);
    expect(t.errors).toEqual([]);
    expect(t.clock.pendingTimers()).toBe(0);
  });
});

describe('ResilientInformer indexes', () => {
  const byApp: Indexers<V1ConfigMap> = { app: (c) => (c.metadata?.labels?.app ? [`ns/${c.metadata.labels.app}`] : []) };
  const labelled = (name: string, resourceVersion: string, app: string): V1ConfigMap => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'ns', resourceVersion, labels: { app } },
  });
  const names = (objects: readonly V1ConfigMap[]): string[] => objects.map((o) => o.metadata?.name ?? '');

  it('finds objects by index through adds, updates and deletes, updated before change handlers run', async () => {
    const t = setup(byApp);
    t.lists.push(() => Promise.resolve(listOf('7', labelled('a', '5', 'api'), labelled('b', '6', 'web'))));
    const seenByHandler: string[][] = [];
    t.informer.onChange(() => {
      seenByHandler.push(names(t.informer.byIndex('app', 'ns/api')));
    });
    t.start();
    await flushMicrotasks();
    expect(names(t.informer.byIndex('app', 'ns/api'))).toEqual(['a']);

    const stream = t.watch.requests[0];
    stream?.send('MODIFIED', labelled('b', '8', 'api'));
    expect(names(t.informer.byIndex('app', 'ns/api'))).toEqual(['a', 'b']);
    expect(names(t.informer.byIndex('app', 'ns/web'))).toEqual([]);
    stream?.send('MODIFIED', labelled('a', '9', 'web'));
    stream?.send('DELETED', labelled('b', '10', 'api'));
    expect(names(t.informer.byIndex('app', 'ns/api'))).toEqual([]);
    expect(names(t.informer.byIndex('app', 'ns/web'))).toEqual(['a']);
    expect(seenByHandler.slice(-3)).toEqual([['a', 'b'], ['b'], []]);
    expect(t.informer.size).toBe(1);
  });

  it('refuses an index it does not keep', () => {
    expect(() => setup().informer.byIndex('app', 'ns/api')).toThrow(/no index app/);
  });
});
