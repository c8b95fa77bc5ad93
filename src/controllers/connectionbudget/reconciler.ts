/**
 * The ConnectionBudget reconciler: shows, in the budget's status, its capacity, what the pools of
 * the policies drawing from it hold at their current values, the headroom, and each policy's
 * share. It writes no target: the PoolPolicy reconciler enforces the budget. Status is written
 * only when it changes.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { ConditionType } from '../../api/v1alpha1/conditions.js';
import {
  CONNECTIONBUDGET_GROUP,
  CONNECTIONBUDGET_KIND,
  CONNECTIONBUDGET_PLURAL,
  CONNECTIONBUDGET_VERSION,
  type ConnectionBudgetStatus,
} from '../../api/v1alpha1/connectionbudget.js';
import { formatStatusTime, parsePoolPolicyStatus } from '../../api/v1alpha1/poolpolicy.js';
import { backendSummary, claimsOf, type Backend, type ShareInput } from '../../domain/budget.js';
import { canonical, nextCondition, type WrittenCondition } from '../../domain/status.js';
import type { PoolPolicyResource } from '../../adapters/kube.js';
import type { Clock } from '../../runtime/clock.js';
import type { Outcome } from '../../runtime/controller.js';
import { splitKey, type PolicyKey } from '../poolpolicy/watches.js';
import { budgetCapacity, peerFacts, policiesOfBudget, type AppliedLedger, type CapacityQuery } from './facts.js';
import type { ClusterStores } from '../stores.js';

export const CONNECTIONBUDGET_RESOURCE: PoolPolicyResource = {
  group: CONNECTIONBUDGET_GROUP,
  version: CONNECTIONBUDGET_VERSION,
  plural: CONNECTIONBUDGET_PLURAL,
  kind: CONNECTIONBUDGET_KIND,
};

/** How often a budget's status is refreshed even when nothing it watches changed. */
export const BUDGET_RESYNC_MS = 30_000;

export interface ConnectionBudgetDeps {
  readonly stores: ClusterStores;
  readonly ledger: AppliedLedger;
  readonly query: CapacityQuery;
  readonly writeStatus: (
    resource: PoolPolicyResource,
    namespace: string,
    name: string,
    status: object,
  ) => Promise<void>;
  readonly clock: Clock;
  readonly onHeadroom?: (namespace: string, budget: string, backend: Backend, headroom: number) => void;
}

const LIMITED_REASONS = new Set(['BudgetLimited', 'BudgetCorrection']);

export class ConnectionBudgetReconciler {
  constructor(private readonly deps: ConnectionBudgetDeps) {}

  async reconcile(key: PolicyKey): Promise<Outcome> {
    const { namespace, name } = splitKey(key);
    const object: (KubernetesObject & { status?: ConnectionBudgetStatus }) | undefined = this.deps.stores.budgets.get(
      name,
      namespace,
    );
    if (!object) return {};
    const generation = object.metadata?.generation ?? 0;
    const stored = object.status ?? {};
    const now = this.deps.clock.now();
    const capacity = await budgetCapacity(this.deps.stores, namespace, name, this.deps.query);
    const condition = (status: 'True' | 'False', reason: string, message: string): WrittenCondition =>
      nextCondition(stored.conditions, { type: ConditionType.Ready, status, reason, message }, now, generation);

    let next: ConnectionBudgetStatus;
    if (!capacity.ok) {
      next = { observedGeneration: generation, conditions: [condition('False', capacity.reason, capacity.message)] };
    } else {
      const policies = policiesOfBudget(this.deps.stores, namespace, name);
      const shares = new Map<Backend, ShareInput[]>();
      for (const policy of policies) {
        const facts = peerFacts(this.deps.stores, this.deps.ledger, namespace, policy);
        const limited =
          parsePoolPolicyStatus(policy.object.status).conditions?.some(
            (c) => c.type === ConditionType.Limited && LIMITED_REASONS.has(c.reason),
          ) ?? false;
        for (const { backend, claim } of claimsOf(facts)) {
          const list = shares.get(backend) ?? [];
          list.push({ name: policy.object.metadata?.name ?? '', replicas: facts.replicas, claim, limited });
          shares.set(backend, list);
        }
      }
      const backends: Partial<Record<Backend, ReturnType<typeof backendSummary>>> = {};
      for (const backend of ['postgres', 'redis'] as const) {
        const total = capacity.capacity[backend];
        if (total === undefined) continue;
        backends[backend] = backendSummary(total, shares.get(backend) ?? []);
        this.deps.onHeadroom?.(namespace, name, backend, backends[backend].headroom);
      }
      const over = (['postgres', 'redis'] as const).filter((b) => (backends[b]?.headroom ?? 0) < 0);
      const ready =
        over.length === 0
          ? condition(
              'True',
              'WithinBudget',
              `${policies.length} PoolPolic${policies.length === 1 ? 'y draws' : 'ies draw'} from this budget; every backend has headroom`,
            )
          : condition(
              'False',
              'OverBudget',
              over
                .map(
                  (b) => `${b}: pools hold ${backends[b]?.allocated ?? 0} of ${backends[b]?.capacity ?? 0} connections`,
                )
                .join('; ') +
                '; policies in mode Auto bring their pools back inside; Recommend and Paused ones keep their values until set to Auto or lowered by hand',
            );
      next = { observedGeneration: generation, conditions: [ready], ...backends };
    }
    // lastUpdated says when the status last changed; it is not a change by itself.
    if (canonical({ ...stored, lastUpdated: undefined }) !== canonical(next)) {
      await this.deps.writeStatus(CONNECTIONBUDGET_RESOURCE, namespace, name, {
        ...next,
        lastUpdated: formatStatusTime(now),
      });
    }
    return { requeueAfterMs: BUDGET_RESYNC_MS };
  }
}
