import type { SessionCacheCounters } from '../metrics.js';
import type { Session } from './sessions.js';
import type { InvalidationFeed } from './store.js';

interface Entry {
  readonly session: Session;
  /** Epoch ms (the app's clock) after which the entry is not used: the idle expiry must slide in Redis. */
  readonly until: number;
}

/**
 * Sessions as last read from Redis, in this process, for the API fast path: a cache hit skips the
 * Redis round trip, the cookie signature check and the decryption. Keyed by the signed cookie value, so a hit means that
 * exact value was verified before.
 *
 * It never answers for a session that ended or changed elsewhere: every change is published by the
 * store in the script that makes it, and the entry is dropped when the message arrives. While the
 * feed is not live (Redis unreachable, subscription being restored) nothing is answered or kept,
 * and a load that raced with an invalidation is not kept either.
 */
export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byKey = new Map<string, Set<string>>();
  /** Bumped on every invalidation: a load that saw another value may hold stale data. */
  private generation = 0;
  /** Loads in flight, by cookie, since the last invalidation: requests that miss together share one. */
  private readonly loading = new Map<string, Promise<Session | undefined>>();

  constructor(
    private readonly feed: InvalidationFeed,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly counters?: SessionCacheCounters,
  ) {
    feed.onInvalidate((key) => {
      this.generation++;
      // A request after an invalidation must not take the answer of a load begun before it.
      this.loading.clear();
      if (key === undefined) this.clear();
      else this.drop(key);
    });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Counts every lookup: hit, miss (a stale entry too), or bypass while the feed is not live. */
  get(cookie: string, now: number): Session | undefined {
    if (!this.feed.live) {
      this.counters?.bypass.inc();
      return undefined;
    }
    const entry = this.entries.get(cookie);
    if (entry && entry.until > now && entry.session.expiresAt > now) {
      this.counters?.hit.inc();
      return entry.session;
    }
    this.counters?.miss.inc();
    if (entry) this.remove(cookie, entry.session.key);
    return undefined;
  }

  /**
   * One load per cookie at a time: when an entry runs out under load, every request in flight
   * misses at once, and each would otherwise read and open the same record. A load begun before an
   * invalidation is not shared after it, and nothing is shared while the feed is not live; stale
   * data is kept no longer than the cache itself would keep it. A failed load fails the requests
   * that joined it, as their own loads would have in the same moment. What the load finds is kept
   * (put()).
   */
  loadOnce(
    cookie: string,
    now: number,
    load: () => Promise<Session | undefined>,
  ): Promise<Session | undefined> {
    const pending = this.feed.live ? this.loading.get(cookie) : undefined;
    // The load was checked against its starter's clock: a session that has ended since is no session.
    if (pending) return pending.then((session) => (session && session.expiresAt > now ? session : undefined));
    const begun = this.generation;
    const started = load()
      .then((session) => {
        if (session) this.put(cookie, session, now, begun);
        return session;
      })
      .finally(() => {
        if (this.loading.get(cookie) === started) this.loading.delete(cookie);
      });
    if (this.feed.live && begun === this.generation) this.loading.set(cookie, started);
    return started;
  }

  /** Call before reading from the store, and pass the result to put(). */
  begin(): number {
    return this.generation;
  }

  put(cookie: string, session: Session, now: number, begun: number): void {
    if (!this.feed.live || begun !== this.generation) return;
    if (this.entries.size >= this.maxEntries && !this.entries.has(cookie)) {
      // Oldest first: Map iteration follows insertion order.
      const oldest = this.entries.entries().next().value;
      if (oldest) this.remove(oldest[0], oldest[1].session.key);
    }
    this.entries.set(cookie, { session, until: Math.min(now + this.ttlMs, session.expiresAt) });
    let cookies = this.byKey.get(session.key);
    if (!cookies) this.byKey.set(session.key, (cookies = new Set()));
    cookies.add(cookie);
  }

  private drop(key: string): void {
    const cookies = this.byKey.get(key);
    if (!cookies) return;
    for (const cookie of cookies) this.entries.delete(cookie);
    this.byKey.delete(key);
  }

  private remove(cookie: string, key: string): void {
    this.entries.delete(cookie);
    const cookies = this.byKey.get(key);
    cookies?.delete(cookie);
    if (cookies?.size === 0) this.byKey.delete(key);
  }

  private clear(): void {
    this.entries.clear();
    this.byKey.clear();
  }
}
