import { describe, expect, it } from '@jest/globals';
import { OwnWrites } from '../../../src/runtime/own-writes.js';

const written = (resourceVersion: string): object => ({
  metadata: { name: 'api', namespace: 'prod', resourceVersion },
});
const cached = (resourceVersion: string): { metadata: { resourceVersion: string } } => ({
  metadata: { resourceVersion },
});

describe('OwnWrites', () => {
  it('lags while the cache shows an older version than the write returned, then forgets the write', () => {
    const writes = new OwnWrites(() => 0);
    writes.record('PoolPolicy', written('11'));
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('10'))).toBe(true);
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('11'))).toBe(false);
    expect(writes.size()).toBe(0);
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('10'))).toBe(false);
  });

  it('a newer cached version (someone wrote after us) is caught up', () => {
    const writes = new OwnWrites(() => 0);
    writes.record('PoolPolicy', written('11'));
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('12'))).toBe(false);
  });

  it('keeps the newest of several writes, and tells kinds, namespaces and names apart', () => {
    const writes = new OwnWrites(() => 0);
    writes.record('Deployment', written('20'));
    writes.record('Deployment', written('19'));
    expect(writes.lagging('ConfigMap', 'prod', 'api', cached('1'))).toBe(false);
    expect(writes.lagging('Deployment', 'other', 'api', cached('1'))).toBe(false);
    expect(writes.lagging('Deployment', 'prod', 'web', cached('1'))).toBe(false);
    expect(writes.lagging('Deployment', 'prod', 'api', cached('19'))).toBe(true);
  });

  it('trusts the cache when the object is gone or the versions are not comparable', () => {
    const writes = new OwnWrites(() => 0);
    writes.record('PoolPolicy', written('11'));
    expect(writes.lagging('PoolPolicy', 'prod', 'api', undefined)).toBe(false);
    writes.record('PoolPolicy', written('11'));
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('a7f'))).toBe(false);
    expect(writes.size()).toBe(0);
  });

  it('ignores a write result without name or version (a writer that returns nothing)', () => {
    const writes = new OwnWrites(() => 0);
    writes.record('PoolPolicy', undefined);
    writes.record('PoolPolicy', { metadata: { name: 'api' } });
    writes.record('PoolPolicy', { metadata: { resourceVersion: '3' } });
    expect(writes.size()).toBe(0);
  });

  it('forgets a write after maxAgeMs: a cache that far behind is trusted, and records of objects no pass reads again go', () => {
    let now = 0;
    const writes = new OwnWrites(() => now, 1000);
    writes.record('PoolPolicy', written('11'));
    writes.record('Deployment', { metadata: { name: 'gone-target', namespace: 'prod', resourceVersion: '5' } });
    now = 999;
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('10'))).toBe(true);
    now = 1000;
    expect(writes.lagging('PoolPolicy', 'prod', 'api', cached('10'))).toBe(false);
    // The Deployment's record is never looked up again; the next write sweeps it.
    expect(writes.size()).toBe(1);
    writes.record('ConfigMap', written('12'));
    expect(writes.size()).toBe(1);
  });
});
