import { performance } from 'node:perf_hooks';
import type { Metrics, StoreOperationMetrics } from '../metrics.js';
import type { SessionStore } from './store.js';

/** The store operations that are timed and counted, by the name the `operation` label carries. */
const OPERATIONS = [
  'create',
  'load',
  'readTokens',
  'writeTokens',
  'destroy',
  'destroyIndexed',
  'acquireLock',
  'renewLock',
  'releaseLock',
  'firstSeen',
  'forget',
  'ping',
] as const satisfies readonly (keyof SessionStore)[];

type Operation = (typeof OPERATIONS)[number];

/**
 * The same store, with every operation timed and every failure counted, whatever the backend: the
 * backends stay free of metrics. The children are bound here, once, so a call costs two clock reads
 * and one observation. close() and the invalidation feed pass through untouched.
 */
export function measuredStore(store: SessionStore, metrics: Metrics): SessionStore {
  const measured: Record<string, unknown> = {};
  for (const op of OPERATIONS) measured[op] = timed(store, op, metrics.storeOperation(op));
  return Object.assign(measured, {
    get invalidations() {
      return store.invalidations;
    },
    close: () => store.close(),
  }) as unknown as SessionStore;
}

function timed(store: SessionStore, op: Operation, m: StoreOperationMetrics) {
  const call = (store[op] as (...args: unknown[]) => Promise<unknown>).bind(store);
  return async (...args: unknown[]): Promise<unknown> => {
    const started = performance.now();
    try {
      return await call(...args);
    } catch (err) {
      m.errors.inc();
      throw err;
    } finally {
      m.duration.observe((performance.now() - started) / 1000);
    }
  };
}
