/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with the semantics of client-go's
 * `leaderelection` package (LeaseLock, ReleaseOnCancel). client-node has no elector of its own.
 *
 * Contracts:
 * - At most one holder: every write is a replace carrying the resourceVersion just read, so of
 *   two candidates racing for the same Lease one gets 409 Conflict and stays a follower.
 * - A Lease held by another identity is taken over only once it is free (empty holderIdentity)
 *   or expired. Expiry is judged on the local clock, as client-go does: the holder's record is
 *   expired when it has not changed for `leaseDurationSeconds` since this process last saw it
 *   change, so clock skew between machines does not matter. A candidate that has just started
 *   therefore waits one full lease duration before taking over a crashed holder's Lease.
 * - A takeover sets acquireTime and increments leaseTransitions; a renewal by the holder keeps both.
 * - The leader renews every `retryPeriodMs`. If no renewal has succeeded within
 *   `renewDeadlineMs` of the last successful one (measured from when that attempt started), it
 *   loses leadership at once: `onStoppedLeading` runs from a timer, even while a request hangs,
 *   and the caller must stop writing. As `renewDeadlineMs < leaseDurationMs`, the old leader
 *   stops before any follower may consider the Lease expired.
 * - After losing, the elector keeps campaigning; `onStartedLeading` runs again on re-acquisition.
 *   The callbacks alternate strictly: started, stopped, started, …
 * - {@link LeaderElector.release} stops campaigning and, if this identity holds the Lease, empties
 *   holderIdentity (ReleaseOnCancel) so a follower can take over at its next retry instead of
 *   waiting for expiry.
 * - All waiting runs on the injected {@link Clock}.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { V1MicroTime, type V1Lease, type V1LeaseSpec, type V1ObjectMeta } from '@kubernetes/client-node';
import type { Clock, TimerHandle } from './clock.js';
import { callHook, httpStatusOf, logRetry } from './errors.js';

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;

/**
 * The Lease calls the elector makes; client-node's CoordinationV1Api implements it. A failed
 * call rejects with an error carrying the HTTP status as a numeric `code` (client-node's
 * ApiException): 404 on read = no Lease yet, 409 on create/replace = another writer won.
 */
export interface LeaseApi {
  readNamespacedLease(request: { name: string; namespace: string }): Promise<V1Lease>;
  createNamespacedLease(request: { namespace: string; body: V1Lease }): Promise<V1Lease>;
  replaceNamespacedLease(request: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
}

/** The log calls the elector makes (a pino Logger fits). */
export interface LeaderElectionLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface LeaderElectorOptions {
  readonly api: LeaseApi;
  /** Namespace and name of the Lease. */
  readonly namespace: string;
  readonly name: string;
  /** This candidate's holderIdentity; unique per process (see {@link defaultIdentity}). */
  readonly identity: string;
  readonly clock: Clock;
  /** How long a follower waits after the Lease last changed before taking over. Whole seconds are written; default 15 s. */
  readonly leaseDurationMs?: number;
  /** How long the leader keeps leading without a successful renewal; < leaseDurationMs. Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** Interval between acquire/renew attempts; < renewDeadlineMs. Default 2 s. */
  readonly retryPeriodMs?: number;
  /** Called when this candidate becomes leader. Must not throw (exceptions are dropped). */
  readonly onStartedLeading: () => void;
  /** Called when leadership ends (lost or released): stop writing now. Must not throw. */
  readonly onStoppedLeading: () => void;
  readonly log?: LeaderElectionLog;
}

/** hostname + random suffix, like client-go's `hostname_uuid`: two processes on one host differ. */
export function defaultIdentity(): string {
  return `${hostname()}_${randomBytes(6).toString('hex')}`;
}

/**
 * client-node 2.0.1 types Lease times as V1MicroTime but deserializes them as the raw string;
 * accepts either. A plain Date must not be written: it serializes with milliseconds and the API
 * server refuses it for a MicroTime field, whereas V1MicroTime writes six fractional digits.
 */
function microTime(value: unknown): V1MicroTime | undefined {
  if (value instanceof Date) return new V1MicroTime(value.getTime());
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : new V1MicroTime(ms);
  }
  return undefined;
}

const noLog: LeaderElectionLog = { info: () => undefined, warn: () => undefined, debug: () => undefined };

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly clock: Clock;
  private readonly log: LeaderElectionLog;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private leading = false;
  private stopped = false;
  /** Next acquire/renew attempt. */
  private nextAttempt: TimerHandle | undefined;
  /** While leading: fires when the renew deadline passes without a successful renewal. */
  private deadline: TimerHandle | undefined;
  /** The attempt in flight, if any (never more than one). */
  private attempt: Promise<void> | undefined;
  /** The Lease record as last seen (resourceVersion + holder) and the local time it was first seen. */
  private observed:
    { readonly version: string; readonly holder: string; readonly durationMs: number; readonly at: number } | undefined;
  private running: Promise<void> | undefined;
  private resolveRunning: (() => void) | undefined;
  private releasing: Promise<void> | undefined;

  /** @throws RangeError unless 0 < retryPeriodMs < renewDeadlineMs < leaseDurationMs. */
  constructor(private readonly opts: LeaderElectorOptions) {
    this.api = opts.api;
    this.clock = opts.clock;
    this.log = opts.log ?? noLog;
    this.leaseDurationMs = opts.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.retryPeriodMs = opts.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    if (!(
      this.retryPeriodMs > 0 &&
      this.retryPeriodMs < this.renewDeadlineMs &&
      this.renewDeadlineMs < this.leaseDurationMs
    )) {
      throw new RangeError(
        `leader election needs 0 < retry period (${this.retryPeriodMs} ms) < renew deadline (${this.renewDeadlineMs} ms) < lease duration (${this.leaseDurationMs} ms)`,
      );
    }
  }

  /** True while this candidate leads: between onStartedLeading and onStoppedLeading. */
  isLeader(): boolean {
    return this.leading;
  }

  /**
   * Starts campaigning (first attempt at once) and returns a promise that resolves once
   * {@link release} has finished. Never rejects: API errors are logged and retried.
   * Idempotent: later calls return the same promise.
   */
  run(): Promise<void> {
    if (this.running !== undefined) return this.running;
    this.running = new Promise((resolve) => {
      this.resolveRunning = resolve;
    });
    if (this.stopped) {
      this.resolveRunning?.();
    } else {
      this.log.info({ lease: this.leaseName(), identity: this.opts.identity }, 'campaigning for leader lease');
      this.schedule(0);
    }
    return this.running;
  }

  /**
   * Stops campaigning and renewing, waits for an attempt in flight, ends leadership
   * (onStoppedLeading, if leading) and, if the Lease still names this identity, empties its
   * holder so another candidate can take over at once. Never rejects (a failed release is
   * logged; the Lease then expires normally). Idempotent.
   */
  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    this.stopped = true;
    if (this.nextAttempt !== undefined) this.clock.clearTimeout(this.nextAttempt);
    this.nextAttempt = undefined;
    await this.attempt;
    if (this.leading) this.stopLeading('released');
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity === this.opts.identity) {
        const now = new V1MicroTime(this.clock.now().getTime());
        await this.api.replaceNamespacedLease({
          name: this.opts.name,
          namespace: this.opts.namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: this.metadataFor(lease),
            // As client-go's release(): no holder, 1 s duration, transitions kept.
            spec: {
              holderIdentity: '',
              leaseDurationSeconds: 1,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: lease.spec.leaseTransitions ?? 0,
            },
          },
        });
        this.log.info({ lease: this.leaseName(), identity: this.opts.identity }, 'released leader lease');
      }
    } catch (err) {
      if (httpStatusOf(err) !== 404)
        this.log.warn(
          { err, lease: this.leaseName() },
          'could not release leader lease; it expires after its lease duration',
        );
    }
    this.resolveRunning?.();
  }

  private leaseName(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.nextAttempt = this.clock.setTimeout(() => {
      this.nextAttempt = undefined;
      const attempt = this.step().finally(() => {
        this.attempt = undefined;
      });
      this.attempt = attempt;
    }, ms);
  }

  /** One acquire-or-renew attempt, then the next one is scheduled. Never rejects. */
  private async step(): Promise<void> {
    const startedAt = this.clock.now().getTime();
    let acquired = false;
    try {
      acquired = await this.withTimeout(this.tryAcquireOrRenew(startedAt), this.renewDeadlineMs);
    } catch (err) {
      const message = this.leading ? 'failed to renew leader lease' : 'failed to acquire leader lease';
      logRetry(this.log, 'warn', { lease: this.leaseName(), leading: this.leading }, message, err);
    }
    if (this.stopped) return;
    // A success that returns after its own deadline cannot extend leadership: followers may
    // already have counted the lease duration from an older record.
    const validUntil = startedAt + this.renewDeadlineMs;
    if (acquired && validUntil > this.clock.now().getTime()) {
      if (this.deadline !== undefined) this.clock.clearTimeout(this.deadline);
      this.deadline = this.clock.setTimeout(() => {
        this.deadline = undefined;
        if (this.leading) this.stopLeading('renew deadline passed');
      }, validUntil - this.clock.now().getTime());
      if (!this.leading) {
        this.leading = true;
        this.log.info({ lease: this.leaseName(), identity: this.opts.identity }, 'became leader');
        callHook(this.opts.onStartedLeading);
      }
    }
    this.schedule(this.retryPeriodMs);
  }

  private stopLeading(reason: string): void {
    this.leading = false;
    if (this.deadline !== undefined) this.clock.clearTimeout(this.deadline);
    this.deadline = undefined;
    this.log[reason === 'released' ? 'info' : 'warn'](
      { lease: this.leaseName(), identity: this.opts.identity, reason },
      'stopped leading',
    );
    callHook(this.opts.onStoppedLeading);
  }

  /**
   * Reads the Lease and writes this identity into it if it is free, expired or already ours.
   * Resolves false when another candidate holds it or wins the race (409); rejects on other errors.
   */
  private async tryAcquireOrRenew(nowMs: number): Promise<boolean> {
    const { name, namespace, identity } = this.opts;
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (httpStatusOf(err) !== 404 || this.stopped) throw err;
      try {
        const created = await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: this.specFor(undefined, nowMs),
          },
        });
        this.observe(created);
        return true;
      } catch (createErr) {
        if (httpStatusOf(createErr) === 409) return false;
        throw createErr;
      }
    }
    this.observe(lease);
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder !== '' && holder !== identity && !this.expired()) {
      this.log.debug({ lease: this.leaseName(), holder }, 'leader lease held by another candidate');
      return false;
    }
    if (this.stopped) return false;
    try {
      const replaced = await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: this.metadataFor(lease),
          spec: this.specFor(lease.spec, nowMs),
        },
      });
      this.observe(replaced);
      if (holder !== identity)
        this.log.info(
          { lease: this.leaseName(), previousHolder: holder },
          holder === '' ? 'acquired free leader lease' : 'took over expired leader lease',
        );
      return true;
    } catch (err) {
      if (httpStatusOf(err) === 409) return false;
      throw err;
    }
  }

  /** The Lease's identity, labels and annotations, with the resourceVersion read as the write's precondition. */
  private metadataFor(lease: V1Lease): V1ObjectMeta {
    const { resourceVersion, labels, annotations } = lease.metadata ?? {};
    return {
      name: this.opts.name,
      namespace: this.opts.namespace,
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
      ...(labels === undefined ? {} : { labels }),
      ...(annotations === undefined ? {} : { annotations }),
    };
  }

  private specFor(previous: V1LeaseSpec | undefined, nowMs: number): V1LeaseSpec {
    const now = new V1MicroTime(nowMs);
    const renewal = previous?.holderIdentity === this.opts.identity;
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.leaseDurationMs / 1000)),
      acquireTime: renewal ? (microTime(previous.acquireTime) ?? now) : now,
      renewTime: now,
      leaseTransitions: previous === undefined ? 0 : (previous.leaseTransitions ?? 0) + (renewal ? 0 : 1),
    };
  }

  /** Records the Lease as seen now; the expiry clock restarts whenever its record changes. */
  private observe(lease: V1Lease): void {
    const version = lease.metadata?.resourceVersion ?? JSON.stringify(lease.spec ?? {});
    if (this.observed?.version === version) return;
    const seconds = lease.spec?.leaseDurationSeconds;
    this.observed = {
      version,
      holder: lease.spec?.holderIdentity ?? '',
      durationMs: seconds === undefined ? this.leaseDurationMs : seconds * 1000,
      at: this.clock.now().getTime(),
    };
  }

  private expired(): boolean {
    return this.observed === undefined || this.observed.at + this.observed.durationMs <= this.clock.now().getTime();
  }

  /** Rejects if `work` has not settled after `ms` on the clock (the request itself is not aborted). */
  private withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = this.clock.setTimeout(() => {
        reject(new Error(`lease request still unanswered after ${ms} ms`));
      }, ms);
    });
    return Promise.race([work, timeout]).finally(() => {
      if (timer !== undefined) this.clock.clearTimeout(timer);
    });
  }
}
