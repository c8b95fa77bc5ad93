import { describe, it, expect } from '@jest/globals';
import { ExponentialBackoffRateLimiter } from '../../../src/runtime/rate-limiter.js';
import { WorkQueue } from '../../../src/runtime/workqueue.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

type Key = `${string}/${string}`;

function setup() {
  const clock = new FakeClock();
  const rateLimiter = new ExponentialBackoffRateLimiter<Key>();
  const queue = new WorkQueue<Key>({ clock, rateLimiter });
  return { clock, rateLimiter, queue };
}

const PENDING: unique symbol = Symbol('pending');

/** The promise's value if it has settled once all current microtasks ran, else PENDING. */
async function peek<T>(promise: Promise<T>): Promise<T | typeof PENDING> {
  return Promise.race([promise, flushMicrotasks().then((): typeof PENDING => PENDING)]);
}

const EMPTY = { queued: 0, dirty: 0, processing: 0, timers: 0, waiters: 0, removedInFlight: 0 };

describe('WorkQueue', () => {
  it('hands keys out in FIFO order', async () => {
    const { queue } = setup();
    queue.add('ns/a');
    queue.add('ns/b');
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
  });

  it('deduplicates: a key added many times is queued once', async () => {
    const { queue } = setup();
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    queue.add('ns/a');
    expect(queue.len()).toBe(2);
    expect(await queue.get()).toBe('ns/a');
    expect(await queue.get()).toBe('ns/b');
    expect(queue.len()).toBe(0);
    expect(await peek(queue.get())).toBe(PENDING);
  });

  it('drains a backlog in order of due time, whatever the order of the requests', async () => {
    const { clock, queue } = setup();
    queue.addAfter('ns/late', 300);
    queue.addAfter('ns/early', 100);
    queue.addAfter('ns/middle', 200);
    clock.advance(250);
    queue.add('ns/now'); // due now: after the keys that were due before it
    clock.advance(100);
    const order: Array<Key | undefined> = [];
    for (let i = 0; i < 4; i++) order.push(await queue.get());
    expect(order).toEqual(['ns/early', 'ns/middle', 'ns/now', 'ns/late']);
  });

  it('get waits until a key is added; waiters are served in order', async () => {
    const { queue } = setup();
    const first = queue.get();
    const second = queue.get();
    expect(await peek(first)).toBe(PENDING);
    queue.add('ns/a');
    queue.add('ns/b');
    expect(await first).toBe('ns/a');
    expect(await second).toBe('ns/b');
  });

  it('never hands out a key that is processing; a re-add while processing is re-queued on done', async () => {
    const { queue } = setup();
    queue.add('ns/a');
    expect(await queue.get()).toBe('ns/a');

    queue.add('ns/a'); // change arrives while ns/a is being reconciled
    queue.add('ns/a');
    expect(queue.len()).toBe(0);
    const next = queue.get();
    expect(await peek(next)).toBe(PENDING);

    queue.done('ns/a');
    expect(await next).toBe('ns/a');
    queue.done('ns/a');
    expect(queue.sizes()).toEqual(EMPTY);
  });

  it('done without a re-add does not re-queue, and done for a key not processing is a no-op', async () => {
    const { queue } = setup();
    queue.add('ns/a');
    expect(await queue.get()).toBe('ns/a');
    queue.done('ns/a');
    queue.done('ns/a');
    queue.add('ns/b');
    queue.done('ns/b'); // queued, not processing: must not be queued twice
    expect(queue.len()).toBe(1);
    expect(queue.sizes()).toEqual({ ...EMPTY, queued: 1, dirty: 1 });
  });

  it('other keys are processed while one key is processing', async () => {
    const { queue } = setup();
    queue.add('ns/a');
    expect(await queue.get()).toBe('ns/a');
    queue.add('ns/a');
    queue.add('ns/b');
    expect(await queue.get()).toBe('ns/b');
  });

  describe('addAfter', () => {
    it('adds the key once the delay has passed on the clock', async () => {
      const { clock, queue } = setup();
      queue.addAfter('ns/a', 1000);
      const got = queue.get();
      clock.advance(999);
      expect(await peek(got)).toBe(PENDING);
      clock.advance(1);
      expect(await got).toBe('ns/a');
      expect(queue.sizes().timers).toBe(0);
    });

    it('adds immediately for a delay <= 0', () => {
      const { queue } = setup();
      queue.addAfter('ns/a', 0);
      queue.addAfter('ns/b', -10);
      expect(queue.len()).toBe(2);
    });

    it('keeps only the earliest pending timer per key', () => {
      const { clock, queue } = setup();
      queue.addAfter('ns/a', 5000);
      queue.addAfter('ns/a', 1000); // earlier: replaces
      queue.addAfter('ns/a', 3000); // later: ignored
      expect(queue.sizes().timers).toBe(1);
      expect(clock.pendingTimers()).toBe(1);
      clock.advance(1000);
      expect(queue.len()).toBe(1);
      expect(clock.pendingTimers()).toBe(0);
      clock.advance(10_000);
      expect(queue.len()).toBe(1);
    });

    it('deduplicates with a key that is already queued', () => {
      const { clock, queue } = setup();
      queue.add('ns/a');
      queue.addAfter('ns/a', 100);
      clock.advance(100);
      expect(queue.len()).toBe(1);
    });

    it('rejects a non-finite delay', () => {
      const { queue } = setup();
      expect(() => {
        queue.addAfter('ns/a', Number.NaN);
      }).toThrow(RangeError);
      expect(() => {
        queue.addAfter('ns/a', Number.POSITIVE_INFINITY);
      }).toThrow(RangeError);
    });
  });

  describe('addRateLimited / forget', () => {
    it('delays each retry by the exponential backoff', async () => {
      const { clock, queue } = setup();
      for (const delay of [500, 1000, 2000, 4000]) {
        queue.addRateLimited('ns/a');
        clock.advance(delay - 1);
        expect(queue.len()).toBe(0);
        clock.advance(1);
        expect(queue.len()).toBe(1);
        expect(await queue.get()).toBe('ns/a');
        queue.done('ns/a');
      }
      expect(queue.failures('ns/a')).toBe(4);
    });

    it('forget resets the backoff to the base delay', () => {
      const { clock, queue } = setup();
      queue.addRateLimited('ns/a');
      queue.addRateLimited('ns/a');
      clock.advance(500); // earliest timer (500ms) wins
      queue.forget('ns/a');
      expect(queue.failures('ns/a')).toBe(0);
      queue.addRateLimited('ns/a');
      expect(queue.sizes().timers).toBe(1);
      clock.advance(500);
      expect(queue.sizes().timers).toBe(0);
    });
  });

  describe('remove', () => {
    it('drops a queued key, its timer and its backoff, leaving no state', () => {
      const { clock, rateLimiter, queue } = setup();
      queue.add('ns/a');
      queue.addRateLimited('ns/a');
      queue.addAfter('ns/b', 100);
      queue.remove('ns/a');
      queue.remove('ns/b');
      expect(queue.len()).toBe(0);
      expect(queue.sizes()).toEqual(EMPTY);
      expect(rateLimiter.trackedKeys()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
    });

    it('for a key in flight: suppresses its retries until done, then leaves no state', async () => {
      const { clock, rateLimiter, queue } = setup();
      queue.add('ns/a');
      expect(await queue.get()).toBe('ns/a');
      queue.add('ns/a'); // dirty
      queue.remove('ns/a'); // object deleted while reconciling
      queue.addRateLimited('ns/a'); // the in-flight reconcile fails (e.g. 404)…
      queue.addAfter('ns/a', 1000); // …or asks for a revisit
      queue.done('ns/a');
      expect(queue.sizes()).toEqual(EMPTY);
      expect(rateLimiter.trackedKeys()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
      // The key is usable again afterwards.
      queue.addRateLimited('ns/a');
      expect(queue.sizes().timers).toBe(1);
    });

    it('an add after remove (object re-created) is honoured even while in flight', async () => {
      const { queue } = setup();
      queue.add('ns/a');
      expect(await queue.get()).toBe('ns/a');
      queue.remove('ns/a');
      queue.add('ns/a');
      queue.done('ns/a');
      expect(await queue.get()).toBe('ns/a');
    });
  });

  describe('shutDown', () => {
    it('resolves waiting and future gets with undefined and ignores adds', async () => {
      const { queue } = setup();
      const waiting = queue.get();
      queue.shutDown();
      expect(await waiting).toBeUndefined();
      queue.add('ns/a');
      queue.addAfter('ns/a', 10);
      queue.addRateLimited('ns/a');
      expect(await queue.get()).toBeUndefined();
      expect(queue.len()).toBe(0);
      expect(queue.isShuttingDown()).toBe(true);
    });

    it('cancels timers and drops queued keys; in-flight keys can still be marked done', async () => {
      const { clock, queue } = setup();
      queue.add('ns/a');
      queue.add('ns/b');
      expect(await queue.get()).toBe('ns/a');
      queue.addAfter('ns/c', 100);
      queue.shutDown();
      queue.shutDown(); // idempotent
      expect(clock.pendingTimers()).toBe(0);
      queue.done('ns/a');
      expect(queue.sizes()).toEqual(EMPTY);
    });
  });
});
