/**
 * When a Deployment's latest rollout completed, read from its status the way `kubectl rollout
 * status` does. Structural types keep this file free of client-node.
 */

export interface RolloutFacts {
  readonly metadata?: { readonly generation?: number };
  readonly spec?: { readonly replicas?: number };
  readonly status?: {
    readonly observedGeneration?: number;
    readonly replicas?: number;
    readonly updatedReplicas?: number;
    readonly availableReplicas?: number;
    readonly conditions?: ReadonlyArray<{
      readonly type: string;
      readonly reason?: string;
      readonly lastUpdateTime?: Date | string;
    }>;
  };
}

/**
 * undefined while the rollout is in progress: the controller has not observed the latest
 * generation, or not every desired replica is updated and available, or old replicas remain.
 * Otherwise when it completed: the Progressing condition's NewReplicaSetAvailable time if
 * present and valid, else the epoch (unknown; callers then rely on their own last-change time).
 */
export function rolloutCompletedAt(deployment: RolloutFacts): Date | undefined {
  const desired = deployment.spec?.replicas ?? 1;
  const status = deployment.status ?? {};
  const generation = deployment.metadata?.generation ?? 0;
  const complete =
    (status.observedGeneration ?? 0) >= generation &&
    (status.updatedReplicas ?? 0) >= desired &&
    (status.availableReplicas ?? 0) >= desired &&
    (status.replicas ?? 0) <= desired;
  if (!complete) return undefined;
  const progressing = status.conditions?.find((c) => c.type === 'Progressing' && c.reason === 'NewReplicaSetAvailable');
  // Objects from a watch carry times as RFC3339 strings; objects from typed calls as Dates.
  const at = progressing?.lastUpdateTime === undefined ? undefined : new Date(progressing.lastUpdateTime);
  return at && !Number.isNaN(at.getTime()) ? at : new Date(0);
}

/**
 * Whether pods of an older template may still run: the controller has not observed the latest
 * generation yet, or fewer pods run the latest template than run at all. Unlike a rollout not
 * complete, a scale-up or a pod that is not ready yet leaves this false.
 */
export function oldPodsRemain(deployment: RolloutFacts): boolean {
  const status = deployment.status ?? {};
  return (
    (status.observedGeneration ?? 0) < (deployment.metadata?.generation ?? 0) ||
    (status.updatedReplicas ?? 0) < (status.replicas ?? 0)
  );
}

/** The part of an object's metadata that says who last changed which fields, and when. */
export interface ManagedFieldsFacts {
  readonly metadata?: {
    readonly managedFields?: ReadonlyArray<{
      readonly manager?: string;
      readonly operation?: string;
      readonly time?: Date | string;
    }>;
  };
}

/**
 * When field manager `manager` last changed its fields of the object by an apply, as the API
 * server records it (managedFields[].time, second precision); undefined if it never did. This
 * lives on the target itself, so it survives a status write that was lost (a crash between the
 * target write and the status write).
 */
export function lastAppliedBy(object: ManagedFieldsFacts | undefined, manager: string): Date | undefined {
  const entry = object?.metadata?.managedFields?.find((f) => f.manager === manager && f.operation === 'Apply');
  if (entry?.time === undefined) return undefined;
  const at = new Date(entry.time);
  return Number.isNaN(at.getTime()) ? undefined : at;
}
