import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import express from 'express';
import session from 'express-session';
import supertest from 'supertest';
import { createExampleApp, type ExampleApp } from '../examples/express-session/app.js';
import { createBff, type Bff } from '../src/index.js';
import { createLogger } from '../src/log.js';
import { Browser } from './support/browser.js';
import { startTestIdp, type TestIdp } from './support/idp.js';
import { freePort } from './support/ports.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { csrf } from './support/session.js';
import { ALICE, AUDIENCE, CLIENT_ID, CLIENT_SECRET, SESSION_SECRET } from './support/stack.js';
import { startUpstream, type Recorded, type TestUpstream } from './support/upstream.js';

/**
 * The host's session cookie is the user's whole session in middleware mode: it must never reach an
 * API, whatever the route's token policy, whether the user is logged in, and on a replica that has
 * served nothing yet. Two apps, against the real IdP, Redis and a real API:
 *  - the example as shipped (express-session named `example.sid`, on connect-redis), twice;
 *  - a shop whose express-session is named `shop.sid` and saves sessions before any login, whose
 *    coatcheck is NOT told that name (the default, connect.sid, is wrong for it), and whose session
 *    store can be made to fail, twice on one Redis and one host store.
 */
const EXAMPLE_COOKIE = 'example.sid';
const SHOP_COOKIE = 'shop.sid';

interface Running {
  readonly url: string;
  readonly server: Server;
  readonly logs: string[];
}

let redis: TestRedis;
let upstream: TestUpstream;
let idp: TestIdp;
const examples: (Running & { example: ExampleApp })[] = [];
const shops: (Running & { bff: Bff })[] = [];
/** express-session's own store, shared by the shop's replicas as a Redis would be; its destroy can fail. */
const shopStore = new session.MemoryStore();
let failHostDestroy = false;
const destroy = shopStore.destroy.bind(shopStore);
shopStore.destroy = (id, callback) => {
  if (failHostDestroy) callback?.(new Error('host store down'));
  else destroy(id, callback);
};

function routes(target: string) {
  return [
    { path: '/api', target: `${target}/v1` },
    { path: '/pub', target: `${target}/pub`, token: 'none' as const },
    { path: '/opt', target: `${target}/opt`, token: 'optional' as const },
  ];
}

async function listen(app: express.Express | ExampleApp['app'], port: number): Promise<Server> {
  const server = createServer(app).listen(port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/**
 * The shop: express-session on every path but the back-channel logout (as a host that scopes its
 * sessions to its pages would), then coatcheck. Replica 1 is given the host store as an option.
 */
async function startShop(url: string, port: number, withStore: boolean): Promise<void> {
  const logs: string[] = [];
  const bff = await createBff(
    {
      issuer: idp.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      publicUrl: url,
      sessionSecret: SESSION_SECRET,
      redisUrl: redis.url,
      redisKeyPrefix: 'shop:',
      authParams: 'prompt=consent',
      routes: routes(upstream.url),
      session: 'express-session',
      ...(withStore ? { hostSessionStore: shopStore } : {}),
    },
    { log: createLogger('debug', { write: (line: string) => void logs.push(line) }) },
  );
  const app = express();
  const hostSession = session({
    store: shopStore,
    name: SHOP_COOKIE,
    secret: 'the-shops-own-cookie-secret',
    resave: false,
    saveUninitialized: true,
    cookie: { httpOnly: true, sameSite: 'lax', secure: false },
  });
  app.use((req, res, next) =>
    req.path === '/bff/backchannel-logout' ? next() : hostSession(req, res, next),
  );
  app.use(bff.middleware);
  app.get('/', (_req, res) => {
    res.send('shop');
  });
  shops.push({ url, bff, logs, server: await listen(app, port) });
}

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startUpstream();
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  idp = await startTestIdp({
    users: [ALICE],
    audience: AUDIENCE,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: urls.map((url) => `${url}/bff/callback`),
        post_logout_redirect_uris: urls.map((url) => `${url}/`),
      },
    ],
  });
  for (const i of [0, 1]) {
    const logs: string[] = [];
    const example = await createExampleApp(
      {
        issuer: idp.issuer,
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        publicUrl: urls[i]!,
        sessionSecret: SESSION_SECRET,
        cookieSecret: 'the-example-apps-own-cookie-secret',
        redisUrl: redis.url,
        apiUrl: `${upstream.url}/v1`,
        bff: { authParams: 'prompt=consent', routes: routes(upstream.url) },
      },
      { log: createLogger('debug', { write: (line: string) => void logs.push(line) }) },
    );
    examples.push({ url: urls[i]!, example, logs, server: await listen(example.app, ports[i]!) });
  }
  await startShop(urls[2]!, ports[2]!, false);
  await startShop(urls[3]!, ports[3]!, true);
});

afterAll(async () => {
  for (const { server } of [...examples, ...shops]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const { example } of examples) await example.close();
  for (const { bff } of shops) await bff.close();
  await idp?.close();
  await upstream?.close();
  await redis?.stop();
});

/** A request with the browser's cookies; Set-Cookie goes back into its jar. */
async function get(b: Browser, url: string, path: string, headers: Record<string, string> = {}) {
  const res = await supertest(url)
    .get(path)
    .set({ ...headers, cookie: await b.jar.getCookieString(url) })
    .redirects(0);
  for (const line of [res.headers['set-cookie'] ?? []].flat()) await b.jar.setCookie(line, url);
  return res;
}

/**
 * The API got the other cookies but not the host's, by name or by value (the browser also holds the
 * IdP's and the API's own cookies: cookies are per host, not per port).
 */
function expectNoHostCookie(seen: Recorded, hostCookie: string): void {
  const cookie = String(seen.headers.cookie);
  expect(cookie).toContain('theme=dark');
  expect(cookie).not.toContain(hostCookie);
  expect(cookie).not.toMatch(/=s(%3A|:)/i);
}

/** What the API received for the last request to this path. */
function seenUpstream(path: string): Recorded {
  const seen = upstream.requests.filter((r) => r.url.startsWith(path)).at(-1);
  if (!seen) throw new Error(`the API saw no request to ${path}`);
  return seen;
}

async function signedIn(url: string): Promise<Browser> {
  const b = new Browser();
  await b.login(url);
  await b.jar.setCookie('theme=dark', url);
  return b;
}

test('a logged-in user’s first calls on a replica that has served nothing: no route forwards the host cookie', async () => {
  const b = await signedIn(examples[0]!.url);
  const fresh = examples[1]!.url;
  expect((await b.jar.getCookies(fresh)).map((c) => c.key)).toContain(EXAMPLE_COOKIE);
  for (const [path, token] of [
    ['/pub/x', false],
    ['/opt/x', true],
    ['/api/x', true],
  ] as const) {
    const res = await get(b, fresh, path, csrf);
    expect(res.status).toBe(200);
    const seen = seenUpstream(path.replace(/^\/api/, '/v1'));
    expectNoHostCookie(seen, EXAMPLE_COOKIE);
    expect(seen.headers.authorization !== undefined).toBe(token);
  }
});

test('the example names its cookie, so it draws no name warning', () => {
  expect(examples.map((e) => e.logs.join('')).join('')).not.toMatch(/sessionCookieName/);
});

test('with the cookie misnamed in the options, the host cookie is still kept from the API by its value, logged in or not', async () => {
  const b = new Browser();
  // A visit before any login: the shop saves its session anyway (saveUninitialized).
  expect((await get(b, shops[0]!.url, '/')).status).toBe(200);
  await b.jar.setCookie('theme=dark', shops[0]!.url);
  expect((await b.jar.getCookies(shops[0]!.url)).map((c) => c.key)).toContain(SHOP_COOKIE);
  for (const path of ['/pub/anon', '/opt/anon']) {
    expect((await get(b, shops[0]!.url, path, csrf)).status).toBe(200);
    const seen = seenUpstream(path);
    expectNoHostCookie(seen, SHOP_COOKIE);
    expect(seen.headers.authorization).toBeUndefined();
  }
  // Logged in, on the other replica, whose first request this is.
  const alice = await signedIn(shops[0]!.url);
  for (const path of ['/pub/in', '/opt/in', '/api/in']) {
    expect((await get(alice, shops[1]!.url, path, csrf)).status).toBe(200);
    expectNoHostCookie(seenUpstream(path.replace(/^\/api/, '/v1')), SHOP_COOKIE);
  }
});

test('a misnamed cookie is warned about once per replica, naming both names and no session id', () => {
  for (const { logs } of shops) {
    const warned = logs.filter((l) => l.includes('sessionCookieName'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain(SHOP_COOKIE);
    expect(warned[0]).toContain('connect.sid');
    expect(warned[0]).not.toMatch(/s%3A|s:[A-Za-z0-9_-]{20}/);
  }
});

test('sessionCookieName is validated with the other options, and only in middleware mode', async () => {
  const base = {
    issuer: idp.issuer,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    publicUrl: 'nope',
    sessionSecret: SESSION_SECRET,
    sessionStore: 'memory' as const,
    routes: routes(upstream.url),
  };
  await expect(
    createBff({ ...base, session: 'express-session', sessionCookieName: 'a b;c' }),
  ).rejects.toThrow(/sessionCookieName: must be a cookie name[\s\S]*publicUrl/);
  await expect(createBff({ ...base, sessionCookieName: 'shop.sid' })).rejects.toThrow(
    /sessionCookieName: only applies with session: 'express-session'/,
  );
  await expect(
    createBff({ ...base, session: 'express-session', hostSessionStore: {} as never }),
  ).rejects.toThrow(/hostSessionStore: must be express-session's store/);
});

describe('back-channel logout', () => {
  const logoutToken = () =>
    idp.sign(
      {
        iss: idp.issuer,
        aud: CLIENT_ID,
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 120,
        jti: randomUUID(),
        events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
        sub: ALICE.sub,
      },
      'logout+jwt',
    );
  const post = async (url: string) =>
    supertest(url)
      .post('/bff/backchannel-logout')
      .type('form')
      .send({ logout_token: await logoutToken() });
  const hostSessions = () =>
    new Promise<number>((resolve, reject) =>
      shopStore.length((err, n) => (err ? reject(err as Error) : resolve(n ?? 0))),
    );

  test('when the host store fails, coatcheck’s tokens still end, the IdP gets its 200, and the failure is logged', async () => {
    const alice = await signedIn(shops[0]!.url);
    expect((await get(alice, shops[0]!.url, '/bff/user', csrf)).status).toBe(200);
    const before = await hostSessions();
    failHostDestroy = true;
    try {
      expect((await post(shops[0]!.url)).status).toBe(200);
    } finally {
      failHostDestroy = false;
    }
    expect((await get(alice, shops[0]!.url, '/bff/user', csrf)).status).toBe(401);
    expect((await get(alice, shops[1]!.url, '/api/after', csrf)).status).toBe(401);
    expect(await hostSessions()).toBe(before);
    expect(shops[0]!.logs.join('')).toMatch(/host's sessions were not destroyed/);
  });

  test('at a replica whose express-session does not cover the path, the host store given as an option is used', async () => {
    const alice = await signedIn(shops[0]!.url);
    const cookie = (await alice.jar.getCookies(shops[0]!.url)).find((c) => c.key === SHOP_COOKIE)!;
    const id = /^s:([^.]+)\./.exec(decodeURIComponent(cookie.value))![1]!;
    const has = () =>
      new Promise<boolean>((resolve) =>
        shopStore.get(id, (_err, s) => resolve(s !== null && s !== undefined)),
      );
    expect(await has()).toBe(true);
    // Replica 1 (given hostSessionStore) gets it, with no req.sessionStore on that path.
    expect((await post(shops[1]!.url)).status).toBe(200);
    expect(await has()).toBe(false);
    expect((await get(alice, shops[0]!.url, '/bff/user', csrf)).status).toBe(401);
  });
});
