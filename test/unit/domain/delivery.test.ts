import { describe, expect, it } from '@jest/globals';
import type { DeliveryRecord } from '../../../src/api/v1alpha1/poolpolicy.js';
import {
  checkDelivery,
  deliveryMount,
  drainingValues,
  excessOver,
  rolloutDrainingValues,
  type PodReport,
  type PodReports,
  type PodTemplateFacts,
} from '../../../src/domain/delivery.js';

const T0 = new Date('2026-11-25T10:00:00Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
const record: DeliveryRecord<Date> = {
  configMap: 'api-pools',
  key: 'pools.env',
  writtenAt: T0,
  written: { DB_POOL_SIZE: 16, DB_MAX_OVERFLOW: 32 },
  replaced: { DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 20 },
  pods: [],
};
const pod = (pool: number, overflow: number, draining?: number): PodReport => ({
  settings: new Map([
    ['DB_POOL_SIZE', { min: pool, max: pool }],
    ['DB_MAX_OVERFLOW', { min: overflow, max: overflow }],
  ]),
  draining,
});
const reports = (pods: Record<string, PodReport>): PodReports => ({ valid: true, pods: new Map(Object.entries(pods)) });
const check = (r: PodReports, seconds: number, base = record, readyPods = 0) =>
  checkDelivery({
    record: base,
    reports: r,
    now: at(seconds),
    timeoutMs: 180_000,
    readyPods,
    gauges: ['db_pool_size'],
  });

describe('checkDelivery', () => {
  it.each<[string, PodReports, number, string, RegExp]>([
    [
      'every pod runs it',
      reports({ 'api-a-x': pod(16, 32, 0), 'api-a-y': pod(16, 32) }),
      5,
      'Applied',
      /every pod \(2\) reported it by 2026-11-25T10:00:05Z/,
    ],
    [
      'one pod still on the old values',
      reports({ 'api-a-x': pod(16, 32), 'api-a-y': pod(10, 20) }),
      5,
      'Pending',
      /, 5s ago; 1 of 2 pods run it \(waiting for api-a-y\)/,
    ],
    ['an old pool still draining', reports({ 'api-a-x': pod(16, 32, 3) }), 5, 'Pending', /0 of 1 pods run it/],
    [
      'processes of a pod disagree',
      {
        valid: true,
        pods: new Map([
          [
            'api-a-x',
            {
              settings: new Map([
                ['DB_POOL_SIZE', { min: 10, max: 16 }],
                ['DB_MAX_OVERFLOW', { min: 32, max: 32 }],
              ]),
              draining: undefined,
            },
          ],
        ]),
      },
      5,
      'Pending',
      /0 of 1/,
    ],
    ['no pod reports', reports({}), 5, 'Pending', /no pod reports db_pool_size/],
    [
      'Prometheus down',
      { valid: false, message: 'connection refused' },
      5,
      'Pending',
      /could not be read: connection refused/,
    ],
    [
      'past the timeout',
      reports({ 'api-a-x': pod(10, 20) }),
      181,
      'NotConfirmed',
      /not confirmed within 3m0s: 0 of 1 pods run it .* Check that the app re-reads api-pools\/pools.env/,
    ],
  ])('%s: %s', (_, r, seconds, state, message) => {
    const view = check(r, seconds);
    expect(view.state).toBe(state);
    expect(view.message).toMatch(message);
    expect(view.record.confirmedAt).toEqual(state === 'Applied' ? at(seconds) : undefined);
  });

  it.each<[string, number, string, RegExp]>([
    ['2 pods report it, 2 ready', 2, 'Applied', /every pod \(2\) reported it/],
    ['2 pods report it, 1 ready (a pod starting reports before it is ready)', 1, 'Applied', /every pod \(2\)/],
    [
      '2 pods report it, 3 ready: the third may still hold the old pools',
      3,
      'Pending',
      /2 of 3 pods run it \(waiting for 1 of the 3 ready pods, which report nothing\)/,
    ],
  ])('%s', (_, readyPods, state, message) => {
    const view = check(reports({ 'api-a-x': pod(16, 32), 'api-a-y': pod(16, 32) }), 5, record, readyPods);
    expect(view.state).toBe(state);
    expect(view.message).toMatch(message);
  });

  it('records when each pod first ran it, and keeps that time', () => {
    const first = check(reports({ 'api-a-x': pod(16, 32), 'api-a-y': pod(10, 20) }), 2);
    expect(first.record.pods).toEqual([{ name: 'api-a-x', reportedAt: at(2) }]);
    const second = check(reports({ 'api-a-x': pod(16, 32), 'api-a-y': pod(16, 32) }), 4, first.record);
    expect(second.state).toBe('Applied');
    expect(second.record.pods).toEqual([
      { name: 'api-a-x', reportedAt: at(2) },
      { name: 'api-a-y', reportedAt: at(4) },
    ]);
  });

  it('an Applied delivery stays Applied without asking again, with a message that does not move', () => {
    const applied = { ...record, confirmedAt: at(3) };
    expect(check(reports({}), 500, applied)).toEqual({
      state: 'Applied',
      message:
        'DB_MAX_OVERFLOW=32 DB_POOL_SIZE=16 written to api-pools/pools.env at 2026-11-25T10:00:00Z; every pod reported it by 2026-11-25T10:00:03Z',
      record: applied,
    });
  });

  it('a NotConfirmed message does not move while nothing changes (no status write per pass)', () => {
    const r = reports({ 'api-a-x': pod(10, 20) });
    expect(check(r, 200).message).toBe(check(r, 900).message);
  });
});

describe('drainingValues', () => {
  it('counts the replaced values until the delivery is Applied', () => {
    expect(drainingValues(undefined)).toEqual({});
    expect(drainingValues(record)).toEqual({ DB_POOL_SIZE: 10, DB_MAX_OVERFLOW: 20 });
    expect(drainingValues({ ...record, confirmedAt: at(1) })).toEqual({});
  });
});

describe('rolloutDrainingValues', () => {
  const current = { DB_POOL_SIZE: 8, DB_MAX_OVERFLOW: 32 };
  const change = (...changes: Array<[string, number, number]>) => ({
    changes: changes.map(([setting, from, to]) => ({ setting, from, to })),
  });
  it.each<[string, Parameters<typeof rolloutDrainingValues>[0], boolean, Record<string, number>]>([
    ['no old pod remains', change(['DB_POOL_SIZE', 16, 8]), false, {}],
    ['no change recorded', undefined, true, {}],
    ['the last change was PgBouncer only (no env setting replaced)', change(['default_pool_size', 20, 40]), true, {}],
    [
      'old pods remain after a shrink: what their DB_POOL_SIZE holds above the new one',
      change(['DB_POOL_SIZE', 16, 8]),
      true,
      { DB_POOL_SIZE: 8 },
    ],
    [
      'old pods remain after a growth: they hold less than the new values, nothing extra',
      change(['DB_POOL_SIZE', 4, 8], ['DB_MAX_OVERFLOW', 16, 32]),
      true,
      {},
    ],
    [
      'pool shrunk, overflow grown: only the pool counts',
      change(['DB_POOL_SIZE', 12, 8], ['DB_MAX_OVERFLOW', 16, 32]),
      true,
      { DB_POOL_SIZE: 4 },
    ],
  ])('%s', (_, lastChange, oldPodsRemain, expected) => {
    expect(rolloutDrainingValues(lastChange, current, oldPodsRemain)).toEqual(expected);
  });
});

describe('excessOver', () => {
  it('keeps what each old value holds above the current one, and drops the rest', () => {
    expect(excessOver({ A: 10, B: 5, C: 7 }, { A: 4, B: 9 })).toEqual({ A: 6 });
  });
});

describe('deliveryMount', () => {
  const volume = { name: 'pools', configMap: { name: 'api-pools' } };
  const app = (mounts: PodTemplateFacts['containers'][number]['volumeMounts']) => ({
    name: 'app',
    volumeMounts: mounts,
  });
  it.each<[string, PodTemplateFacts, { ok: true; container: string; path: string } | RegExp]>([
    [
      'a directory mount',
      { volumes: [volume], containers: [app([{ name: 'pools', mountPath: '/etc/pools/' }])] },
      { ok: true, container: 'app', path: '/etc/pools/pools.env' },
    ],
    [
      'an item renamed',
      {
        volumes: [{ name: 'pools', configMap: { name: 'api-pools', items: [{ key: 'pools.env', path: 'db.env' }] } }],
        containers: [app([{ name: 'pools', mountPath: '/c' }])],
      },
      { ok: true, container: 'app', path: '/c/db.env' },
    ],
    [
      'a projected volume, second container',
      {
        volumes: [
          {
            name: 'all',
            projected: { sources: [{ configMap: { name: 'other' } }, { configMap: { name: 'api-pools' } }] },
          },
        ],
        containers: [app([]), { name: 'side', volumeMounts: [{ name: 'all', mountPath: '/p' }] }],
      },
      { ok: true, container: 'side', path: '/p/pools.env' },
    ],
    [
      'items without the key',
      {
        volumes: [{ name: 'pools', configMap: { name: 'api-pools', items: [{ key: 'other', path: 'o' }] } }],
        containers: [app([{ name: 'pools', mountPath: '/c' }])],
      },
      /no volume of deployment api holds key pools.env of configmap api-pools/,
    ],
    ['no volume at all', { containers: [app(undefined)] }, /no volume of deployment api holds key pools.env/],
    [
      'a volume nobody mounts',
      { volumes: [volume], containers: [app([])] },
      /no container of deployment api mounts the volume pools holding configmap api-pools; add a volumeMount/,
    ],
    [
      'a subPath mount',
      { volumes: [volume], containers: [app([{ name: 'pools', mountPath: '/etc/pools.env', subPath: 'pools.env' }])] },
      /mounts configmap api-pools with subPath, which the kubelet never updates/,
    ],
  ])('%s', (_, podSpec, expected) => {
    const mount = deliveryMount('api', podSpec, 'api-pools', 'pools.env');
    if (expected instanceof RegExp) {
      expect(mount.ok).toBe(false);
      if (!mount.ok) expect(mount.message).toMatch(expected);
    } else expect(mount).toEqual(expected);
  });
});
