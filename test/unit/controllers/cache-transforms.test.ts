import { describe, expect, it } from '@jest/globals';
import type { V1ConfigMap, V1Deployment } from '@kubernetes/client-node';
import {
  keepReadMetadata,
  keepReadOfConfigMap,
  keepReadOfDeployment,
} from '../../../src/controllers/cache-transforms.js';

const metadata = () => ({
  name: 'api',
  namespace: 'prod',
  resourceVersion: '7',
  generation: 3,
  annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"a huge":"copy"}', team: 'db' },
  managedFields: [
    { manager: 'kubectl', operation: 'Apply', time: new Date(1), fieldsType: 'FieldsV1', fieldsV1: { f: 1 } },
    { manager: 'poolpilot', operation: 'Apply', time: new Date(2), fieldsType: 'FieldsV1', fieldsV1: { f: 2 } },
  ],
});

describe('cache transforms', () => {
  it("keep only poolpilot's managedFields entries (manager, operation, time) and drop kubectl's copy", () => {
    const kept = keepReadMetadata({ metadata: metadata() }).metadata;
    expect(kept.managedFields).toEqual([{ manager: 'poolpilot', operation: 'Apply', time: new Date(2) }]);
    expect(kept.annotations).toEqual({ team: 'db' });
    expect(kept).toMatchObject({ name: 'api', namespace: 'prod', resourceVersion: '7', generation: 3 });
  });

  it("keep of a Deployment's pod template the containers' names, env and mounts, and the volumes", () => {
    const deployment: V1Deployment = {
      metadata: metadata(),
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'api' } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } },
        template: {
          metadata: { labels: { app: 'api' } },
          spec: {
            initContainers: [{ name: 'migrate', image: 'db:1' }],
            containers: [
              {
                name: 'app',
                image: 'app:1',
                command: ['serve'],
                env: [{ name: 'DB_POOL_SIZE', value: '20' }],
                volumeMounts: [{ name: 'pools', mountPath: '/etc/pools' }],
                resources: { limits: { cpu: '1' } },
              },
            ],
            volumes: [{ name: 'pools', configMap: { name: 'api-pools' } }],
          },
        },
      },
      status: { observedGeneration: 3, updatedReplicas: 3 },
    };
    const kept = keepReadOfDeployment(deployment);
    expect(kept.spec).toEqual({
      replicas: 3,
      selector: { matchLabels: { app: 'api' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1 } },
      template: {
        metadata: { labels: { app: 'api' } },
        spec: {
          containers: [
            {
              name: 'app',
              env: [{ name: 'DB_POOL_SIZE', value: '20' }],
              volumeMounts: [{ name: 'pools', mountPath: '/etc/pools' }],
            },
          ],
          volumes: [{ name: 'pools', configMap: { name: 'api-pools' } }],
        },
      },
    });
    expect(kept.status).toEqual({ observedGeneration: 3, updatedReplicas: 3 });
  });

  it("keep a ConfigMap's data, not its binaryData", () => {
    const configMap: V1ConfigMap = {
      metadata: metadata(),
      data: { 'pgbouncer.ini': '[pgbouncer]' },
      binaryData: { b: 'AA==' },
    };
    expect(keepReadOfConfigMap(configMap)).toEqual({
      metadata: expect.objectContaining({ name: 'api' }) as unknown,
      data: { 'pgbouncer.ini': '[pgbouncer]' },
    });
  });
});
