import { request } from 'undici';
import { Browser } from './support/browser.js';
import { CLIENT_ID, startStack, type Stack } from './support/stack.js';
import { csrf } from './support/session.js';
import { configProblems, validEnv } from './support/config-env.js';

/** Pushed authorization requests the IdP accepted, counted from oidc-provider's own event. */
function countPushes(stack: Stack): { count: number } {
  const seen = { count: 0 };
  stack.idp.provider.on('pushed_authorization_request.success', () => seen.count++);
  return seen;
}

async function loginRedirect(stack: Stack): Promise<URL> {
  const page = await new Browser().go(`${stack.bff.url}/bff/login`, { follow: false });
  expect(page.status).toBe(302);
  return new URL(String(page.headers.location));
}

async function user(stack: Stack, b: Browser): Promise<number> {
  const cookie = await b.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}/bff/user`, { headers: { ...csrf, cookie } });
  await res.body.dump();
  return res.statusCode;
}

describe('BFF_PAR=auto with an IdP that offers PAR', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory', env: { BFF_PAR: 'auto' } });
  });
  afterAll(() => stack?.close());

  test('the browser carries only client_id and request_uri, and the login completes', async () => {
    const pushes = countPushes(stack);
    const location = await loginRedirect(stack);
    expect([...location.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    expect(location.searchParams.get('client_id')).toBe(CLIENT_ID);
    expect(location.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/);
    expect(pushes.count).toBe(1);

    const b = new Browser();
    const page = await b.login(stack.bff.url, { returnTo: '/orders' });
    expect(page.url).toBe(`${stack.bff.url}/orders`);
    expect(await user(stack, b)).toBe(200);
    expect(pushes.count).toBe(2);
  });

  test('the pushed request is timed under endpoint="par"', async () => {
    await loginRedirect(stack);
    const text = await stack.bff.coatcheck.context.metrics.registry.metrics();
    expect(text).toMatch(/coatcheck_idp_request_duration_seconds_count\{endpoint="par"\} [1-9]/);
  });
});

describe('BFF_PAR=auto with an IdP without PAR', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory', par: 'absent', env: { BFF_PAR: 'auto' } });
  });
  afterAll(() => stack?.close());

  test('falls back to a plain authorization request, and the login completes', async () => {
    const location = await loginRedirect(stack);
    expect(location.searchParams.get('request_uri')).toBeNull();
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    const b = new Browser();
    await b.login(stack.bff.url);
    expect(await user(stack, b)).toBe(200);
  });
});

describe('BFF_PAR=off (the default)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
  });
  afterAll(() => stack?.close());

  test('never pushes, even when the IdP offers PAR', async () => {
    const pushes = countPushes(stack);
    const location = await loginRedirect(stack);
    expect(location.searchParams.get('request_uri')).toBeNull();
    expect(location.searchParams.get('state')).toBeTruthy();
    expect(pushes.count).toBe(0);
  });
});

describe('BFF_PAR=required', () => {
  test('with an IdP that requires PAR of its clients: every login is pushed and completes', async () => {
    const stack = await startStack({ store: 'memory', par: 'required', env: { BFF_PAR: 'required' } });
    try {
      const pushes = countPushes(stack);
      const b = new Browser();
      await b.login(stack.bff.url);
      expect(await user(stack, b)).toBe(200);
      expect(pushes.count).toBe(1);
      const ready = await request(`${stack.bff.url}/readyz`);
      expect(ready.statusCode).toBe(200);
      expect(await ready.body.json()).toEqual({ status: 'ready', checks: { store: 'ok', idp: 'ok' } });
    } finally {
      await stack.close();
    }
  });

  test('with an IdP without PAR: start-up succeeds, logins and /readyz answer 503, the problem is logged', async () => {
    const stack = await startStack({ store: 'memory', par: 'absent', env: { BFF_PAR: 'required' } });
    try {
      const login = await request(`${stack.bff.url}/bff/login`, { headers: { accept: 'application/json' } });
      expect(login.statusCode).toBe(503);
      const body = (await login.body.json()) as { error: string; message: string };
      expect(body.error).toBe('idp_unavailable');
      expect(body.message).toMatch(/its log names the cause/);

      const ready = await request(`${stack.bff.url}/readyz`);
      expect(ready.statusCode).toBe(503);
      expect(await ready.body.json()).toEqual({
        status: 'not_ready',
        checks: { store: 'ok', idp: 'unsuitable' },
      });
      expect(stack.bff.logs.join('')).toMatch(/BFF_PAR=required.*no pushed_authorization_request_endpoint/);
      // The health endpoint, which says whether the process lives, is unaffected.
      const health = await request(`${stack.bff.url}/healthz`);
      expect(health.statusCode).toBe(200);
      await health.body.dump();
    } finally {
      await stack.close();
    }
  });
});

test('BFF_PAR accepts off, auto and required only, listed with every other problem', () => {
  expect(configProblems({ ...validEnv, BFF_PAR: 'yes', BFF_PORT: 'x' })).toEqual(
    expect.arrayContaining([expect.stringMatching(/^BFF_PAR: must be off, auto or required/)]),
  );
  expect(configProblems({ ...validEnv, BFF_PAR: 'yes', BFF_PORT: 'x' }).length).toBeGreaterThanOrEqual(2);
});
