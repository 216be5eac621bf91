import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { RedisSessionStore } from '../src/session/redis-store.js';
import { Browser } from './support/browser.js';
import { waitFor } from './support/ports.js';
import {
  startClusterTopology,
  startSentinelTopology,
  type ClusterTopology,
  type SentinelTopology,
} from './support/redis-topology.js';
import { CLIENT_ID, signOutAtIdp, startStack, type Stack } from './support/stack.js';

/*
 * coatcheck on real Redis topologies, through real failovers: a SIGKILLed master, a promoted replica,
 * and the sessions and rotated refresh tokens that must survive it.
 */

const RECOVERY_MS = 15_000;
const csrf = { 'x-csrf': '1' };

async function status(b: Browser, url: string): Promise<number> {
  return (await b.go(url, { headers: csrf })).status;
}

/**
 * Polls until every call succeeds again; resolves with how long that took. More than one instance:
 * one may answer from its session cache while the store is still away.
 */
async function recovered(b: Browser, urls: string[], since: number): Promise<number> {
  const seen = new Set<number>();
  await waitFor(
    async () => {
      const codes = await Promise.all(urls.map((url) => status(b, url).catch(() => 0)));
      for (const code of codes) seen.add(code);
      return codes.every((code) => code === 200) ? true : undefined;
    },
    RECOVERY_MS,
    `${urls.join(', ')} to answer 200 again (answers: ${[...seen].join(', ')})`,
  );
  return Date.now() - since;
}

/** Moves the clock past the session's refresh time. */
async function expireTokens(stack: Stack, b: Browser, bff = stack.bff): Promise<void> {
  const session = (await stack.sessionOf(b, bff))!;
  stack.clock.advance(session.tokens.refreshAt - stack.clock.now() + 1000);
}

describe('on Redis Sentinel', () => {
  let topology: SentinelTopology;
  let stack: Stack;
  beforeAll(async () => {
    topology = await startSentinelTopology();
    stack = await startStack({
      externalRedis: true,
      env: {
        BFF_REDIS_SENTINEL_CONNECTION_URLS: topology.sentinelUrls.join(','),
        BFF_REDIS_SENTINEL_MASTER_NAME: topology.masterName,
        // Generous: a loaded test machine can take longer than the default to acknowledge.
        BFF_REDIS_WAIT_TIMEOUT: '2',
      },
    });
  }, 40_000);
  afterAll(async () => {
    await stack?.close();
    await topology?.stop();
  });

  test('a SIGKILL of the master just after a refresh: within 15 s calls work, the session and its rotated token are intact', async () => {
    const b = new Browser();
    await b.login(stack.bff.url);
    expect(await status(b, `${stack.bff.url}/api/before`)).toBe(200);

    const start = { ...stack.idp.counters };
    await expireTokens(stack, b);
    expect(await status(b, `${stack.bff.url}/api/refreshes`)).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(start.refreshGrants + 1);
    // The rotated token was acknowledged by the replica before the refresh answered.
    expect((stack.bff.store as RedisSessionStore).waitTimeouts).toBe(0);
    const rotated = (await stack.sessionOf(b))!.tokens.refreshToken;

    const killedAt = Date.now();
    await topology.master().kill();
    expect(await recovered(b, [`${stack.bff.url}/api/after-failover`], killedAt)).toBeLessThan(RECOVERY_MS);
    await topology.waitForFailover(RECOVERY_MS);

    expect(await status(b, `${stack.bff.url}/bff/user`)).toBe(200);
    expect((await stack.sessionOf(b))!.tokens.refreshToken).toBe(rotated);
    // The promoted replica holds the rotated refresh token, so the IdP sees no reuse.
    await expireTokens(stack, b);
    expect(await status(b, `${stack.bff.url}/api/refreshes-again`)).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(start.refreshGrants + 2);
    expect(stack.idp.counters.refreshReuse).toBe(start.refreshReuse);
    expect(stack.idp.counters.grantsRevoked).toBe(start.grantsRevoked);
  }, 40_000);
});

describe('on Redis Cluster', () => {
  let topology: ClusterTopology;
  let stack: Stack;
  beforeAll(async () => {
    topology = await startClusterTopology();
    stack = await startStack({
      instances: 2,
      externalRedis: true,
      env: { BFF_REDIS_CLUSTER_CONNECTION_URLS: topology.seedUrls.join(','), BFF_REDIS_WAIT_TIMEOUT: '2' },
    });
  }, 40_000);
  afterAll(async () => {
    await stack?.close();
    await topology?.stop();
  });

  const url = (instance: number, path: string): string => `${stack.bffs[instance]!.url}${path}`;

  test('login and API calls', async () => {
    const b = new Browser();
    await b.login(url(0, ''));
    expect(await status(b, url(0, '/api/x'))).toBe(200);
    expect(await status(b, url(1, '/api/y'))).toBe(200);
    expect(await status(b, url(1, '/bff/user'))).toBe(200);
  });

  test('100 concurrent calls at token expiry over two instances: all 200, exactly one refresh', async () => {
    const b = new Browser();
    await b.login(url(0, ''));
    const cookie = await b.jar.getCookieString(url(0, ''));
    const start = { ...stack.idp.counters };
    await expireTokens(stack, b);
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const res = await request(url(i % 2, `/api/burst/${i}`), { headers: { ...csrf, cookie } });
        await res.body.dump();
        return res.statusCode;
      }),
    );
    expect(results.filter((s) => s !== 200)).toEqual([]);
    expect(stack.idp.counters.refreshGrants).toBe(start.refreshGrants + 1);
    expect(stack.idp.counters.refreshReuse).toBe(start.refreshReuse);
    for (const bff of stack.bffs) expect((bff.store as RedisSessionStore).waitTimeouts).toBe(0);
  });

  test('logout ends the session on both instances', async () => {
    const b = new Browser();
    await b.login(url(0, ''));
    const user = JSON.parse((await b.go(url(0, '/bff/user'), { headers: csrf })).text) as {
      logoutUrl: string;
    };
    expect((await b.go(url(0, user.logoutUrl), { follow: false })).status).toBe(302);
    expect(await status(b, url(0, '/bff/user'))).toBe(401);
    expect(await status(b, url(1, '/bff/user'))).toBe(401);
  });

  test('back-channel logout by sid ends that session only, by sub every session of the user', async () => {
    const one = new Browser();
    await one.login(url(0, ''));
    const two = new Browser();
    await two.login(url(1, ''));
    const three = new Browser();
    await three.login(url(0, ''));

    await signOutAtIdp(stack, one);
    expect(await status(one, url(0, '/bff/user'))).toBe(401);
    expect(await status(one, url(1, '/bff/user'))).toBe(401);
    expect(await status(two, url(0, '/bff/user'))).toBe(200);

    const now = Math.floor(Date.now() / 1000);
    const token = await stack.idp.sign(
      {
        iss: stack.idp.issuer,
        aud: CLIENT_ID,
        iat: now,
        exp: now + 120,
        jti: randomUUID(),
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        sub: 'alice-0001',
      },
      'logout+jwt',
    );
    const res = await request(url(1, '/bff/backchannel-logout'), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }).toString(),
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    for (const b of [two, three]) {
      expect(await status(b, url(0, '/bff/user'))).toBe(401);
      expect(await status(b, url(1, '/bff/user'))).toBe(401);
    }
  });

  test('a SIGKILL of the master holding a session’s slot: within 15 s the session works again', async () => {
    const b = new Browser();
    await b.login(url(0, ''));
    expect(await status(b, url(0, '/api/before'))).toBe(200);
    const session = (await stack.sessionOf(b))!;
    const master = await topology.masterForKey(`coatcheck:s:{${session.key}}`);

    const killedAt = Date.now();
    await master.kill();
    const urls = [url(0, '/api/after-failover'), url(1, '/api/after-failover'), url(1, '/bff/user')];
    expect(await recovered(b, urls, killedAt)).toBeLessThan(RECOVERY_MS);
    // A store write on the promoted master: a refresh, accepted by the IdP.
    const start = { ...stack.idp.counters };
    await expireTokens(stack, b);
    expect(await status(b, url(1, '/api/refreshes'))).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(start.refreshGrants + 1);
    expect(stack.idp.counters.refreshReuse).toBe(start.refreshReuse);
  }, 40_000);
});
