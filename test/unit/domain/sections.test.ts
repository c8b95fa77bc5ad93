import { describe, expect, it } from '@jest/globals';
import { targetContainer, wholeNumber } from '../../../src/domain/sections.js';

describe('targetContainer', () => {
  const containers = [{ name: 'sidecar' }, { name: 'api' }];
  it.each<[string, string | undefined, string | undefined]>([
    ['no name: the first container', undefined, 'sidecar'],
    ['a name: that container', 'api', 'api'],
    ['a name no container has: none', 'worker', undefined],
  ])('%s', (_label, wanted, expected) => {
    expect(targetContainer(containers, wanted)?.name).toBe(expected);
  });
  it('none of an empty list', () => {
    const none: Array<{ name: string }> = [];
    expect(targetContainer(none, undefined)).toBeUndefined();
  });
});

describe('wholeNumber', () => {
  it.each<[string, number | undefined]>([
    ['20', 20],
    [' 20 ', 20],
    ['0', 0],
    ['', undefined],
    ['-1', undefined],
    ['1.5', undefined],
    ['20x', undefined],
    ['1e3', undefined],
  ])('%j reads as %j', (text, expected) => {
    expect(wholeNumber(text)).toBe(expected);
  });
});
