import { Redis } from 'ioredis';
import { Browser, type Page } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

let stack: Stack;
let redis: Redis;
beforeAll(async () => {
  stack = await startStack();
  redis = new Redis(stack.redis!.url);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

const LOGIN_PREFIX = 'coatcheck-login-';
/** The longest returnTo a login accepts (MAX_RETURN_TO_LENGTH). */
const MAX_RETURN_TO_LENGTH = 400;

async function loginCookies(b: Browser): Promise<{ key: string; value: string }[]> {
  return (await b.jar.getCookies(stack.bff.url)).filter((c) => c.key.startsWith(LOGIN_PREFIX));
}

function loginCookieSet(page: Page): string {
  const set = page.setCookies.find((c) => c.startsWith(LOGIN_PREFIX) && !/Expires=Thu, 01 Jan 1970/.test(c));
  if (!set) throw new Error('no login cookie set');
  return set;
}

const nameOf = (setCookie: string): string => setCookie.slice(0, setCookie.indexOf('='));

async function startLogin(b: Browser, returnTo?: string): Promise<Page> {
  const query = returnTo === undefined ? '' : `?returnTo=${encodeURIComponent(returnTo)}`;
  const page = await b.go(`${stack.bff.url}/bff/login${query}`, { follow: false });
  expect(page.status).toBe(302);
  return page;
}

/** Signs in and consents at the IdP for a login already started, and stops at the redirect back to coatcheck. */
const callbackUrlOf = (b: Browser, start: Page): Promise<string> => b.callbackUrl(start, stack.bff.url);

async function userStatus(b: Browser): Promise<number> {
  return (await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status;
}

async function copyLoginCookies(from: Browser, to: Browser): Promise<void> {
  for (const c of await from.jar.getCookies(stack.bff.url)) {
    if (c.key.startsWith(LOGIN_PREFIX)) await to.jar.setCookie(c.toString(), stack.bff.url);
  }
}

describe('unfinished login starts cannot lock a browser out', () => {
  test('a sixth login start expires the oldest login cookie, and the newest login still completes', async () => {
    const b = new Browser();
    const starts: Page[] = [];
    for (let i = 0; i < 6; i++) {
      // Apart in time, so "oldest" is unambiguous.
      stack.clock.advance(1000);
      starts.push(await startLogin(b, `/tab${i}`));
    }
    const first = nameOf(loginCookieSet(starts[0]!));
    const expired = starts[5]!.setCookies.filter((c) => /Expires=Thu, 01 Jan 1970/.test(c)).map(nameOf);
    expect(expired).toEqual([first]);
    const held = await loginCookies(b);
    expect(held).toHaveLength(5);
    expect(held.map((c) => c.key)).not.toContain(first);

    const landed = await b.finishAtIdp(await b.go(String(starts[5]!.headers.location)));
    expect(new URL(landed.url).pathname).toBe('/tab5');
    expect(await userStatus(b)).toBe(200);
  });

  test('after 150 unfinished login starts the browser holds five login cookies and can still sign in', async () => {
    const b = new Browser();
    for (let i = 0; i < 150; i++) {
      const page = await b.go(`${stack.bff.url}/bff/login`, { follow: false });
      // Before the cap, the Cookie header outgrew what the server accepts here and every request failed.
      expect(page.status).toBe(302);
    }
    expect((await loginCookies(b)).length).toBeLessThanOrEqual(5);
    const cookieHeader = await b.jar.getCookieString(stack.bff.url);
    expect(cookieHeader.length).toBeLessThan(4096);
    const page = await b.login(stack.bff.url, { returnTo: '/after' });
    expect(new URL(page.url).pathname).toBe('/after');
    expect(await userStatus(b)).toBe(200);
  });

  test('a login cookie that does not open is expired at the next login start', async () => {
    const b = new Browser();
    await b.jar.setCookie(`${LOGIN_PREFIX}planted=garbage; Path=/`, stack.bff.url);
    const page = await startLogin(b);
    expect(page.setCookies.some((c) => c.startsWith(`${LOGIN_PREFIX}planted=;`))).toBe(true);
    expect((await loginCookies(b)).map((c) => c.key)).not.toContain(`${LOGIN_PREFIX}planted`);
  });
});

describe('login starts keep no server-side state', () => {
  test('login starts without a callback write nothing to Redis', async () => {
    const before = await redis.dbsize();
    for (let i = 0; i < 20; i++) await startLogin(new Browser(), `/page/${i}`);
    expect(await redis.dbsize()).toBe(before);
  });

  test('a failed callback leaves nothing in Redis either', async () => {
    const before = await redis.dbsize();
    for (let i = 0; i < 5; i++) {
      const b = new Browser();
      const start = await startLogin(b);
      const state = new URL(String(start.headers.location)).searchParams.get('state')!;
      const page = await b.go(`${stack.bff.url}/bff/callback?code=forged&state=${state}`, { follow: false });
      expect(page.status).toBe(400);
    }
    expect(await redis.dbsize()).toBe(before);
  });

  test('the login cookie is small and holds nothing readable', async () => {
    const b = new Browser();
    const returnTo = '/orders/2026?tab=open&sort=date';
    const start = await startLogin(b, returnTo);
    const set = loginCookieSet(start);
    const pair = set.slice(0, set.indexOf(';'));
    expect(pair.length).toBeLessThan(512);
    const value = pair.slice(pair.indexOf('=') + 1);
    const state = new URL(String(start.headers.location)).searchParams.get('state')!;
    const decoded = Buffer.from(value, 'base64url').toString('latin1');
    for (const secret of [state, returnTo, '/orders']) {
      expect(value).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }
  });

  test("a login started by a signed-in browser does not show the current session's storage key", async () => {
    const b = await loggedIn(stack.bff);
    const key = (await stack.sessionOf(b))!.key;
    const set = loginCookieSet(await startLogin(b));
    expect(set).not.toContain(key);
    expect(
      Buffer.from(set.slice(set.indexOf('=') + 1, set.indexOf(';')), 'base64url').toString('latin1'),
    ).not.toContain(Buffer.from(key, 'base64url').toString('latin1'));
  });

  test('the longest accepted returnTo still makes a login cookie under 1 KB; a longer one is refused', async () => {
    const longest = `/${'a'.repeat(MAX_RETURN_TO_LENGTH - 1)}`;
    const set = loginCookieSet(await startLogin(new Browser(), longest));
    expect(set.slice(0, set.indexOf(';')).length).toBeLessThan(1024);
    const refused = await new Browser().go(
      `${stack.bff.url}/bff/login?returnTo=/${'a'.repeat(MAX_RETURN_TO_LENGTH)}`,
      {
        follow: false,
      },
    );
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toEqual({ error: 'invalid_return_url', message: expect.any(String) });
  });
});

describe('the callback', () => {
  test('five logins started at once in parallel tabs each complete', async () => {
    const b = new Browser();
    const paths = ['/a', '/b', '/c', '/d', '/e'];
    const starts = await Promise.all(paths.map((r) => startLogin(b, r)));
    const urls: string[] = [];
    for (const start of starts) urls.push(await callbackUrlOf(b, start));
    const landed: string[] = [];
    for (const url of urls) {
      const page = await b.go(url, { follow: false });
      expect(page.status).toBe(302);
      landed.push(String(page.headers.location));
      expect(await userStatus(b)).toBe(200);
    }
    expect(landed).toEqual(paths);
  });

  test("someone who requests the victim's callback URL first cannot cancel the victim's login", async () => {
    const victim = new Browser();
    const url = await callbackUrlOf(victim, await startLogin(victim, '/inbox'));
    const attacker = new Browser();
    const stolen = await attacker.go(url, { follow: false });
    expect(stolen.status).toBe(400);
    expect(JSON.parse(stolen.text).error).toBe('login_state_invalid');
    expect(await userStatus(attacker)).toBe(401);

    const page = await victim.go(url, { follow: false });
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe('/inbox');
    expect(await userStatus(victim)).toBe(200);
  });

  test('a completed callback replayed with a copy of the login cookie is refused', async () => {
    const b = new Browser();
    const url = await callbackUrlOf(b, await startLogin(b));
    const copy = new Browser();
    await copyLoginCookies(b, copy);
    expect((await b.go(url, { follow: false })).status).toBe(302);
    const replay = await copy.go(url, { follow: false });
    expect(replay.status).toBe(400);
    expect(JSON.parse(replay.text).error).toBe('login_state_invalid');
    expect(await userStatus(copy)).toBe(401);
  });

  test.each([
    [
      'a flipped character',
      (v: string) => (v[20] === 'A' ? `${v.slice(0, 20)}B` : `${v.slice(0, 20)}A`) + v.slice(21),
    ],
    ['a truncated value', (v: string) => v.slice(0, -4)],
    ['an empty value', () => ''],
  ])('a login cookie with %s is refused', async (_name, tamper) => {
    const b = new Browser();
    const url = await callbackUrlOf(b, await startLogin(b));
    const [cookie] = await loginCookies(b);
    await b.jar.setCookie(`${cookie!.key}=${tamper(cookie!.value)}; Path=/`, stack.bff.url);
    const page = await b.go(url, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('login_state_invalid');
    expect(await userStatus(b)).toBe(401);
  });

  test("another login's cookie renamed to this login's name is refused", async () => {
    const b = new Browser();
    const other = await startLogin(b);
    const url = await callbackUrlOf(b, await startLogin(b));
    const otherName = nameOf(loginCookieSet(other));
    const cookies = await loginCookies(b);
    const otherValue = cookies.find((c) => c.key === otherName)!.value;
    for (const c of cookies) {
      if (c.key !== otherName) await b.jar.setCookie(`${c.key}=${otherValue}; Path=/`, stack.bff.url);
    }
    const page = await b.go(url, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('login_state_invalid');
  });

  test('a login older than its lifetime is refused even if the browser still sends its cookie', async () => {
    const b = new Browser();
    const url = await callbackUrlOf(b, await startLogin(b));
    stack.clock.advance(10 * 60 * 1000 + 1000);
    const page = await b.go(url, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('login_state_invalid');
    expect(await userStatus(b)).toBe(401);
  });
});
