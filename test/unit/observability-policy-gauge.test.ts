import { describe, expect, it } from '@jest/globals';
import { Gauge, Registry } from 'prom-client';
import { PolicyGauge } from '../../src/observability/metrics.js';

describe('PolicyGauge', () => {
  async function series(gauge: Gauge<'policy' | 'reason'>): Promise<string[]> {
    return (await gauge.get()).values.map((v) => `${v.labels.policy ?? ''}/${v.labels.reason ?? ''}=${v.value}`).sort();
  }

  it('keeps exactly the series of the latest show per policy, and none after forget', async () => {
    const gauge = new Gauge({
      name: 'test_condition',
      help: 'h',
      labelNames: ['policy', 'reason'] as const,
      registers: [new Registry()],
    });
    const tracked = new PolicyGauge(gauge);
    tracked.show('ns/a', [{ labels: { policy: 'a', reason: 'AtMax' }, value: 1 }]);
    tracked.show('ns/b', [{ labels: { policy: 'b', reason: 'DeadBand' }, value: 1 }]);
    tracked.show('ns/a', [{ labels: { policy: 'a', reason: 'Scaled' }, value: 1 }]);
    expect(await series(gauge)).toEqual(['a/Scaled=1', 'b/DeadBand=1']);
    tracked.forget('ns/a');
    tracked.forget('ns/b');
    expect(await series(gauge)).toEqual([]);
  });
});
