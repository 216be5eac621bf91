import { openWithKey, sealWithKey } from './crypto.js';
import type { RedisClient } from './redis-connection.js';
import { indexKey, keyedName } from './sealing-key.js';

/** One host session that carries a coatcheck login, as back-channel logout must find it. */
export interface HostSessionEntry {
  /** The host's express-session id (req.sessionID). */
  readonly hostId: string;
  readonly sub: string;
  /** The IdP's session id, when the IdP sent one. */
  readonly sid: string | undefined;
}

/** Where the index lives: a hash per name, expiring as a whole. Redis in production, memory for one process. */
export interface IndexBackend {
  put(name: string, field: string, value: string, expiresAt: number): Promise<void>;
  all(name: string): Promise<Record<string, string>>;
  remove(name: string, fields: readonly string[]): Promise<void>;
}

const CONTEXT = 'host-session-index';

/**
 * Host session ids by IdP `sid` and by `sub`. A back-channel logout comes from the IdP, not from the
 * browser, so it carries no cookie and no req.sessionID: this is how coatcheck finds the host's
 * sessions to destroy in the host's own store. Names and fields are keyed hashes, and the host ids
 * are sealed, all under a key derived from BFF_SESSION_SECRET: a dump shows neither who is logged in
 * nor which session is theirs.
 */
export class HostSessionIndex {
  private readonly keys: Buffer[];

  constructor(
    private readonly backend: IndexBackend,
    secrets: readonly string[],
  ) {
    this.keys = secrets.map(indexKey);
  }

  /** Indexed until the session can last no longer (its absolute expiry). */
  async add(entry: HostSessionEntry, expiresAt: number): Promise<void> {
    const key = this.keys[0]!;
    const field = keyedName(key, 'host', entry.hostId);
    const value = sealWithKey(key, CONTEXT, entry.hostId);
    await Promise.all(this.names(entry, key).map((name) => this.backend.put(name, field, value, expiresAt)));
  }

  /** After a logout here: the host session is gone, so its entries go too. */
  async remove(entry: HostSessionEntry): Promise<void> {
    await Promise.all(
      this.keys.flatMap((key) =>
        this.names(entry, key).map((name) =>
          this.backend.remove(name, [keyedName(key, 'host', entry.hostId)]),
        ),
      ),
    );
  }

  /**
   * The host session ids under a sid or a sub, and `forget` for exactly those entries, to call once
   * the sessions are destroyed (so a failed destroy can be retried with the IdP's next delivery).
   */
  async find(kind: 'sid' | 'sub', value: string): Promise<{ ids: string[]; forget(): Promise<void> }> {
    const found = await Promise.all(
      this.keys.map(async (key) => {
        const name = keyedName(key, kind, value);
        return { key, name, entries: await this.backend.all(name) };
      }),
    );
    const ids = new Set<string>();
    for (const { key, entries } of found) {
      for (const sealed of Object.values(entries)) {
        const id = openWithKey(key, CONTEXT, sealed);
        if (id !== undefined) ids.add(id);
      }
    }
    return {
      ids: [...ids],
      forget: async () => {
        await Promise.all(found.map(({ name, entries }) => this.backend.remove(name, Object.keys(entries))));
      },
    };
  }

  private names(entry: HostSessionEntry, key: Buffer): string[] {
    const names = [keyedName(key, 'sub', entry.sub)];
    if (entry.sid) names.push(keyedName(key, 'sid', entry.sid));
    return names;
  }
}

/** The index on coatcheck's Redis, beside its sessions, under the same prefix. */
export function redisIndexBackend(redis: RedisClient, prefix: string): IndexBackend {
  const k = (name: string) => `${prefix}host:${name}`;
  return {
    async put(name, field, value, expiresAt) {
      // Sessions have one absolute lifetime, so the latest entry always expires last.
      await redis.multi().hset(k(name), field, value).pexpireat(k(name), expiresAt).exec();
    },
    async all(name) {
      return redis.hgetall(k(name));
    },
    async remove(name, fields) {
      if (fields.length) await redis.hdel(k(name), ...fields);
    },
  };
}

/** The index in this process, for the memory store. */
export function memoryIndexBackend(now: () => number = Date.now): IndexBackend {
  const hashes = new Map<string, { fields: Map<string, string>; expiresAt: number }>();
  const live = (name: string) => {
    const hash = hashes.get(name);
    if (hash && hash.expiresAt <= now()) hashes.delete(name);
    return hashes.get(name);
  };
  return {
    async put(name, field, value, expiresAt) {
      const hash = live(name) ?? { fields: new Map<string, string>(), expiresAt };
      hash.fields.set(field, value);
      hash.expiresAt = expiresAt;
      hashes.set(name, hash);
    },
    async all(name) {
      return Object.fromEntries(live(name)?.fields ?? []);
    },
    async remove(name, fields) {
      const hash = live(name);
      if (!hash) return;
      for (const field of fields) hash.fields.delete(field);
      if (hash.fields.size === 0) hashes.delete(name);
    },
  };
}
