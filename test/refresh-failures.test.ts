import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

describe('refresh failures', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function dueSession(): Promise<Browser> {
    const b = await loggedIn(stack.bff);
    await advanceToRefresh(stack, b);
    return b;
  }

  test('invalid_grant (the grant was revoked at the IdP) ends the session: 401 here and on /bff/user', async () => {
    const b = await loggedIn(stack.bff);
    const session = (await stack.sessionOf(b))!;
    const rt = await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!);
    const grant = await stack.idp.provider.Grant.find(rt!.grantId!);
    await grant!.destroy();
    await advanceToRefresh(stack, b);

    const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(api.status).toBe(401);
    expect(JSON.parse(api.text)).toEqual({ error: 'session_expired', message: expect.any(String) });
    expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(401);
    expect(await stack.bff.store.load(session.key, stack.clock.now())).toBeUndefined();
  });

  test('an unreachable IdP gets 503 and keeps the session; once it is back the next call succeeds', async () => {
    const b = await dueSession();
    const refreshes = stack.idp.counters.refreshGrants;
    await stack.idp.stop();
    try {
      const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
      expect(api.status).toBe(503);
      expect(JSON.parse(api.text).error).toBe('idp_unavailable');
      expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
    } finally {
      await stack.idp.start();
    }
    const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(api.status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(refreshes + 1);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });

  test('an IdP answering 5xx gets 503 and keeps the session', async () => {
    const b = await dueSession();
    stack.idp.failTokenEndpoint(500);
    try {
      const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
      expect(api.status).toBe(503);
      expect(JSON.parse(api.text).error).toBe('idp_unavailable');
    } finally {
      stack.idp.failTokenEndpoint(undefined);
    }
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
  });

  test('an upstream 401 is passed through and does not trigger a refresh', async () => {
    const b = await loggedIn(stack.bff);
    const refreshes = stack.idp.counters.refreshGrants;
    for (let i = 0; i < 3; i++) {
      const page = await b.go(`${stack.bff.url}/api/status/401`, { headers: csrf });
      expect(page.status).toBe(401);
      expect(JSON.parse(page.text)).toEqual({ status: 401 });
    }
    expect(stack.idp.counters.refreshGrants).toBe(refreshes);
  });
});

describe('a grant without a refresh token', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { BFF_SCOPES: 'openid profile email' } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('uses its access token until it expires, then the session ends', async () => {
    const b = await loggedIn(stack.bff);
    const session = (await stack.sessionOf(b))!;
    expect(session.tokens.refreshToken).toBeUndefined();

    stack.clock.advance(session.tokens.expiresAt - stack.clock.now() - 5000);
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    expect(String(stack.upstream.requests.at(-1)!.headers.authorization)).toBe(
      `Bearer ${session.tokens.accessToken}`,
    );

    stack.clock.advance(10_000);
    const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(api.status).toBe(401);
    expect(JSON.parse(api.text).error).toBe('session_expired');
    expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(401);
    expect(stack.idp.counters.refreshGrants).toBe(0);
  });
});
