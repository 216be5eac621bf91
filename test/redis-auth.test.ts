import { Redis } from 'ioredis';
import { request } from 'undici';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { SESSION_COOKIE, unsignValue } from '../src/security/cookies.js';
import { connectRedis } from '../src/session/redis-connection.js';
import { validEnv } from './support/config-env.js';
import { startAgainstRedis, startRedis, type TestRedis } from './support/redis.js';
import {
  ask,
  startClusterTopology,
  startSentinelTopology,
  type ClusterTopology,
  type SentinelTopology,
} from './support/redis-topology.js';
import { csrf, loggedIn } from './support/session.js';
import { SESSION_SECRET, startStack, type Stack } from './support/stack.js';

/*
 * Redis credentials against real servers: an ACL user on the data nodes (the default user is off),
 * sentinels with requirepass, and users confined to one deployment's key prefix.
 */

const USER = 'coatcheck';
const DATA_PASSWORD = 'data-node-password-7f3a';
const SENTINEL_PASSWORD = 'sentinel-password-c91e';
const WRONG_PASSWORD = 'not-the-password-5d2b';
const PASSWORDS = [DATA_PASSWORD, SENTINEL_PASSWORD, WRONG_PASSWORD];
/** A refused start-up answers within the ready timeout plus one probe round; generous for a loaded machine. */
const REFUSED_WITHIN_MS = 20_000;

/** Start-up refused with a configuration error in bounded time, and no password in it or in the logs. */
async function refusedStart(env: Record<string, string>): Promise<readonly string[]> {
  const { error, logs, ms } = await startAgainstRedis(env);
  expect(error).toBeInstanceOf(ConfigError);
  expect(ms).toBeLessThan(REFUSED_WITHIN_MS);
  const message = (error as ConfigError).message;
  for (const secret of PASSWORDS) {
    expect(message).not.toContain(secret);
    expect(logs).not.toContain(secret);
  }
  return (error as ConfigError).problems;
}

/** A login and an API call through coatcheck; then no password in anything it logged. */
async function sessionWorks(env: Record<string, string>): Promise<void> {
  const stack = await startStack({ externalRedis: true, env: { BFF_SESSION_CACHE_TTL: '5', ...env } });
  try {
    const b = await loggedIn(stack.bff);
    expect((await b.go(`${stack.bff.url}/api/items`, { headers: csrf })).status).toBe(200);
    expect((await stack.sessionOf(b))?.data().sub).toBe('alice-0001');
  } finally {
    await stack.close();
  }
  const logs = stack.bff.logs.join('');
  expect(logs).toContain('effective configuration');
  for (const secret of PASSWORDS) expect(logs).not.toContain(secret);
}

/** One command without credentials, the server's reply error included (no ready check hides it). */
async function anonymously(port: number, command: string, ...args: string[]): Promise<unknown> {
  const client = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

const withPassword = (url: string, password: string) => url.replace('://', `://:${password}@`);
const ports = (list: readonly { port: number }[]) => list.map((p) => String(p.port)).join('|');

describe('Sentinel: BFF_REDIS_USERNAME/PASSWORD for the data nodes, the URL credentials for the sentinels', () => {
  let topology: SentinelTopology;
  beforeAll(async () => {
    topology = await startSentinelTopology({
      dataNodeUser: { username: USER, password: DATA_PASSWORD },
      sentinelPassword: SENTINEL_PASSWORD,
    });
  }, 40_000);
  afterAll(async () => {
    await topology?.stop();
  });
  const env = (sentinelPassword: string | undefined, dataPassword: string) => ({
    BFF_REDIS_SENTINEL_CONNECTION_URLS: topology.sentinelUrls
      .map((u) => (sentinelPassword ? withPassword(u, sentinelPassword) : u))
      .join(','),
    BFF_REDIS_SENTINEL_MASTER_NAME: topology.masterName,
    BFF_REDIS_USERNAME: USER,
    BFF_REDIS_PASSWORD: dataPassword,
  });

  test('both refuse a client without credentials', async () => {
    await expect(anonymously(topology.master().port, 'PING')).rejects.toThrow(/NOAUTH/);
    const sentinel = topology.sentinelProcesses[0]!.port;
    await expect(
      anonymously(sentinel, 'SENTINEL', 'get-master-addr-by-name', topology.masterName),
    ).rejects.toThrow(/NOAUTH/);
  });

  test('with the right credentials, a login and an API call work', async () => {
    await sessionWorks(env(SENTINEL_PASSWORD, DATA_PASSWORD));
  });

  test('a wrong data-node password fails start-up, naming the master and the variables', async () => {
    const problems = await refusedStart(env(SENTINEL_PASSWORD, WRONG_PASSWORD));
    expect(problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^BFF_REDIS_USERNAME, BFF_REDIS_PASSWORD: master ${topology.masterName} at 127\\.0\\.0\\.1:${topology.master().port} refused them \\(WRONGPASS .+\\)$`,
        ),
      ),
    ]);
  });

  test('a wrong sentinel password fails start-up, naming every sentinel', async () => {
    const problems = await refusedStart(env(WRONG_PASSWORD, DATA_PASSWORD));
    expect(problems).toHaveLength(1);
    const sentinels = topology.sentinelProcesses.map((s) => `sentinel redis://127\\.0\\.0\\.1:${s.port}`);
    expect(problems[0]).toMatch(
      new RegExp(
        `^BFF_REDIS_SENTINEL_CONNECTION_URLS: ${sentinels.join(', ')} refused the credentials in its URL \\(WRONGPASS .+\\)$`,
      ),
    );
  });

  test('sentinel URLs without credentials fail start-up, saying where they go', async () => {
    const problems = await refusedStart(env(undefined, DATA_PASSWORD));
    expect(problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^BFF_REDIS_SENTINEL_CONNECTION_URLS: (sentinel redis://127\\.0\\.0\\.1:(${ports(topology.sentinelProcesses)})(, )?){3} wants credentials; put them in its URL \\(NOAUTH .+\\)$`,
        ),
      ),
    ]);
  });
});

describe('Cluster: BFF_REDIS_USERNAME/PASSWORD for every node', () => {
  let topology: ClusterTopology;
  beforeAll(async () => {
    topology = await startClusterTopology({ dataNodeUser: { username: USER, password: DATA_PASSWORD } });
  }, 40_000);
  afterAll(async () => {
    await topology?.stop();
  });

  test('the nodes refuse a client without credentials', async () => {
    await expect(anonymously(topology.nodes[0]!.port, 'PING')).rejects.toThrow(/NOAUTH/);
  });

  test('with the right credentials, a login and an API call work', async () => {
    await sessionWorks({
      BFF_REDIS_CLUSTER_CONNECTION_URLS: topology.seedUrls.join(','),
      BFF_REDIS_USERNAME: USER,
      BFF_REDIS_PASSWORD: DATA_PASSWORD,
    });
  });

  test('a wrong password fails start-up, naming the seed nodes and the variables', async () => {
    const seeds = topology.seedUrls.slice(0, 3);
    const problems = await refusedStart({
      BFF_REDIS_CLUSTER_CONNECTION_URLS: seeds.join(','),
      BFF_REDIS_USERNAME: USER,
      BFF_REDIS_PASSWORD: WRONG_PASSWORD,
    });
    const where = seeds.map((u) => `node ${u.replace(/\./g, '\\.')}`).join(', ');
    expect(problems).toEqual([
      expect.stringMatching(
        new RegExp(`^BFF_REDIS_USERNAME, BFF_REDIS_PASSWORD: ${where} refused them \\(WRONGPASS .+\\)$`),
      ),
    ]);
  });
});

describe('BFF_REDIS_KEY_PREFIX: two deployments share one Redis', () => {
  // Each deployment's Redis user may touch only its own prefix's keys and channels: if coatcheck used
  // any key or channel outside its prefix, its logins would fail with NOPERM.
  const deployments = [
    { prefix: 'shop:', user: 'shop', password: 'shop-password-41ac' },
    { prefix: 'blog:', user: 'blog', password: 'blog-password-0be7' },
  ];
  let redis: TestRedis;
  const stacks: Stack[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    for (const d of deployments) {
      await ask(
        redis.port,
        'ACL',
        'SETUSER',
        d.user,
        'on',
        `>${d.password}`,
        `~${d.prefix}*`,
        `&${d.prefix}*`,
        '+@all',
      );
      const url = redis.url.replace('://', `://${d.user}:${d.password}@`);
      stacks.push(
        await startStack({
          externalRedis: true,
          env: { BFF_REDIS_URL: url, BFF_REDIS_KEY_PREFIX: d.prefix },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const stack of stacks) await stack.close();
    await redis?.stop();
  });

  test("each sees its own sessions and not the other's, and keeps every key under its prefix", async () => {
    const [shop, blog] = stacks as [Stack, Stack];
    const atShop = await loggedIn(shop.bff);
    const atBlog = await loggedIn(blog.bff);
    expect((await atShop.go(`${shop.bff.url}/api/a`, { headers: csrf })).status).toBe(200);
    expect((await atBlog.go(`${blog.bff.url}/api/b`, { headers: csrf })).status).toBe(200);

    // Both deployments share the session secret, so each can read the other's cookie: only the store
    // separates them. A session of one is unknown to the other, over HTTP and in the store.
    for (const [from, to] of [
      [shop, blog],
      [blog, shop],
    ] as const) {
      const browser = from === shop ? atShop : atBlog;
      const cookie = (await browser.jar.getCookies(from.bff.url)).find((c) => c.key === SESSION_COOKIE)!;
      const id = unsignValue(decodeURIComponent(cookie.value), [SESSION_SECRET])!;
      expect(await from.bff.app.context.sessions.load(id, Date.now())).toBeDefined();
      expect(await to.bff.app.context.sessions.load(id, Date.now())).toBeUndefined();
      const borrowed = await request(`${to.bff.url}/api/x`, {
        headers: { ...csrf, cookie: `${SESSION_COOKIE}=${cookie.value}` },
      });
      await borrowed.body.dump();
      expect(borrowed.statusCode).toBe(401);
    }

    const keys = (await ask(redis.port, 'KEYS', '*')) as string[];
    expect(keys.filter((k) => k.startsWith('shop:')).length).toBeGreaterThan(0);
    expect(keys.filter((k) => k.startsWith('blog:')).length).toBeGreaterThan(0);
    expect(keys.filter((k) => !k.startsWith('shop:') && !k.startsWith('blog:'))).toEqual([]);
  });
});

test('a sentinel password with a stray "%" is sent as typed, not thrown as a URIError', () => {
  const config = loadConfig({
    ...validEnv,
    BFF_REDIS_URL: undefined,
    BFF_REDIS_SENTINEL_CONNECTION_URLS: 'redis://:50%off@127.0.0.1:1',
    BFF_REDIS_SENTINEL_MASTER_NAME: 'mymaster',
  });
  if (config.store.kind !== 'redis') throw new Error('expected the Redis store');
  const client = connectRedis(config.store, { lazyConnect: true }) as Redis;
  expect(client.options.sentinelPassword).toBe('50%off');
  client.disconnect();
});
