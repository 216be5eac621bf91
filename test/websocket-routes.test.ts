import type { IncomingMessage } from 'node:http';
import { decodeJwt } from 'jose';
import WebSocket from 'ws';
import type { Browser } from './support/browser.js';
import { rawExchange } from './support/raw-http.js';
import { loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';
import { startWsUpstream, type UpstreamSocket, type WsUpstream } from './support/ws-upstream.js';

const BILLING = 'urn:coatcheck:test-billing';
/** The per-session cap of src/proxy/websocket-quota.ts, as the README states it. */
const MAX_SOCKETS_PER_SESSION = 32;

let upstream: WsUpstream;
let stack: Stack;

/**
 * Sockets the upstream accepted, by the `n` each handshake carries in its query: a refused handshake
 * takes no socket, so pairing by order (nextSocket) would hand the next one to the wrong caller.
 */
const accepted = new Map<string, UpstreamSocket>();
const awaited = new Map<string, (s: UpstreamSocket) => void>();
let tagged = 0;
function collect(): void {
  void upstream.nextSocket().then((s) => {
    const n = new URL(s.url, 'http://x').searchParams.get('n') ?? '';
    const taker = awaited.get(n);
    if (taker) {
      awaited.delete(n);
      taker(s);
    } else accepted.set(n, s);
    collect();
  });
}
function upstreamSocket(n: string): Promise<UpstreamSocket> {
  const s = accepted.get(n);
  if (s) return Promise.resolve(s);
  return new Promise((resolve) => awaited.set(n, resolve));
}
/** `path` with a fresh `n` in its query, and that `n`. */
function tag(path: string): { path: string; n: string } {
  const n = String(++tagged);
  return { path: `${path}${path.includes('?') ? '&' : '?'}n=${n}`, n };
}

beforeAll(async () => {
  upstream = await startWsUpstream();
  stack = await startStack({
    resources: [BILLING],
    env: { BFF_SCOPES: 'openid profile email offline_access api' },
    routes: () => [
      { path: '/api', target: `${upstream.url}/v1` },
      { path: '/public', target: `${upstream.url}/public`, token: 'none' },
      { path: '/maybe', target: `${upstream.url}/maybe`, token: 'optional' },
      { path: '/billing', target: `${upstream.url}/billing`, resource: BILLING, scope: 'api' },
      { path: '/post-only', target: `${upstream.url}/ro`, methods: ['POST', 'PUT'] },
    ],
  });
  collect();
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
});

type Result =
  | { readonly ws: WebSocket; readonly server: UpstreamSocket }
  | { readonly status: number; readonly headers: IncomingMessage['headers']; readonly body: string };

/** Opens a WebSocket from the app's origin, with the browser's cookies if any; resolves with both ends, or the refusal. */
async function open(
  browser: Browser | undefined,
  path: string,
  headers: Record<string, string> = {},
): Promise<Result> {
  const cookie = browser ? await browser.jar.getCookieString(stack.bff.url) : '';
  const tagged = tag(path);
  const ws = new WebSocket(`${stack.bff.url.replace(/^http/, 'ws')}${tagged.path}`, {
    headers: { ...(cookie ? { cookie } : {}), ...headers },
    origin: stack.bff.url,
  });
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(upstreamSocket(tagged.n).then((server) => ({ ws, server }))));
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
    ws.on('error', reject);
  });
}

function opened(r: Result): { ws: WebSocket; server: UpstreamSocket } {
  if ('status' in r) throw new Error(`expected a WebSocket, got ${r.status}: ${r.body}`);
  return r;
}
function refused(r: Result): { status: number; headers: IncomingMessage['headers']; body: string } {
  if (!('status' in r)) {
    r.ws.terminate();
    throw new Error('expected a refusal, got an open WebSocket');
  }
  return r;
}
async function closeBoth(s: { ws: WebSocket; server: UpstreamSocket }): Promise<void> {
  s.ws.close();
  await s.server.closed;
}

describe('the route’s token policy applies to the handshake', () => {
  test('"token": "none": no Authorization (not even the browser’s), no coatcheck cookie, and no session needed', async () => {
    const alice = await loggedIn(stack.bff);
    const withSession = opened(
      await open(alice, '/public/chat', { authorization: 'Bearer forged-by-page', cookie: 'theme=dark' }),
    );
    expect(withSession.server.url).toMatch(/^\/public\/chat\?n=\d+$/);
    expect(withSession.server.headers.authorization).toBeUndefined();
    expect(String(withSession.server.headers.cookie ?? '')).not.toMatch(/coatcheck/);
    await closeBoth(withSession);

    const anonymous = opened(await open(undefined, '/public/chat'));
    expect(anonymous.server.headers.authorization).toBeUndefined();
    await closeBoth(anonymous);
  });

  test('"token": "optional": the login’s token with a session; without one, forwarded without any', async () => {
    const alice = await loggedIn(stack.bff);
    const withSession = opened(await open(alice, '/maybe/chat'));
    const auth = String(withSession.server.headers.authorization);
    expect(auth).toMatch(/^Bearer /);
    expect((await stack.verifyAccessToken(auth.slice(7))).sub).toBe('alice-0001');
    await closeBoth(withSession);

    const anonymous = opened(await open(undefined, '/maybe/chat', { authorization: 'Bearer forged' }));
    expect(anonymous.server.url).toMatch(/^\/maybe\/chat\?n=\d+$/);
    expect(anonymous.server.headers.authorization).toBeUndefined();
    await closeBoth(anonymous);
  });

  test('a route with a resource sends its own token, whose aud is that API, not the login’s token', async () => {
    const alice = await loggedIn(stack.bff);
    const s = opened(await open(alice, '/billing/chat'));
    const auth = String(s.server.headers.authorization);
    expect(auth).toMatch(/^Bearer /);
    const claims = decodeJwt(auth.slice(7));
    expect(claims.aud).toBe(BILLING);
    expect(claims.sub).toBe('alice-0001');
    const { tokens } = (await stack.sessionOf(alice))!;
    expect(auth.slice(7)).not.toBe(tokens.accessToken);
    expect(Object.values(tokens.routeTokens ?? {}).map((t) => t.accessToken)).toContain(auth.slice(7));
    await closeBoth(s);
  });

  test('"user" (the default) still needs a session: 401 before anything reaches the API', async () => {
    const before = upstream.handshakes.length;
    for (const path of ['/billing/chat', '/api/chat']) {
      const r = refused(await open(undefined, path));
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toMatchObject({ error: 'unauthenticated' });
    }
    expect(upstream.handshakes.length).toBe(before);
  });

  test('a route whose "methods" leave out GET refuses the handshake with 405 and the route’s Allow', async () => {
    const alice = await loggedIn(stack.bff);
    const before = upstream.handshakes.length;
    const r = refused(await open(alice, '/post-only/chat'));
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST, PUT');
    expect(JSON.parse(r.body)).toMatchObject({ error: 'method_not_allowed' });
    expect(upstream.handshakes.length).toBe(before);
  });

  test('the Origin check stays on every route, "none" included, and is exact', async () => {
    const before = upstream.handshakes.length;
    const url = stack.bff.url;
    const variants = [
      'https://evil.example',
      `${url}/`,
      url.toUpperCase(),
      url.replace('127.0.0.1', 'localhost'),
      'null',
    ];
    for (const path of ['/public/chat', '/maybe/chat', '/billing/chat']) {
      for (const origin of variants) {
        const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, { origin });
        const status = await new Promise<number>((resolve) => {
          ws.on('unexpected-response', (_req, res: IncomingMessage) => resolve(res.statusCode ?? 0));
          ws.on('open', () => resolve(101));
          ws.on('error', () => resolve(0));
        });
        ws.terminate();
        expect([path, origin, status]).toEqual([path, origin, 403]);
      }
    }
    expect(upstream.handshakes.length).toBe(before);
  });
});

describe('a handshake with a body', () => {
  const handshake = (cookie: string, extra: string, body = '', path = '/public/chat'): Buffer => {
    const host = new URL(stack.bff.url).host;
    return Buffer.from(
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Origin: ${stack.bff.url}\r\nCookie: ${cookie}\r\n${extra}\r\n${body}`,
    );
  };
  const port = () => Number(new URL(stack.bff.url).port);

  test('Content-Length or Transfer-Encoding gets 400 invalid_request, and nothing reaches the API', async () => {
    const alice = await loggedIn(stack.bff);
    const cookie = await alice.jar.getCookieString(stack.bff.url);
    const smuggled = 'GET /admin HTTP/1.1\r\nHost: x\r\n\r\n';
    const before = upstream.handshakes.length;
    for (const [extra, body] of [
      [`Content-Length: ${smuggled.length}\r\n`, smuggled],
      ['Transfer-Encoding: chunked\r\n', `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`],
    ] as const) {
      const r = await rawExchange(port(), handshake(cookie, extra, body));
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString())).toMatchObject({ error: 'invalid_request' });
    }
    expect(upstream.handshakes.length).toBe(before);
  });

  test('Content-Length: 0 is no body: upgraded, and no Content-Length reaches the API', async () => {
    const { path, n } = tag('/public/chat');
    const r = await rawExchange(port(), handshake('theme=dark', 'Content-Length: 0\r\n', '', path));
    expect(r.status).toBe(101);
    const server = await upstreamSocket(n);
    expect(server.headers['content-length']).toBeUndefined();
    expect(server.headers['transfer-encoding']).toBeUndefined();
    server.socket.terminate();
  });
});

describe('open WebSockets per session', () => {
  test(`a session may hold ${MAX_SOCKETS_PER_SESSION} in a process; one more gets 429 too_many_sockets, until one closes`, async () => {
    const alice = await loggedIn(stack.bff);
    const sockets: { ws: WebSocket; server: UpstreamSocket }[] = [];
    for (let i = 0; i < MAX_SOCKETS_PER_SESSION; i++) sockets.push(opened(await open(alice, '/api/chat')));
    const before = upstream.handshakes.length;
    const over = refused(await open(alice, '/api/chat'));
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toMatchObject({ error: 'too_many_sockets' });
    // Counted per session, whichever route: an optional route with the session counts too.
    expect(refused(await open(alice, '/maybe/chat')).status).toBe(429);
    expect(upstream.handshakes.length).toBe(before);

    // Another session is not affected, nor is a route that never reads the session.
    const bob = await loggedIn(stack.bff);
    await closeBoth(opened(await open(bob, '/api/chat')));
    await closeBoth(opened(await open(alice, '/public/chat')));

    // A socket that closes frees its place.
    const { openSockets } = stack.bff.app.context;
    await closeBoth(sockets.pop()!);
    const deadline = Date.now() + 5000;
    while (openSockets.size >= MAX_SOCKETS_PER_SESSION && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
    }
    sockets.push(opened(await open(alice, '/api/chat')));
    await Promise.all(sockets.map(closeBoth));
  });
});
