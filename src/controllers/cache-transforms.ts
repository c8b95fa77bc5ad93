/**
 * What the operator's caches keep of each object: what the controllers read, and nothing else
 * (controller-runtime's cache TransformFunc). What is dropped:
 * - `metadata.managedFields`, except poolpilot's own entries, of which only manager, operation
 *   and time are kept (lastAppliedBy reads when poolpilot last applied); on a Deployment the
 *   field list is often larger than its spec;
 * - the `kubectl.kubernetes.io/last-applied-configuration` annotation (a copy of the object);
 * - of a Deployment's pod template: init and ephemeral containers, and of each container all
 *   but `name`, `env` and `volumeMounts` (image, command, probes, resources, …). The volumes
 *   stay: a delivery's mount check reads them;
 * - a ConfigMap's `binaryData`.
 * A new read of another field must be added here, or it reads as absent.
 */
import type { KubernetesObject, V1ConfigMap, V1Deployment } from '@kubernetes/client-node';
import { FIELD_MANAGER, ROLLOUT_FIELD_MANAGER } from '../adapters/kube.js';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';
const OWN_MANAGERS: ReadonlySet<string> = new Set([FIELD_MANAGER, ROLLOUT_FIELD_MANAGER]);

// Each function changes the object it is given (a fresh one from a list, a watch event or a
// GET, which nothing else holds) and returns it.

/** Any object: its metadata slimmed, the rest as it is (PoolPolicies, budgets, HPAs). */
export function keepReadMetadata<T extends KubernetesObject>(object: T): T {
  const metadata = object.metadata;
  if (metadata === undefined) return object;
  const own = (metadata.managedFields ?? [])
    .filter((entry) => entry.manager !== undefined && OWN_MANAGERS.has(entry.manager))
    .map((entry) => ({ manager: entry.manager, operation: entry.operation, time: entry.time }));
  if (own.length > 0) metadata.managedFields = own;
  else delete metadata.managedFields;
  if (metadata.annotations && LAST_APPLIED in metadata.annotations)
    metadata.annotations = Object.fromEntries(
      Object.entries(metadata.annotations).filter(([key]) => key !== LAST_APPLIED),
    );
  return object;
}

export function keepReadOfDeployment(deployment: V1Deployment): V1Deployment {
  keepReadMetadata(deployment);
  const podSpec = deployment.spec?.template.spec;
  if (podSpec === undefined) return deployment;
  const containers = podSpec.containers.map((container) => ({
    name: container.name,
    ...(container.env === undefined ? {} : { env: container.env }),
    ...(container.volumeMounts === undefined ? {} : { volumeMounts: container.volumeMounts }),
  }));
  const volumes = podSpec.volumes;
  const template = deployment.spec?.template;
  if (template) template.spec = { containers, ...(volumes === undefined ? {} : { volumes }) };
  return deployment;
}

export function keepReadOfConfigMap(configMap: V1ConfigMap): V1ConfigMap {
  keepReadMetadata(configMap);
  delete configMap.binaryData;
  return configMap;
}
