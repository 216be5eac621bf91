import { request as httpRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { Browser } from './support/browser.js';
import { signOutAtIdp, startStack, type Bff, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';
import { startWsUpstream, type WsUpstream } from './support/ws-upstream.js';

const IDLE_SECONDS = 4;
let upstream: WsUpstream;
let stack: Stack;

beforeAll(async () => {
  upstream = await startWsUpstream();
  stack = await startStack({
    instances: 2,
    env: {
      BFF_ROUTES: JSON.stringify([{ path: '/api', target: `${upstream.url}/v1` }]),
      BFF_SESSION_IDLE_TIMEOUT: String(IDLE_SECONDS),
      // Short, so that the idle test also shows it never cuts a socket that is open.
      BFF_UPSTREAM_TIMEOUT: '1',
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

interface Opened {
  readonly ws: WebSocket;
  readonly messages: string[];
  nextMessage(): Promise<string>;
  /** The close as the browser sees it: code and reason, and when (performance.now()). */
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
}
interface Refused {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** Opens a WebSocket as a browser on `bff`'s page would: its cookies, and its Origin unless told otherwise. */
async function open(
  bff: Bff,
  browser: Browser | undefined,
  path = '/api/chat',
  /** null: no Origin header at all. */
  origin: string | null = bff.url,
  extraCookie = 'theme=dark',
): Promise<Opened | Refused> {
  const jar = browser ? await browser.jar.getCookieString(bff.url) : '';
  const cookie = [jar, extraCookie].filter(Boolean).join('; ');
  const ws = new WebSocket(`${bff.url.replace(/^http/, 'ws')}${path}`, {
    headers: { cookie },
    ...(origin === null ? {} : { origin }),
  });
  const messages: string[] = [];
  const waiting: ((m: string) => void)[] = [];
  ws.on('message', (data) => {
    const text = (data as Buffer).toString();
    const taker = waiting.shift();
    if (taker) taker(text);
    else messages.push(text);
  });
  const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() })),
  );
  return new Promise((resolve, reject) => {
    ws.on('open', () =>
      resolve({
        ws,
        messages,
        closed,
        nextMessage: () => {
          const m = messages.shift();
          return m !== undefined ? Promise.resolve(m) : new Promise((r) => waiting.push(r));
        },
      }),
    );
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        });
        ws.terminate();
      });
    });
    ws.on('error', (err) => reject(err));
  });
}

function opened(result: Opened | Refused): Opened {
  if ('status' in result) throw new Error(`expected a WebSocket, got ${result.status}: ${result.body}`);
  return result;
}
function refused(result: Opened | Refused): Refused {
  if (!('status' in result)) {
    result.ws.terminate();
    throw new Error('expected a refusal, got an open WebSocket');
  }
  return result;
}

async function logoutUrl(browser: Browser, bff: Bff): Promise<string> {
  const user = await browser.go(`${bff.url}/bff/user`, { headers: csrf });
  return (JSON.parse(user.text) as { logoutUrl: string }).logoutUrl;
}

test('the handshake reaches the upstream with the access token and without coatcheck’s cookie, and messages pass both ways', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const taken = upstream.nextSocket();
  const client = opened(await open(stack.bffs[0]!, alice, '/api/chat?room=1'));
  const server = await taken;

  expect(server.url).toBe('/v1/chat?room=1');
  const auth = server.headers.authorization ?? '';
  expect(auth).toMatch(/^Bearer /);
  const claims = await stack.verifyAccessToken(auth.slice('Bearer '.length));
  expect(claims.sub).toBe('alice-0001');
  // The browser sent its session cookie (and the IdP's, which ignore ports as cookies do); only that one is gone.
  expect(await alice.jar.getCookieString(stack.bffs[0]!.url)).toMatch(/(^|; )coatcheck=/);
  expect(server.headers.cookie).toContain('theme=dark');
  expect(server.headers.cookie).not.toMatch(/(^|; )coatcheck=/);
  expect(server.headers['x-request-id']).toBeTruthy();

  client.ws.send('hello');
  expect(await client.nextMessage()).toBe('echo:hello');
  const pushed = client.nextMessage();
  server.socket.send('from upstream');
  expect(await pushed).toBe('from upstream');

  client.ws.close(1000, 'bye');
  expect(await server.closed).toEqual({ code: 1000, reason: 'bye' });
  expect((await client.closed).code).toBe(1000);
});

test('a WebSocket from another origin, or with no Origin, is refused with 403 and never reaches the upstream', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const before = upstream.handshakes.length;
  for (const origin of ['https://evil.example', `${stack.bffs[0]!.url}.evil.example`, null]) {
    const r = refused(await open(stack.bffs[0]!, alice, '/api/chat', origin));
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'origin_not_allowed' });
  }
  // The other instance's origin is not this one's either: the public origin, exactly.
  const other = refused(await open(stack.bffs[0]!, alice, '/api/chat', stack.bffs[1]!.url));
  expect(other.status).toBe(403);
  expect(upstream.handshakes.length).toBe(before);
});

test('without a session the answer is 401, before anything is upgraded or sent upstream', async () => {
  const before = upstream.handshakes.length;
  const r = refused(await open(stack.bffs[0]!, undefined));
  expect(r.status).toBe(401);
  expect(r.headers.upgrade).toBeUndefined();
  expect(JSON.parse(r.body)).toMatchObject({ error: 'unauthenticated' });
  expect(upstream.handshakes.length).toBe(before);
});

test('an upstream that refuses the handshake is answered as it is, minus cookies that would overwrite coatcheck’s', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const r = refused(await open(stack.bffs[0]!, alice, '/api/refuse'));
  expect(r.status).toBe(403);
  expect(JSON.parse(r.body)).toEqual({ error: 'forbidden' });
  expect(r.headers['set-cookie']).toEqual(['theme=dark; Path=/']);
});

test('logging out on the other instance closes the socket with 4401 "session ended" within a second, both sides', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const taken = upstream.nextSocket();
  const client = opened(await open(stack.bffs[0]!, alice));
  const server = await taken;
  const url = await logoutUrl(alice, stack.bffs[1]!);

  const started = performance.now();
  await alice.go(`${stack.bffs[1]!.url}${url}`, { follow: false });
  const closed = await client.closed;
  expect(closed).toMatchObject({ code: 4401, reason: 'session ended' });
  expect(closed.at - started).toBeLessThan(1000);
  expect(await server.closed).toEqual({ code: 4401, reason: 'session ended' });
  expect(stack.bffs[0]!.app.context.openSockets.size).toBe(0);
});

test('a back-channel logout from the IdP closes the socket', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const client = opened(await open(stack.bffs[1]!, alice));
  const bystander = await loggedIn(stack.bffs[0]!);
  const stays = opened(await open(stack.bffs[1]!, bystander));

  await signOutAtIdp(stack, alice);
  expect(await client.closed).toMatchObject({ code: 4401, reason: 'session ended' });
  // Another session's socket stays open, and still works.
  stays.ws.send('still here');
  expect(await stays.nextMessage()).toBe('echo:still here');
  stays.ws.close();
  await stays.closed;
});

test('a refresh the IdP refuses (invalid_grant) on the other instance closes the socket', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const client = opened(await open(stack.bffs[0]!, alice));
  const session = (await stack.sessionOf(alice))!;
  const rt = await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!);
  await (await stack.idp.provider.Grant.find(rt!.grantId!))!.destroy();
  const { sessions } = stack.bffs[0]!.app.context;
  expect(await sessions.writeTokens(session, session.version, { ...session.tokens, refreshAt: 0 })).toBe(
    true,
  );

  const call = await alice.go(`${stack.bffs[1]!.url}/api/anything`, { headers: csrf });
  expect(JSON.parse(call.text)).toMatchObject({ error: 'session_expired' });
  expect(await client.closed).toMatchObject({ code: 4401, reason: 'session ended' });
});

test('at the idle timeout the socket’s own timer closes it; BFF_UPSTREAM_TIMEOUT never cut it before', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const opening = performance.now();
  const client = opened(await open(stack.bffs[0]!, alice));
  const closed = await client.closed;
  expect(closed).toMatchObject({ code: 4401, reason: 'session ended' });
  const openFor = closed.at - opening;
  // Not before the idle end; and well within a few looks after it.
  expect(openFor).toBeGreaterThanOrEqual(IDLE_SECONDS * 1000 - 100);
  expect(openFor).toBeLessThan(IDLE_SECONDS * 1000 + 1500);
  const after = await alice.go(`${stack.bffs[0]!.url}/bff/user`, { headers: csrf });
  expect(after.status).toBe(401);
});

test('an upstream that does not answer the handshake within BFF_UPSTREAM_TIMEOUT gets 504', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const started = performance.now();
  const r = refused(await open(stack.bffs[0]!, alice, '/api/hang'));
  expect(r.status).toBe(504);
  expect(JSON.parse(r.body)).toMatchObject({ error: 'upstream_timeout' });
  expect(performance.now() - started).toBeLessThan(3000);
});

test('a session due for refresh is refreshed before the handshake, which carries the new token', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  // Due now: the clock cannot be moved to the token's refresh time here, the idle timeout is shorter.
  const before = (await stack.sessionOf(alice))!;
  const { sessions } = stack.bffs[0]!.app.context;
  expect(await sessions.writeTokens(before, before.version, { ...before.tokens, refreshAt: 0 })).toBe(true);
  const taken = upstream.nextSocket();
  const client = opened(await open(stack.bffs[1]!, alice));
  const server = await taken;
  expect(server.headers.authorization).toBe(`Bearer ${(await stack.sessionOf(alice))!.tokens.accessToken}`);
  expect(server.headers.authorization).not.toBe(`Bearer ${before.tokens.accessToken}`);
  client.ws.close();
  await client.closed;
});

/** A plain request that asks for another protocol, as `curl --http2 http://…` does (h2c). */
function askingForH2c(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      headers: {
        connection: 'Upgrade, HTTP2-Settings',
        upgrade: 'h2c',
        'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA',
        ...headers,
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('upgrade', () => reject(new Error('upgraded')));
    req.on('error', reject);
    req.end();
  });
}

test('a request asking for another upgrade (h2c) is served as plain HTTP, as without WebSocket support', async () => {
  expect(await askingForH2c(`${stack.bffs[0]!.url}/healthz`)).toEqual({
    status: 200,
    body: '{"status":"ok"}',
  });
  const alice = await loggedIn(stack.bffs[0]!);
  const cookie = await alice.jar.getCookieString(stack.bffs[0]!.url);
  // An API call, proxied as any: the upstream's plain-HTTP answer comes back.
  expect(await askingForH2c(`${stack.bffs[0]!.url}/api/plain`, { ...csrf, cookie })).toEqual({
    status: 426,
    body: 'WebSocket only',
  });
  expect((await askingForH2c(`${stack.bffs[0]!.url}/api/plain`, { cookie })).status).toBe(403);
});
