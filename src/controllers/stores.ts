import type { KubernetesObject, V1ConfigMap, V1Deployment, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { ObjectStore } from '../runtime/informer.js';

/** The informer caches both controllers read from (the operator's ResilientInformers). */
export interface ClusterStores {
  readonly policies: ObjectStore<KubernetesObject>;
  readonly budgets: ObjectStore<KubernetesObject>;
  readonly deployments: ObjectStore<V1Deployment>;
  readonly configMaps: ObjectStore<V1ConfigMap>;
  readonly hpas: ObjectStore<V2HorizontalPodAutoscaler>;
}
