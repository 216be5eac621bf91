import { Cluster, type Redis, type RedisOptions } from 'ioredis';
import { BffError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  connectRedis,
  describeTarget,
  subscriberConnector,
  type RedisClient,
  type RedisTarget,
} from './redis-connection.js';
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

// Deletes the record and its lock (KEYS[2], in the same slot); published first, for the same reason
// as in WRITE_TOKENS. Returns whether the record existed (a lock left behind is not a session), and
// its sub and sid, so the caller can take it out of the indexes: they live in other slots on a cluster.
const DESTROY = `
local channel, storageKey = ARGV[1], ARGV[2]
redis.call('PUBLISH', channel, storageKey)
local sub = redis.call('HGET', KEYS[1], '${FIELD.sub}')
local sid = redis.call('HGET', KEYS[1], '${FIELD.sid}')
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return {existed, sub or '', sid or ''}
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

/**
 * Sealed values are byte strings (store.ts) and go to Redis as those bytes: as strings, ioredis
 * would send them as UTF-8, two bytes for every byte above 127.
 */
const bytes = (sealed: string): Buffer => Buffer.from(sealed, 'latin1');

/** The load script's pairs, by name; read as bytes so that sealed values come back as they went in. */
function loadedRecord(reply: Buffer[]): LoadedRecord {
  const r: Record<string, string> = {};
  for (let i = 0; i < reply.length; i += 2)
    r[reply[i]!.toString('latin1')] = reply[i + 1]!.toString('latin1');
  return {
    absoluteExpiresAt: Number(r[FIELD.absoluteExpiresAt]),
    createdAt: Number(r[FIELD.createdAt]),
    data: r[FIELD.data]!,
    tokens: r[FIELD.tokens]!,
    version: Number(r[FIELD.version]),
    expiresAt: Number(r[EXPIRES_AT]),
  };
}

interface Scripts {
  /** Field/value pairs (see LOAD), or null when there is no live session. */
  ccLoadBuffer(key: string, now: number): Promise<Buffer[] | null>;
  ccDestroy(key: string, lockKey: string, channel: string, id: string): Promise<[number, string, string]>;
  ccRenewLock(key: string, owner: string, ttlMs: number): Promise<number>;
  ccReleaseLock(key: string, owner: string): Promise<number>;
}

type ScriptedRedis = RedisClient & Scripts;

interface WriteScript {
  ccWriteTokens(
    key: string,
    expected: number,
    tokens: Buffer,
    next: number,
    channel: string,
    id: string,
  ): Promise<number>;
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
 * Runs a MULTI or pipeline and fails if any command in it failed: ioredis resolves exec() with
 * per-command errors rather than rejecting.
 */
async function execAll(batch: { exec(): Promise<[Error | null, unknown][] | null> }): Promise<unknown[]> {
  const results = await guard(batch.exec());
  if (!results) throw storeError(new Error('MULTI aborted'));
  const failed = results.find(([err]) => err);
  if (failed) throw storeError(failed[0]);
  return results.map(([, value]) => value);
}

/** CRC16/XMODEM, as Redis Cluster hashes keys into slots. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The cluster slot of a session's keys: they all carry the storage id as their hash tag. */
const slotOf = (storageId: string): number => crc16(storageId) % 16384;

/** The cluster client's own connection to the master it currently routes the slot to. */
function masterConnection(cluster: Cluster, slot: number): Redis | undefined {
  const nodeKey = cluster.slots[slot]?.[0];
  return cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
}

/** How many replicas a ROLE reply lists; 0 for anything but a master. */
function replicaCount(role: unknown): number {
  return Array.isArray(role) && role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
}

export interface RedisStoreOptions {
  /** Before every key; the default lets one Redis serve one coatcheck deployment. */
  prefix?: string;
  /** How long the write of a rotated token waits for one replica; 0: not at all. */
  waitTimeoutMs?: number;
  /** Told when a WAIT ran out before a replica acknowledged the write (for metrics). */
  onWaitTimeout?: () => void;
  log?: Logger;
  /** Tunes the data-node connections (tests). */
  redis?: RedisOptions;
}

export class RedisSessionStore implements SessionStore {
  readonly redis: ScriptedRedis;
  /**
   * Only writeTokens and its WAIT run here. WAIT blocks its connection and counts that connection's
   * writes, so it needs one of its own: the proxy path never queues behind it. On a cluster, the
   * client keeps one connection per master and sends both commands for a key to its slot's master.
   */
  private readonly writer: RedisClient;
  private readonly target: RedisTarget;
  private readonly prefix: string;
  /** Hash tags keep a session's keys in one cluster slot; elsewhere keys keep their untagged names. */
  private readonly tagged: boolean;
  /** Where every session change is published, for the caches of all replicas. */
  private readonly channel: string;
  private readonly waitTimeoutMs: number;
  private readonly onWaitTimeout: (() => void) | undefined;
  private readonly log: Logger | undefined;
  private feed: RedisInvalidationFeed | undefined;
  /** WAITs that ran out before a replica acknowledged (see writeTokens). */
  waitTimeouts = 0;

  constructor(target: string | RedisTarget, options: RedisStoreOptions = {}) {
    this.target =
      typeof target === 'string'
        ? { topology: 'standalone', url: target, username: undefined, password: undefined, caFile: undefined }
        : target;
    this.prefix = options.prefix ?? 'coatcheck:';
    this.tagged = this.target.topology === 'cluster';
    this.channel = `${this.prefix}invalidate`;
    this.waitTimeoutMs = options.waitTimeoutMs ?? 100;
    this.onWaitTimeout = options.onWaitTimeout;
    this.log = options.log;
    this.redis = connectRedis(this.target, options.redis) as ScriptedRedis;
    // Its commands wait up to the WAIT timeout on top of the usual bound.
    const commandTimeout = (options.redis?.commandTimeout ?? 2000) + this.waitTimeoutMs;
    this.writer = connectRedis(this.target, { ...options.redis, commandTimeout });
    for (const client of [this.redis, this.writer]) {
      client.on('error', () => {
        // ioredis reconnects by itself; the failures surface as store_unavailable on the requests.
      });
    }
    this.redis.defineCommand('ccLoad', { numberOfKeys: 1, lua: LOAD });
    this.redis.defineCommand('ccDestroy', { numberOfKeys: 2, lua: DESTROY });
    this.redis.defineCommand('ccRenewLock', { numberOfKeys: 1, lua: RENEW_LOCK });
    this.redis.defineCommand('ccReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK });
    this.writer.defineCommand('ccWriteTokens', { numberOfKeys: 1, lua: WRITE_TOKENS });
  }

  /** Resolves once both connections are up, so start-up can report an unreachable Redis clearly. */
  async ready(timeoutMs = 5000): Promise<void> {
    await Promise.all([this.redis, this.writer].map((client) => this.clientReady(client, timeoutMs)));
  }

  private async clientReady(client: RedisClient, timeoutMs: number): Promise<void> {
    if (client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      let lastError: Error | undefined;
      const timer = setTimeout(() => {
        cleanup();
        // Which server and why, for the operator; passwords stay out of it.
        let why = lastError?.message ?? `no answer, still ${client.status}`;
        const t = this.target;
        const secrets = [t.password, ...(t.topology === 'standalone' ? [new URL(t.url).password] : [])];
        for (const secret of secrets) if (secret) why = why.split(secret).join('[redacted]');
        reject(new Error(`${describeTarget(t)} did not become ready within ${timeoutMs / 1000} s: ${why}`));
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
        client.off('ready', onReady);
        client.off('error', onError);
      };
      client.on('ready', onReady);
      client.on('error', onError);
    });
  }

  /** A key of one session: tagged with its storage id, so all of them share a cluster slot. */
  private sessionKey(kind: string, id: string): string {
    return `${this.prefix}${kind}:${this.tagged ? `{${id}}` : id}`;
  }

  private k(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  async create(key: string, r: NewRecord): Promise<void> {
    const sessionKey = this.sessionKey(KEY.session, key);
    const ttl = Math.min(r.idleMs, r.absoluteExpiresAt - r.createdAt);
    await execAll(
      this.redis
        .multi()
        .hset(sessionKey, {
          [FIELD.absoluteExpiresAt]: r.absoluteExpiresAt,
          [FIELD.idleMs]: r.idleMs,
          [FIELD.createdAt]: r.createdAt,
          [FIELD.lastSeen]: r.createdAt,
          [FIELD.data]: bytes(r.data),
          [FIELD.tokens]: bytes(r.tokens),
          [FIELD.version]: 1,
          [FIELD.sub]: r.sub,
          [FIELD.sid]: r.sid ?? '',
        })
        .pexpire(sessionKey, ttl),
    );
    // The indexes live in slots of their own, so they are written after the session: an index entry
    // then always names a session that exists or existed. A session that could not be indexed is one
    // back-channel logout could not find, so it is undone and the login fails.
    const indexTtl = r.absoluteExpiresAt - r.createdAt;
    const indexes = [this.k(KEY.sub, r.sub), ...(r.sid ? [this.k(KEY.sid, r.sid)] : [])];
    try {
      await Promise.all(indexes.map((index) => this.indexAdd(index, key, indexTtl)));
    } catch (err) {
      await this.destroy(key).catch(() => undefined);
      throw err;
    }
    // Drops members whose session is gone, so the set of a user who logs in daily does not grow for ever.
    await Promise.all(indexes.map((index) => this.prune(index).catch(() => undefined)));
  }

  /** Index keys outlive every session they list: each login pushes their expiry to a full session lifetime. */
  private async indexAdd(index: string, key: string, ttlMs: number): Promise<void> {
    await execAll(this.redis.multi().sadd(index, key).pexpire(index, ttlMs));
  }

  private async prune(index: string): Promise<void> {
    const members = await this.redis.smembers(index);
    const exists = await Promise.all(members.map((m) => this.redis.exists(this.sessionKey(KEY.session, m))));
    const gone = members.filter((_, i) => exists[i] === 0);
    if (gone.length) await this.redis.srem(index, ...gone);
  }

  async load(key: string, now: number): Promise<LoadedRecord | undefined> {
    const reply = await guard(this.redis.ccLoadBuffer(this.sessionKey(KEY.session, key), now));
    return reply ? loadedRecord(reply) : undefined;
  }

  async readTokens(key: string): Promise<TokenRecord | undefined> {
    const [tokens, version] = await guard(
      this.redis.hmgetBuffer(this.sessionKey(KEY.session, key), FIELD.tokens, FIELD.version),
    );
    return tokens && version
      ? { tokens: tokens.toString('latin1'), version: Number(version.toString()) }
      : undefined;
  }

  /**
   * Compare-and-set, then, when the master has replicas, WAIT for one of them: a rotated refresh token
   * that only the master held would be lost with it, and the promoted replica would hand out the
   * old, already used one. WAIT is best effort: when it runs out the write stands and is counted.
   */
  async writeTokens(key: string, expectedVersion: number, tokens: string): Promise<boolean> {
    const sessionKey = this.sessionKey(KEY.session, key);
    const written = await guard(
      (this.writer as RedisClient & WriteScript).ccWriteTokens(
        sessionKey,
        expectedVersion,
        bytes(tokens),
        expectedVersion + 1,
        this.channel,
        key,
      ),
    );
    const ok = written === 1;
    // This process's cache drops its copy now, not a round trip later when the message comes back.
    if (ok) this.feed?.dropLocally(key);
    if (ok && this.waitTimeoutMs > 0) await this.waitForReplica(key);
    return ok;
  }

  /**
   * WAIT on the connection that wrote: the writer itself, or on a cluster the writer's connection to
   * the master of the session's slot. The write stands whatever happens here.
   */
  private async waitForReplica(key: string): Promise<void> {
    const connection =
      this.writer instanceof Cluster ? masterConnection(this.writer, slotOf(key)) : this.writer;
    let acknowledged = 0;
    try {
      if (!connection || replicaCount(await connection.role()) === 0) return;
      acknowledged = Number(await connection.call('WAIT', 1, this.waitTimeoutMs));
    } catch {
      // A failed WAIT counts as one that ran out.
    }
    if (acknowledged >= 1) return;
    this.waitTimeouts++;
    this.onWaitTimeout?.();
    this.log?.warn(
      { waitTimeoutMs: this.waitTimeoutMs },
      'no Redis replica acknowledged a rotated token in time; a failover now could lose it',
    );
  }

  async destroy(key: string): Promise<boolean> {
    const [existed, sub, sid] = await guard(
      this.redis.ccDestroy(
        this.sessionKey(KEY.session, key),
        this.sessionKey(KEY.lock, key),
        this.channel,
        key,
      ),
    );
    this.feed?.dropLocally(key);
    // Index upkeep apart from the session's own keys: on a cluster the indexes are in other slots.
    // Left undone, an entry is stale and harmless: destroyIndexed and prune skip sessions that are gone.
    const stale = [...(sub ? [this.k(KEY.sub, sub)] : []), ...(sid ? [this.k(KEY.sid, sid)] : [])];
    await Promise.all(stale.map((index) => this.redis.srem(index, key).catch(() => undefined)));
    return existed > 0;
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
    const lock = this.sessionKey(KEY.lock, key);
    return (await guard(this.redis.set(lock, owner, 'PX', ttlMs, 'NX'))) === 'OK';
  }

  async renewLock(key: string, owner: string, ttlMs: number): Promise<boolean> {
    return (await guard(this.redis.ccRenewLock(this.sessionKey(KEY.lock, key), owner, ttlMs))) === 1;
  }

  async releaseLock(key: string, owner: string): Promise<void> {
    await guard(this.redis.ccReleaseLock(this.sessionKey(KEY.lock, key), owner));
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
    this.feed ??= new RedisInvalidationFeed(subscriberConnector(this.redis, this.target), this.channel);
    return this.feed;
  }

  async close(): Promise<void> {
    this.feed?.close();
    await Promise.all(
      [this.redis, this.writer].map(async (client) => {
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }),
    );
  }
}
