import { describe, expect, it } from '@jest/globals';
import { compareResourceVersions } from '../../../src/runtime/resource-version.js';

describe('compareResourceVersions (KEP-5504)', () => {
  it.each([
    ['1', '2', -1],
    ['9', '10', -1],
    ['100', '99', 1],
    ['123456789012345678901234567890', '123456789012345678901234567891', -1],
    ['42', '42', 0],
    ['0', '1', undefined],
    ['01', '1', undefined],
    ['', '1', undefined],
    ['1', 'abc', undefined],
    ['-5', '3', undefined],
    ['1.5', '2', undefined],
  ])('%p vs %p → %p', (a, b, expected) => {
    expect(compareResourceVersions(a, b)).toBe(expected);
  });
});
