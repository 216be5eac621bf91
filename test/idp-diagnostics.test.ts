import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import request from 'supertest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { createOidcClient, oidcSettings } from '../src/oidc/client.js';
import { MemorySessionStore } from '../src/session/memory-store.js';
import { Browser } from './support/browser.js';
import { freePort, waitFor } from './support/ports.js';
import { CLIENT_ID, CLIENT_SECRET, SESSION_SECRET, startStack, type Stack } from './support/stack.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

type Line = Record<string, unknown> & { level: number; msg: string };
const parse = (logs: string[], from = 0): Line[] => logs.slice(from).map((l) => JSON.parse(l) as Line);

describe('IdP errors name their cause in the log', () => {
  const WRONG_SECRET = 'not-the-registered-client-secret-0123';
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory', env: { BFF_CLIENT_SECRET: WRONG_SECRET } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('a wrong client secret at the token endpoint logs invalid_client and 401, never the secret or the code', async () => {
    const b = new Browser();
    const page = await b.login(stack.bff.url);
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text).error).toBe('code_exchange_failed');

    const lines = parse(stack.bff.logs);
    const line = lines.find((l) => (l.idp as { error?: string } | undefined)?.error === 'invalid_client');
    expect(line).toMatchObject({
      level: 40,
      error: 'code_exchange_failed',
      idp: { error: 'invalid_client', status: 401, error_description: expect.any(String) },
    });
    const code = new URL(page.history.find((u) => u.includes('/bff/callback'))!).searchParams.get('code')!;
    const text = stack.bff.logs.join('');
    expect(code.length).toBeGreaterThan(10);
    expect(text).not.toContain(code);
    expect(text).not.toContain(WRONG_SECRET);
    expect(text).not.toContain(CLIENT_SECRET);
  });
});

describe('each refresh logs one line with its outcome and duration', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function dueSession(): Promise<Browser> {
    const b = await loggedIn(stack.bff);
    await advanceToRefresh(stack, b);
    return b;
  }
  const refreshLines = (from: number) => parse(stack.bff.logs, from).filter((l) => 'outcome' in l);

  test('success: one debug line', async () => {
    const b = await dueSession();
    const from = stack.bff.logs.length;
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    const lines = refreshLines(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 20, msg: 'token refresh', outcome: 'success' });
    expect(lines[0]!.durationMs).toEqual(expect.any(Number));
  });

  test('an IdP error: one warn line with the status and the cause', async () => {
    const b = await dueSession();
    const from = stack.bff.logs.length;
    stack.idp.failTokenEndpoint(500);
    try {
      expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(503);
    } finally {
      stack.idp.failTokenEndpoint(undefined);
    }
    const lines = refreshLines(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      outcome: 'idp_error',
      durationMs: expect.any(Number),
      idp: { status: 500, code: expect.stringContaining('OAUTH_RESPONSE_IS_NOT_CONFORM') },
    });
  });

  test('invalid_grant: one warn line, and the session ends', async () => {
    const b = await dueSession();
    const session = (await stack.sessionOf(b))!;
    const rt = await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!);
    await (await stack.idp.provider.Grant.find(rt!.grantId!))!.destroy();
    const from = stack.bff.logs.length;
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(401);
    const lines = refreshLines(from);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      outcome: 'invalid_grant',
      sessionEnded: true,
      idp: { error: 'invalid_grant', status: 400 },
    });
  });
});

describe('refresh outcomes of the lock: lock_timeout and lost_lock', () => {
  let stack: Stack;
  let release!: () => void;
  let entered!: () => void;
  const stalled = new Promise<void>((r) => (entered = r));
  const gate = new Promise<void>((r) => (release = r));
  beforeAll(async () => {
    stack = await startStack({
      instances: 2,
      store: 'memory',
      env: { BFF_REFRESH_LOCK_TTL: '60', BFF_UPSTREAM_TIMEOUT: '5' },
      refreshHooks: (i) =>
        i === 0
          ? {
              beforeRefresh: async () => {
                entered();
                await gate;
              },
            }
          : undefined,
    });
  });
  afterAll(async () => {
    release();
    await stack?.close();
  });

  test('a waiter past its deadline logs lock_timeout; a holder whose lock lapsed logs lost_lock', async () => {
    const b = await loggedIn(stack.bffs[1]!);
    await advanceToRefresh(stack, b, stack.bffs[1]);
    const cookie = await b.jar.getCookieString(stack.bffs[1]!.url);

    // Instance 0 takes the lock and holds it…
    const holder = b.go(`${stack.bffs[0]!.url}/api/held`, { headers: { ...csrf, cookie } });
    await stalled;
    // …while instance 1 waits for it until its deadline (the clock moves, so nobody sleeps).
    let waited: Awaited<ReturnType<Browser['go']>> | undefined;
    const waiter = b.go(`${stack.bffs[1]!.url}/api/waits`, { headers: csrf }).then((p) => (waited = p));
    await waitFor(
      () => {
        stack.clock.advance(500);
        return waited;
      },
      10_000,
      'the waiter to give up',
    );
    await waiter;
    expect(waited!.status).toBe(503);
    expect(parse(stack.bffs[1]!.logs).filter((l) => 'outcome' in l)).toEqual([
      expect.objectContaining({ level: 40, outcome: 'lock_timeout', durationMs: expect.any(Number) }),
    ]);

    // The holder's lock lapses before it reaches the IdP: it backs out.
    const before = parse(stack.bffs[0]!.logs).length;
    stack.clock.advance(61_000);
    release();
    expect((await holder).status).toBe(503);
    expect(parse(stack.bffs[0]!.logs, before).filter((l) => 'outcome' in l)).toEqual([
      expect.objectContaining({ level: 40, outcome: 'lost_lock', durationMs: expect.any(Number) }),
    ]);
  });
});

describe('an IdP that cannot be reached', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  function appFor(issuer: string) {
    const config = loadConfig({
      BFF_PUBLIC_URL: 'http://127.0.0.1:1',
      BFF_ISSUER: issuer,
      BFF_CLIENT_ID: CLIENT_ID,
      BFF_CLIENT_SECRET: CLIENT_SECRET,
      BFF_SESSION_SECRET: SESSION_SECRET,
      BFF_SESSION_STORE: 'memory',
      BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:1' }]),
      BFF_LOG_LEVEL: 'debug',
    });
    const logs: string[] = [];
    const log = createLogger(
      'debug',
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    );
    const store = new MemorySessionStore();
    const app = createApp(config, { oidc: createOidcClient(oidcSettings(config), log), store, log });
    return { app, logs, close: () => store.close() };
  }

  test('refused connection: the log names the discovery URL and ECONNREFUSED; /bff/login says where to look', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const { app, logs, close } = appFor(issuer);
    try {
      const res = await request(app).get('/bff/login').set('accept', 'application/json');
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('idp_unavailable');
      expect(res.body.message).toMatch(/cannot reach its identity provider/);
      expect(res.body.message).toMatch(/log/);
      const line = parse(logs).find((l) => l.msg === 'identity provider discovery failed');
      expect(line).toMatchObject({
        level: 40,
        discoveryUrl: `${issuer}/.well-known/openid-configuration`,
        idp: { code: expect.stringContaining('ECONNREFUSED') },
      });
      expect(JSON.stringify(line)).not.toMatch(/"message":"fetch failed"}/);
    } finally {
      await close();
    }
  });

  test('an HTTP error: the log names the status', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such thing');
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const { app, logs, close } = appFor(issuer);
    try {
      const res = await request(app).get('/bff/login').set('accept', 'application/json');
      expect(res.status).toBe(503);
      expect(res.body.message).toMatch(/cannot reach its identity provider/);
      const line = parse(logs).find((l) => l.msg === 'identity provider discovery failed');
      expect(line).toMatchObject({
        discoveryUrl: `${issuer}/.well-known/openid-configuration`,
        idp: { status: 404 },
      });
    } finally {
      await close();
    }
  });
});
