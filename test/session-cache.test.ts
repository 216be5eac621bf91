import { Redis } from 'ioredis';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { request } from 'undici';
import { SessionCache } from '../src/session/cache.js';
import { RedisSessionStore } from '../src/session/redis-store.js';
import type { Session } from '../src/session/sessions.js';
import type { InvalidationFeed } from '../src/session/store.js';
import { Browser } from './support/browser.js';
import { waitFor } from './support/ports.js';
import { signOutAtIdp, startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

/** A TCP proxy to Redis that can make its open connections go silent while new ones still work. */
async function blackholeProxy(target: number): Promise<{
  port: number;
  silenceOpenConnections(): void;
  close(): void;
}> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => open.delete(s));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    silenceOpenConnections() {
      for (const s of open) {
        s.unpipe();
        s.pause();
      }
    },
    close() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

let stack: Stack;
let redis: Redis;

function feedOf(instance: number): InvalidationFeed {
  const store = stack.bffs[instance]!.store;
  if (!(store instanceof RedisSessionStore)) throw new Error('these tests need the Redis store');
  return store.invalidations;
}

beforeAll(async () => {
  // A TTL far beyond any test: only an invalidation can make a replica drop its copy here.
  stack = await startStack({ instances: 2, env: { BFF_SESSION_CACHE_TTL: '600' } });
  redis = new Redis(stack.redis!.url);
  await Promise.all([feedOf(0).whenLive(), feedOf(1).whenLive()]);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

/**
 * Scripts Redis has run so far: a session load is one (EVALSHA, or EVAL the first time a
 * connection meets the script), and nothing else runs one on these tests' API calls.
 */
async function loads(): Promise<number> {
  const stats = await redis.info('commandstats');
  const calls = (cmd: string): number =>
    Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
  return calls('eval') + calls('evalsha');
}

/** An API call through one replica with a given Cookie header, as a browser that kept an old cookie would. */
async function api(instance: number, cookie: string, path = '/api/x'): Promise<number> {
  const res = await request(`${stack.bffs[instance]!.url}${path}`, { headers: { ...csrf, cookie } });
  await res.body.dump();
  return res.statusCode;
}

async function loggedInWithCookie(): Promise<{ b: Browser; cookie: string }> {
  const b = await loggedIn(stack.bffs[0]!);
  return { b, cookie: await b.jar.getCookieString(stack.bffs[0]!.url) };
}

test('steady state: repeated API calls of a session cost one Redis round trip, then none', async () => {
  const { cookie } = await loggedInWithCookie();
  const before = await loads();
  for (let i = 0; i < 20; i++) expect(await api(1, cookie)).toBe(200);
  expect((await loads()) - before).toBe(1);
});

test('API calls that miss the cache together share one Redis load', async () => {
  const { cookie } = await loggedInWithCookie();
  const before = await loads();
  const statuses = await Promise.all(Array.from({ length: 20 }, () => api(1, cookie)));
  expect(statuses).toEqual(Array(20).fill(200));
  expect((await loads()) - before).toBe(1);
});

test('a logout through one replica ends the session on another at once, though it had it cached', async () => {
  const { b, cookie } = await loggedInWithCookie();
  expect(await api(1, cookie)).toBe(200);
  const cached = await loads();
  expect(await api(1, cookie)).toBe(200);
  expect(await loads()).toBe(cached);

  const user = JSON.parse((await b.go(`${stack.bffs[0]!.url}/bff/user`, { headers: csrf })).text) as {
    logoutUrl: string;
  };
  expect((await b.go(`${stack.bffs[0]!.url}${user.logoutUrl}`, { follow: false })).status).toBe(302);
  // No wait, no poll: the very next call on the other replica is refused.
  expect(await api(1, cookie)).toBe(401);
});

test('a back-channel logout from the IdP ends a session another replica had cached, at once', async () => {
  const { b, cookie } = await loggedInWithCookie();
  expect(await api(1, cookie)).toBe(200);
  await signOutAtIdp(stack, b);
  expect(await api(1, cookie)).toBe(401);
});

test('tokens written by one replica are used by another at once', async () => {
  const { b, cookie } = await loggedInWithCookie();
  expect(await api(1, cookie)).toBe(200);
  const session = (await stack.sessionOf(b))!;
  const rotated = { ...session.tokens, accessToken: 'rotated-by-another-replica' };
  expect(await stack.bffs[0]!.app.context.sessions.writeTokens(session, session.version, rotated)).toBe(true);
  expect(await api(1, cookie)).toBe(200);
  expect(stack.upstream.requests.at(-1)!.headers.authorization).toBe('Bearer rotated-by-another-replica');
});

test('an interrupted subscription empties the cache: a change it could have missed is seen once it is back', async () => {
  const { b, cookie } = await loggedInWithCookie();
  expect(await api(1, cookie)).toBe(200);
  const session = (await stack.sessionOf(b))!;
  // A change no replica hears about (made behind coatcheck's back): the cache alone cannot know.
  await redis.del(`coatcheck:s:${session.key}`);
  // The first reset must come from the drop itself, with the feed already not live, not only
  // later from the resubscription.
  const liveAtReset = new Promise<boolean>((resolve) =>
    feedOf(1).onInvalidate((key) => key ?? resolve(feedOf(1).live)),
  );
  await redis.client('KILL', 'TYPE', 'pubsub');
  expect(await liveAtReset).toBe(false);
  // Back to live, the entry from before must be gone, not answered as if nothing had happened.
  await feedOf(1).whenLive();
  expect(await api(1, cookie)).toBe(401);
  // And it caches again once live.
  const again = await loggedInWithCookie();
  expect(await api(1, again.cookie)).toBe(200);
  const before = await loads();
  expect(await api(1, again.cookie)).toBe(200);
  expect(await loads()).toBe(before);
});

test('a subscription that goes silent without closing stops the cache within seconds', async () => {
  const proxy = await blackholeProxy(stack.redis!.port);
  const store = new RedisSessionStore(`redis://127.0.0.1:${proxy.port}`);
  try {
    await store.ready();
    const feed = store.invalidations;
    await feed.whenLive();
    const cache = new SessionCache(feed, 600_000);
    cache.put('cookie', { key: 'k', expiresAt: Date.now() + 600_000 } as unknown as Session, Date.now(), 0);
    expect(cache.get('cookie', Date.now())).toBeDefined();
    // The flow is dropped somewhere on the way (a NAT, a firewall): no FIN, no RST, just silence.
    proxy.silenceOpenConnections();
    await waitFor(() => (feed.live ? undefined : true), 10_000, 'the feed to notice the silence');
    expect(cache.get('cookie', Date.now())).toBeUndefined();
    // It reconnects by itself and is live again, with nothing from before.
    await waitFor(() => (feed.live ? true : undefined), 10_000, 'the feed to come back');
    expect(cache.size).toBe(0);
  } finally {
    proxy.close();
    await store.close();
  }
});

test('BFF_SESSION_CACHE_TTL=0 turns the cache off', async () => {
  const off = await startStack({ env: { BFF_SESSION_CACHE_TTL: '0' } });
  try {
    expect(off.bff.app.context.sessionCache).toBeUndefined();
  } finally {
    await off.close();
  }
});

describe('SessionCache rules', () => {
  class Feed implements InvalidationFeed {
    live = true;
    private listeners: ((key: string | undefined) => void)[] = [];
    onInvalidate(listener: (key: string | undefined) => void): void {
      this.listeners.push(listener);
    }
    whenLive(): Promise<void> {
      return Promise.resolve();
    }
    send(key: string | undefined): void {
      for (const l of this.listeners) l(key);
    }
  }
  const session = (key: string, expiresAt = 10_000): Session =>
    ({ id: `id-${key}`, key, expiresAt }) as unknown as Session;

  test('answers within its TTL and the session’s own expiry, and not after', () => {
    const cache = new SessionCache(new Feed(), 1000);
    cache.put('c', session('k', 1500), 0, cache.begin());
    expect(cache.get('c', 999)?.key).toBe('k');
    expect(cache.get('c', 1000)).toBeUndefined();
    cache.put('d', session('k2', 500), 0, cache.begin());
    expect(cache.get('d', 500)).toBeUndefined();
  });

  test('does not keep a load that raced with an invalidation', () => {
    const feed = new Feed();
    const cache = new SessionCache(feed, 1000);
    const begun = cache.begin();
    feed.send('k');
    cache.put('c', session('k'), 0, begun);
    expect(cache.get('c', 1)).toBeUndefined();
  });

  test('answers nothing and keeps nothing while the feed is not live', () => {
    const feed = new Feed();
    const cache = new SessionCache(feed, 1000);
    cache.put('c', session('k'), 0, cache.begin());
    feed.live = false;
    expect(cache.get('c', 1)).toBeUndefined();
    cache.put('d', session('k2'), 0, cache.begin());
    feed.live = true;
    expect(cache.get('d', 1)).toBeUndefined();
  });

  test('drops every cookie of an invalidated session, and everything on a reset', () => {
    const feed = new Feed();
    const cache = new SessionCache(feed, 1000);
    cache.put('a', session('k'), 0, cache.begin());
    cache.put('b', session('k'), 0, cache.begin());
    cache.put('c', session('other'), 0, cache.begin());
    feed.send('k');
    expect(cache.get('a', 1)).toBeUndefined();
    expect(cache.get('b', 1)).toBeUndefined();
    expect(cache.get('c', 1)?.key).toBe('other');
    feed.send(undefined);
    expect(cache.size).toBe(0);
  });

  test('shares a load between requests that miss together, and not across an invalidation', async () => {
    const feed = new Feed();
    const cache = new SessionCache(feed, 1000);
    const finish: ((s: Session) => void)[] = [];
    const load = () => new Promise<Session>((resolve) => finish.push(resolve));
    const first = cache.loadOnce('c', 0, load);
    const joined = cache.loadOnce('c', 0, load);
    const other = cache.loadOnce('d', 0, load);
    expect(finish).toHaveLength(2);
    feed.send('k');
    // Begun after the invalidation: a load of its own, whose answer may differ.
    const after = cache.loadOnce('c', 0, load);
    expect(finish).toHaveLength(3);
    finish[0]!(session('k'));
    await first;
    // The load begun before the invalidation has settled; the one begun after it is still shared.
    const joinedAfter = cache.loadOnce('c', 0, load);
    expect(finish).toHaveLength(3);
    finish[1]!(session('other'));
    finish[2]!(session('k-after'));
    expect((await joinedAfter)?.key).toBe('k-after');
    expect((await first)?.key).toBe('k');
    expect(await joined).toBe(await first);
    expect((await other)?.key).toBe('other');
    expect((await after)?.key).toBe('k-after');
    // Once settled, a load is not reused.
    void cache.loadOnce('c', 0, load);
    expect(finish).toHaveLength(4);
  });

  test('a request that joins a load gets no session that has ended by its own clock', async () => {
    const cache = new SessionCache(new Feed(), 1000);
    let finish: (s: Session) => void = () => {};
    const load = () => new Promise<Session>((resolve) => (finish = resolve));
    const first = cache.loadOnce('c', 100, load);
    const later = cache.loadOnce('c', 600, load);
    finish(session('k', 500));
    expect((await first)?.key).toBe('k');
    expect(await later).toBeUndefined();
  });

  test('a failed load fails the requests that joined it, and the next request loads afresh', async () => {
    const cache = new SessionCache(new Feed(), 1000);
    let calls = 0;
    let fail: (err: Error) => void = () => {};
    const failing = () => {
      calls++;
      return new Promise<Session>((_resolve, reject) => (fail = reject));
    };
    const first = cache.loadOnce('c', 0, failing);
    const joined = cache.loadOnce('c', 0, failing);
    fail(new Error('redis went away'));
    await expect(first).rejects.toThrow('redis went away');
    await expect(joined).rejects.toThrow('redis went away');
    expect(calls).toBe(1);
    expect((await cache.loadOnce('c', 0, () => Promise.resolve(session('k'))))?.key).toBe('k');
  });

  test('shares nothing while the feed is not live', () => {
    const feed = new Feed();
    const cache = new SessionCache(feed, 1000);
    feed.live = false;
    let loads = 0;
    const load = () => {
      loads++;
      return new Promise<Session | undefined>(() => {});
    };
    void cache.loadOnce('c', 0, load);
    void cache.loadOnce('c', 0, load);
    expect(loads).toBe(2);
  });

  test('holds at most maxEntries, dropping the oldest', () => {
    const cache = new SessionCache(new Feed(), 1000, 2);
    for (const k of ['a', 'b', 'c']) cache.put(k, session(k), 0, cache.begin());
    expect(cache.size).toBe(2);
    expect(cache.get('a', 1)).toBeUndefined();
    expect(cache.get('c', 1)?.key).toBe('c');
  });
});
