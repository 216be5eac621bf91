import { Redis, type RedisOptions } from 'ioredis';
import { BffError } from '../errors.js';
import type { InvalidationFeed, LoadedRecord, NewRecord, SessionStore, TokenRecord } from './store.js';

// Read, check both timeouts and slide the idle one in one round trip: the proxy path pays one Redis call.
// Timeouts are checked against the caller's clock as well as by Redis TTLs, so expiry is exact to the request.
const LOAD = `
local v = redis.call('HMGET', KEYS[1], 'a', 'i', 'n', 'c', 't', 'v', 'l')
if not v[1] then return false end
local now = tonumber(ARGV[1])
local abs = tonumber(v[1])
local idle = tonumber(v[2])
if abs <= now or tonumber(v[7]) + idle <= now then
  redis.call('DEL', KEYS[1])
  return false
end
local ttl = math.min(idle, abs - now)
redis.call('HSET', KEYS[1], 'l', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return {v[1], v[3], v[4], v[5], v[6], tostring(now + ttl)}
`;

// Every change to a live session is published (ARGV[4] is the channel, ARGV[5] the storage key) in
// the same script that makes it, so no replica's cache can miss a change that happened. PUBLISH
// comes before any write: a Redis user not allowed the channel fails the script with nothing
// changed. Subscribers still see the change, since they act on the message only after the whole
// script has run.
const WRITE_TOKENS = `
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  redis.call('HSET', KEYS[1], 't', ARGV[2], 'v', ARGV[3])
  return 1
end
return 0
`;

// Deletes the record and its index entries; the index keys are named after fields of the record.
// Published first, for the same reason as in WRITE_TOKENS.
const DESTROY = `
redis.call('PUBLISH', ARGV[3], ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'u', 'd')
local n = redis.call('DEL', KEYS[1], KEYS[2])
if v[1] then redis.call('SREM', ARGV[1] .. 'sub:' .. v[1], ARGV[2]) end
if v[2] and v[2] ~= '' then redis.call('SREM', ARGV[1] .. 'sid:' .. v[2], ARGV[2]) end
return n
`;

// Adds a session to an index and drops members whose session is gone, so the set of a user who
// logs in daily does not grow for ever (its TTL moves forward with each login).
const INDEX_ADD = `
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. m) == 0 then redis.call('SREM', KEYS[1], m) end
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

const RENEW_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

interface ScriptedRedis extends Redis {
  ccLoad(key: string, now: number): Promise<string[] | null>;
  ccWriteTokens(
    key: string,
    expected: number,
    tokens: string,
    next: number,
    channel: string,
    id: string,
  ): Promise<number>;
  ccDestroy(key: string, lockKey: string, prefix: string, id: string, channel: string): Promise<number>;
  ccRenewLock(key: string, owner: string, ttlMs: number): Promise<number>;
  ccReleaseLock(key: string, owner: string): Promise<number>;
}

interface ScriptedPipeline {
  ccIndexAdd(indexKey: string, sessionPrefix: string, member: string, ttlMs: number): ScriptedPipeline;
}

function storeError(cause: unknown): BffError {
  return new BffError('store_unavailable', { cause });
}

/** Wraps every call so a Redis outage becomes a 503 for the client, never an unhandled 500. */
async function guard<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (err) {
    throw err instanceof BffError ? err : storeError(err);
  }
}

/**
 * Runs a MULTI and fails if any command in it failed: ioredis resolves exec() with per-command
 * errors rather than rejecting, and a session whose index entry silently failed would be one
 * back-channel logout cannot find.
 */
async function execAll(multi: ReturnType<Redis['multi']>): Promise<void> {
  const results = await guard(multi.exec());
  if (!results) throw storeError(new Error('MULTI aborted'));
  const failed = results.find(([err]) => err);
  if (failed) throw storeError(failed[0]);
}

export class RedisSessionStore implements SessionStore {
  readonly redis: ScriptedRedis;
  private readonly prefix: string;
  /** Where every session change is published, for the caches of all replicas. */
  private readonly channel: string;
  private feed: RedisInvalidationFeed | undefined;

  constructor(url: string, options: { prefix?: string; redis?: RedisOptions } = {}) {
    this.prefix = options.prefix ?? 'coatcheck:';
    this.channel = `${this.prefix}invalidate`;
    this.redis = new Redis(url, {
      // Fail fast while Redis is away: a queued command would hold the browser's request hostage.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 2000,
      connectTimeout: 2000,
      lazyConnect: false,
      ...options.redis,
    }) as ScriptedRedis;
    this.redis.on('error', () => {
      // ioredis reconnects by itself; the failures surface as store_unavailable on the requests.
    });
    this.redis.defineCommand('ccLoad', { numberOfKeys: 1, lua: LOAD });
    this.redis.defineCommand('ccWriteTokens', { numberOfKeys: 1, lua: WRITE_TOKENS });
    this.redis.defineCommand('ccDestroy', { numberOfKeys: 2, lua: DESTROY });
    this.redis.defineCommand('ccRenewLock', { numberOfKeys: 1, lua: RENEW_LOCK });
    this.redis.defineCommand('ccReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
    this.redis.defineCommand('ccIndexAdd', { numberOfKeys: 1, lua: INDEX_ADD });
  }

  /** Resolves once connected, so start-up can report an unreachable Redis clearly. */
  async ready(timeoutMs = 5000): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      let lastError: Error | undefined;
      const timer = setTimeout(() => {
        cleanup();
        // Which server and why, for the operator; the URL's password stays out of it.
        const { host, port, password, tls } = this.redis.options;
        const where = `${tls ? 'rediss' : 'redis'}://${host}:${port}`;
        let why = lastError?.message ?? `no answer, still ${this.redis.status}`;
        if (password) why = why.split(password).join('[redacted]');
        reject(new Error(`Redis at ${where} did not become ready within ${timeoutMs / 1000} s: ${why}`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        lastError = err;
      };
      const onReady = (): void => {
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.redis.off('error', onError);
      };
      this.redis.on('ready', onReady);
      this.redis.on('error', onError);
    });
  }

  private k(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  async create(key: string, r: NewRecord): Promise<void> {
    const sessionKey = this.k('s', key);
    const ttl = Math.min(r.idleMs, r.absoluteExpiresAt - r.createdAt);
    const multi = this.redis
      .multi()
      .hset(sessionKey, {
        a: r.absoluteExpiresAt,
        i: r.idleMs,
        n: r.createdAt,
        l: r.createdAt,
        c: r.data,
        t: r.tokens,
        v: 1,
        u: r.sub,
        d: r.sid ?? '',
      })
      .pexpire(sessionKey, ttl);
    // Index keys outlive every session they list: each login pushes their expiry to a full session lifetime.
    const indexTtl = r.absoluteExpiresAt - r.createdAt;
    const indexed = multi as unknown as ScriptedPipeline;
    indexed.ccIndexAdd(this.k('sub', r.sub), this.k('s', ''), key, indexTtl);
    if (r.sid) indexed.ccIndexAdd(this.k('sid', r.sid), this.k('s', ''), key, indexTtl);
    await execAll(multi);
  }

  async load(key: string, now: number): Promise<LoadedRecord | undefined> {
    const v = await guard(this.redis.ccLoad(this.k('s', key), now));
    if (!v) return undefined;
    return {
      absoluteExpiresAt: Number(v[0]),
      createdAt: Number(v[1]),
      data: v[2]!,
      tokens: v[3]!,
      version: Number(v[4]),
      expiresAt: Number(v[5]),
    };
  }

  async readTokens(key: string): Promise<TokenRecord | undefined> {
    const [tokens, version] = await guard(this.redis.hmget(this.k('s', key), 't', 'v'));
    return tokens && version ? { tokens, version: Number(version) } : undefined;
  }

  async writeTokens(key: string, expectedVersion: number, tokens: string): Promise<boolean> {
    const ok = await guard(
      this.redis.ccWriteTokens(
        this.k('s', key),
        expectedVersion,
        tokens,
        expectedVersion + 1,
        this.channel,
        key,
      ),
    );
    // This process's cache drops its copy now, not a round trip later when the message comes back.
    if (ok === 1) this.feed?.dropLocally(key);
    return ok === 1;
  }

  async destroy(key: string): Promise<boolean> {
    const n = await guard(
      this.redis.ccDestroy(this.k('s', key), this.k('l', key), this.prefix, key, this.channel),
    );
    this.feed?.dropLocally(key);
    return n > 0;
  }

  async destroyIndexed(kind: 'sid' | 'sub', value: string): Promise<number> {
    const indexKey = this.k(kind, value);
    const keys = await guard(this.redis.smembers(indexKey));
    let destroyed = 0;
    for (const key of keys) if (await this.destroy(key)) destroyed++;
    // Only the members read above: a session indexed since then must stay findable.
    if (keys.length) await guard(this.redis.srem(indexKey, ...keys));
    return destroyed;
  }

  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.set(this.k('l', key), owner, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.ccRenewLock(this.k('l', key), owner, ttlMs))) === 1;
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    await guard(this.redis.ccReleaseLock(this.k('l', key), owner));
  }

  async firstSeen(id: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.set(this.k('seen', id), '1', 'PX', Math.max(1, ttlMs), 'NX'))) === 'OK';
  }

  async forget(id: string): Promise<void> {
    await guard(this.redis.del(this.k('seen', id)));
  }

  async ping(): Promise<void> {
    await guard(this.redis.ping());
  }

  /**
   * What is wrong when this Redis user may not publish on the invalidation channel: every logout
   * and token write publishes, so they would all fail. Since Redis 7 new ACL users get no channels.
   * Undefined when allowed, or when Redis cannot be asked (an outage is /readyz's to report).
   */
  async accessProblem(): Promise<string | undefined> {
    try {
      await this.redis.publish(this.channel, '');
      return undefined;
    } catch (err) {
      return /NOPERM/i.test((err as Error).message)
        ? `the Redis user may not PUBLISH to ${this.channel}; allow it the channel (ACL rule &${this.channel})`
        : undefined;
    }
  }

  /** Subscribes on first use: a process without a session cache never holds the extra connection. */
  get invalidations(): InvalidationFeed {
    this.feed ??= new RedisInvalidationFeed(this.redis.duplicate({ autoResubscribe: false }), this.channel);
    return this.feed;
  }

  async close(): Promise<void> {
    this.feed?.close();
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

/** How often the subscription is checked with a PING, and how old its last PONG may be while live. */
const HEARTBEAT_MS = 1000;
const STALE_MS = 3000;

/**
 * The invalidation channel on its own connection (a subscribed connection can do nothing else).
 * Pub/sub delivers at most once, so whatever interrupts the subscription (a disconnect, a Redis
 * restart) makes the feed not live and tells listeners to forget everything; it is live again
 * only once the subscription is confirmed on the new connection. A connection can also die
 * silently (a NAT or firewall dropping an idle flow): a PING every second finds that out, and a
 * feed whose last PONG is older than STALE_MS is not live, whatever the socket says.
 */
class RedisInvalidationFeed implements InvalidationFeed {
  private listeners: ((key: string | undefined) => void)[] = [];
  private subscribed = false;
  private lastPong = 0;
  private closed = false;
  private waiting: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly sub: Redis,
    private readonly channel: string,
  ) {
    sub.on('error', () => {
      // Reconnects by itself; until then the feed is not live and caches are bypassed.
    });
    sub.on('message', (_channel: string, key: string) => {
      if (key) this.emit(key);
    });
    const down = (): void => this.down();
    sub.on('close', down);
    sub.on('reconnecting', down);
    sub.on('end', down);
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          if (this.closed || sub.status !== 'ready') return;
          // Anything cached before this point may have missed a message: start clean.
          this.emit(undefined);
          this.subscribed = true;
          this.lastPong = Date.now();
          for (const resolve of this.waiting.splice(0)) resolve();
        },
        // Not allowed, or the connection went: retry on a fresh connection, without spinning.
        () => setTimeout(() => sub.disconnect(true), HEARTBEAT_MS).unref(),
      );
    });
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get live(): boolean {
    return this.subscribed && Date.now() - this.lastPong < STALE_MS;
  }

  onInvalidate(listener: (key: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  whenLive(): Promise<void> {
    return this.live ? Promise.resolve() : new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A change this process made itself: no need to wait for its own message. */
  dropLocally(key: string): void {
    this.emit(key);
  }

  private beat(): void {
    if (!this.subscribed) return;
    if (Date.now() - this.lastPong >= STALE_MS) {
      this.down();
      this.sub.disconnect(true);
      return;
    }
    this.sub.ping().then(
      () => (this.lastPong = Date.now()),
      () => undefined,
    );
  }

  private down(): void {
    if (!this.subscribed) return;
    this.subscribed = false;
    this.emit(undefined);
  }

  private emit(key: string | undefined): void {
    for (const listener of this.listeners) listener(key);
  }

  close(): void {
    this.closed = true;
    this.subscribed = false;
    clearInterval(this.heartbeat);
    this.sub.disconnect();
  }
}
