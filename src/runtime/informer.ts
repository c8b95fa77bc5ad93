/**
 * An informer that keeps itself running.
 *
 * client-node's informer (ListWatch) relists on 410 Gone by itself, but on any other error it
 * emits `error` and stops for good. This wrapper restarts it after an exponential backoff, and
 * never restarts on the AbortError that its own `stop()` raises. Handlers see every add, update
 * and delete as "this object changed" (the reconciler is level-triggered: it never learns why).
 *
 * `synced` turns true once the first list has completed; /readyz reports it.
 */
import { makeInformer, type KubeConfig, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from './clock.js';
import type { RateLimiter } from './rate-limiter.js';

export interface InformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** Watch path, e.g. /apis/apps/v1/deployments or /api/v1/namespaces/ns/configmaps. */
  readonly path: string;
  readonly list: ListPromise<T>;
  readonly clock: Clock;
  /** Delay before each restart after an error; forgotten once a start succeeds. */
  readonly backoff: RateLimiter;
  readonly onError?: (err: unknown, restartInMs: number) => void;
}

export interface ObjectStore<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export class ResilientInformer<T extends KubernetesObject> implements ObjectStore<T> {
  private readonly informer;
  private readonly handlers: Array<(obj: T) => void> = [];
  private syncedOnce = false;
  private stopped = false;
  private restartTimer: TimerHandle | undefined;

  constructor(private readonly options: InformerOptions<T>) {
    this.informer = makeInformer<T>(options.kubeConfig, options.path, options.list);
    const notify = (obj: T): void => {
      for (const handler of this.handlers) handler(obj);
    };
    this.informer.on('add', notify);
    this.informer.on('update', notify);
    this.informer.on('delete', notify);
    this.informer.on('error', (err: unknown) => { this.scheduleRestart(err); });
  }

  get synced(): boolean {
    return this.syncedOnce;
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

  /** Starts listing and watching; resolves after the first successful list (retrying until then). */
  async start(): Promise<void> {
    for (;;) {
      try {
        await this.informer.start();
        this.syncedOnce = true;
        this.options.backoff.forget(this.options.path);
        return;
      } catch (err) {
        if (this.stopped || isAbort(err)) return;
        const delay = this.options.backoff.when(this.options.path);
        this.options.onError?.(err, delay);
        await new Promise<void>((resolve) => { this.restartTimer = this.options.clock.setTimeout(resolve, delay); });
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may run while waiting
        if (this.stopped) return;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) this.options.clock.clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  private scheduleRestart(err: unknown): void {
    if (this.stopped || isAbort(err)) return;
    const delay = this.options.backoff.when(this.options.path);
    this.options.onError?.(err, delay);
    if (this.restartTimer) this.options.clock.clearTimeout(this.restartTimer);
    this.restartTimer = this.options.clock.setTimeout(() => {
      this.restartTimer = undefined;
      void this.start();
    }, delay);
  }
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.message.includes('aborted'));
}
