import { describe, expect, it } from '@jest/globals';
import { ApiException, type V1Lease } from '@kubernetes/client-node';
import { ConfigError, loadConfig } from '../../../src/config.js';
import { LeaderElector, type LeaseApi } from '../../../src/runtime/leader-election.js';
import { FakeClock, flushMicrotasks } from '../../support/fake-clock.js';

const NS = 'ops';
const NAME = 'poolpilot-leader';

function apiError(code: number): ApiException<string> {
  return new ApiException(code, `HTTP ${code}`, '{}', {});
}

/**
 * An in-memory Lease endpoint with the API server's rules: create fails with 409 if the Lease
 * exists, replace fails with 409 unless it carries the current resourceVersion, and objects go
 * through JSON (so times come back as strings, as from client-node).
 */
class FakeLeaseApi implements LeaseApi {
  lease: V1Lease | undefined;
  private version = 0;
  readonly writes: V1Lease[] = [];
  /** When set, every call fails with this error. */
  failWith: Error | undefined;
  /** When set, every call hangs forever. */
  hang = false;
  /** Runs before a replace is applied: a chance for another writer to get in first. */
  beforeReplace: (() => void) | undefined;

  readNamespacedLease(): Promise<V1Lease> {
    return this.call(() => {
      if (this.lease === undefined) throw apiError(404);
      return this.lease;
    });
  }

  createNamespacedLease(request: { namespace: string; body: V1Lease }): Promise<V1Lease> {
    return this.call(() => {
      if (this.lease !== undefined) throw apiError(409);
      return this.store(request.body);
    });
  }

  replaceNamespacedLease(request: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease> {
    return this.call(() => {
      const hook = this.beforeReplace;
      this.beforeReplace = undefined;
      hook?.();
      if (request.body.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) throw apiError(409);
      return this.store(request.body);
    });
  }

  /** Another candidate writes the Lease (e.g. renews it). */
  writeAsOther(holder: string, leaseTransitions = 0, leaseDurationSeconds = 15): void {
    const now = '2024-01-01T00:00:00.000000Z';
    this.store({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: NAME, namespace: NS },
      spec: {
        holderIdentity: holder,
        leaseDurationSeconds,
        leaseTransitions,
        acquireTime: now as unknown as Date,
        renewTime: now as unknown as Date,
      },
    });
  }

  private store(body: V1Lease): V1Lease {
    const stored = JSON.parse(JSON.stringify(body)) as V1Lease;
    stored.metadata = { name: NAME, namespace: NS, resourceVersion: String(++this.version) };
    this.lease = stored;
    this.writes.push(stored);
    return JSON.parse(JSON.stringify(stored)) as V1Lease;
  }

  private async call(fn: () => V1Lease): Promise<V1Lease> {
    if (this.hang) await new Promise(() => undefined);
    if (this.failWith !== undefined) throw this.failWith;
    return JSON.parse(JSON.stringify(fn())) as V1Lease;
  }
}

interface Harness {
  readonly clock: FakeClock;
  readonly api: FakeLeaseApi;
  readonly elector: LeaderElector;
  readonly events: string[];
  /** Starts the elector; its first attempt runs and settles at the current time. */
  start(): Promise<void>;
  /**
   * Advances the clock in 100 ms steps, letting the elector's promises settle after each. Timers
   * are due on multiples of 100 ms when every advance is, so callbacks see their exact due time.
   */
  advance(ms: number): Promise<void>;
}

function harness(
  options: { identity?: string; api?: FakeLeaseApi; via?: LeaseApi; clock?: FakeClock; events?: string[] } = {},
): Harness {
  const clock = options.clock ?? new FakeClock();
  const api = options.api ?? new FakeLeaseApi();
  const events = options.events ?? [];
  const identity = options.identity ?? 'me';
  const elector = new LeaderElector({
    api: options.via ?? api,
    namespace: NS,
    name: NAME,
    identity,
    clock,
    onStartedLeading: () => {
      events.push(`${identity} started @${clock.now().getTime() - Date.parse('2024-01-01T00:00:00Z')}`);
    },
    onStoppedLeading: () => {
      events.push(`${identity} stopped @${clock.now().getTime() - Date.parse('2024-01-01T00:00:00Z')}`);
    },
  });
  const advance = async (ms: number): Promise<void> => {
    await flushMicrotasks();
    for (let left = ms; left > 0; left -= Math.min(left, 100)) {
      clock.advance(Math.min(left, 100));
      await flushMicrotasks();
    }
  };
  const start = async (): Promise<void> => {
    void elector.run();
    clock.advance(0);
    await flushMicrotasks();
  };
  return { clock, api, elector, events, start, advance };
}

describe('LeaderElector', () => {
  it('creates and acquires a missing lease at once, writing microsecond times', async () => {
    const h = harness();
    await h.start();
    expect(h.elector.isLeader()).toBe(true);
    expect(h.events).toEqual(['me started @0']);
    const spec = h.api.lease?.spec;
    expect(spec).toMatchObject({ holderIdentity: 'me', leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(spec?.renewTime).toBe('2024-01-01T00:00:00.000000Z');
    expect(spec?.acquireTime).toBe('2024-01-01T00:00:00.000000Z');
  });

  it('acquires a free (released) lease at once, counting a transition', async () => {
    const h = harness();
    h.api.writeAsOther('', 3, 1);
    await h.start();
    expect(h.elector.isLeader()).toBe(true);
    expect(h.api.lease?.spec).toMatchObject({ holderIdentity: 'me', leaseTransitions: 4 });
  });

  it('does not acquire a lease another holder keeps renewing', async () => {
    const h = harness();
    h.api.writeAsOther('other', 2);
    await h.start();
    for (let i = 0; i < 20; i++) {
      await h.advance(2000);
      h.api.writeAsOther('other', 2);
    }
    expect(h.elector.isLeader()).toBe(false);
    expect(h.events).toEqual([]);
    expect(h.api.lease?.spec?.holderIdentity).toBe('other');
  });

  it('takes over a lease whose holder stopped renewing once it expired, incrementing leaseTransitions', async () => {
    const h = harness();
    h.api.writeAsOther('other', 2);
    await h.start();
    await h.advance(14_900);
    expect(h.elector.isLeader()).toBe(false);
    await h.advance(2_100);
    expect(h.elector.isLeader()).toBe(true);
    expect(h.events).toEqual(['me started @16000']);
    expect(h.api.lease?.spec).toMatchObject({
      holderIdentity: 'me',
      leaseTransitions: 3,
      acquireTime: '2024-01-01T00:00:16.000000Z',
    });
  });

  it('stays a follower when another writer wins the replace (409), and retries after the retry period', async () => {
    const h = harness();
    h.api.writeAsOther('', 0, 1);
    h.api.beforeReplace = () => {
      h.api.writeAsOther('rival', 1);
    };
    await h.start();
    expect(h.elector.isLeader()).toBe(false);
    expect(h.api.lease?.spec?.holderIdentity).toBe('rival');
    // The rival's record is first seen at the next attempt (2 s): it expires a lease duration later.
    await h.advance(15_000);
    expect(h.elector.isLeader()).toBe(false);
    await h.advance(3_000);
    expect(h.elector.isLeader()).toBe(true);
    expect(h.api.lease?.spec).toMatchObject({ holderIdentity: 'me', leaseTransitions: 2 });
  });

  it('renews every retry period keeping acquireTime and leaseTransitions', async () => {
    const h = harness();
    await h.start();
    const writesAfterAcquire = h.api.writes.length;
    await h.advance(6_000);
    expect(h.api.writes.length - writesAfterAcquire).toBe(3);
    expect(h.api.lease?.spec).toMatchObject({
      holderIdentity: 'me',
      leaseTransitions: 0,
      acquireTime: '2024-01-01T00:00:00.000000Z',
      renewTime: '2024-01-01T00:00:06.000000Z',
    });
    expect(h.events).toEqual(['me started @0']);
  });

  it('loses leadership when renewals fail until the renew deadline, calling onStoppedLeading once', async () => {
    const h = harness();
    await h.start();
    await h.advance(4_000); // renewed at 2000 and 4000
    h.api.failWith = apiError(500);
    await h.advance(9_900);
    expect(h.elector.isLeader()).toBe(true);
    await h.advance(200);
    expect(h.elector.isLeader()).toBe(false);
    expect(h.events).toEqual(['me started @0', 'me stopped @14000']);
    // Campaigning goes on; once the API answers again the lease (still ours) is renewed.
    h.api.failWith = undefined;
    await h.advance(2_000);
    expect(h.elector.isLeader()).toBe(true);
    expect(h.events).toEqual(['me started @0', 'me stopped @14000', 'me started @16000']);
  });

  it('loses leadership at the renew deadline even while a renewal request hangs', async () => {
    const h = harness();
    await h.start();
    h.api.hang = true;
    await h.advance(10_100);
    expect(h.elector.isLeader()).toBe(false);
    expect(h.events).toEqual(['me started @0', 'me stopped @10000']);
  });

  it('never lets two candidates lead at once: the old leader stops before the follower may take over', async () => {
    const clock = new FakeClock();
    const shared = new FakeLeaseApi();
    const events: string[] = [];
    const partitioned = new FakeLeaseApi();
    partitioned.failWith = apiError(503);
    let aApi: LeaseApi = shared;
    const viaA: LeaseApi = {
      readNamespacedLease: (r) => aApi.readNamespacedLease(r),
      createNamespacedLease: (r) => aApi.createNamespacedLease(r),
      replaceNamespacedLease: (r) => aApi.replaceNamespacedLease(r),
    };
    const a = harness({ identity: 'a', via: viaA, clock, events });
    const b = harness({ identity: 'b', api: shared, clock, events });
    await a.start();
    await b.start();
    await a.advance(5_000);
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([true, false]);
    aApi = partitioned; // a can no longer reach the API server; its last renewal was at 4 s
    await a.advance(30_000);
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([false, true]);
    expect(events.map((e) => e.replace(/ @\d+$/, ''))).toEqual(['a started', 'a stopped', 'b started']);
    const at = events.map((e) => Number(/@(\d+)$/.exec(e)?.[1]));
    expect(at[1]).toBe(14_000); // a's renew deadline after its last renewal
    expect(at[2]).toBeGreaterThanOrEqual(4_000 + 15_000); // not before the lease duration after a's last renewal
    expect(shared.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('release empties the holder, calls onStoppedLeading, ends run() and writes no more', async () => {
    const h = harness();
    const running = h.elector.run();
    h.clock.advance(0);
    await h.advance(2_000);
    await h.elector.release();
    await running;
    expect(h.elector.isLeader()).toBe(false);
    expect(h.events).toEqual(['me started @0', 'me stopped @2000']);
    expect(h.api.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1, leaseTransitions: 0 });
    const writes = h.api.writes.length;
    await h.advance(10_000);
    expect(h.api.writes.length).toBe(writes);
    expect(h.clock.pendingTimers()).toBe(0);
  });

  it('release by a follower leaves the holder alone', async () => {
    const h = harness();
    h.api.writeAsOther('other', 5);
    await h.start();
    await h.elector.release();
    expect(h.api.lease?.spec).toMatchObject({ holderIdentity: 'other', leaseTransitions: 5 });
    expect(h.events).toEqual([]);
  });

  it('refuses timings that would let two leaders overlap', () => {
    const base = {
      api: new FakeLeaseApi(),
      namespace: NS,
      name: NAME,
      identity: 'me',
      clock: new FakeClock(),
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(RangeError);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(RangeError);
    expect(
      () => new LeaderElector({ ...base, leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 }),
    ).not.toThrow();
  });
});

describe('leader election flags', () => {
  it('are off by default', () => {
    expect(loadConfig({}, {}).leaderElection).toBeUndefined();
    expect(loadConfig({ 'leader-elect': 'false' }, {}).leaderElection).toBeUndefined();
  });

  it('default to the Lease poolpilot-leader in $POD_NAMESPACE (else default) with 15s/10s/2s', () => {
    expect(loadConfig({ 'leader-elect': 'true' }, {}).leaderElection).toEqual({
      namespace: 'default',
      id: 'poolpilot-leader',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    expect(loadConfig({}, { POOLPILOT_LEADER_ELECT: 'true', POD_NAMESPACE: 'ops' }).leaderElection?.namespace).toBe(
      'ops',
    );
    expect(
      loadConfig({ 'leader-elect': 'true', 'leader-election-namespace': 'infra' }, { POD_NAMESPACE: 'ops' })
        .leaderElection?.namespace,
    ).toBe('infra');
  });

  it('take short timings for tests', () => {
    const config = loadConfig(
      {
        'leader-elect': 'true',
        'leader-election-id': 'pp',
        'leader-election-lease-duration': '4s',
        'leader-election-renew-deadline': '3s',
        'leader-election-retry-period': '500ms',
      },
      {},
    );
    expect(config.leaderElection).toMatchObject({
      id: 'pp',
      leaseDurationMs: 4000,
      renewDeadlineMs: 3000,
      retryPeriodMs: 500,
    });
  });

  it.each([
    [{ 'leader-elect': 'yes' }, /--leader-elect .*expected true or false, got 'yes'/],
    [
      { 'leader-elect': 'true', 'leader-election-renew-deadline': '15s' },
      /--leader-election-renew-deadline .*less than --leader-election-lease-duration/,
    ],
    [
      { 'leader-elect': 'true', 'leader-election-retry-period': '10s' },
      /--leader-election-retry-period .*less than --leader-election-renew-deadline/,
    ],
    [
      { 'leader-elect': 'true', 'leader-election-lease-duration': '4500ms' },
      /--leader-election-lease-duration .*whole seconds/,
    ],
    [
      { 'leader-elect': 'true', 'leader-election-retry-period': 'soon' },
      /--leader-election-retry-period .*positive duration/,
    ],
    [{ 'leader-elect': 'true', 'leader-election-id': 'Leader!' }, /--leader-election-id .*Lease name/],
  ])('refuse %j naming the flag', (flags, message) => {
    expect(() => loadConfig(flags, {})).toThrow(ConfigError);
    expect(() => loadConfig(flags, {})).toThrow(message);
  });
});
