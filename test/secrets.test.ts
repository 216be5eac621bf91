import { request } from 'undici';
import { Browser } from './support/browser.js';
import { CLIENT_SECRET, startStack, type Stack } from './support/stack.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

test('no token, client secret or session id appears in anything sent to the browser or written to the log', async () => {
  const b = new Browser();
  const seen: string[] = [];
  const cookies: string[] = [];
  const record = (page: {
    bodies: string[];
    headers: Record<string, unknown>;
    setCookies: string[];
  }): void => {
    const { 'set-cookie': _setCookie, ...headers } = page.headers;
    seen.push(...page.bodies, JSON.stringify(headers));
    cookies.push(...page.setCookies);
  };
  const loginPage = await b.login(stack.bff.url);
  record(loginPage);
  record(await b.go(`${stack.bff.url}/bff/user`, { headers: csrf }));
  record(await b.go(`${stack.bff.url}/api/things`, { headers: csrf }));
  record(await b.go(`${stack.bff.url}/api/status/401`, { headers: csrf }));
  // Force a refresh so rotated tokens are covered too.
  const before = await advanceToRefresh(stack, b);
  record(await b.go(`${stack.bff.url}/api/things`, { headers: csrf }));
  const after = (await stack.sessionOf(b))!;
  expect(after.tokens.accessToken).not.toBe(before.tokens.accessToken);
  const logoutUrl = JSON.parse((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).text)
    .logoutUrl as string;
  const logout = await b.go(`${stack.bff.url}${logoutUrl}`, { follow: false });
  seen.push(...logout.bodies);
  cookies.push(...logout.setCookies);

  const secrets = {
    'access token': [before.tokens.accessToken, after.tokens.accessToken],
    'refresh token': [before.tokens.refreshToken!, after.tokens.refreshToken!],
    'id token': [before.tokens.idToken!, after.tokens.idToken!],
    'client secret': [CLIENT_SECRET],
    'session id': [before.id],
  };
  // The session cookie carries the signed session id: that is the ticket. Nothing else may carry it.
  const browserText = seen.join('\n');
  const cookieText = cookies.join('\n');
  for (const token of [...secrets['access token'], ...secrets['refresh token'], ...secrets['id token']]) {
    expect(cookieText.includes(token)).toBe(false);
  }
  const logText = stack.bff.logs.join('');
  expect(logText.length).toBeGreaterThan(1000);
  for (const [name, values] of Object.entries(secrets)) {
    for (const value of values) {
      expect({ name, where: 'browser', leaked: browserText.includes(value) }).toEqual({
        name,
        where: 'browser',
        leaked: false,
      });
      expect({ name, where: 'log', leaked: logText.includes(value) }).toEqual({
        name,
        where: 'log',
        leaked: false,
      });
    }
  }
  // The ID token travels once, by design of RP-Initiated Logout: as id_token_hint in the redirect to the IdP.
  const endSession = new URL(String(logout.headers.location));
  // The latest ID token, the refreshed one: it is identical to the first only when both were issued in the same second.
  expect(endSession.searchParams.get('id_token_hint')).toBe(after.tokens.idToken);
  const { location: _location, ...otherHeaders } = logout.headers;
  for (const value of [...secrets['access token'], ...secrets['refresh token'], after.tokens.idToken!]) {
    expect(JSON.stringify(otherHeaders).includes(value)).toBe(false);
    expect(String(logout.headers.location).includes(value) && value !== after.tokens.idToken).toBe(false);
  }
});

test('the session cookie carries only an opaque signed id, not a token', async () => {
  const b = await loggedIn(stack.bff);
  const cookie = (await b.jar.getCookies(stack.bff.url)).find((c) => c.key === 'coatcheck')!;
  expect(decodeURIComponent(cookie.value)).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9+/]{43}$/);
});

test('a Redis dump reveals no token and no session id', async () => {
  const b = await loggedIn(stack.bff);
  const session = (await stack.sessionOf(b))!;
  const { Redis } = await import('ioredis');
  const redis = new Redis(stack.redis!.url);
  try {
    const keys = await redis.keys('*');
    let dump = keys.join('\n');
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === 'hash') dump += JSON.stringify(await redis.hgetall(key));
      else if (type === 'string') dump += await redis.get(key);
      else if (type === 'set') dump += (await redis.smembers(key)).join(',');
    }
    expect(dump.length).toBeGreaterThan(500);
    for (const secret of [
      session.id,
      session.tokens.accessToken,
      session.tokens.refreshToken!,
      session.tokens.idToken!,
      'Alice Liddell',
    ]) {
      expect(dump.includes(secret)).toBe(false);
    }
  } finally {
    redis.disconnect();
  }
});

test('logging the usual suspects by hand is redacted too', async () => {
  const { createLogger } = await import('../src/log.js');
  const lines: string[] = [];
  const log = createLogger('info', { write: (s: string) => void lines.push(s) });
  log.info({ req: { headers: { cookie: 'coatcheck=abc', authorization: 'Bearer xyz' } } }, 'a');
  log.info({ body: { access_token: 'AT-123', refresh_token: 'RT-456', id_token: 'ID-789' } }, 'b');
  log.info({ refreshToken: 'RT-000', sessionId: 'SID-000' }, 'c');
  const text = lines.join('');
  for (const secret of ['coatcheck=abc', 'Bearer xyz', 'AT-123', 'RT-456', 'ID-789', 'RT-000', 'SID-000']) {
    expect(text).not.toContain(secret);
  }
  expect(text).toContain('[redacted]');
});

test('the upstream never receives coatcheck cookies', async () => {
  const b = await loggedIn(stack.bff);
  const res = await request(`${stack.bff.url}/api/x`, {
    headers: { ...csrf, cookie: await b.jar.getCookieString(stack.bff.url) },
  });
  await res.body.dump();
  expect(String(stack.upstream.requests.at(-1)!.headers.cookie ?? '')).not.toContain('coatcheck');
});
