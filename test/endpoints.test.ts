import request from 'supertest';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

/**
 * The endpoints' answers that need no browser: each request goes straight to the app's request
 * listener (createApp's result) through supertest, not through a cookie-keeping browser.
 */
let stack: Stack;
let app: Stack['bff']['app'];
beforeAll(async () => {
  stack = await startStack();
  app = stack.bff.app;
});
afterAll(async () => {
  await stack?.close();
});

describe('health', () => {
  test('GET /healthz answers 200 while the process runs', async () => {
    const res = await request(app).get('/healthz');
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { status: 'ok' } });
  });

  test('GET /readyz answers 200 when Redis and the IdP metadata are reachable', async () => {
    const ready = await request(app).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ checks: { store: 'ok', idp: 'ok' } });
  });

  test('every response carries helmet headers and a request id', async () => {
    const res = await request(app).get('/healthz');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['content-security-policy']).toBeDefined();
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('an unknown path is a 404 JSON error', async () => {
    const res = await request(app).get('/nothing/here');
    expect({ status: res.status, body: res.body }).toEqual({
      status: 404,
      body: { error: 'not_found', message: expect.any(String) },
    });
  });
});

describe('without a session', () => {
  test('GET /bff/user: 401 JSON', async () => {
    const res = await request(app).get('/bff/user').set(csrf);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthenticated', message: expect.any(String) });
  });

  test('an API route: 401 JSON', async () => {
    const res = await request(app).get('/api/things').set(csrf);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthenticated', message: expect.any(String) });
  });
});

describe('GET /bff/login', () => {
  test.each([
    ['an absolute URL', 'https://evil.example/'],
    ['a protocol-relative URL', '//evil.example/'],
    ['a backslash trick', '/\\evil.example'],
    ['a javascript: URL', 'javascript:alert(1)'],
    ['a relative path without a slash', 'orders'],
    ['a tab that browsers strip', '/\t/evil.example'],
    ['a newline', '/a\nb'],
    ['a dot segment before //', '/.//evil.example'],
    ['a dot-dot segment before //', '/..//evil.example'],
    ['an encoded dot segment before //', '/%2e//evil.example'],
    ['a mixed dot-dot segment before //', '/.%2e//evil.example'],
    ['a path that climbs back to //', '/a/..//evil.example'],
    ['an empty value', ''],
  ])('refuses returnTo as %s with 400 JSON', async (_name, value) => {
    const res = await request(app).get(`/bff/login?returnTo=${encodeURIComponent(value)}`);
    const body = res.body as { error: string; message: string };
    expect(res.status).toBe(400);
    expect(body.error).toBe('invalid_return_url');
    expect(body.message).toMatch(/same-origin relative path/);
  });

  test('refuses a repeated returnTo parameter', async () => {
    const res = await request(app).get('/bff/login?returnTo=/a&returnTo=/b');
    expect(res.status).toBe(400);
  });
});

describe('API routes: methods', () => {
  let cookie: string;
  beforeAll(async () => {
    const alice = await loggedIn(stack.bff);
    cookie = await alice.jar.getCookieString(stack.bff.url);
  });

  test.each(['TRACE', 'PROPFIND', 'SEARCH'] as const)(
    '%s gets 405 JSON with Allow, and never reaches the upstream',
    async (method) => {
      const before = stack.upstream.requests.length;
      const call = { TRACE: 'trace', PROPFIND: 'propfind', SEARCH: 'search' } as const;
      const res = await request(app)[call[method]]('/api/things').set(csrf).set('cookie', cookie);
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
      expect(JSON.parse(res.text)).toMatchObject({ error: 'method_not_allowed' });
      expect(stack.upstream.requests.length).toBe(before);
    },
  );
});
