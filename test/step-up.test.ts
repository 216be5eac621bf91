import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request } from 'undici';
import type { JWTPayload } from 'jose';
import { Browser } from './support/browser.js';
import { freePort } from './support/ports.js';
import { csrf } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

const PASSWORD = 'urn:coatcheck:test:password';
const STRONG = 'urn:coatcheck:test:mfa';
const STEP_UP = `Bearer realm="payments", error="insufficient_user_authentication", error_description="A stronger login is required", acr_values="${STRONG}"`;

/**
 * A real API that trusts only its access token: it verifies it against the IdP's keys (issuer and
 * audience too) and demands the stronger acr for /payments (RFC 9470). Other paths answer 401s of
 * their own, which must reach the SPA as they are.
 */
async function startPaymentsApi(verify: () => (token: string) => Promise<JWTPayload>) {
  const seen: JWTPayload[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://api').pathname;
    if (path === '/v1/plain-401') {
      res.writeHead(401, {
        'www-authenticate': 'Bearer realm="payments", error="invalid_token"',
        'content-type': 'text/plain',
        'x-api': 'own',
      });
      return res.end('the API’s own 401');
    }
    if (path === '/v1/no-challenge') {
      res.writeHead(401, { 'content-type': 'application/json' });
      return res.end('{"api":"no challenge"}');
    }
    if (path === '/v1/other-scheme') {
      res.writeHead(401, { 'www-authenticate': 'Basic error="insufficient_user_authentication"' });
      return res.end('basic');
    }
    if (path === '/v1/recent') {
      res.writeHead(401, {
        'www-authenticate': 'Bearer error="insufficient_user_authentication", max_age=0',
      });
      return res.end('{"must":"not reach the SPA"}');
    }
    const auth = req.headers.authorization ?? '';
    let claims: JWTPayload;
    try {
      claims = await verify()(auth.replace(/^Bearer /, ''));
    } catch {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return res.end();
    }
    seen.push(claims);
    if (claims.acr !== STRONG) {
      res.writeHead(401, { 'www-authenticate': STEP_UP, 'set-cookie': 'api=1; Path=/' });
      return res.end('{"must":"not reach the SPA"}');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ paid: true, acr: claims.acr }));
  };
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => void handle(req, res));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function api(stack: Stack, b: Browser, path: string) {
  const cookie = await b.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}${path}`, { headers: { ...csrf, cookie } });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function sessionId(stack: Stack, b: Browser): Promise<string | undefined> {
  return (await stack.sessionOf(b))?.id;
}

function setup(env: Record<string, string> = {}) {
  const ctx: {
    stack: Stack;
    payments: Awaited<ReturnType<typeof startPaymentsApi>>;
    weakOnly: boolean;
  } = {} as never;
  beforeAll(async () => {
    ctx.weakOnly = false;
    ctx.payments = await startPaymentsApi(() => (token) => ctx.stack.verifyAccessToken(token));
    ctx.stack = await startStack({
      env: {
        BFF_ROUTES: JSON.stringify([{ path: '/api', target: `${ctx.payments.url}/v1` }]),
        BFF_ALLOWED_ACR_VALUES: `${PASSWORD}, ${STRONG}`,
        ...env,
      },
      idp: {
        acrValues: [PASSWORD, STRONG],
        // An IdP that signs in with a password whatever was asked: the step-up it returns is weaker.
        loginAcr: (requested) =>
          ctx.weakOnly ? PASSWORD : (requested.find((v) => v === STRONG || v === PASSWORD) ?? PASSWORD),
      },
    });
  });
  afterAll(async () => {
    await ctx.stack?.close();
    await ctx.payments?.close();
  });
  return ctx;
}

describe('step-up authentication (RFC 9470)', () => {
  const ctx = setup();

  test('the API demands the stronger acr; the SPA follows loginUrl and the retried call succeeds with a new session', async () => {
    const { stack, payments } = ctx;
    const b = new Browser();
    await b.login(stack.bff.url);
    const before = await sessionId(stack, b);
    expect(before).toBeDefined();

    const refused = await api(stack, b, '/api/payments');
    expect(refused.status).toBe(401);
    expect(refused.headers['content-type']).toMatch(/^application\/json/);
    expect(refused.headers['cache-control']).toBe('no-store');
    expect(refused.headers['www-authenticate']).toBeUndefined();
    expect(refused.headers['set-cookie']).toBeUndefined();
    const body = JSON.parse(refused.text) as Record<string, unknown>;
    expect(body).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      acr_values: STRONG,
      loginUrl: `/bff/login?acr_values=${encodeURIComponent(STRONG)}`,
    });
    expect(payments.seen.at(-1)?.acr).toBe(PASSWORD);

    // The SPA appends its own returnTo and navigates; the IdP signs the user in again.
    const page = await b.finishAtIdp(
      await b.go(`${stack.bff.url}${String(body.loginUrl)}&returnTo=${encodeURIComponent('/pay?step=2')}`),
    );
    expect(page.url).toBe(`${stack.bff.url}/pay?step=2`);
    expect(page.history.some((u) => u.includes('/interaction/'))).toBe(true);

    const after = await sessionId(stack, b);
    expect(after).toBeDefined();
    expect(after).not.toBe(before);

    const retried = await api(stack, b, '/api/payments');
    expect(retried.status).toBe(200);
    expect(JSON.parse(retried.text)).toEqual({ paid: true, acr: STRONG });
    expect(payments.seen.at(-1)?.acr).toBe(STRONG);
    // The session before the step-up is gone, not merely replaced in this browser.
    const old = await stack.bff.app.context.sessions.load(before!, stack.clock.now());
    expect(old).toBeUndefined();
  });

  test('a challenge with max_age only: loginUrl carries it, and the login signs the user in again', async () => {
    const { stack } = ctx;
    const b = new Browser();
    await b.login(stack.bff.url);
    const refused = await api(stack, b, '/api/recent');
    expect(refused.status).toBe(401);
    const body = JSON.parse(refused.text) as Record<string, unknown>;
    expect(body).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      max_age: 0,
      loginUrl: '/bff/login?max_age=0',
    });
    const start = await b.go(`${stack.bff.url}${String(body.loginUrl)}&returnTo=%2Fagain`, { follow: false });
    expect(new URL(String(start.headers.location)).searchParams.get('max_age')).toBe('0');
    const page = await b.finishAtIdp(await b.go(String(start.headers.location)));
    // max_age=0 forces the IdP to ask for the password again, even with its session alive.
    expect(page.history.some((u) => u.includes('/interaction/'))).toBe(true);
    expect(page.url).toBe(`${stack.bff.url}/again`);
  });

  test('every other upstream 401 passes through unchanged', async () => {
    const { stack } = ctx;
    const b = new Browser();
    await b.login(stack.bff.url);

    const plain = await api(stack, b, '/api/plain-401');
    expect(plain.status).toBe(401);
    expect(plain.headers['www-authenticate']).toBe('Bearer realm="payments", error="invalid_token"');
    expect(plain.headers['x-api']).toBe('own');
    expect(plain.text).toBe('the API’s own 401');

    const bare = await api(stack, b, '/api/no-challenge');
    expect(bare.status).toBe(401);
    expect(bare.text).toBe('{"api":"no challenge"}');

    const basic = await api(stack, b, '/api/other-scheme');
    expect(basic.status).toBe(401);
    expect(basic.headers['www-authenticate']).toBe('Basic error="insufficient_user_authentication"');
    expect(basic.text).toBe('basic');
  });

  test('an acr value not in BFF_ALLOWED_ACR_VALUES gets 400 invalid_request, before anything reaches the IdP', async () => {
    const { stack } = ctx;
    for (const query of [
      'acr_values=urn:coatcheck:test:other',
      `acr_values=${encodeURIComponent(`${STRONG} urn:coatcheck:test:other`)}`,
      `acr_values=${STRONG}&acr_values=${PASSWORD}`,
      'acr_values=',
      'max_age=-1',
      'max_age=soon',
      'prompt=login',
    ]) {
      const res = await request(`${stack.bff.url}/bff/login?${query}`, {
        headers: { accept: 'application/json' },
      });
      expect({ query, status: res.statusCode }).toEqual({ query, status: 400 });
      expect(await res.body.json()).toEqual({ error: 'invalid_request', message: expect.any(String) });
    }
    const ok = await request(`${stack.bff.url}/bff/login?acr_values=${STRONG}&max_age=300`);
    await ok.body.dump();
    expect(ok.statusCode).toBe(302);
    const location = new URL(String(ok.headers.location));
    expect(location.searchParams.get('acr_values')).toBe(STRONG);
    expect(location.searchParams.get('max_age')).toBe('300');
  });

  test('an IdP that answers a step-up with the weaker acr: 400 step_up_failed, and the session stays as it was', async () => {
    const { stack, payments } = ctx;
    const b = new Browser();
    await b.login(stack.bff.url);
    const before = await sessionId(stack, b);
    const revoked = stack.idp.counters.grantsRevoked;
    ctx.weakOnly = true;
    try {
      const refused = JSON.parse((await api(stack, b, '/api/payments')).text) as { loginUrl: string };
      const page = await b.finishAtIdp(
        await b.go(`${stack.bff.url}${refused.loginUrl}&returnTo=%2Fpay`, {
          headers: { accept: 'application/json' },
        }),
      );
      expect(page.status).toBe(400);
      expect(JSON.parse(page.text)).toEqual({ error: 'step_up_failed', message: expect.any(String) });
    } finally {
      ctx.weakOnly = false;
    }
    // The tokens of the refused login are revoked at the IdP, and nothing of them is kept.
    expect(stack.idp.counters.grantsRevoked).toBeGreaterThan(revoked);
    expect(await sessionId(stack, b)).toBe(before);
    expect((await api(stack, b, '/api/payments')).status).toBe(401);
    expect(payments.seen.at(-1)?.acr).toBe(PASSWORD);
    expect(stack.bff.logs.join('')).toMatch(/"error":"step_up_failed"/);
  });
});

describe('step-up with pushed authorization requests', () => {
  const ctx = setup({ BFF_PAR: 'required' });

  test('acr_values travel in the pushed request, and the login gets the stronger acr', async () => {
    const { stack } = ctx;
    const pushed: string[] = [];
    stack.idp.provider.on(
      'pushed_authorization_request.success',
      (c: { oidc: { params?: Record<string, unknown> } }) => pushed.push(String(c.oidc.params?.acr_values)),
    );
    const b = new Browser();
    await b.login(stack.bff.url);
    const body = JSON.parse((await api(stack, b, '/api/payments')).text) as { loginUrl: string };
    const start = await b.go(`${stack.bff.url}${body.loginUrl}&returnTo=%2F`, { follow: false });
    const location = new URL(String(start.headers.location));
    expect([...location.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    expect(pushed.at(-1)).toBe(STRONG);
    await b.finishAtIdp(await b.go(location.href));
    expect((await api(stack, b, '/api/payments')).status).toBe(200);
  });
});
