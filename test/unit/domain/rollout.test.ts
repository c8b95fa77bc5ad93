import { describe, expect, it } from '@jest/globals';
import {
  lastAppliedBy,
  oldPodsRemain,
  rolloutCompletedAt,
  type ManagedFieldsFacts,
  type RolloutFacts,
} from '../../../src/domain/rollout.js';

const done = (over: Partial<NonNullable<RolloutFacts['status']>> = {}): RolloutFacts => ({
  metadata: { generation: 3 },
  spec: { replicas: 2 },
  status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2, ...over },
});

describe('rolloutCompletedAt', () => {
  it.each<[string, RolloutFacts]>([
    ['latest generation not observed yet', done({ observedGeneration: 2 })],
    ['a replica not updated yet', done({ updatedReplicas: 1 })],
    ['a replica not available yet', done({ availableReplicas: 1 })],
    ['old replicas still running', done({ replicas: 3 })],
    ['no status at all', { metadata: { generation: 1 }, spec: { replicas: 1 } }],
  ])('is in progress when %s', (_label, deployment) => {
    expect(rolloutCompletedAt(deployment)).toBeUndefined();
  });

  it.each<[string, RolloutFacts, Date]>([
    [
      'the NewReplicaSetAvailable time, from a watch (string)',
      done({
        conditions: [{ type: 'Progressing', reason: 'NewReplicaSetAvailable', lastUpdateTime: '2026-01-02T03:04:05Z' }],
      }),
      new Date('2026-01-02T03:04:05Z'),
    ],
    [
      'the NewReplicaSetAvailable time, from a typed call (Date)',
      done({
        conditions: [
          { type: 'Progressing', reason: 'NewReplicaSetAvailable', lastUpdateTime: new Date('2026-01-02T03:04:05Z') },
        ],
      }),
      new Date('2026-01-02T03:04:05Z'),
    ],
    ['the epoch when no such condition exists', done(), new Date(0)],
    [
      'the epoch when the time is garbage',
      done({ conditions: [{ type: 'Progressing', reason: 'NewReplicaSetAvailable', lastUpdateTime: 'yesterday' }] }),
      new Date(0),
    ],
    [
      'complete for zero replicas',
      { metadata: { generation: 1 }, spec: { replicas: 0 }, status: { observedGeneration: 1 } },
      new Date(0),
    ],
  ])('when complete is %s', (_label, deployment, expected) => {
    expect(rolloutCompletedAt(deployment)).toEqual(expected);
  });
});

describe('lastAppliedBy', () => {
  const T = '2025-01-01T12:00:00Z';
  it.each<[string, ManagedFieldsFacts | undefined, Date | undefined]>([
    ['no object', undefined, undefined],
    ['no managedFields', { metadata: {} }, undefined],
    [
      'only other managers',
      { metadata: { managedFields: [{ manager: 'kubectl-edit', operation: 'Update', time: T }] } },
      undefined,
    ],
    [
      'its Apply entry (a string from a watch)',
      {
        metadata: {
          managedFields: [
            { manager: 'kubectl-edit', operation: 'Update', time: '2025-01-02T00:00:00Z' },
            { manager: 'poolpilot', operation: 'Apply', time: T },
          ],
        },
      },
      new Date(T),
    ],
    [
      'its Apply entry (a Date from a typed call)',
      { metadata: { managedFields: [{ manager: 'poolpilot', operation: 'Apply', time: new Date(T) }] } },
      new Date(T),
    ],
    [
      'an Update by the same name is not an apply',
      { metadata: { managedFields: [{ manager: 'poolpilot', operation: 'Update', time: T }] } },
      undefined,
    ],
    [
      'another poolpilot manager (rollout annotation) does not count',
      { metadata: { managedFields: [{ manager: 'poolpilot-rollout', operation: 'Apply', time: T }] } },
      undefined,
    ],
    ['no time', { metadata: { managedFields: [{ manager: 'poolpilot', operation: 'Apply' }] } }, undefined],
    [
      'an unparsable time',
      { metadata: { managedFields: [{ manager: 'poolpilot', operation: 'Apply', time: 'soon' }] } },
      undefined,
    ],
  ])('%s', (_label, object, expected) => {
    expect(lastAppliedBy(object, 'poolpilot')).toEqual(expected);
  });
});

describe('oldPodsRemain', () => {
  it.each<[string, RolloutFacts, boolean]>([
    ['every pod runs the latest template', done(), false],
    ['the latest generation not observed yet', done({ observedGeneration: 2 }), true],
    ['an old pod still runs beside the updated ones', done({ replicas: 3 }), true],
    ['an old pod not yet replaced (maxSurge 0)', done({ updatedReplicas: 1 }), true],
    ['a scale-up: a new pod of the latest template not available yet', done({ availableReplicas: 1 }), false],
  ])('%s: %s', (_label, deployment, expected) => {
    expect(oldPodsRemain(deployment)).toBe(expected);
  });
});
