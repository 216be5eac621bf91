import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { MemorySessionStore } from '../src/session/memory-store.js';
import { startCoatcheck } from '../src/start.js';
import { startRedis, type TestRedis } from './support/redis.js';

/** The one wiring main.ts, demo mode and the test stack share: what it checks and what it closes. */
function configFor(env: Record<string, string>) {
  return loadConfig({
    BFF_PORT: '0',
    BFF_HOST: '127.0.0.1',
    BFF_PUBLIC_URL: 'http://127.0.0.1:3000',
    // Nothing listens there: discovery fails and is retried on demand, which these tests never need.
    BFF_ISSUER: 'http://127.0.0.1:9',
    BFF_CLIENT_ID: 'client',
    BFF_CLIENT_SECRET: 'secret',
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:9' }]),
    ...env,
  });
}
const silent = () => createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));

describe('with Redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test('a Redis user that may not publish stops start-up with a configuration error', async () => {
    const admin = new Redis(redis.url);
    try {
      // Redis 7's default for new ACL users: keys and commands allowed, no pub/sub channels.
      await admin.call('ACL', 'SETUSER', 'limited', 'on', '>pw', '~coatcheck:*', '+@all', 'resetchannels');
    } finally {
      admin.disconnect();
    }
    const config = configFor({ BFF_REDIS_URL: `redis://limited:pw@127.0.0.1:${redis.port}` });
    const started = startCoatcheck(config, { log: silent() });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toMatchObject({
      problems: [expect.stringMatching(/^BFF_REDIS_URL: the Redis user may not PUBLISH/)],
    });
  });

  test('close() stops listening and closes the store it opened; a second call waits for the same stop', async () => {
    const coatcheck = await startCoatcheck(configFor({ BFF_REDIS_URL: redis.url }), { log: silent() });
    expect(coatcheck.server.listening).toBe(true);
    const first = coatcheck.close();
    expect(coatcheck.close()).toBe(first);
    await first;
    expect(coatcheck.server.listening).toBe(false);
    await expect(coatcheck.store.ping()).rejects.toBeDefined();
  });
});

test('a store the caller brings is used and left open for its owner', async () => {
  let closed = false;
  const store = new MemorySessionStore();
  const close = store.close.bind(store);
  store.close = () => {
    closed = true;
    return close();
  };
  const coatcheck = await startCoatcheck(configFor({ BFF_SESSION_STORE: 'memory' }), {
    log: silent(),
    store,
  });
  expect(coatcheck.store).toBe(store);
  await coatcheck.close();
  expect(closed).toBe(false);
  await store.close();
});
