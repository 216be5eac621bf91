import { request } from 'undici';
import { waitFor } from './support/ports.js';
import { startStack, type Stack } from './support/stack.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

/** Releasable stall for the lock holder, so a test can freeze a refresh in flight. */
function stall() {
  let entered!: () => void;
  let release!: (err: Error) => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  const gate = new Promise<void>((_, reject) => (release = reject));
  gate.catch(() => undefined);
  return {
    hook: async () => {
      entered();
      await gate;
    },
    entered: enteredP,
    release: () => release(new Error('the stalled instance was killed')),
  };
}

describe('exactly one refresh per expiry, across replicas', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ instances: 2 });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('100 concurrent calls of one session over two instances, over 3 expiries: all 200, 1 refresh each, no reuse', async () => {
    const b = await loggedIn(stack.bffs[0]!);
    const cookie = await b.jar.getCookieString(stack.bffs[0]!.url);
    const start = { ...stack.idp.counters, grantErrors: [...stack.idp.counters.grantErrors] };
    const tokensPerRound: Set<string>[] = [];

    for (let round = 1; round <= 3; round++) {
      await advanceToRefresh(stack, b);
      const before = stack.upstream.requests.length;
      const results = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const res = await request(`${stack.bffs[i % 2]!.url}/api/round/${round}/${i}`, {
            headers: { ...csrf, cookie },
          });
          await res.body.dump();
          return res.statusCode;
        }),
      );
      expect(results.filter((s) => s !== 200)).toEqual([]);
      expect(stack.idp.counters.refreshGrants - start.refreshGrants).toBe(round);
      const seen = new Set(stack.upstream.requests.slice(before).map((r) => String(r.headers.authorization)));
      tokensPerRound.push(seen);
      // Every call carried the one new token, and the IdP's keys verify it.
      expect(seen.size).toBe(1);
      for (const t of seen) expect((await stack.verifyAccessToken(t.slice(7))).sub).toBe('alice-0001');
    }
    expect(new Set(tokensPerRound.map((s) => [...s][0])).size).toBe(3);
    expect(stack.idp.counters.refreshReuse).toBe(start.refreshReuse);
    expect(stack.idp.counters.grantsRevoked).toBe(start.grantsRevoked);
    expect(stack.idp.counters.grantErrors).toEqual(start.grantErrors);
    // The session is alive and well after all that.
    expect((await b.go(`${stack.bffs[1]!.url}/bff/user`, { headers: csrf })).status).toBe(200);
  });

  test('a request that read the token set before a refresh uses the stored result instead of refreshing again', async () => {
    const b = await loggedIn(stack.bffs[0]!);
    const stale = await advanceToRefresh(stack, b);
    const refreshes = stack.idp.counters.refreshGrants;
    expect((await b.go(`${stack.bffs[1]!.url}/api/x`, { headers: csrf })).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 1);

    // `stale` still holds the old, due token set, as a slow request on another replica would.
    const tokens = await stack.bffs[0]!.app.context.refresher.fresh(stale);
    expect(tokens.accessToken).not.toBe(stale.tokens.accessToken);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 1);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });

  test('stale-write race: a slow request that loaded the session before a refresh finishes after it; the next refresh still succeeds', async () => {
    const b = await loggedIn(stack.bffs[0]!);
    const cookie = await b.jar.getCookieString(stack.bffs[0]!.url);

    // The slow request loads the session now and finishes after the refresh below.
    const slow = request(`${stack.bffs[0]!.url}/api/gate/stale-write`, { headers: { ...csrf, cookie } });
    await waitFor(() =>
      stack.upstream.requests.some((r) => r.url.includes('/gate/stale-write')) ? true : undefined,
    );

    await advanceToRefresh(stack, b);
    const refreshes = stack.idp.counters.refreshGrants;
    expect((await b.go(`${stack.bffs[1]!.url}/api/during`, { headers: csrf })).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 1);
    const rotated = (await stack.sessionOf(b))!.tokens.refreshToken;

    stack.upstream.openGate('stale-write');
    const slowRes = await slow;
    await slowRes.body.dump();
    expect(slowRes.statusCode).toBe(200);
    // The slow request wrote nothing back over the rotated refresh token…
    expect((await stack.sessionOf(b))!.tokens.refreshToken).toBe(rotated);

    // …so the next expiry refreshes with the current token, and the IdP sees no reuse.
    await advanceToRefresh(stack, b);
    expect((await b.go(`${stack.bffs[0]!.url}/api/after`, { headers: csrf })).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 2);
    expect(stack.idp.counters.refreshReuse).toBe(0);
    expect(stack.idp.counters.grantsRevoked).toBe(0);
  });
});

describe('the lock holder dies mid-refresh', () => {
  const stalled = stall();
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      instances: 2,
      env: { BFF_REFRESH_LOCK_TTL: '1', BFF_UPSTREAM_TIMEOUT: '10' },
      refreshHooks: (i) => (i === 0 ? { beforeRefresh: stalled.hook } : undefined),
    });
  });
  afterAll(async () => {
    stalled.release();
    await stack?.close();
  });

  test('the other instance takes over after the lock TTL and refreshes exactly once', async () => {
    const b = await loggedIn(stack.bffs[1]!);
    const cookie = await b.jar.getCookieString(stack.bffs[1]!.url);
    const session = await advanceToRefresh(stack, b, stack.bffs[1]);

    // Instance 0 takes the lock and stalls before calling the IdP…
    const doomed = request(`${stack.bffs[0]!.url}/api/doomed`, { headers: { ...csrf, cookie } }).catch(
      (err: Error) => err,
    );
    await stalled.entered;
    // …and dies: no more lock renewals, no drain.
    await stack.bffs[0]!.kill();
    expect(await doomed).toBeInstanceOf(Error);

    const refreshes = stack.idp.counters.refreshGrants;
    const page = await b.go(`${stack.bffs[1]!.url}/api/survivor`, { headers: csrf });
    expect(page.status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 1);
    expect(stack.idp.counters.refreshReuse).toBe(0);
    const token = String(stack.upstream.requests.at(-1)!.headers.authorization).slice(7);
    expect(token).not.toBe(session.tokens.accessToken);
    await stack.verifyAccessToken(token);
  });
});
