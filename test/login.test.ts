import { request } from 'undici';
import { Browser } from './support/browser.js';
import { CLIENT_ID, startStack, type Stack } from './support/stack.js';
import { csrf } from './support/session.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

const bits = (b64url: string): number => Buffer.from(b64url, 'base64url').length * 8;

describe('GET /bff/login', () => {
  test('redirects to the authorization endpoint with PKCE S256, state and nonce', async () => {
    const page = await new Browser().go(`${stack.bff.url}/bff/login?returnTo=/orders`, { follow: false });
    expect(page.status).toBe(302);
    const location = new URL(String(page.headers.location));
    expect(`${location.origin}${location.pathname}`).toBe(`${stack.idp.issuer}/auth`);
    const p = location.searchParams;
    expect(p.get('response_type')).toBe('code');
    expect(p.get('client_id')).toBe(CLIENT_ID);
    expect(p.get('redirect_uri')).toBe(`${stack.bff.url}/bff/callback`);
    expect(p.get('scope')).toBe('openid profile email offline_access');
    expect(p.get('code_challenge_method')).toBe('S256');
    expect(p.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(bits(p.get('state')!)).toBeGreaterThanOrEqual(128);
    expect(bits(p.get('nonce')!)).toBeGreaterThanOrEqual(128);
  });

  test('each login gets its own state, nonce and challenge', async () => {
    const b = new Browser();
    const a = new URL(String((await b.go(`${stack.bff.url}/bff/login`, { follow: false })).headers.location));
    const c = new URL(String((await b.go(`${stack.bff.url}/bff/login`, { follow: false })).headers.location));
    for (const name of ['state', 'nonce', 'code_challenge']) {
      expect(a.searchParams.get(name)).not.toBe(c.searchParams.get(name));
    }
  });

  test('sets a SameSite=Lax, HttpOnly login cookie that holds the transaction sealed', async () => {
    const page = await new Browser().go(`${stack.bff.url}/bff/login`, { follow: false });
    const cookie = page.setCookies.find((c) => c.startsWith('coatcheck-login-'))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Max-Age=600/);
    const state = new URL(String(page.headers.location)).searchParams.get('state')!;
    // The transaction is sealed: not even the state shows in the cookie.
    expect(cookie).not.toContain(state);
  });
});

describe('a complete login', () => {
  test('lands on returnTo with a fresh HttpOnly, SameSite=Strict session cookie', async () => {
    const b = new Browser();
    await b.jar.setCookie('coatcheck=planted-before-login', stack.bff.url);
    const page = await b.login(stack.bff.url, { returnTo: '/orders?tab=open' });
    expect(page.url).toBe(`${stack.bff.url}/orders?tab=open`);
    const callbackHop = page.history.find((u) => u.includes('/bff/callback'));
    expect(callbackHop).toBeDefined();
    const cookies = await b.jar.getCookies(stack.bff.url);
    const session = cookies.find((c) => c.key === 'coatcheck')!;
    expect(session.value).not.toBe('planted-before-login');
    expect(session.httpOnly).toBe(true);
    expect(session.sameSite).toBe('strict');
    expect(session.path).toBe('/');
    expect(session.domain).toBe('127.0.0.1');
    expect(session.hostOnly).toBe(true);
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
  });

  test('a non-ASCII returnTo is percent-encoded, never a broken Location header', async () => {
    const page = await new Browser().login(stack.bff.url, { returnTo: '/café/Ā?q=ü' });
    expect(page.url).toBe(`${stack.bff.url}/caf%C3%A9/%C4%80?q=%C3%BC`);
  });

  test('defaults returnTo to /', async () => {
    const page = await new Browser().login(stack.bff.url);
    expect(page.url).toBe(`${stack.bff.url}/`);
  });

  test.each([
    ['that models no SameSite', false],
    // The IdP's redirect back is cross-site: the SameSite=Strict session cookie is not sent to the
    // callback, so only what /bff/login remembered can end the old session.
    ['whose Strict cookie stays off the cross-site callback', true],
  ])(
    'a new login, in a browser %s, issues a new session id and the old one stops working',
    async (_name, crossSite) => {
      const b = new Browser(crossSite ? { otherSites: [new URL(stack.idp.issuer).origin] } : {});
      const sessionCookie = async (): Promise<string> =>
        (await b.jar.getCookies(stack.bff.url)).find((c) => c.key === 'coatcheck')!.value;
      await b.login(stack.bff.url);
      const before = await sessionCookie();
      await b.login(stack.bff.url);
      expect(await sessionCookie()).not.toBe(before);
      const old = await request(`${stack.bff.url}/bff/user`, {
        headers: { ...csrf, cookie: `coatcheck=${before}` },
      });
      await old.body.dump();
      expect(old.statusCode).toBe(401);
    },
  );

  test('logins started in parallel tabs each complete', async () => {
    const b = new Browser();
    // Start three logins before finishing any, as three tabs would.
    const starts = await Promise.all(
      ['/one', '/two', '/three'].map((r) =>
        b.go(`${stack.bff.url}/bff/login?returnTo=${r}`, { follow: false }),
      ),
    );
    const landed: string[] = [];
    for (const start of starts) {
      const page = await b.finishAtIdp(await b.go(String(start.headers.location)));
      landed.push(new URL(page.url).pathname);
      const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
      expect(user.status).toBe(200);
    }
    expect(landed).toEqual(['/one', '/two', '/three']);
  });
});

describe('GET /bff/callback refuses bad responses with 4xx and creates no session', () => {
  async function expectNoSession(b: Browser): Promise<void> {
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(401);
  }

  /** Runs a login up to the IdP's redirect back, without following it. */
  async function callbackUrlFor(b: Browser): Promise<string> {
    return b.callbackUrl(await b.go(`${stack.bff.url}/bff/login`, { follow: false }), stack.bff.url);
  }

  test('without state', async () => {
    const b = new Browser();
    const page = await b.go(`${stack.bff.url}/bff/callback?code=abc`);
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text)).toEqual({ error: 'login_state_invalid', message: expect.any(String) });
    await expectNoSession(b);
  });

  test('with an unknown state', async () => {
    const b = new Browser();
    const page = await b.go(`${stack.bff.url}/bff/callback?code=abc&state=not-a-state-we-issued`);
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('login_state_invalid');
    await expectNoSession(b);
  });

  test('replayed: the second use of a callback URL is refused', async () => {
    const b = new Browser();
    const url = await callbackUrlFor(b);
    const first = await b.go(url, { follow: false });
    expect(first.status).toBe(302);
    const replay = new Browser();
    for (const c of await b.jar.getCookies(stack.bff.url)) {
      if (c.key.startsWith('coatcheck-login')) await replay.jar.setCookie(c.toString(), stack.bff.url);
    }
    const second = await replay.go(url, { follow: false });
    expect(second.status).toBe(400);
    expect(JSON.parse(second.text).error).toBe('login_state_invalid');
    await expectNoSession(replay);
  });

  test('completed in another browser (login CSRF): refused', async () => {
    const url = await callbackUrlFor(new Browser());
    const victim = new Browser();
    const page = await victim.go(url, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('login_state_invalid');
    await expectNoSession(victim);
  });

  test('an error= from the IdP (the user denies consent)', async () => {
    const b = new Browser();
    const start = await b.go(`${stack.bff.url}/bff/login`, { follow: false });
    let page = await b.go(String(start.headers.location));
    page = await b.signIn(page);
    page = await b.submitForm(page.url, page.text, /<form[^>]*\/abort"[\s\S]*?<\/form>/, {});
    expect(page.url).toContain('/bff/callback');
    expect(page.status).toBe(400);
    const body = JSON.parse(page.text);
    expect(body.error).toBe('login_failed');
    expect(body.message).toContain('access_denied');
    await expectNoSession(b);
  });

  test.each([
    [
      'an iss that is not the configured issuer (RFC 9207 mix-up defence)',
      'iss',
      'https://attacker.example',
      'issuer_mismatch',
    ],
    ['a bad authorization code', 'code', 'forged-code', 'code_exchange_failed'],
  ])('%s', async (_name, param, value, error) => {
    const b = new Browser();
    const url = new URL(await callbackUrlFor(b));
    url.searchParams.set(param, value);
    const page = await b.go(url.href, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe(error);
    await expectNoSession(b);
  });

  test('a browser navigation gets the same error as a readable page', async () => {
    const page = await new Browser().go(`${stack.bff.url}/bff/callback?state=nope`, {
      headers: { accept: 'text/html,application/xhtml+xml' },
    });
    expect(page.status).toBe(400);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('login_state_invalid');
  });

  test('the process keeps serving after all of the above', async () => {
    const res = await request(`${stack.bff.url}/healthz`);
    await res.body.dump();
    expect(res.statusCode).toBe(200);
  });
});
