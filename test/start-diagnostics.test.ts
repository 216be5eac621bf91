import { generateKeyPair, exportJWK } from 'jose';
import { Redis } from 'ioredis';
import { describeConfig } from '../src/config/describe.js';
import { loadConfig } from '../src/config/load.js';
import { RedisSessionStore } from '../src/session/redis-store.js';
import { freePort } from './support/ports.js';
import { startRedis, type TestRedis } from './support/redis.js';

describe('the effective configuration logged at start-up', () => {
  test('shows what an operator checks, and none of the secrets a configuration can hold', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'k1' });
    const secrets = {
      session: 'session-secret-one-'.padEnd(40, 'x'),
      oldSession: 'session-secret-two-'.padEnd(40, 'y'),
      redisPassword: 'redis-password-in-the-url',
      routePassword: 'route-password-in-the-url',
      authParam: 'value-of-an-auth-param',
    };
    const config = loadConfig({
      BFF_PUBLIC_URL: 'https://app.example.com',
      BFF_ISSUER: 'https://idp.example.com/realms/x',
      BFF_CLIENT_ID: 'spa',
      BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
      BFF_CLIENT_PRIVATE_KEY: jwk,
      BFF_REDIS_URL: `rediss://coatcheck:${secrets.redisPassword}@redis.internal:6380/2`,
      BFF_SESSION_SECRET: `${secrets.session},${secrets.oldSession}`,
      BFF_ROUTES: JSON.stringify([
        { path: '/api', target: `http://svc:${secrets.routePassword}@api.internal:5000/v1` },
      ]),
      BFF_AUTH_PARAMS: `prompt=consent&login_hint=${secrets.authParam}`,
      BFF_SESSION_IDLE_TIMEOUT: '3',
    });
    const described = describeConfig(config);
    expect(described).toMatchObject({
      issuer: 'https://idp.example.com/realms/x',
      publicUrl: 'https://app.example.com',
      clientId: 'spa',
      clientAuthMethod: 'private_key_jwt',
      authParams: ['prompt', 'login_hint'],
      store: 'redis at rediss://redis.internal:6380/2',
      routes: ['/api -> http://api.internal:5000/v1'],
      timeoutsSeconds: { sessionIdle: 3, sessionCache: 1.5, sessionAbsolute: 28800 },
    });
    const text = JSON.stringify(described);
    for (const secret of [...Object.values(secrets), JSON.parse(jwk).d as string]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('Redis that does not become ready says which server and why', () => {
  let redis: TestRedis | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  test('nothing listening', async () => {
    const port = await freePort();
    const store = new RedisSessionStore(`redis://127.0.0.1:${port}`);
    try {
      await expect(store.ready(500)).rejects.toThrow(
        new RegExp(
          `^Redis at redis://127\\.0\\.0\\.1:${port} did not become ready within 0\\.5 s: .*ECONNREFUSED`,
        ),
      );
    } finally {
      store.redis.disconnect();
    }
  });

  test('a wrong password, which is never printed', async () => {
    redis = await startRedis();
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', 'the-right-password');
    await admin.quit();
    const store = new RedisSessionStore(`redis://:a-wrong-password@127.0.0.1:${redis.port}`);
    try {
      const err = (await store.ready(1000).catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(
        new RegExp(
          `^Redis at redis://127\\.0\\.0\\.1:${redis.port} did not become ready within 1 s: .*(WRONGPASS|NOAUTH)`,
        ),
      );
      expect(err.message).not.toContain('a-wrong-password');
    } finally {
      store.redis.disconnect();
    }
  });
});
