import { describe, expect, it } from '@jest/globals';
import { chosenLimits, cpuMillis, deployedLimits, memoryBytes } from '../../../bench/container-limits.js';

describe('the benchmark reads the operator container limits as Kubernetes does', () => {
  it.each([
    ['256Mi', 256 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['512Ki', 512 * 2 ** 10],
    ['1000000', 1_000_000],
  ])('memory %s is %d bytes', (quantity, bytes) => {
    expect(memoryBytes(quantity)).toBe(bytes);
  });

  it.each([
    ['500m', 500],
    ['2', 2000],
  ])('cpu %s is %d thousandths of a core', (quantity, millis) => {
    expect(cpuMillis(quantity)).toBe(millis);
  });

  it.each(['256M', '1.5Gi', '', 'lots'])('refuses memory "%s", naming the accepted forms', (quantity) => {
    expect(() => memoryBytes(quantity)).toThrow(/expected a number with Ki, Mi or Gi/);
  });

  it.each(['0.5', '500u', ''])('refuses cpu "%s", naming the accepted forms', (quantity) => {
    expect(() => cpuMillis(quantity)).toThrow(/expected 500m or a whole number of cores/);
  });

  it('takes the limits deploy/core/deployment.yaml gives the operator', () => {
    expect(deployedLimits()).toEqual({ memoryBytes: 256 * 2 ** 20, cpuMillis: 500 });
  });

  it('BENCH_CONTAINER_LIMITS: the deploy file by default, none, or memory and cpu given', () => {
    expect(chosenLimits('deploy')?.source).toBe('deploy/core/deployment.yaml');
    expect(chosenLimits('none')).toBeUndefined();
    expect(chosenLimits('512Mi,1')).toEqual({
      limits: { memoryBytes: 512 * 2 ** 20, cpuMillis: 1000 },
      source: 'BENCH_CONTAINER_LIMITS',
    });
  });

  it.each(['512Mi', '512Mi,1,2', 'big'])('refuses BENCH_CONTAINER_LIMITS=%s, naming the forms', (setting) => {
    expect(() => chosenLimits(setting)).toThrow(/expected deploy, none or <memory>,<cpu>/);
  });
});
