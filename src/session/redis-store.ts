import { Redis, type RedisOptions } from 'ioredis';
import { BffError } from '../errors.js';
import { RedisInvalidationFeed } from './redis-invalidation-feed.js';
import type { InvalidationFeed, LoadedRecord, NewRecord, SessionStore, TokenRecord } from './store.js';

/**
 * The fields of a session's hash. The names are kept to one letter because every session stores
 * them; this map is the only place they are spelled, and the scripts below are built from it.
 */
const FIELD = {
  absoluteExpiresAt: 'a',
  idleMs: 'i',
  createdAt: 'n',
  lastSeen: 'l',
  /** Sealed session data. */
  data: 'c',
  /** Sealed token set. */
  tokens: 't',
  version: 'v',
  sub: 'u',
  /** The IdP session id, or '' when the IdP sent none. */
  sid: 'd',
} as const;

/** Key kinds under the prefix: `${prefix}${kind}:${id}`. The index kinds are named after the claims they index. */
const KEY = { session: 's', lock: 'l', sub: 'sub', sid: 'sid', seen: 'seen' } as const;

/** Not a hash field: the name under which the load script's reply carries the slid expiry. */
const EXPIRES_AT = 'expiresAt';
/** The hash fields the load script returns, each as a name/value pair. */
const LOADED = [FIELD.absoluteExpiresAt, FIELD.createdAt, FIELD.data, FIELD.tokens, FIELD.version];
/** What the load script reads: those, and the timing it checks expiry with. */
const READ = [...LOADED, FIELD.idleMs, FIELD.lastSeen];
const lua = (names: readonly string[]): string => names.map((n) => `'${n}'`).join(', ');

// Read, check both timeouts and slide the idle one in one round trip: the proxy path pays one Redis call.
// Timeouts are checked against the caller's clock as well as by Redis TTLs, so expiry is exact to the request.
// The reply is field/value pairs, as HGETALL gives them, plus the slid expiry under EXPIRES_AT.
const LOAD = `
local now = tonumber(ARGV[1])
local names = {${lua(READ)}}
local values = redis.call('HMGET', KEYS[1], unpack(names))
local r = {}
for i, name in ipairs(names) do r[name] = values[i] end
if not r['${FIELD.absoluteExpiresAt}'] then return false end
local absoluteExpiresAt = tonumber(r['${FIELD.absoluteExpiresAt}'])
local idleMs = tonumber(r['${FIELD.idleMs}'])
if absoluteExpiresAt <= now or tonumber(r['${FIELD.lastSeen}']) + idleMs <= now then
  redis.call('DEL', KEYS[1])
  return false
end
local ttl = math.min(idleMs, absoluteExpiresAt - now)
redis.call('HSET', KEYS[1], '${FIELD.lastSeen}', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
local reply = {'${EXPIRES_AT}', tostring(now + ttl)}
for _, name in ipairs({${lua(LOADED)}}) do
  reply[#reply + 1] = name
  reply[#reply + 1] = r[name]
end
return reply
`;

// Every change to a live session is published in the same script that makes it, so no replica's
// cache can miss a change that happened. PUBLISH comes before any write: a Redis user not allowed
// the channel fails the script with nothing changed. Subscribers still see the change, since they
// act on the message only after the whole script has run. Returns 1 when written, 0 when the
// version did not match.
const WRITE_TOKENS = `
local expected, tokens, nextVersion, channel, storageKey = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HGET', KEYS[1], '${FIELD.version}') == expected then
  redis.call('PUBLISH', channel, storageKey)
  redis.call('HSET', KEYS[1], '${FIELD.tokens}', tokens, '${FIELD.version}', nextVersion)
  return 1
end
return 0
`;

// Deletes the record, its lock (KEYS[2]) and its index entries; the index keys are named after
// fields of the record. Published first, for the same reason as in WRITE_TOKENS. Returns 1 when
// the record existed: a lock left behind is not a session.
const DESTROY = `
local prefix, storageKey, channel = ARGV[1], ARGV[2], ARGV[3]
redis.call('PUBLISH', channel, storageKey)
local sub = redis.call('HGET', KEYS[1], '${FIELD.sub}')
local sid = redis.call('HGET', KEYS[1], '${FIELD.sid}')
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
if sub then redis.call('SREM', prefix .. '${KEY.sub}:' .. sub, storageKey) end
if sid and sid ~= '' then redis.call('SREM', prefix .. '${KEY.sid}:' .. sid, storageKey) end
return existed
`;

// Adds a session to an index and drops members whose session is gone, so the set of a user who
// logs in daily does not grow for ever (its TTL moves forward with each login).
const INDEX_ADD = `
local sessionPrefix, storageKey, ttlMs = ARGV[1], ARGV[2], ARGV[3]
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', sessionPrefix .. m) == 0 then redis.call('SREM', KEYS[1], m) end
end
redis.call('SADD', KEYS[1], storageKey)
redis.call('PEXPIRE', KEYS[1], ttlMs)
return 1
`;

// Both return 1 when the owner held the lock, 0 otherwise.
const RENEW_LOCK = `
local owner, ttlMs = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) == owner then return redis.call('PEXPIRE', KEYS[1], ttlMs) end
return 0
`;

const RELEASE_LOCK = `
local owner = ARGV[1]
if redis.call('GET', KEYS[1]) == owner then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** The load script's pairs, by name. */
function loadedRecord(reply: string[]): LoadedRecord {
  const r: Record<string, string> = {};
  for (let i = 0; i < reply.length; i += 2) r[reply[i]!] = reply[i + 1]!;
  return {
    absoluteExpiresAt: Number(r[FIELD.absoluteExpiresAt]),
    createdAt: Number(r[FIELD.createdAt]),
    data: r[FIELD.data]!,
    tokens: r[FIELD.tokens]!,
    version: Number(r[FIELD.version]),
    expiresAt: Number(r[EXPIRES_AT]),
  };
}

interface ScriptedRedis extends Redis {
  /** Field/value pairs (see LOAD), or null when there is no live session. */
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
    const sessionKey = this.k(KEY.session, key);
    const ttl = Math.min(r.idleMs, r.absoluteExpiresAt - r.createdAt);
    const multi = this.redis
      .multi()
      .hset(sessionKey, {
        [FIELD.absoluteExpiresAt]: r.absoluteExpiresAt,
        [FIELD.idleMs]: r.idleMs,
        [FIELD.createdAt]: r.createdAt,
        [FIELD.lastSeen]: r.createdAt,
        [FIELD.data]: r.data,
        [FIELD.tokens]: r.tokens,
        [FIELD.version]: 1,
        [FIELD.sub]: r.sub,
        [FIELD.sid]: r.sid ?? '',
      })
      .pexpire(sessionKey, ttl);
    // Index keys outlive every session they list: each login pushes their expiry to a full session lifetime.
    const indexTtl = r.absoluteExpiresAt - r.createdAt;
    const indexed = multi as unknown as ScriptedPipeline;
    const sessionPrefix = this.k(KEY.session, '');
    indexed.ccIndexAdd(this.k(KEY.sub, r.sub), sessionPrefix, key, indexTtl);
    if (r.sid) indexed.ccIndexAdd(this.k(KEY.sid, r.sid), sessionPrefix, key, indexTtl);
    await execAll(multi);
  }

  async load(key: string, now: number): Promise<LoadedRecord | undefined> {
    const reply = await guard(this.redis.ccLoad(this.k(KEY.session, key), now));
    return reply ? loadedRecord(reply) : undefined;
  }

  async readTokens(key: string): Promise<TokenRecord | undefined> {
    const [tokens, version] = await guard(
      this.redis.hmget(this.k(KEY.session, key), FIELD.tokens, FIELD.version),
    );
    return tokens && version ? { tokens, version: Number(version) } : undefined;
  }

  async writeTokens(key: string, expectedVersion: number, tokens: string): Promise<boolean> {
    const ok = await guard(
      this.redis.ccWriteTokens(
        this.k(KEY.session, key),
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
      this.redis.ccDestroy(this.k(KEY.session, key), this.k(KEY.lock, key), this.prefix, key, this.channel),
    );
    this.feed?.dropLocally(key);
    return n > 0;
  }

  async destroyIndexed(kind: 'sid' | 'sub', value: string): Promise<number> {
    const indexKey = this.k(KEY[kind], value);
    const keys = await guard(this.redis.smembers(indexKey));
    let destroyed = 0;
    for (const key of keys) if (await this.destroy(key)) destroyed++;
    // Only the members read above: a session indexed since then must stay findable.
    if (keys.length) await guard(this.redis.srem(indexKey, ...keys));
    return destroyed;
  }

  async acquireLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.set(this.k(KEY.lock, key), owner, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.ccRenewLock(this.k(KEY.lock, key), owner, ttlMs))) === 1;
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    await guard(this.redis.ccReleaseLock(this.k(KEY.lock, key), owner));
  }

  async firstSeen(id: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.set(this.k(KEY.seen, id), '1', 'PX', Math.max(1, ttlMs), 'NX'))) === 'OK';
  }

  async forget(id: string): Promise<void> {
    await guard(this.redis.del(this.k(KEY.seen, id)));
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
