import { ConfigError } from '../src/config/load.js';
import { startAgainstRedis, startRedis, type TestRedis } from './support/redis.js';
import {
  startClusterTopology,
  startSentinelTopology,
  type ClusterTopology,
  type SentinelTopology,
} from './support/redis-topology.js';
import { csrf, loggedIn } from './support/session.js';
import { startStack } from './support/stack.js';
import { makeTestCertificates, type TestCertificates } from './support/tls-certs.js';

/*
 * rediss:// with BFF_REDIS_CA_FILE against real TLS-only servers: every redis-server and
 * redis-sentinel here listens with TLS and has no plain port, so a session that works went over TLS.
 * The certificates come from the openssl CLI, made fresh for this file.
 */

/** A refused start-up answers within the ready timeout plus one probe round; generous for a loaded machine. */
const REFUSED_WITHIN_MS = 20_000;

let certs: TestCertificates;
beforeAll(async () => {
  certs = await makeTestCertificates();
});
afterAll(async () => {
  await certs?.remove();
});

/** A real login and API call through coatcheck on this Redis, with the session cache on (pub/sub too). */
async function sessionWorks(env: Record<string, string>): Promise<void> {
  const stack = await startStack({ externalRedis: true, env: { BFF_SESSION_CACHE_TTL: '5', ...env } });
  try {
    const b = await loggedIn(stack.bff);
    const api = await b.go(`${stack.bff.url}/api/items`, { headers: csrf });
    expect(api.status).toBe(200);
    const seen = stack.upstream.requests.at(-1)!;
    expect(seen.url).toBe('/v1/items');
    await stack.verifyAccessToken(String(seen.headers.authorization).replace(/^Bearer /, ''));
    expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
    expect((await stack.sessionOf(b))?.data().sub).toBe('alice-0001');
  } finally {
    await stack.close();
  }
}

/** Start-up refused with a configuration error, in bounded time: no hang, no crash. */
async function refusedStart(env: Record<string, string>): Promise<{ error: ConfigError; logs: string }> {
  const { error, logs, ms } = await startAgainstRedis(env);
  expect(error).toBeInstanceOf(ConfigError);
  expect(ms).toBeLessThan(REFUSED_WITHIN_MS);
  return { error: error as ConfigError, logs };
}

const untrusted = (where: string) =>
  new RegExp(
    `^BFF_REDIS_CA_FILE: the TLS certificate of ${where} is not trusted with the CA in BFF_REDIS_CA_FILE \\(.+\\)$`,
  );

describe('rediss:// to a standalone Redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ tls: certs });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test('with the CA that signed the server certificate, a login and an API call work', async () => {
    expect(redis.url).toMatch(/^rediss:\/\//);
    await sessionWorks({ BFF_REDIS_URL: redis.url, BFF_REDIS_CA_FILE: certs.caFile });
  });

  test('with another CA, start-up fails with a configuration error naming the server and the variable', async () => {
    const { error } = await refusedStart({ BFF_REDIS_URL: redis.url, BFF_REDIS_CA_FILE: certs.otherCaFile });
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(untrusted(`rediss://127\\.0\\.0\\.1:${redis.port}`));
  });

  test('without BFF_REDIS_CA_FILE, start-up fails and says to set it', async () => {
    const { error } = await refusedStart({ BFF_REDIS_URL: redis.url });
    expect(error.problems).toEqual([
      expect.stringMatching(
        new RegExp(
          `^BFF_REDIS_CA_FILE: the TLS certificate of rediss://127\\.0\\.0\\.1:${redis.port} is not trusted \\(.+\\); set BFF_REDIS_CA_FILE to the CA that signed it$`,
        ),
      ),
    ]);
  });
});

describe('rediss:// to Redis Sentinel: TLS to the sentinels and to the data nodes', () => {
  let topology: SentinelTopology;
  beforeAll(async () => {
    topology = await startSentinelTopology({ tls: certs });
  }, 40_000);
  afterAll(async () => {
    await topology?.stop();
  });
  const env = () => ({
    BFF_REDIS_SENTINEL_CONNECTION_URLS: topology.sentinelUrls.join(','),
    BFF_REDIS_SENTINEL_MASTER_NAME: topology.masterName,
  });

  test('with the CA, a login and an API call work', async () => {
    expect(topology.sentinelUrls.every((u) => u.startsWith('rediss://'))).toBe(true);
    expect(topology.master().url).toMatch(/^rediss:\/\//);
    await sessionWorks({ ...env(), BFF_REDIS_CA_FILE: certs.caFile });
    // The session went to the master the sentinels named, over TLS: nothing else listens.
    expect(Number(await topology.askNode(topology.master().port, 'DBSIZE'))).toBeGreaterThan(0);
  });

  test('with another CA, start-up fails and names every sentinel', async () => {
    const { error } = await refusedStart({ ...env(), BFF_REDIS_CA_FILE: certs.otherCaFile });
    const where = topology.sentinelProcesses.map((s) => `sentinel rediss://127\\.0\\.0\\.1:${s.port}`);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(untrusted(where.join(', ')));
  });
});

describe('rediss:// to Redis Cluster', () => {
  let topology: ClusterTopology;
  beforeAll(async () => {
    topology = await startClusterTopology({ tls: certs });
  }, 40_000);
  afterAll(async () => {
    await topology?.stop();
  });

  test('with the CA, a login and an API call work', async () => {
    expect(topology.seedUrls.every((u) => u.startsWith('rediss://'))).toBe(true);
    await sessionWorks({
      BFF_REDIS_CLUSTER_CONNECTION_URLS: topology.seedUrls.join(','),
      BFF_REDIS_CA_FILE: certs.caFile,
    });
  });

  test('with another CA, start-up fails and names the seed nodes', async () => {
    const seeds = topology.seedUrls.slice(0, 2);
    const { error } = await refusedStart({
      BFF_REDIS_CLUSTER_CONNECTION_URLS: seeds.join(','),
      BFF_REDIS_CA_FILE: certs.otherCaFile,
    });
    const where = seeds.map((u) => `node ${u.replace(/\./g, '\\.')}`).join(', ');
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]).toMatch(untrusted(where));
  });
});
