import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectStore } from '../../src/runtime/informer.js';
import { HPA_INDEXERS, POLICY_INDEXERS } from '../../src/controllers/indexes.js';

/** Every index the operator's caches keep, by name (they do not overlap). */
const INDEXERS: Readonly<Record<string, (object: never) => readonly string[]>> = {
  ...POLICY_INDEXERS,
  ...HPA_INDEXERS,
};

/** An informer cache stand-in for unit tests of code that only reads from the cache. */
export class MemoryStore<T extends KubernetesObject> implements ObjectStore<T> {
  constructor(private readonly items: T[] = []) {}

  get(name: string, namespace?: string): T | undefined {
    return this.items.find((i) => i.metadata?.name === name && i.metadata.namespace === namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.items.filter((i) => namespace === undefined || i.metadata?.namespace === namespace);
  }

  /** The same answer as the operator's indexed cache, by a scan. */
  byIndex(index: string, value: string): readonly T[] {
    const valuesOf = INDEXERS[index];
    if (!valuesOf) throw new Error(`no index ${index}`);
    return this.items.filter((i) => (valuesOf as (object: T) => readonly string[])(i).includes(value));
  }
}
