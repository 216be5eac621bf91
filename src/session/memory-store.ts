import type { LoadedRecord, NewRecord, SessionStore, TokenRecord } from './store.js';

interface Entry {
  record: NewRecord;
  tokens: string;
  version: number;
  expiresAt: number;
}

/**
 * One process, no persistence: for development and demo mode only. It follows the Redis store's
 * semantics (sliding idle expiry, CAS on tokens, owned locks) so the rest of the code cannot tell.
 */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Entry>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();
  private readonly seen = new Map<string, number>();
  private readonly index = new Map<string, Set<string>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly clock: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  private live(key: string): Entry | undefined {
    const e = this.sessions.get(key);
    if (e && e.expiresAt <= this.clock()) {
      this.sessions.delete(key);
      return undefined;
    }
    return e;
  }

  private sweep(): void {
    const now = this.clock();
    for (const key of this.sessions.keys()) this.live(key);
    for (const [k, v] of this.seen) if (v <= now) this.seen.delete(k);
    for (const [k, v] of this.locks) if (v.expiresAt <= now) this.locks.delete(k);
  }

  async create(key: string, record: NewRecord): Promise<void> {
    const expiresAt = Math.min(record.createdAt + record.idleMs, record.absoluteExpiresAt);
    this.sessions.set(key, { record, tokens: record.tokens, version: 1, expiresAt });
    for (const name of [`sub:${record.sub}`, record.sid ? `sid:${record.sid}` : undefined]) {
      if (!name) continue;
      const set = this.index.get(name) ?? new Set<string>();
      set.add(key);
      this.index.set(name, set);
    }
  }

  async load(key: string, now: number): Promise<LoadedRecord | undefined> {
    const e = this.live(key);
    if (!e) return undefined;
    if (e.expiresAt <= now) {
      await this.destroy(key);
      return undefined;
    }
    e.expiresAt = Math.min(now + e.record.idleMs, e.record.absoluteExpiresAt);
    return {
      createdAt: e.record.createdAt,
      absoluteExpiresAt: e.record.absoluteExpiresAt,
      expiresAt: e.expiresAt,
      data: e.record.data,
      tokens: e.tokens,
      version: e.version,
    };
  }

  async readTokens(key: string): Promise<TokenRecord | undefined> {
    const e = this.live(key);
    return e ? { tokens: e.tokens, version: e.version } : undefined;
  }

  async writeTokens(key: string, expectedVersion: number, tokens: string): Promise<boolean> {
    const e = this.live(key);
    if (!e || e.version !== expectedVersion) return false;
    e.tokens = tokens;
    e.version++;
    return true;
  }

  async destroy(key: string): Promise<boolean> {
    const e = this.sessions.get(key);
    this.sessions.delete(key);
    this.locks.delete(key);
    if (!e) return false;
    this.index.get(`sub:${e.record.sub}`)?.delete(key);
    if (e.record.sid) this.index.get(`sid:${e.record.sid}`)?.delete(key);
    return e.expiresAt > this.clock();
  }

  async destroyIndexed(kind: 'sid' | 'sub', value: string): Promise<number> {
    const keys = [...(this.index.get(`${kind}:${value}`) ?? [])];
    let n = 0;
    for (const key of keys) if (await this.destroy(key)) n++;
    this.index.delete(`${kind}:${value}`);
    return n;
  }

  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const held = this.locks.get(key);
    if (held && held.expiresAt > this.clock()) return false;
    this.locks.set(key, { owner, expiresAt: this.clock() + ttlMs });
    return true;
  }

  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const held = this.locks.get(key);
    if (!held || held.owner !== owner || held.expiresAt <= this.clock()) return false;
    held.expiresAt = this.clock() + ttlMs;
    return true;
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    if (this.locks.get(key)?.owner === owner) this.locks.delete(key);
  }

  async firstSeen(id: string, ttlMs: number): Promise<boolean> {
    const until = this.seen.get(id);
    if (until && until > this.clock()) return false;
    this.seen.set(id, this.clock() + ttlMs);
    return true;
  }

  async forget(id: string): Promise<void> {
    this.seen.delete(id);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
