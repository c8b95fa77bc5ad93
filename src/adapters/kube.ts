/**
 * The operator's port to the Kubernetes API: typed, with client-node's pitfalls handled once.
 *
 * - Every write is a server-side apply with an explicit content type (client-node otherwise
 *   defaults PATCH to json-patch) and field manager `poolpilot`, so the operator owns exactly the
 *   fields it sets: the env entries it manages, the ConfigMap keys it writes, its status.
 * - A ConfigMap edit of text the operator read (pgbouncer.ini) carries the resourceVersion it
 *   read as a precondition: a concurrent edit makes the apply fail with 409 instead of being lost.
 * - Errors come back as KubeError with the HTTP code (404, 409 normalised to `notFound` /
 *   `conflict`) and the API server's message.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ConfigError } from '../config.js';
import { causeOf, statusMessageOf } from '../runtime/errors.js';
import type { TokenBucket } from '../runtime/token-bucket.js';
import { PooledKubeConfig } from './kube-connection.js';
import {
  ApiException,
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type KubernetesObject,
  type V1ConfigMap,
  type V1ConfigMapList,
  type V1Deployment,
  type V1DeploymentList,
  type V1LabelSelector,
  type V1Pod,
  type V2HorizontalPodAutoscalerList,
} from '@kubernetes/client-node';

export const FIELD_MANAGER = 'poolpilot';
/**
 * The rollout annotation has a manager of its own: an apply omits what its manager applied
 * before, so sharing `poolpilot` with the env apply would drop one when the other is written.
 */
export const ROLLOUT_FIELD_MANAGER = 'poolpilot-rollout';

export class KubeError extends Error {
  override readonly name = 'KubeError';
  constructor(
    message: string,
    readonly code: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
  get notFound(): boolean {
    return this.code === 404;
  }
  get conflict(): boolean {
    return this.code === 409;
  }
}

/** Turns client-node's ApiException into a KubeError carrying the API server's own message. */
export function toKubeError(err: unknown, what: string): KubeError {
  if (err instanceof KubeError) return err;
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    const detail = statusMessageOf(body) ?? (typeof body === 'string' ? body : JSON.stringify(body));
    return new KubeError(`${what}: HTTP ${err.code}: ${detail}`, err.code, { cause: err });
  }
  return new KubeError(`${what}: ${err instanceof Error ? err.message : String(err)}`, undefined, { cause: err });
}

/** One page of a list: at most `limit` objects, after `continueToken` (from the previous page). */
export interface ListPage {
  readonly limit?: number;
  readonly continueToken?: string | undefined;
}

/** A list's metadata: the snapshot's resourceVersion, and the token of the next page if any. */
export interface ListMeta {
  readonly resourceVersion?: string;
  readonly _continue?: string;
}

export interface EnvValue {
  readonly name: string;
  readonly value: string;
}

export interface ObjectReference {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string | undefined;
}

export type EventType = 'Normal' | 'Warning';

export interface PoolPolicyResource {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}

export class KubeClient {
  private readonly apps: AppsV1Api;
  private readonly autoscaling: AutoscalingV2Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly events: EventsV1Api;
  private readonly objects: KubernetesObjectApi;
  private readonly instance = hostname();

  constructor(readonly kubeConfig: KubeConfig) {
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.autoscaling = kubeConfig.makeApiClient(AutoscalingV2Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.events = kubeConfig.makeApiClient(EventsV1Api);
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  }

  listDeployments(namespace: string | undefined, page: ListPage = {}): Promise<V1DeploymentList> {
    const { limit, continueToken: _continue } = page;
    return namespace === undefined
      ? this.apps.listDeploymentForAllNamespaces({ limit, _continue })
      : this.apps.listNamespacedDeployment({ namespace, limit, _continue });
  }

  listHorizontalPodAutoscalers(
    namespace: string | undefined,
    page: ListPage = {},
  ): Promise<V2HorizontalPodAutoscalerList> {
    const { limit, continueToken: _continue } = page;
    return namespace === undefined
      ? this.autoscaling.listHorizontalPodAutoscalerForAllNamespaces({ limit, _continue })
      : this.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace, limit, _continue });
  }

  listConfigMaps(namespace: string | undefined, page: ListPage = {}): Promise<V1ConfigMapList> {
    const { limit, continueToken: _continue } = page;
    return namespace === undefined
      ? this.core.listConfigMapForAllNamespaces({ limit, _continue })
      : this.core.listNamespacedConfigMap({ namespace, limit, _continue });
  }

  /** Lists custom objects (PoolPolicies) in one namespace or all; items are validated later. */
  async listCustom(
    resource: PoolPolicyResource,
    namespace: string | undefined,
    page: ListPage = {},
  ): Promise<{ apiVersion: string; kind: string; metadata: ListMeta; items: KubernetesObject[] }> {
    const { group, version, plural } = resource;
    const { limit, continueToken: _continue } = page;
    const list = (
      namespace === undefined
        ? await this.custom.listClusterCustomObject({ group, version, plural, limit, _continue })
        : await this.custom.listNamespacedCustomObject({ group, version, namespace, plural, limit, _continue })
    ) as {
      apiVersion: string;
      kind: string;
      metadata: { resourceVersion?: string; continue?: string };
      items: KubernetesObject[];
    };
    // Custom objects come back as raw JSON: the next page's token is `continue`, which the
    // typed lists call `_continue`.
    const { resourceVersion, continue: next } = list.metadata;
    return {
      ...list,
      metadata: { ...(resourceVersion === undefined ? {} : { resourceVersion }), ...(next ? { _continue: next } : {}) },
    };
  }

  /** One Deployment; undefined when it does not exist. */
  async readDeployment(namespace: string, name: string): Promise<V1Deployment | undefined> {
    return this.readOrUndefined(
      () => this.apps.readNamespacedDeployment({ namespace, name }),
      `deployment ${namespace}/${name}`,
    );
  }

  /** One ConfigMap; undefined when it does not exist. */
  async readConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined> {
    return this.readOrUndefined(
      () => this.core.readNamespacedConfigMap({ namespace, name }),
      `configmap ${namespace}/${name}`,
    );
  }

  private async readOrUndefined<T>(read: () => Promise<T>, what: string): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      const error = toKubeError(err, `read ${what}`);
      if (error.notFound) return undefined;
      throw error;
    }
  }

  /**
   * Sets env entries of one container. Only these entries (by name) are owned by `poolpilot`;
   * the container's other env, other containers and every other field are untouched.
   */
  async applyContainerEnv(
    namespace: string,
    deployment: string,
    container: string,
    env: readonly EnvValue[],
  ): Promise<V1Deployment> {
    const body: V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: deployment, namespace },
      spec: {
        template: {
          spec: { containers: [{ name: container, env: env.map((e) => ({ name: e.name, value: e.value })) }] },
        },
      } as V1Deployment['spec'],
    };
    return this.apply(body, FIELD_MANAGER, `apply env of deployment ${namespace}/${deployment}`);
  }

  /** Sets a pod-template annotation of a Deployment (a new value rolls its pods). */
  async applyPodTemplateAnnotation(
    namespace: string,
    deployment: string,
    key: string,
    value: string,
  ): Promise<V1Deployment> {
    const body: V1Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: deployment, namespace },
      spec: { template: { metadata: { annotations: { [key]: value } } } } as V1Deployment['spec'],
    };
    return this.apply(body, ROLLOUT_FIELD_MANAGER, `apply annotation ${key} of deployment ${namespace}/${deployment}`);
  }

  /**
   * Sets data keys of a ConfigMap. With `resourceVersion`, the write fails with a 409 KubeError
   * if the ConfigMap changed since that version was read.
   */
  async applyConfigMapData(
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
    resourceVersion?: string,
  ): Promise<V1ConfigMap> {
    const body: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
      data: { ...data },
    };
    return this.apply(body, FIELD_MANAGER, `apply data of configmap ${namespace}/${name}`);
  }

  /**
   * Sets annotation `key` to `value` on every pod `selector` matches in `namespace` that does not
   * carry that value yet (terminating pods left alone); returns how many pods it set it on. A pod
   * update makes the kubelet sync that pod at once, ConfigMap volumes included; an annotation
   * changes no container, so nothing restarts.
   */
  async annotatePods(namespace: string, selector: V1LabelSelector, key: string, value: string): Promise<number> {
    const labelSelector = labelSelectorText(selector);
    // An empty selector selects every pod of the namespace, not one Deployment's.
    if (labelSelector === '') throw new Error('the deployment has an empty selector; refusing to annotate every pod');
    let pods: V1Pod[];
    try {
      pods = (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
    } catch (err) {
      throw toKubeError(err, `list pods in namespace ${namespace}`);
    }
    const stale = pods.filter(
      (pod) => pod.metadata?.deletionTimestamp === undefined && pod.metadata?.annotations?.[key] !== value,
    );
    await Promise.all(
      stale.map((pod) => {
        const name = pod.metadata?.name ?? '';
        const body: V1Pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name, namespace, annotations: { [key]: value } },
        };
        return this.apply(body, FIELD_MANAGER, `apply annotation ${key} of pod ${namespace}/${name}`);
      }),
    );
    return stale.length;
  }

  /** Writes a custom object's status subresource (server-side apply: keys it omits are removed); returns the object written. */
  async applyStatus(resource: PoolPolicyResource, namespace: string, name: string, status: object): Promise<unknown> {
    const { group, version, plural, kind } = resource;
    try {
      return await this.custom.patchNamespacedCustomObjectStatus(
        {
          group,
          version,
          namespace,
          plural,
          name,
          body: { apiVersion: `${group}/${version}`, kind, metadata: { name, namespace }, status },
          fieldManager: FIELD_MANAGER,
          force: true,
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      );
    } catch (err) {
      throw toKubeError(err, `write status of ${kind} ${namespace}/${name}`);
    }
  }

  /** Records an events.k8s.io/v1 Event about `regarding` (shown by `kubectl describe`). */
  async emitEvent(
    regarding: ObjectReference,
    type: EventType,
    reason: string,
    action: string,
    note: string,
  ): Promise<void> {
    try {
      await this.events.createNamespacedEvent({
        namespace: regarding.namespace,
        body: {
          // Named like client-go's recorder (object name + unique suffix); generateName ending in
          // '.' is not a valid subdomain.
          metadata: { name: `${regarding.name}.${randomBytes(8).toString('hex')}`, namespace: regarding.namespace },
          // A Date has millisecond precision and the API server rejects it; V1MicroTime does not.
          eventTime: new V1MicroTime(),
          reportingController: 'poolpilot.io/poolpilot',
          reportingInstance: this.instance,
          action,
          reason,
          note: note.slice(0, 1024),
          type,
          regarding: {
            apiVersion: regarding.apiVersion,
            kind: regarding.kind,
            namespace: regarding.namespace,
            name: regarding.name,
            ...(regarding.uid === undefined ? {} : { uid: regarding.uid }),
          },
        },
      });
    } catch (err) {
      throw toKubeError(err, `record event ${reason} on ${regarding.kind} ${regarding.namespace}/${regarding.name}`);
    }
  }

  private async apply<T extends KubernetesObject>(body: T, fieldManager: string, what: string): Promise<T> {
    try {
      return await this.objects.patch(body, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw toKubeError(err, what);
    }
  }
}

/**
 * A label selector as the `labelSelector` query parameter spells it (`a=b,c in (d,e),!f`). An
 * operator the API does not know is refused, not dropped: a wider selector would select pods that
 * are not the target's.
 */
export function labelSelectorText(selector: V1LabelSelector): string {
  const labels = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`);
  const expressions = (selector.matchExpressions ?? []).map(({ key, operator, values = [] }) => {
    switch (operator) {
      case 'In':
        return `${key} in (${values.join(',')})`;
      case 'NotIn':
        return `${key} notin (${values.join(',')})`;
      case 'Exists':
        return key;
      case 'DoesNotExist':
        return `!${key}`;
      default:
        throw new Error(`label selector operator ${operator} is not In, NotIn, Exists or DoesNotExist`);
    }
  });
  return [...labels, ...expressions].join(',');
}

/**
 * Loads a KubeConfig: an explicit path, else $KUBECONFIG / in-cluster / ~/.kube/config. Its
 * requests share one connection pool and wait for `limiter` (see kube-connection.ts).
 */
export function loadKubeConfig(
  path: string | undefined,
  limiter?: TokenBucket,
  onRequest?: (method: string) => void,
): KubeConfig {
  const kc = new PooledKubeConfig(limiter, onRequest);
  try {
    if (path === undefined) kc.loadFromDefault();
    else kc.loadFromFile(path);
  } catch (err) {
    const source = path ?? 'from KUBECONFIG, ~/.kube/config or the in-cluster ServiceAccount';
    throw new ConfigError(
      `cannot load the kubeconfig ${source}: ${causeOf(err)}; pass a readable kubeconfig file with --kubeconfig or KUBECONFIG`,
    );
  }
  return kc;
}
