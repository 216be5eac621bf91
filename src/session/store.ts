/**
 * The storage contract behind sessions. Records are addressed by storage id (a hash of the session
 * id) and hold only sealed values plus the timing the store needs to expire them on its own.
 * Sealed values are byte strings, one char per byte (latin1): a store keeps them as those bytes.
 */
export interface NewRecord {
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  readonly idleMs: number;
  /** Sealed session data: claims, subject, logout id. Written once at login. */
  readonly data: string;
  /** Sealed token set. Only ever rewritten through writeTokens. */
  readonly tokens: string;
  readonly sub: string;
  readonly sid: string | undefined;
}

export interface LoadedRecord {
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  /** When the record expires now that this load has slid its idle timeout. */
  readonly expiresAt: number;
  readonly data: string;
  readonly tokens: string;
  readonly version: number;
}

export interface TokenRecord {
  readonly tokens: string;
  readonly version: number;
}

/** Tells a process-local session cache when a session changed anywhere, so it can drop its copy. */
export interface InvalidationFeed {
  /** True while every change is being received; a cache must not answer from memory otherwise. */
  readonly live: boolean;
  /** key: the storage key of a session that changed or ended; undefined: forget everything. */
  onInvalidate(listener: (key: string | undefined) => void): void;
  /** Resolves once live (start-up and tests). */
  whenLive(): Promise<void>;
}

/** Session records: what Sessions needs to create, read, update and end sessions. */
export interface SessionRecords {
  create(key: string, record: NewRecord): Promise<void>;
  /** Reads the record and slides its idle expiry in one round trip; undefined when gone or expired. */
  load(key: string, now: number): Promise<LoadedRecord | undefined>;
  readTokens(key: string): Promise<TokenRecord | undefined>;
  /** Compare-and-set on the version: false when another writer got there first or the record is gone. */
  writeTokens(key: string, expectedVersion: number, tokens: string): Promise<boolean>;
  /** Removes the record, its lock and its index entries. */
  destroy(key: string): Promise<boolean>;
  /** Destroys every session indexed under the IdP session id or subject; returns how many existed. */
  destroyIndexed(kind: 'sid' | 'sub', value: string): Promise<number>;
}

/** The per-session refresh lock: one owner at a time, held for a TTL that the owner renews while it works. */
export interface RefreshLock {
  /** True when the lock was free (or its TTL lapsed) and is now held by owner. */
  acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** False when owner no longer holds the lock: it lapsed, and someone else may hold it now. */
  renewLock(key: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock only if owner still holds it. */
  releaseLock(key: string, owner: string): Promise<void>;
}

/** Once-only markers: replay detection for logout tokens and completed logins. */
export interface ReplayGuard {
  /** True the first time an id is seen within ttl. */
  firstSeen(id: string, ttlMs: number): Promise<boolean>;
  /** Undoes firstSeen, when the work it guarded failed and a retry must be possible. */
  forget(id: string): Promise<void>;
}

export interface StoreHealth {
  /** Rejects (store_unavailable) while the store does not answer. */
  ping(): Promise<void>;
}

/**
 * A store implementation: every part of the contract in one object, as one backend provides them.
 * Callers hold only the part they need (Sessions splits it); test/store-conformance.test.ts checks it.
 */
export interface SessionStore extends SessionRecords, RefreshLock, ReplayGuard, StoreHealth {
  /** Present when the store can tell other processes' caches about changes (Redis pub/sub). */
  readonly invalidations?: InvalidationFeed;
  close(): Promise<void>;
}
