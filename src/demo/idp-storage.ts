// oidc-provider ships no types for its adapter module; it is the library's own in-memory adapter.
// @ts-expect-error no declaration file
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import type { Adapter } from 'oidc-provider';

interface Entry {
  readonly value: unknown;
  readonly expiry: number | undefined;
}

/** How many writes pass between sweeps of expired entries; keeps memory bounded by what is live. */
const SWEEP_EVERY = 1000;

/**
 * The storage behind oidc-provider's own memory adapter, without its 1,000-entry LRU bound: a busy
 * demo, a test or the bench's refresh storm would otherwise evict grants that are still live, and
 * the IdP would then refuse refresh tokens it issued. Entries leave when they expire, as in the
 * library's store.
 */
export class ExpiringStorage {
  private readonly entries = new Map<string, Entry>();
  private writes = 0;

  get(key: string): unknown {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiry !== undefined && entry.expiry <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: unknown, options?: { maxAge?: number }): void {
    const maxAge = options?.maxAge;
    this.entries.set(key, { value, expiry: maxAge === undefined ? undefined : Date.now() + maxAge });
    if (++this.writes % SWEEP_EVERY === 0) this.sweep();
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiry !== undefined && entry.expiry <= now) this.entries.delete(key);
    }
  }
}

type AdapterClass = new (model: string, store: ExpiringStorage, clockTolerance: number) => Adapter;

/** An adapter factory for the Provider configuration; one storage per IdP, so tests stay apart. */
export function unboundedMemoryAdapter(): (model: string) => Adapter {
  const storage = new ExpiringStorage();
  return (model) => new (MemoryAdapter as AdapterClass)(model, storage, 0);
}
