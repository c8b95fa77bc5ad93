import { describe, expect, it } from '@jest/globals';
import type { V1LabelSelector } from '@kubernetes/client-node';
import { labelSelectorText } from '../../../src/adapters/kube.js';

// The Deployment's selector as the labelSelector query parameter of a pod list (spec.delivery.refresh AnnotatePods).

describe('labelSelectorText', () => {
  it.each<[string, V1LabelSelector, string]>([
    ['matchLabels', { matchLabels: { app: 'api', tier: 'web' } }, 'app=api,tier=web'],
    [
      'every operator',
      {
        matchLabels: { app: 'api' },
        matchExpressions: [
          { key: 'track', operator: 'In', values: ['stable', 'canary'] },
          { key: 'zone', operator: 'NotIn', values: ['b'] },
          { key: 'pool-tuned', operator: 'Exists' },
          { key: 'legacy', operator: 'DoesNotExist' },
        ],
      },
      'app=api,track in (stable,canary),zone notin (b),pool-tuned,!legacy',
    ],
    ['empty: every pod (annotatePods refuses it)', {}, ''],
  ])('%s', (_name, selector, text) => {
    expect(labelSelectorText(selector)).toBe(text);
  });

  it('refuses an operator the API does not know, rather than select more pods', () => {
    expect(() => labelSelectorText({ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] })).toThrow(
      /label selector operator Gt is not In, NotIn, Exists or DoesNotExist/,
    );
  });
});
