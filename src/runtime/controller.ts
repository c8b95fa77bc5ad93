/**
 * Worker pool that drives a reconcile function from a {@link WorkQueue}
 * (cf. controller-runtime's Controller.Start / reconcileHandler).
 *
 * Per key taken from the queue:
 * - success → `forget` (reset backoff); if `requeueAfterMs` is set, `addAfter`
 *   (a periodic revisit). Without it the key waits for the next change.
 * - thrown {@link TerminalError} → `forget`, no retry: only a new change
 *   (a new `add`) brings the key back.
 * - any other throw (or an invalid outcome) → `addRateLimited` (exponential backoff).
 * - always `done(key)`, so changes that arrived meanwhile are processed next.
 *
 * At most one reconcile runs per key at a time (the queue's guarantee); up to
 * `workers` keys are reconciled concurrently.
 */
import type { Clock } from './clock.js';
import type { WorkQueue } from './workqueue.js';
import { callHook } from './errors.js';

/**
 * What a successful reconcile asks for next. `requeueAfterMs`: revisit the key
 * after this many ms (finite, >= 0; 0 = as soon as possible). Omitted: wait for
 * the next change of the object.
 */
export interface Outcome {
  requeueAfterMs?: number;
}

/**
 * An error that retrying cannot fix (e.g. an invalid spec): the key is not
 * retried until its object changes. Report the problem in status instead.
 */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export type ReconcileResult = 'success' | 'error' | 'terminal';

export interface ReconcileObservation<K extends string> {
  readonly key: K;
  readonly result: ReconcileResult;
  /** Duration of the reconcile call, measured on the injected clock. */
  readonly durationMs: number;
}

export interface RunWorkersOptions<K extends string> {
  queue: WorkQueue<K>;
  /** Number of concurrent workers; an integer >= 1. */
  workers: number;
  /** Brings the object named by `key` to its desired state. Must treat a missing object as success. */
  reconcile: (key: K) => Promise<Outcome>;
  /**
   * Called for every failed reconcile, terminal or not (for logging/events),
   * after the retry decision was applied. Must not throw: if it does, the
   * exception is dropped so that a faulty hook cannot kill a worker.
   */
  onError?: (key: K, err: unknown) => void;
  /** Called after every reconcile (for metrics). Same no-throw contract as `onError`. */
  observe?: (observation: ReconcileObservation<K>) => void;
  clock: Clock;
}

export interface RunningWorkers {
  /**
   * Shuts the queue down and resolves once every in-flight reconcile has
   * finished and every worker has exited. Does not abort in-flight reconciles.
   * Idempotent: later calls return the same promise.
   */
  stop(): Promise<void>;
}

/**
 * Starts `workers` worker loops on `queue` and returns immediately.
 *
 * @throws RangeError if `workers` is not an integer >= 1.
 */
export function runWorkers<K extends string>(options: RunWorkersOptions<K>): RunningWorkers {
  const { queue, workers } = options;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new RangeError(`workers must be an integer >= 1, got ${workers}`);
  }

  const loop = async (): Promise<void> => {
    for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
      await processOne(options, key);
    }
  };

  const loops = Array.from({ length: workers }, () => loop());
  let stopped: Promise<void> | undefined;
  return {
    stop: () => {
      stopped ??= (async () => {
        queue.shutDown();
        await Promise.all(loops);
      })();
      return stopped;
    },
  };
}

async function processOne<K extends string>(options: RunWorkersOptions<K>, key: K): Promise<void> {
  const { queue, reconcile, onError, observe, clock } = options;
  const started = clock.now().getTime();
  let result: ReconcileResult;
  try {
    const outcome = await reconcile(key);
    const after = outcome.requeueAfterMs;
    if (after !== undefined && !(Number.isFinite(after) && after >= 0)) {
      throw new RangeError(`reconcile of ${key} returned invalid requeueAfterMs ${after}`);
    }
    queue.forget(key);
    if (after !== undefined) queue.addAfter(key, after);
    result = 'success';
  } catch (err: unknown) {
    if (err instanceof TerminalError) {
      queue.forget(key);
      result = 'terminal';
    } else {
      queue.addRateLimited(key);
      result = 'error';
    }
    if (onError !== undefined)
      callHook(() => {
        onError(key, err);
      });
  } finally {
    queue.done(key);
  }
  if (observe !== undefined) {
    const durationMs = clock.now().getTime() - started;
    callHook(() => {
      observe({ key, result, durationMs });
    });
  }
}
