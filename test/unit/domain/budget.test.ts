import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import {
  allocate,
  capFor,
  claimsOf,
  connectionsAt,
  heldConnections,
  largestFitting,
  rolloutUnavailable,
  type Claim,
} from '../../../src/domain/budget.js';
import { parsePoolPolicySpec } from '../../../src/api/v1alpha1/poolpolicy.js';

const overflow2 = { follower: { ratio: 2, bounds: { min: 0, max: 100 } } };

function claim(policy: string, over: Partial<Claim> = {}): Claim {
  return { policy, units: 1, shape: {}, bounds: { min: 10, max: 50 }, wanted: 20, current: 20, ...over };
}

describe('connectionsAt', () => {
  it.each([
    [{}, 20, 20],
    [overflow2, 20, 60],
    [overflow2, 60, 160], // overflow clamped at its max 100
    [{ extra: 5 }, 20, 25],
  ])('shape %j at %i holds %i connections per unit', (shape, value, expected) => {
    expect(connectionsAt(shape, value)).toBe(expected);
  });
});

describe('allocate', () => {
  it('gives everyone what they want when it fits', () => {
    const a = allocate(90, [claim('a', { units: 3, shape: overflow2, wanted: 10 })]);
    expect(a.demand).toBe(90);
    expect(a.shares.get('a')).toEqual({ cap: 10, wants: 90, gets: 90 });
  });

  it('the runbook example: 3 replicas × 4 workers × (20 + 40) = 720 wanted against 97 connections → held at min', () => {
    const a = allocate(97, [claim('api', { units: 12, shape: overflow2, bounds: { min: 2, max: 50 }, wanted: 20 })]);
    expect(a.demand).toBe(720);
    // min 2 → 2 + 4 = 6 per process, 72 in all; the share above min is all of what is left.
    const share = a.shares.get('api');
    expect(share?.cap).toBe(2);
    expect(share?.gets).toBeLessThanOrEqual(97);
  });

  it('shares what is left above the minimums in proportion to what each wants above its minimum', () => {
    const a = allocate(100, [claim('a', { wanted: 50 }), claim('b', { wanted: 30 })]);
    // mins 10 + 10; left 80; a wants 40 above min, b 20 → a gets 10 + 53, b 10 + 26.
    expect(a.shares.get('a')?.cap).toBe(50);
    expect(a.shares.get('b')?.cap).toBe(30);
    const tight = allocate(60, [claim('a', { wanted: 50 }), claim('b', { wanted: 30 })]);
    expect(tight.shares.get('a')?.cap).toBe(36); // 10 + 40 × 40/60 = 36.7
    expect(tight.shares.get('b')?.cap).toBe(23); // 10 + 40 × 20/60 = 23.3
    expect((tight.shares.get('a')?.gets ?? 0) + (tight.shares.get('b')?.gets ?? 0)).toBeLessThanOrEqual(60);
  });

  it('holds everyone at min and says so when even the minimums do not fit', () => {
    const a = allocate(15, [claim('a'), claim('b')]);
    expect(a.minimumsFit).toBe(false);
    expect(a.minimum).toBe(20);
    expect([...a.shares.values()].map((s) => s.cap)).toEqual([10, 10]);
  });
});

describe('capFor', () => {
  it('is cut by what the others hold now, even when the fair share is larger', () => {
    const self = claim('a', { wanted: 40, current: 20 });
    const other = claim('b', { wanted: 10, current: 70 }); // holds more than its fair share until it shrinks
    const cap = capFor(100, self, [other]);
    expect(cap).toEqual({ cap: 30, fair: 40, limit: 30, needs: 40, free: 30, minimumsFit: true });
  });

  it('brings a policy back inside when the others grew (an HPA maxReplicas rise)', () => {
    const self = claim('a', { units: 4, wanted: 20, current: 20 });
    const cap = capFor(100, self, [claim('b', { units: 2, wanted: 10, current: 10 })]);
    expect(cap.cap).toBe(20);
    const after = capFor(100, claim('a', { units: 8, wanted: 20, current: 20 }), [
      claim('b', { units: 2, wanted: 10, current: 10 }),
    ]);
    expect(after.cap).toBe(10); // 8 × 10 + 2 × 10 = 100
  });

  it('never goes below min', () => {
    expect(capFor(5, claim('a'), [claim('b', { current: 50 })]).cap).toBe(10);
  });
});

describe('largestFitting', () => {
  it.each([
    [100, 50, 50],
    [35, 50, 35],
    [5, 50, 10],
  ])('fits %i connections with wanted %i at %i', (allowed, upTo, expected) => {
    expect(largestFitting(claim('a'), upTo, allowed)).toBe(expected);
  });
});

const claimArb = (policy: string): fc.Arbitrary<Claim> =>
  fc
    .record({
      min: fc.integer({ min: 1, max: 50 }),
      span: fc.integer({ min: 0, max: 100 }),
      units: fc.integer({ min: 0, max: 40 }),
      ratio: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      extra: fc.integer({ min: 0, max: 5 }),
      wanted: fc.integer({ min: 0, max: 200 }),
      current: fc.integer({ min: 0, max: 200 }),
    })
    .map(({ min, span, units, ratio, extra, wanted, current }) => ({
      policy,
      units,
      bounds: { min, max: min + span },
      shape: {
        extra,
        ...(ratio === undefined ? {} : { follower: { ratio, bounds: { min: 0, max: (min + span) * ratio } } }),
      },
      wanted,
      current: Math.min(Math.max(current, min), min + span),
    }));

describe('allocation properties', () => {
  const claimsArb = fc
    .integer({ min: 1, max: 6 })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => claimArb(`ns/p${i}`))));

  it('never exceeds the capacity when the minimums fit, and keeps every cap within [min, max] and ≤ wanted', () => {
    fc.assert(
      fc.property(claimsArb, fc.integer({ min: 0, max: 20000 }), (claims, capacity) => {
        const allocation = allocate(capacity, claims);
        const total = [...allocation.shares.values()].reduce((sum, s) => sum + s.gets, 0);
        if (allocation.minimumsFit) expect(total).toBeLessThanOrEqual(capacity);
        for (const c of claims) {
          const cap = allocation.shares.get(c.policy)?.cap ?? Number.NaN;
          expect(cap).toBeGreaterThanOrEqual(c.bounds.min);
          expect(cap).toBeLessThanOrEqual(c.bounds.max);
          expect(cap).toBeLessThanOrEqual(Math.max(c.bounds.min, c.wanted));
        }
      }),
    );
  });

  it('reconciling policies one after another in any order never holds more than the capacity when it starts inside', () => {
    fc.assert(
      fc.property(
        claimsArb,
        fc.integer({ min: 0, max: 20000 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (initial, capacity, order) => {
          const claims = initial.map((c) => ({ ...c, current: c.bounds.min }));
          fc.pre(heldConnections(claims) <= capacity);
          for (const pick of order) {
            const index = pick % claims.length;
            const self = claims[index];
            if (!self) continue;
            const others = claims.filter((_, i) => i !== index);
            const { cap } = capFor(capacity, self, others);
            claims[index] = {
              ...self,
              current: Math.min(Math.max(self.wanted, self.bounds.min), cap, self.bounds.max),
            };
            expect(heldConnections(claims)).toBeLessThanOrEqual(capacity);
          }
        },
      ),
    );
  });
});

describe('rolloutUnavailable: pods a rolling update takes down before their replacements are ready', () => {
  it.each([
    ['the default 25 % of 4, rounded down', undefined, 4, 1],
    ['the default 25 % of 2 rounds down to 0 (the default surge of 1 keeps the rollout moving)', undefined, 2, 0],
    [
      'maxSurge 0, maxUnavailable 1 (the demo)',
      { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      2,
      1,
    ],
    [
      'both 0 after rounding: one at a time, as the deployment controller does',
      { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: '10%' } },
      4,
      1,
    ],
    ['maxUnavailable "50%"', { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '50%' } }, 4, 2],
    ['Recreate takes every pod down', { type: 'Recreate' }, 3, 3],
    ['never more than the replicas', { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 9 } }, 3, 3],
  ])('%s', (_label, strategy, replicas, expected) => {
    expect(rolloutUnavailable(replicas, strategy)).toBe(expected);
  });
});

describe('allocate: FillToBudget claims share the capacity by recent demand', () => {
  const fill = (policy: string, demand: number | undefined): Claim =>
    claim(policy, { units: 2, bounds: { min: 5, max: 120 }, wanted: 120, current: 30, fills: true, demand });

  it.each([
    ['equal demand: an even split (the static fair share)', 4, 4, 24, 24],
    ['no demand known on either: an even split', undefined, undefined, 24, 24],
    ['one app at its peak, the other idle: each gets its need, the peak the rest', 40, 4, 43, 5],
    ['the other way round', 2, 40, 5, 43],
    ['needs beyond the capacity: the small need is met in full, the peak takes the rest', 60, 7, 41, 7],
  ])('%s', (_label, demandA, demandB, capA, capB) => {
    const allocation = allocate(97, [fill('a', demandA), fill('b', demandB)]);
    expect(allocation.shares.get('a')?.cap).toBe(capA);
    expect(allocation.shares.get('b')?.cap).toBe(capB);
  });

  it('property: the shares fit the capacity whenever the minimums do, and nobody is below min', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 400 }),
        fc.array(
          fc.record({
            units: fc.integer({ min: 1, max: 6 }),
            demand: fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }),
          }),
          { minLength: 1, maxLength: 5 },
        ),
        (capacity, specs) => {
          const claims = specs.map((s, i) =>
            claim(`p${i}`, {
              units: s.units,
              bounds: { min: 5, max: 120 },
              wanted: 120,
              current: 5,
              fills: true,
              demand: s.demand,
            }),
          );
          const allocation = allocate(capacity, claims);
          const caps = claims.map((c) => allocation.shares.get(c.policy)?.cap ?? -1);
          for (const cap of caps) expect(cap).toBeGreaterThanOrEqual(5);
          if (allocation.minimumsFit)
            expect(claims.reduce((sum, c, i) => sum + c.units * (caps[i] ?? 0), 0)).toBeLessThanOrEqual(capacity);
        },
      ),
    );
  });
});

describe("capFor: a peer's running rollout", () => {
  it('its surge pods leave no room to grow into, but do not lower the correction limit', () => {
    const self = claim('a', { units: 2, wanted: 30, current: 20 });
    const peer = claim('b', { units: 2, wanted: 20, current: 20, surgeUnits: 1 });
    const cap = capFor(100, self, [peer]);
    // Steady: the peer holds 40, so 60 are free for 2 units: 30 each. With its surge pod: 40 free, 20 each.
    expect({ limit: cap.limit, cap: cap.cap }).toEqual({ limit: 30, cap: 20 });
  });
});

describe("capFor: a peer's ConfigMap delivery still draining", () => {
  it('its old pools leave no room to grow into, but do not lower the correction limit', () => {
    const self = claim('a', { units: 2, wanted: 30, current: 20 });
    const peer = claim('b', { units: 2, wanted: 20, current: 20, drainingConnections: 2 * 10 });
    const cap = capFor(100, self, [peer]);
    // Steady: the peer holds 40, so 60 are free: 30 a unit. With its old pools (20 more): 40 free, 20 a unit.
    expect({ limit: cap.limit, cap: cap.cap }).toEqual({ limit: 30, cap: 20 });
  });
});

describe('claimsOf: a ConfigMap delivery not yet Applied', () => {
  it('counts the replaced pools of every process beside the new ones, as connections nobody grows into', () => {
    const parsed = parsePoolPolicySpec({
      targetRef: { name: 'api' },
      database: { poolSize: { min: 5, max: 40 }, maxOverflow: { ratio: 2, min: 0, max: 80 } },
      redis: { maxConnections: { min: 10, max: 50 } },
      processesPerPod: 2,
    });
    if (!parsed.ok) throw new Error(parsed.message);
    const facts = {
      policy: 'ns/api',
      spec: parsed.spec,
      replicas: 3,
      pgbouncerReplicas: 1,
      reservePoolSize: 0,
      wanted: {},
      current: { DB_POOL_SIZE: 16, DB_MAX_OVERFLOW: 32, REDIS_MAX_CONNECTIONS: 50 },
    };
    const draining = (d: Record<string, number> | undefined) =>
      claimsOf({ ...facts, ...(d ? { draining: d } : {}) }).map((c) => [c.backend, c.claim.drainingConnections]);
    expect(draining(undefined)).toEqual([
      ['postgres', 0],
      ['redis', 0],
    ]);
    // 6 processes × (10 + 20) and 6 × 25.
    expect(draining({ DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 20, REDIS_MAX_CONNECTIONS: 25 })).toEqual([
      ['postgres', 180],
      ['redis', 150],
    ]);
  });
});

describe('claimsOf: a Paused policy', () => {
  it('claims exactly its current values: its pools stay open, and it neither grows nor takes a share', () => {
    const parsed = parsePoolPolicySpec({
      targetRef: { name: 'api' },
      mode: 'Paused',
      budgetRef: { name: 'db' },
      database: {
        poolSize: { min: 5, max: 40 },
        maxOverflow: { mode: 'FillToBudget', min: 0, max: 80 },
      },
      redis: { maxConnections: { min: 10, max: 50 } },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    const facts = {
      policy: 'ns/api',
      spec: parsed.spec,
      replicas: 2,
      pgbouncerReplicas: 1,
      reservePoolSize: 0,
      wanted: { REDIS_MAX_CONNECTIONS: 50 },
      current: { DB_POOL_SIZE: 16, DB_MAX_OVERFLOW: 32, REDIS_MAX_CONNECTIONS: 25 },
    };
    const shape = (paused: boolean) =>
      claimsOf({ ...facts, paused }).map(({ backend, claim: c }) => [
        backend,
        c.bounds,
        c.wanted,
        c.current,
        c.demand,
        c.fills,
      ]);
    expect(shape(true)).toEqual([
      ['postgres', { min: 48, max: 48 }, 48, 48, 48, true],
      ['redis', { min: 25, max: 25 }, 25, 25, 25, true],
    ]);
    expect(shape(false)).toEqual([
      ['postgres', { min: 5, max: 120 }, 120, 48, undefined, true],
      ['redis', { min: 10, max: 50 }, 50, 25, undefined, undefined],
    ]);
  });

  it('beside FillToBudget peers, a Paused claim keeps its value and the rest is still shared by demand', () => {
    const paused = {
      ...claim('p', { units: 2, wanted: 20, current: 20 }),
      bounds: { min: 20, max: 20 },
      fills: true,
      demand: 20,
    };
    const busy = { ...claim('a', { units: 2, wanted: 50, current: 10 }), fills: true, demand: 30 };
    const idle = { ...claim('b', { units: 2, wanted: 50, current: 10 }), fills: true, demand: 5 };
    const shares = allocate(100, [paused, busy, idle]).shares;
    // p holds 2 × 20; b needs its min (2 × 10); a, at its peak, takes the 40 left: 20 a unit.
    expect([...shares].map(([policy, share]) => [policy, share.cap])).toEqual([
      ['p', 20],
      ['a', 20],
      ['b', 10],
    ]);
  });
});

describe('claimsOf: PgBouncer default_pool_size', () => {
  const facts = (mode: 'Utilization' | 'FillToBudget') => {
    const parsed = parsePoolPolicySpec({
      targetRef: { name: 'api' },
      budgetRef: { name: 'db' },
      pgbouncer: {
        configMapRef: { name: 'pgbouncer-config' },
        defaultPoolSize: { mode, min: 20, max: 100 },
        maxClientConn: { min: 150, max: 400, ratio: 4 },
        pools: 2,
      },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    return {
      policy: 'ns/api',
      spec: parsed.spec,
      replicas: 2,
      pgbouncerReplicas: 1,
      reservePoolSize: 5,
      wanted: { default_pool_size: 30 },
      current: { default_pool_size: 25 },
    };
  };
  const shape = (mode: 'Utilization' | 'FillToBudget') =>
    claimsOf(facts(mode)).map(({ backend, section, claim: c }) => [backend, section, c.units, c.wanted, c.current]);

  it('Utilization claims what the policy recommends, FillToBudget all its bounds allow; both per server pool', () => {
    expect(shape('Utilization')).toEqual([['postgres', 'pgbouncer', 2, 30, 25]]);
    expect(shape('FillToBudget')).toEqual([['postgres', 'pgbouncer', 2, 100, 25]]);
  });

  it('two filling policies on one budget split it: each gets half of what is left above the minimums', () => {
    const [one] = claimsOf(facts('FillToBudget'));
    if (one === undefined) throw new Error('no claim');
    const two = { ...one.claim, policy: 'ns/other' };
    // (2 pools × (v + 5 reserve)) each: 2 × (20 + 5) × 2 = 100 at the minimums, 94 × 2 = 188 → 94 per policy.
    const { shares } = allocate(188, [one.claim, two]);
    expect(shares.get('ns/api')?.cap).toBe(42);
    expect(shares.get('ns/other')?.cap).toBe(42);
  });
});
