import { describe, it, expect } from '@jest/globals';
import { runWorkers, TerminalError, type Outcome, type ReconcileObservation } from '../../../src/runtime/controller.js';
import { WorkQueue } from '../../../src/runtime/workqueue.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function setup() {
  const clock = new FakeClock(new Date(0));
  const queue = new WorkQueue<string>({ clock });
  /** Reconcile calls as `key@ms` on the fake clock. */
  const calls: string[] = [];
  const errors: { key: string; err: unknown }[] = [];
  const record = (key: string) => calls.push(`${key}@${clock.now().getTime()}`);
  const onError = (key: string, err: unknown) => errors.push({ key, err });
  return { clock, queue, calls, errors, record, onError };
}

describe('runWorkers', () => {
  it('reconciles added keys and, on success without requeue, waits for the next change', async () => {
    const { clock, queue, calls, record } = setup();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      reconcile: (key) => {
        record(key);
        return Promise.resolve({});
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    clock.advance(3_600_000);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@0']);
    expect(queue.sizes()).toEqual({ queued: 0, dirty: 0, processing: 0, timers: 0, waiters: 1, removedInFlight: 0 });
    await workers.stop();
  });

  it('retries a failing key with exponential backoff and forgets it after success', async () => {
    const { clock, queue, calls, errors, record, onError } = setup();
    let failuresLeft = 3;
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      onError,
      reconcile: (key) => {
        record(key);
        if (failuresLeft-- > 0) return Promise.reject(new Error('apiserver unavailable'));
        return Promise.resolve({});
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    for (let i = 0; i < 100; i++) {
      clock.advance(100);
      await flushMicrotasks();
    }
    // First try at 0; retries 500ms, 1s, then 2s after each failure.
    expect(calls).toEqual(['ns/a@0', 'ns/a@500', 'ns/a@1500', 'ns/a@3500']);
    expect(errors.map((e) => e.key)).toEqual(['ns/a', 'ns/a', 'ns/a']);
    expect(queue.failures('ns/a')).toBe(0);
    await workers.stop();
  });

  it('does not retry a TerminalError, but reports it and forgets the backoff', async () => {
    const { clock, queue, calls, errors, record, onError } = setup();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      onError,
      reconcile: (key) => {
        record(key);
        return Promise.reject(new TerminalError('spec.maxPoolSize < spec.minPoolSize'));
      },
    });
    queue.addRateLimited('ns/a'); // earlier failures recorded
    clock.advance(500);
    await flushMicrotasks();
    clock.advance(3_600_000);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@500']);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.err).toBeInstanceOf(TerminalError);
    expect(queue.failures('ns/a')).toBe(0);
    expect(queue.sizes().timers).toBe(0);
    // A new change brings it back.
    queue.add('ns/a');
    await flushMicrotasks();
    expect(calls).toHaveLength(2);
    await workers.stop();
  });

  it('honours requeueAfterMs', async () => {
    const { clock, queue, calls, record } = setup();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      reconcile: (key): Promise<Outcome> => {
        record(key);
        return Promise.resolve({ requeueAfterMs: 30_000 });
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    clock.advance(29_999);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@0']);
    clock.advance(1);
    await flushMicrotasks();
    clock.advance(30_000);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@0', 'ns/a@30000', 'ns/a@60000']);
    await workers.stop();
  });

  it('treats an invalid requeueAfterMs as an error (retried with backoff)', async () => {
    const { clock, queue, calls, errors, record, onError } = setup();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      onError,
      reconcile: (key) => {
        record(key);
        return Promise.resolve({ requeueAfterMs: -1 });
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    expect(errors[0]?.err).toBeInstanceOf(RangeError);
    expect(queue.failures('ns/a')).toBe(1);
    clock.advance(500);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@0', 'ns/a@500']);
    await workers.stop();
  });

  it('never reconciles one key concurrently; a change during reconcile triggers one more run', async () => {
    const { clock, queue } = setup();
    const inFlight: Deferred<Outcome>[] = [];
    let running = 0;
    let maxRunning = 0;
    const workers = runWorkers({
      queue,
      workers: 4,
      clock,
      reconcile: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        const d = deferred<Outcome>();
        inFlight.push(d);
        try {
          return await d.promise;
        } finally {
          running--;
        }
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    queue.add('ns/a');
    queue.add('ns/a');
    await flushMicrotasks();
    expect(inFlight).toHaveLength(1);
    inFlight[0]?.resolve({});
    await flushMicrotasks();
    expect(inFlight).toHaveLength(2);
    inFlight[1]?.resolve({});
    await flushMicrotasks();
    expect(inFlight).toHaveLength(2);
    expect(maxRunning).toBe(1);
    await workers.stop();
  });

  it('reconciles different keys concurrently, up to the number of workers', async () => {
    const { clock, queue } = setup();
    const inFlight = new Map<string, Deferred<Outcome>>();
    const workers = runWorkers({
      queue,
      workers: 2,
      clock,
      reconcile: (key) => {
        const d = deferred<Outcome>();
        inFlight.set(key, d);
        return d.promise;
      },
    });
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/c');
    await flushMicrotasks();
    expect([...inFlight.keys()]).toEqual(['ns/a', 'ns/b']);
    inFlight.get('ns/b')?.resolve({});
    await flushMicrotasks();
    expect([...inFlight.keys()]).toEqual(['ns/a', 'ns/b', 'ns/c']);
    inFlight.get('ns/a')?.resolve({});
    inFlight.get('ns/c')?.resolve({});
    await workers.stop();
  });

  it('stop shuts the queue down and waits for in-flight reconciles', async () => {
    const { clock, queue } = setup();
    const d = deferred<Outcome>();
    let finished = false;
    const workers = runWorkers({
      queue,
      workers: 2,
      clock,
      reconcile: async () => {
        await d.promise;
        finished = true;
        return {};
      },
    });
    queue.add('ns/a');
    queue.add('ns/b'); // taken by the second worker too, resolves via the same deferred
    await flushMicrotasks();
    const stopped = workers.stop();
    let stopResolved = false;
    void stopped.then(() => {
      stopResolved = true;
    });
    await flushMicrotasks();
    expect(queue.isShuttingDown()).toBe(true);
    expect(stopResolved).toBe(false);
    d.resolve({});
    await stopped;
    expect(finished).toBe(true);
    expect(workers.stop()).toBe(stopped); // idempotent
    expect(queue.sizes().processing).toBe(0);
  });

  it('keeps working when onError or observe throw', async () => {
    const { clock, queue, calls, record } = setup();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      onError: () => {
        throw new Error('logger broken');
      },
      observe: () => {
        throw new Error('metrics broken');
      },
      reconcile: (key) => {
        record(key);
        return Promise.reject(new Error('boom'));
      },
    });
    queue.add('ns/a');
    await flushMicrotasks();
    clock.advance(500);
    await flushMicrotasks();
    expect(calls).toEqual(['ns/a@0', 'ns/a@500']);
    await workers.stop();
  });

  it('reports each reconcile with its result and duration on the injected clock', async () => {
    const { clock, queue } = setup();
    const observed: ReconcileObservation<string>[] = [];
    const d = deferred<Outcome>();
    const workers = runWorkers({
      queue,
      workers: 1,
      clock,
      observe: (o) => observed.push(o),
      reconcile: (key) => (key === 'ns/slow' ? d.promise : Promise.reject(new TerminalError('bad'))),
    });
    queue.add('ns/slow');
    await flushMicrotasks();
    clock.advance(250);
    d.resolve({});
    await flushMicrotasks();
    queue.add('ns/bad');
    await flushMicrotasks();
    expect(observed).toEqual([
      { key: 'ns/slow', result: 'success', durationMs: 250 },
      { key: 'ns/bad', result: 'terminal', durationMs: 0 },
    ]);
    await workers.stop();
  });

  it('rejects an invalid worker count', () => {
    const { clock, queue } = setup();
    const reconcile = () => Promise.resolve({});
    expect(() => runWorkers({ queue, workers: 0, clock, reconcile })).toThrow(RangeError);
    expect(() => runWorkers({ queue, workers: 1.5, clock, reconcile })).toThrow(RangeError);
  });
});
