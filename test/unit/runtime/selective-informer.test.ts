import { describe, expect, it } from '@jest/globals';
import { KubeConfig, Watch, type KubernetesListObject, type V1ConfigMap } from '@kubernetes/client-node';
import { SelectiveInformer } from '../../../src/runtime/selective-informer.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

// client-node's real ListWatch behind SelectiveInformer; only the list pages, the GET and the
// watch stream are fakes.

type Callback = (phase: string, object: unknown) => void;

class FakeWatch extends Watch {
  callback: Callback | undefined;
  readonly queries: Array<Record<string, unknown>> = [];
  constructor() {
    super(new KubeConfig());
  }
  override watch(
    _path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: Callback,
  ): Promise<AbortController> {
    this.queries.push(queryParams);
    this.callback = callback;
    return Promise.resolve(new AbortController());
  }
  send(phase: 'ADDED' | 'MODIFIED' | 'DELETED', object: V1ConfigMap): void {
    this.callback?.(phase, object);
  }
}

function configMap(name: string, resourceVersion: string, data: Record<string, string> = {}): V1ConfigMap {
  return {
    metadata: {
      name,
      namespace: 'ns',
      resourceVersion,
      managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
    },
    data,
  };
}

function setup(pages: V1ConfigMap[][], stored: Map<string, V1ConfigMap> = new Map(), before?: () => Promise<void>) {
  const wanted = new Set<string>(['a', 'c']);
  const watch = new FakeWatch();
  const reads: string[] = [];
  let pendingRead: ((object: V1ConfigMap | undefined) => void) | undefined;
  let failPendingRead: ((err: Error) => void) | undefined;
  const readErrors: Array<[string, number]> = [];
  const clock = new FakeClock();
  const limits: number[] = [];
  const selective = new SelectiveInformer<V1ConfigMap>({
    watch,
    path: '/api/v1/namespaces/ns/configmaps',
    listPage: (limit, token) => {
      limits.push(limit);
      const index = token === undefined ? 0 : Number(token);
      const items = pages[index] ?? [];
      const next = index + 1 < pages.length ? String(index + 1) : undefined;
      return Promise.resolve<KubernetesListObject<V1ConfigMap>>({
        metadata: { resourceVersion: '10', ...(next === undefined ? {} : { _continue: next }) },
        items,
      });
    },
    transform: (c) => {
      if (c.metadata) delete c.metadata.managedFields;
      return c;
    },
    wanted: (_namespace, name) => wanted.has(name),
    read: (_namespace, name) => {
      reads.push(name);
      return new Promise((resolve, reject) => {
        pendingRead = (object) => {
          resolve(object ?? stored.get(name));
        };
        failPendingRead = reject;
      });
    },
    clock,
    onReadError: (_err, _namespace, name, retryInMs) => {
      readErrors.push([name, retryInMs]);
    },
    ...(before ? { before } : {}),
  });
  const cache = selective.informer;
  const names = (): string[] => cache.list('ns').map((c) => c.metadata?.name ?? '');
  const answerRead = async (object?: V1ConfigMap): Promise<void> => {
    pendingRead?.(object);
    await flushMicrotasks();
  };
  const failRead = async (): Promise<void> => {
    failPendingRead?.(new Error('forbidden'));
    await flushMicrotasks();
  };
  return { selective, cache, watch, wanted, reads, limits, names, answerRead, failRead, readErrors, clock };
}

describe('SelectiveInformer', () => {
  it('lists page by page and keeps only the wanted objects, transformed; asks for bookmarks', async () => {
    const t = setup([
      [configMap('a', '3'), configMap('b', '4')],
      [configMap('c', '5'), configMap('d', '6')],
    ]);
    await t.cache.start();
    expect(t.names()).toEqual(['a', 'c']);
    expect(t.limits).toEqual([500, 500]);
    expect(t.cache.get('a', 'ns')?.metadata?.managedFields).toBeUndefined();
    expect(t.watch.queries[0]).toMatchObject({ resourceVersion: '10', allowWatchBookmarks: true });
  });

  it('caches nothing of an unwanted object, but resumes the watch after its events', async () => {
    const t = setup([[configMap('a', '3')]]);
    await t.cache.start();
    t.watch.send('ADDED', configMap('b', '11'));
    t.watch.send('MODIFIED', configMap('a', '12', { k: 'v' }));
    t.watch.send('MODIFIED', configMap('b', '13'));
    expect(t.names()).toEqual(['a']);
    expect(t.cache.get('a', 'ns')?.data).toEqual({ k: 'v' });
    expect(t.cache.latestResourceVersion()).toBe('13');
  });

  it('reads an object that became wanted into the cache, without moving the watch resume point', async () => {
    const t = setup([[configMap('a', '3')]], new Map([['b', configMap('b', '7', { k: 'b' })]]));
    await t.cache.start();
    t.watch.send('MODIFIED', configMap('a', '12'));
    t.wanted.add('b');
    const held = t.selective.hold('ns', 'b');
    await flushMicrotasks();
    expect(t.reads).toEqual(['b']);
    await t.answerRead();
    await held;
    expect(t.cache.get('b', 'ns')?.data).toEqual({ k: 'b' });
    expect(t.cache.latestResourceVersion()).toBe('12');
    await t.selective.hold('ns', 'b');
    expect(t.reads).toEqual(['b']); // held already: no second read
  });

  it('keeps the watch event when one arrives during the read', async () => {
    const t = setup([[configMap('a', '3')]]);
    await t.cache.start();
    t.wanted.add('b');
    const held = t.selective.hold('ns', 'b');
    await flushMicrotasks();
    t.watch.send('MODIFIED', configMap('b', '20', { k: 'from watch' }));
    await t.answerRead(configMap('b', '19', { k: 'from read' }));
    await held;
    expect(t.cache.get('b', 'ns')?.data).toEqual({ k: 'from watch' });
  });

  it('drops an object no longer wanted, at once on release or at its next event', async () => {
    const t = setup([[configMap('a', '3'), configMap('c', '4')]]);
    await t.cache.start();
    t.watch.send('MODIFIED', configMap('a', '12'));
    t.wanted.delete('a');
    t.wanted.delete('c');
    t.selective.release('ns', 'a');
    expect(t.names()).toEqual(['c']);
    expect(t.cache.latestResourceVersion()).toBe('12');
    t.watch.send('MODIFIED', configMap('c', '14'));
    expect(t.names()).toEqual([]);
    t.selective.release('ns', 'x'); // not held: nothing to do
    expect(t.cache.latestResourceVersion()).toBe('14');
  });

  it('lists only once `before` has resolved (the policies that decide what is wanted are in)', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const t = setup([[configMap('a', '3')]], new Map(), () => gate);
    const started = t.cache.start();
    await flushMicrotasks();
    expect(t.limits).toEqual([]);
    release();
    await started;
    expect(t.names()).toEqual(['a']);
  });

  it('reports a failed read and tries again after a growing delay until it succeeds', async () => {
    const t = setup([[configMap('a', '3')]], new Map([['b', configMap('b', '7')]]));
    await t.cache.start();
    t.wanted.add('b');
    const held = t.selective.hold('ns', 'b');
    await flushMicrotasks();
    await t.failRead();
    expect(t.readErrors).toEqual([['b', 1000]]);
    t.clock.advance(1000);
    await flushMicrotasks();
    await t.failRead();
    expect(t.readErrors).toEqual([
      ['b', 1000],
      ['b', 2000],
    ]);
    t.clock.advance(2000);
    await flushMicrotasks();
    await t.answerRead();
    await held;
    expect(t.reads).toEqual(['b', 'b', 'b']);
    expect(t.names()).toEqual(['a', 'b']);
  });
});
