import { request } from 'undici';
import { waitFor } from './support/ports.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

async function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  const res = await request(`${stack.bff.url}${path}`, { headers });
  return { status: res.statusCode, body: await res.body.json() };
}

test('Redis down: /readyz 503, session requests 503 JSON, no crash; Redis back: all good again', async () => {
  const b = await loggedIn(stack.bff);
  const cookie = await b.jar.getCookieString(stack.bff.url);
  await stack.redis!.stop();
  try {
    const ready = await get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ checks: { store: 'unreachable' } });
    const api = await get('/api/x', { ...csrf, cookie });
    expect(api).toEqual({ status: 503, body: { error: 'store_unavailable', message: expect.any(String) } });
    const login = await get('/bff/login');
    expect(login.status).toBe(503);
    expect((await get('/healthz')).status).toBe(200);
  } finally {
    await stack.redis!.start();
  }
  // The restarted Redis is empty (no persistence in tests), so the old session is gone: 401, not 5xx.
  await waitFor(async () => ((await get('/readyz')).status === 200 ? true : undefined), 10_000, 'readiness');
  expect((await get('/api/x', { ...csrf, cookie })).status).toBe(401);
  const again = await loggedIn(stack.bff);
  expect((await again.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
});

test('IdP down after its metadata loaded: /readyz stays 200 and shows it, login 503; IdP back: login again', async () => {
  await stack.idp.stop();
  try {
    expect(await get('/readyz')).toEqual({
      status: 200,
      body: { status: 'ready', checks: { store: 'ok', idp: 'unreachable' } },
    });
    // The authorization URL needs nothing from the IdP now, so only the remembered outage stops it.
    const login = await request(`${stack.bff.url}/bff/login`);
    expect(login.statusCode).toBe(503);
    expect(await login.body.json()).toEqual({ error: 'idp_unavailable', message: expect.any(String) });
  } finally {
    await stack.idp.start();
  }
  expect(await get('/readyz')).toMatchObject({ status: 200, body: { checks: { idp: 'ok' } } });
  const login = await request(`${stack.bff.url}/bff/login`);
  await login.body.dump();
  expect(login.statusCode).toBe(302);
});

test('IdP metadata never loaded: /readyz 503 until discovery succeeds', async () => {
  const { startCoatcheck } = await import('../src/start.js');
  const log = (await import('../src/log.js')).createLogger('silent');
  await stack.idp.stop();
  let fresh: Awaited<ReturnType<typeof startCoatcheck>> | undefined;
  try {
    fresh = await startCoatcheck({ ...stack.bff.config, port: 0 }, { log });
    const res = await request(`http://127.0.0.1:${fresh.port}/readyz`);
    expect(res.statusCode).toBe(503);
    expect(await res.body.json()).toEqual({
      status: 'not_ready',
      checks: { store: 'ok', idp: 'unreachable' },
    });
  } finally {
    await stack.idp.start();
  }
  try {
    const url = `http://127.0.0.1:${fresh.port}/readyz`;
    await waitFor(
      async () => {
        const res = await request(url);
        await res.body.dump();
        return res.statusCode === 200 ? true : undefined;
      },
      10_000,
      'readiness once the IdP is up',
    );
  } finally {
    await fresh.close();
  }
});

test('an IdP that is down at start-up is discovered once it comes up', async () => {
  const late = await startStack();
  try {
    await late.idp.stop();
    // A fresh instance whose first discovery fails…
    const { createOidcClient, oidcSettings } = await import('../src/oidc/client.js');
    const log = (await import('../src/log.js')).createLogger('silent');
    const oidc = createOidcClient(oidcSettings(late.bff.config), log);
    await expect(oidc.configuration()).rejects.toMatchObject({ code: 'idp_unavailable' });
    await late.idp.start();
    // …succeeds on a later request, after the retry interval.
    const configuration = await waitFor(
      () =>
        oidc.configuration().then(
          (c) => c,
          () => undefined,
        ),
      5000,
      'discovery',
    );
    expect(configuration.serverMetadata().issuer).toBe(late.idp.issuer);
  } finally {
    await late.close();
  }
});
