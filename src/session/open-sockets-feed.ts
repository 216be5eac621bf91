import type { InvalidationFeed, SessionStore } from './store.js';

/**
 * The feed that tells open sockets (open-sockets.ts) about session changes. A store with a feed of
 * its own (Redis pub/sub, every replica) is used as it is, and subscribed on first use. A store
 * without one (the memory store: one process) is wrapped so that its own destroys and token writes
 * are reported; a destroy by sid or sub reports "anything may have changed", since the keys it
 * removed are the store's to know.
 */
export function sessionChangeFeed(store: SessionStore): {
  readonly store: SessionStore;
  readonly feed: () => InvalidationFeed;
} {
  // A getter that subscribes when read: asking whether it exists must not read it.
  if ('invalidations' in store) return { store, feed: () => store.invalidations! };
  const listeners: ((key: string | undefined) => void)[] = [];
  const emit = (key: string | undefined): void => {
    for (const listener of listeners) listener(key);
  };
  const feed: InvalidationFeed = {
    live: true,
    onInvalidate: (listener) => void listeners.push(listener),
    whenLive: () => Promise.resolve(),
  };
  const reporting: SessionStore = {
    create: (key, record) => store.create(key, record),
    load: (key, now) => store.load(key, now),
    readTokens: (key) => store.readTokens(key),
    async writeTokens(key, expectedVersion, tokens) {
      const written = await store.writeTokens(key, expectedVersion, tokens);
      if (written) emit(key);
      return written;
    },
    async destroy(key) {
      try {
        return await store.destroy(key);
      } finally {
        emit(key);
      }
    },
    async destroyIndexed(kind, value) {
      try {
        return await store.destroyIndexed(kind, value);
      } finally {
        emit(undefined);
      }
    },
    acquireLock: (key, owner, ttlMs) => store.acquireLock(key, owner, ttlMs),
    renewLock: (key, owner, ttlMs) => store.renewLock(key, owner, ttlMs),
    releaseLock: (key, owner) => store.releaseLock(key, owner),
    firstSeen: (id, ttlMs) => store.firstSeen(id, ttlMs),
    forget: (id) => store.forget(id),
    ping: () => store.ping(),
    close: () => store.close(),
  };
  return { store: reporting, feed: () => feed };
}
