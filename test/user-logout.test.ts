import { request } from 'undici';
import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

interface UserBody {
  claims: Record<string, unknown>;
  logoutUrl: string;
  sessionExpiresAt: string;
}

describe('GET /bff/user', () => {
  test('answers the claims, a logout URL and the session expiry', async () => {
    const b = await loggedIn(stack.bff);
    const page = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    const body = JSON.parse(page.text) as UserBody;
    expect(Object.keys(body).sort()).toEqual(['claims', 'logoutUrl', 'sessionExpiresAt']);
    expect(body.claims).toMatchObject({
      sub: 'alice-0001',
      name: 'Alice Liddell',
      email: 'alice@example.com',
    });
    expect(body.claims.nonce).toBeUndefined();
    expect(body.logoutUrl).toMatch(/^\/bff\/logout\?sid=[A-Za-z0-9_-]{16,}$/);
    const expires = Date.parse(body.sessionExpiresAt);
    // Idle timeout (30 min by default) from now, not the absolute one.
    expect(expires).toBeGreaterThan(stack.clock.now() + 29 * 60_000);
    expect(expires).toBeLessThanOrEqual(stack.clock.now() + 30 * 60_000);
    expect(new Date(expires).toISOString()).toBe(body.sessionExpiresAt);
  });

  test('403 JSON without X-CSRF: 1', async () => {
    const b = await loggedIn(stack.bff);
    const page = await b.go(`${stack.bff.url}/bff/user`);
    expect(page.status).toBe(403);
    expect(JSON.parse(page.text).error).toBe('csrf_header_missing');
  });
});

describe('GET /bff/logout', () => {
  async function loggedInWithLogoutUrl(): Promise<{ b: Browser; logoutUrl: string }> {
    const b = await loggedIn(stack.bff);
    const user = JSON.parse((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).text) as UserBody;
    return { b, logoutUrl: user.logoutUrl };
  }

  test.each([
    ['a wrong sid', '/bff/logout?sid=wrong'],
    ['no sid', '/bff/logout'],
  ])('with %s while a session is live: 400, and the session stays intact', async (_name, path) => {
    const { b } = await loggedInWithLogoutUrl();
    const page = await b.go(`${stack.bff.url}${path}`, { follow: false });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('logout_sid_mismatch');
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
    const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(api.status).toBe(200);
  });

  test('destroys the session, clears the cookie, revokes the refresh token and goes to the end-session endpoint', async () => {
    const { b, logoutUrl } = await loggedInWithLogoutUrl();
    const session = (await stack.sessionOf(b))!;
    const { refreshToken, idToken } = session.tokens;
    expect(await stack.idp.provider.RefreshToken.find(refreshToken!)).toBeDefined();

    const page = await b.go(`${stack.bff.url}${logoutUrl}`, { follow: false });
    expect(page.status).toBe(302);
    const location = new URL(String(page.headers.location));
    expect(`${location.origin}${location.pathname}`).toBe(`${stack.idp.issuer}/session/end`);
    expect(location.searchParams.get('id_token_hint')).toBe(idToken);
    expect(location.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.bff.url}/`);
    expect(page.setCookies.some((c) => /^coatcheck=;/.test(c) && /Expires=Thu, 01 Jan 1970/.test(c))).toBe(
      true,
    );

    // Gone from the store, not just from the browser: the old cookie no longer works anywhere.
    expect(await stack.bff.store.load(session.key, stack.clock.now())).toBeUndefined();
    // RFC 7009: the IdP no longer knows the refresh token.
    expect(await stack.idp.provider.RefreshToken.find(refreshToken!)).toBeUndefined();
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(401);
  });

  test('following the end-session redirect signs out at the IdP and comes back to the post-logout URI', async () => {
    const { b, logoutUrl } = await loggedInWithLogoutUrl();
    const confirm = await b.go(`${stack.bff.url}${logoutUrl}`);
    expect(confirm.url).toContain('/session/end');
    const done = await b.submitForm(confirm.url, confirm.text, /<form id="op.logoutForm"[\s\S]*?<\/form>/, {
      logout: 'yes',
    });
    expect(done.history).toContain(`${stack.bff.url}/`);
  });

  test('with no session: 302 to the post-logout URI', async () => {
    const page = await new Browser().go(`${stack.bff.url}/bff/logout?sid=whatever`, { follow: false });
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe(`${stack.bff.url}/`);
  });

  test('a cross-site navigation (no SameSite=Strict cookie) does not clear the cookie', async () => {
    const res = await request(`${stack.bff.url}/bff/logout`, { headers: { 'sec-fetch-site': 'cross-site' } });
    await res.body.dump();
    expect(res.statusCode).toBe(302);
    expect(res.headers['set-cookie']).toBeUndefined();
  });

  test('a cross-site page cannot log the user out without the sid', async () => {
    const { b } = await loggedInWithLogoutUrl();
    const res = await request(`${stack.bff.url}/bff/logout`, {
      headers: { cookie: await b.jar.getCookieString(stack.bff.url), 'sec-fetch-site': 'cross-site' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(400);
    expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
  });
});
