import type { KubernetesObject } from '@kubernetes/client-node';
import type { ObjectStore } from '../../src/runtime/informer.js';

/** An informer cache stand-in for unit tests of code that only reads from the cache. */
export class MemoryStore<T extends KubernetesObject> implements ObjectStore<T> {
  constructor(private readonly items: T[] = []) {}

  get(name: string, namespace?: string): T | undefined {
    return this.items.find((i) => i.metadata?.name === name && i.metadata.namespace === namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.items.filter((i) => namespace === undefined || i.metadata?.namespace === namespace);
  }
}
