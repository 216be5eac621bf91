import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { RedisSessionStore } from '../src/session/redis-store.js';
import { startCoatcheck } from '../src/start.js';
import type { NewRecord } from '../src/session/store.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { validEnv } from './support/config-env.js';
import { ask, startSentinelTopology, type SentinelTopology } from './support/redis-topology.js';

/*
 * A rotated refresh token is written, then WAITed for on one replica, so a failover right after keeps
 * it. WAIT is bounded: a replica that does not answer costs the timeout, a warning and a count.
 */

const record = (): NewRecord => {
  const now = Date.now();
  return {
    createdAt: now,
    absoluteExpiresAt: now + 60_000,
    idleMs: 60_000,
    data: 'd',
    tokens: 't1',
    sub: 'u',
    sid: undefined,
  };
};

describe('with a replica (Sentinel)', () => {
  let topology: SentinelTopology;
  let store: RedisSessionStore;
  const timeouts: number[] = [];
  const WAIT_MS = 300;
  beforeAll(async () => {
    topology = await startSentinelTopology();
    store = new RedisSessionStore(
      {
        topology: 'sentinel',
        sentinelUrls: topology.sentinelUrls,
        masterName: topology.masterName,
        username: undefined,
        password: undefined,
        caFile: undefined,
      },
      { waitTimeoutMs: WAIT_MS, onWaitTimeout: () => timeouts.push(Date.now()) },
    );
    await store.ready(10_000);
  }, 40_000);
  afterAll(async () => {
    topology?.replica().resume();
    await store?.close();
    await topology?.stop();
  });

  test('a token write returns once the replica holds it', async () => {
    await store.create('w1', record());
    expect(await store.writeTokens('w1', 1, 't2')).toBe(true);
    expect(await ask(topology.replica().port, 'HGET', 'coatcheck:s:w1', 't')).toBe('t2');
    expect(store.waitTimeouts).toBe(0);
  });

  test('a replica that does not acknowledge costs the timeout, is counted and reported, and the write stands', async () => {
    await store.create('w2', record());
    topology.replica().pause();
    try {
      const started = Date.now();
      expect(await store.writeTokens('w2', 1, 't2')).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 10);
      expect(store.waitTimeouts).toBe(1);
      expect(timeouts).toHaveLength(1);
      expect(await store.readTokens('w2')).toEqual({ tokens: 't2', version: 2 });
      // The proxy path has its own connection: it does not queue behind a WAIT.
      const pending = store.writeTokens('w2', 2, 't3');
      const loadStarted = Date.now();
      expect(await store.load('w2', Date.now())).toBeDefined();
      expect(Date.now() - loadStarted).toBeLessThan(WAIT_MS);
      expect(await pending).toBe(true);
    } finally {
      topology.replica().resume();
    }
  });

  test('a running coatcheck counts a WAIT that ran out in coatcheck_redis_wait_timeouts_total', async () => {
    const { BFF_REDIS_URL: _standalone, ...env } = validEnv;
    const config = loadConfig({
      ...env,
      BFF_ISSUER: 'http://127.0.0.1:1/unreachable',
      BFF_PORT: '0',
      BFF_REDIS_SENTINEL_CONNECTION_URLS: topology.sentinelUrls.join(','),
      BFF_REDIS_SENTINEL_MASTER_NAME: topology.masterName,
      BFF_REDIS_WAIT_TIMEOUT: '0.1',
    });
    const instance = await startCoatcheck(config, { log: createLogger('silent') });
    const counted = async (): Promise<string | undefined> =>
      (await instance.context.metrics.registry.metrics())
        .split('\n')
        .find((line) => line.startsWith('coatcheck_redis_wait_timeouts_total '));
    try {
      await instance.store.create('w3', record());
      expect(await counted()).toBe('coatcheck_redis_wait_timeouts_total 0');
      topology.replica().pause();
      try {
        expect(await instance.store.writeTokens('w3', 1, 't2')).toBe(true);
      } finally {
        topology.replica().resume();
      }
      expect(await counted()).toBe('coatcheck_redis_wait_timeouts_total 1');
    } finally {
      await instance.close();
    }
  });
});

describe('without a replica (standalone)', () => {
  let redis: TestRedis;
  let store: RedisSessionStore;
  beforeAll(async () => {
    redis = await startRedis();
    store = new RedisSessionStore(redis.url, { waitTimeoutMs: 5000 });
    await store.ready();
  });
  afterAll(async () => {
    await store?.close();
    await redis?.stop();
  });

  test('a token write does not WAIT for a replica that does not exist', async () => {
    await store.create('s1', record());
    const started = Date.now();
    expect(await store.writeTokens('s1', 1, 't2')).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(store.waitTimeouts).toBe(0);
  });
});
