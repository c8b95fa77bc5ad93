/**
 * One holder per key at a time, in arrival order (an async mutex per key). Keys with no holder
 * and no waiter leave no state behind.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  /** Resolves when `key` is free for the caller; call the returned function exactly once to free it. */
  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let free: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      free = resolve;
    });
    const tail = previous.then(() => held);
    this.tails.set(key, tail);
    await previous;
    return () => {
      free();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }

  /** Keys currently held or waited for (for leak checks). */
  size(): number {
    return this.tails.size;
  }
}
