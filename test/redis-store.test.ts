import { RedisSessionStore } from '../src/session/redis-store.js';
import type { NewRecord } from '../src/session/store.js';
import { startRedis, type TestRedis } from './support/redis.js';

let redis: TestRedis;
let store: RedisSessionStore;

beforeAll(async () => {
  redis = await startRedis();
  store = new RedisSessionStore(redis.url);
  await store.ready();
});
afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

const record = (sub: string, sid?: string): NewRecord => {
  const now = Date.now();
  return {
    createdAt: now,
    absoluteExpiresAt: now + 60_000,
    idleMs: 60_000,
    data: 'd',
    tokens: 't',
    sub,
    sid,
  };
};

// What every store must do is checked by the conformance suite (test/store-conformance.test.ts);
// these are the Redis store's own hazards: races between commands, partial MULTIs, ACLs.
describe('indexes for back-channel logout', () => {
  test('a session created while a logout for its user runs stays findable by the next logout', async () => {
    await store.create('a1', record('user-a', 'sid-a'));
    await store.create('a2', record('user-a'));
    const destroy = store.destroy.bind(store);
    let created = false;
    // Interleave deterministically: the new login lands between reading the index and the deletes.
    store.destroy = async (key) => {
      if (!created) {
        created = true;
        await store.create('a3', record('user-a'));
      }
      return destroy(key);
    };
    try {
      expect(await store.destroyIndexed('sub', 'user-a')).toBe(2);
    } finally {
      store.destroy = destroy;
    }
    expect(created).toBe(true);
    expect(await store.load('a3', Date.now())).toBeDefined();
    expect(await store.destroyIndexed('sub', 'user-a')).toBe(1);
    expect(await store.load('a3', Date.now())).toBeUndefined();
  });

  // That it is no longer found by sub is the store contract's (test/support/store-conformance.ts).
  test('destroying by sid removes the session from its sub index set too', async () => {
    await store.create('b1', record('user-b', 'sid-b'));
    expect(await store.destroyIndexed('sid', 'sid-b')).toBe(1);
    expect(await store.redis.smembers('coatcheck:sub:user-b')).toEqual([]);
  });

  test('a failed command inside the create MULTI fails the create instead of leaving an unindexed session', async () => {
    // A sub index key of the wrong type makes SADD inside the index script fail, as a failover's
    // missing script or an OOM would: the login must see an error, not succeed half-written.
    await store.redis.set('coatcheck:sub:user-c', 'not-a-set');
    await expect(store.create('c1', record('user-c'))).rejects.toMatchObject({ code: 'store_unavailable' });
  });
});

describe('a Redis user that may not publish on the invalidation channel', () => {
  let limited: RedisSessionStore;
  beforeAll(async () => {
    // Redis 7's default for new ACL users: keys and commands allowed, no pub/sub channels.
    await store.redis.call(
      'ACL',
      'SETUSER',
      'limited',
      'on',
      '>pw',
      '~coatcheck:*',
      '+@all',
      'resetchannels',
    );
    limited = new RedisSessionStore(`redis://limited:pw@127.0.0.1:${redis.port}`);
    await limited.ready();
  });
  afterAll(async () => {
    await limited?.close();
  });

  test('is named at start-up, with the rule that fixes it', async () => {
    expect(await limited.accessProblem()).toBe(
      'the Redis user may not PUBLISH to coatcheck:invalidate; allow it the channel (ACL rule &coatcheck:invalidate)',
    );
    expect(await store.accessProblem()).toBeUndefined();
  });

  test('makes a logout or a token write fail with nothing half done', async () => {
    await store.create('d1', record('user-d', 'sid-d'));
    await expect(limited.destroy('d1')).rejects.toMatchObject({ code: 'store_unavailable' });
    await expect(limited.writeTokens('d1', 1, 'new')).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(await store.readTokens('d1')).toEqual({ tokens: 't', version: 1 });
    expect(await store.redis.smembers('coatcheck:sid:sid-d')).toEqual(['d1']);
  });
});
