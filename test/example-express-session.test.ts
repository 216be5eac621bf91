import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import supertest from 'supertest';
import { createExampleApp, type ExampleApp } from '../examples/express-session/app.js';
import { createLogger } from '../src/log.js';
import { storageId } from '../src/session/crypto.js';
import { hostRecordId } from '../src/session/sealing-key.js';
import type { Session } from '../src/session/sessions.js';
import { Browser } from './support/browser.js';
import { startTestIdp, type TestIdp } from './support/idp.js';
import { freePort, waitFor } from './support/ports.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { csrf } from './support/session.js';
import { ALICE, AUDIENCE, CLIENT_ID, CLIENT_SECRET, SESSION_SECRET } from './support/stack.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

/**
 * examples/express-session as its users run it: express-session on connect-redis (resave and
 * rolling on), helmet, coatcheck mounted with `session: 'express-session'`, two replicas on one
 * Redis, against the real IdP and a real API. Only coatcheck's clock is the test's, to reach expiry.
 */
const ACCESS_TOKEN_TTL_S = 300;
const COOKIE = 'example.sid';

interface Instance {
  readonly url: string;
  readonly example: ExampleApp;
  readonly server: Server;
  readonly logs: string[];
}

let redis: TestRedis;
let dumper: Redis;
let upstream: TestUpstream;
let idp: TestIdp;
let offset = 0;
const now = () => Date.now() + offset;
const instances: Instance[] = [];

beforeAll(async () => {
  redis = await startRedis();
  dumper = new Redis(redis.url);
  upstream = await startUpstream();
  const ports = [await freePort(), await freePort()];
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  idp = await startTestIdp({
    users: [ALICE],
    audience: AUDIENCE,
    accessTokenTtl: ACCESS_TOKEN_TTL_S,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: urls.map((url) => `${url}/bff/callback`),
        post_logout_redirect_uris: urls.map((url) => `${url}/`),
        backchannel_logout_uri: `${urls[0]}/bff/backchannel-logout`,
        backchannel_logout_session_required: true,
      },
    ],
  });
  for (const [i, url] of urls.entries()) {
    const logs: string[] = [];
    const example = await createExampleApp(
      {
        issuer: idp.issuer,
        clientId: CLIENT_ID,
        clientSecret: CLIENT_SECRET,
        publicUrl: url,
        sessionSecret: SESSION_SECRET,
        cookieSecret: 'the-example-apps-own-cookie-secret',
        redisUrl: redis.url,
        apiUrl: `${upstream.url}/v1`,
        // oidc-provider issues a refresh token for offline_access only with prompt=consent (OIDC Core §11).
        bff: { authParams: 'prompt=consent', logLevel: 'debug' },
      },
      { now, log: createLogger('debug', { write: (line: string) => void logs.push(line) }) },
    );
    const server = createServer(example.app).listen(ports[i], '127.0.0.1');
    await once(server, 'listening');
    expect((server.address() as AddressInfo).port).toBe(ports[i]);
    instances.push({ url, example, server, logs });
  }
});

afterAll(async () => {
  for (const { server, example } of instances) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await example.close();
  }
  dumper?.disconnect();
  await idp?.close();
  await upstream?.close();
  await redis?.stop();
});

/** A request through supertest with the browser's cookie jar: cookies sent, and Set-Cookie kept. */
async function get(b: Browser, instance: number, path: string, headers: Record<string, string> = {}) {
  const { url } = instances[instance]!;
  const res = await supertest(url)
    .get(path)
    .set({ ...headers, cookie: await b.jar.getCookieString(url) })
    .redirects(0);
  for (const line of [res.headers['set-cookie'] ?? []].flat()) await b.jar.setCookie(line, url);
  return res;
}

async function loggedIn(): Promise<Browser> {
  const b = new Browser();
  const page = await b.login(instances[0]!.url);
  expect(page.status).toBe(200);
  expect(page.text).toContain('express-session + coatcheck');
  return b;
}

/** The host session id, as express-session signs it into its cookie. */
async function hostSessionId(b: Browser): Promise<string> {
  const cookie = (await b.jar.getCookies(instances[0]!.url)).find((c) => c.key === COOKIE);
  const id = /^s:([^.]+)\./.exec(decodeURIComponent(cookie?.value ?? ''))?.[1];
  if (!id) throw new Error('the browser has no express-session cookie');
  return id;
}

/** coatcheck's session for a browser, read as coatcheck finds it: from the host id and the secret. */
async function sessionOf(b: Browser): Promise<Session | undefined> {
  const id = hostRecordId(SESSION_SECRET, await hostSessionId(b));
  return instances[0]!.example.bff.context.sessions.load(id, now());
}

async function dump(): Promise<{ keys: string[]; text: string }> {
  const keys = await dumper.keys('*');
  let text = keys.join('\n');
  for (const key of keys) {
    const type = await dumper.type(key);
    if (type === 'hash') text += JSON.stringify(await dumper.hgetall(key));
    else if (type === 'string') text += await dumper.get(key);
    else if (type === 'set') text += (await dumper.smembers(key)).join(',');
  }
  return { keys, text };
}

test('login: the browser gets express-session’s cookie only, and the host session holds no token', async () => {
  const b = await loggedIn();
  // The jar also holds the IdP's cookies (cookies ignore ports): of the app's, only express-session's.
  const names = (await b.jar.getCookies(instances[0]!.url)).map((c) => c.key);
  expect(names).toContain(COOKIE);
  expect(names.filter((n) => n.includes('coatcheck'))).toEqual([]);
  const session = (await sessionOf(b))!;
  expect(session.data().sub).toBe(ALICE.sub);
  const stored = await dumper.get(`example:sess:${await hostSessionId(b)}`);
  expect(stored).not.toBeNull();
  for (const token of [session.tokens.accessToken, session.tokens.refreshToken!, session.tokens.idToken!]) {
    expect(stored).not.toContain(token);
  }
  const user = await get(b, 1, '/bff/user', csrf);
  expect(user.status).toBe(200);
  expect(user.body.claims.name).toBe('Alice Liddell');
  // A page route of the host, behind requireSession({ csrf: false }).
  expect((await get(b, 0, '/whoami')).body).toEqual({ sub: ALICE.sub, name: 'Alice Liddell' });
});

test('login regenerates the host session: an id the browser had before is not the one logged in', async () => {
  const b = new Browser();
  await b.login(instances[0]!.url);
  const first = await hostSessionId(b);
  await b.login(instances[0]!.url);
  const second = await hostSessionId(b);
  expect(second).not.toBe(first);
  expect(await dumper.exists(`example:sess:${first}`)).toBe(0);
  expect((await get(b, 0, '/bff/user', csrf)).status).toBe(200);
});

test('an API call through the proxy carries the token, and neither session cookie reaches the API', async () => {
  const b = await loggedIn();
  const res = await get(b, 1, '/api/orders/7', csrf);
  expect(res.status).toBe(200);
  const seen = upstream.requests.at(-1)!;
  expect(seen.url).toBe('/v1/orders/7');
  expect(seen.headers.authorization).toBe(`Bearer ${(await sessionOf(b))!.tokens.accessToken}`);
  expect(String(seen.headers.cookie ?? '')).not.toContain(COOKIE);
  expect(String(seen.headers.cookie ?? '')).not.toContain('coatcheck');
  expect((await get(new Browser(), 0, '/api/orders', csrf)).status).toBe(401);
  expect((await get(b, 0, '/api/orders')).status).toBe(403);
});

test('the server route calls the API with getAccessToken(req)', async () => {
  const b = await loggedIn();
  const res = await get(b, 0, '/orders', csrf);
  expect(res.status).toBe(200);
  expect(res.body.from).toBe('server');
  expect(upstream.requests.at(-1)!.headers.authorization).toBe(
    `Bearer ${(await sessionOf(b))!.tokens.accessToken}`,
  );
  const anonymous = await get(new Browser(), 0, '/orders', csrf);
  expect(anonymous.status).toBe(401);
  expect(anonymous.body.error).toBe('unauthenticated');
});

test('50 concurrent calls at expiry, proxy and server route over two replicas, resave and rolling on: one refresh, no reuse, all 200', async () => {
  const b = await loggedIn();
  const before = (await sessionOf(b))!;
  offset += before.tokens.refreshAt - now() + 1000;
  const counters = { ...idp.counters, grantErrors: [...idp.counters.grantErrors] };
  const calls = upstream.requests.length;
  const cookie = await b.jar.getCookieString(instances[0]!.url);

  const statuses = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const path = i % 3 === 0 ? `/orders?i=${i}` : `/api/orders/${i}`;
      const res = await supertest(instances[i % 2]!.url)
        .get(path)
        .set({ ...csrf, cookie });
      return res.status;
    }),
  );

  expect(statuses.filter((s) => s !== 200)).toEqual([]);
  expect(idp.counters.refreshGrants - counters.refreshGrants).toBe(1);
  expect(idp.counters.refreshReuse).toBe(counters.refreshReuse);
  expect(idp.counters.grantErrors).toEqual(counters.grantErrors);
  const used = new Set(upstream.requests.slice(calls).map((r) => String(r.headers.authorization)));
  expect(upstream.requests.length - calls).toBe(50);
  expect(used.size).toBe(1);
  const after = (await sessionOf(b))!;
  expect([...used][0]).toBe(`Bearer ${after.tokens.accessToken}`);
  expect(after.tokens.refreshToken).not.toBe(before.tokens.refreshToken);

  // express-session wrote the session back after every call; no token went with it, so the next
  // expiry refreshes with the rotated refresh token, and the IdP sees no reuse.
  const stored = (await dumper.get(`example:sess:${await hostSessionId(b)}`))!;
  for (const token of [before.tokens.refreshToken!, after.tokens.refreshToken!]) {
    expect(stored).not.toContain(token);
  }
  offset += after.tokens.refreshAt - now() + 1000;
  expect((await get(b, 1, '/orders', csrf)).status).toBe(200);
  expect(idp.counters.refreshGrants - counters.refreshGrants).toBe(2);
  expect(idp.counters.refreshReuse).toBe(counters.refreshReuse);
});

test('a Redis dump holds no token, and no coatcheck key is named after, or computable from, a session id', async () => {
  const b = await loggedIn();
  const session = (await sessionOf(b))!;
  const hostId = await hostSessionId(b);
  const { keys, text } = await dump();
  // The premise: connect-redis keeps the host session id in clear.
  expect(keys).toContain(`example:sess:${hostId}`);
  const ours = keys.filter((k) => !k.startsWith('example:sess:'));
  expect(ours.length).toBeGreaterThan(0);
  for (const key of ours) {
    expect(key).not.toContain(hostId);
    expect(key).not.toContain(storageId(hostId));
    expect(key).not.toContain(session.id);
  }
  for (const secret of [
    session.tokens.accessToken,
    session.tokens.refreshToken!,
    session.tokens.idToken!,
    session.id,
    'Alice Liddell',
  ]) {
    expect(text.includes(secret)).toBe(false);
  }
  // The subject is in clear in coatcheck's own index, as in the standalone server, but not beside a host session id.
  expect(ours.some((k) => k.includes(ALICE.sub))).toBe(true);
});

test('logout ends coatcheck’s session and destroys the host session', async () => {
  const b = await loggedIn();
  const hostId = await hostSessionId(b);
  const session = (await sessionOf(b))!;
  const { logoutUrl } = (await get(b, 0, '/bff/user', csrf)).body as { logoutUrl: string };
  const res = await get(b, 0, logoutUrl);
  expect(res.status).toBe(302);
  expect(res.headers.location).toMatch(new RegExp(`^${idp.issuer}`));
  expect(await dumper.exists(`example:sess:${hostId}`)).toBe(0);
  expect(await instances[0]!.example.bff.context.sessions.readTokens(session)).toBeUndefined();
  expect((await get(b, 1, '/bff/user', csrf)).status).toBe(401);
});

test('back-channel logout from the IdP destroys that host session in the host’s store, and no other', async () => {
  const alice = await loggedIn();
  const other = await loggedIn();
  const hostId = await hostSessionId(alice);
  const session = (await sessionOf(alice))!;

  // Logging out at the IdP: it posts a logout token (with this browser's sid) to instance 0.
  const delivered = idp.counters.backchannelSuccess;
  const confirm = await alice.go(`${idp.issuer}/session/end`);
  await alice.submitForm(confirm.url, confirm.text, /<form id="op.logoutForm"[\s\S]*?<\/form>/, {
    logout: 'yes',
  });
  await waitFor(() => (idp.counters.backchannelSuccess > delivered ? true : undefined), 5000, 'delivery');
  expect(idp.counters.backchannelErrors).toEqual([]);

  expect(await dumper.exists(`example:sess:${hostId}`)).toBe(0);
  expect(await instances[0]!.example.bff.context.sessions.readTokens(session)).toBeUndefined();
  expect((await get(alice, 1, '/bff/user', csrf)).status).toBe(401);
  expect((await get(alice, 0, '/orders', csrf)).status).toBe(401);
  // The same user's other browser has its own IdP session, which stays.
  expect((await get(other, 1, '/bff/user', csrf)).status).toBe(200);
});

test('the example’s cookie settings draw no warning, and no secret reaches the log', async () => {
  const text = instances.map((i) => i.logs.join('')).join('');
  expect(text).not.toMatch(/host session cookie/);
  expect(text.length).toBeGreaterThan(1000);
  expect(text).not.toContain(CLIENT_SECRET);
  expect(text).not.toContain(SESSION_SECRET);
});

test('after BFF_SESSION_SECRET rotates, sessions sealed under the old secret still work, refresh included', async () => {
  const b = await loggedIn();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const rotated = await createExampleApp(
    {
      issuer: idp.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      publicUrl: url,
      sessionSecret: 'a-new-session-secret-rotated-in-0123456789',
      cookieSecret: 'the-example-apps-own-cookie-secret',
      redisUrl: redis.url,
      apiUrl: `${upstream.url}/v1`,
      bff: { sessionSecret: ['a-new-session-secret-rotated-in-0123456789', SESSION_SECRET] },
    },
    { now, log: createLogger('silent') },
  );
  const server = createServer(rotated.app).listen(port, '127.0.0.1');
  await once(server, 'listening');
  try {
    const before = (await sessionOf(b))!;
    offset += before.tokens.refreshAt - now() + 1000;
    const refreshes = idp.counters.refreshGrants;
    const res = await supertest(url)
      .get('/orders')
      .set({ ...csrf, cookie: await b.jar.getCookieString(url) });
    expect(res.status).toBe(200);
    expect(idp.counters.refreshGrants).toBe(refreshes + 1);
    // Still under the old secret's record, with the rotated tokens written back to it.
    expect((await sessionOf(b))!.tokens.refreshToken).not.toBe(before.tokens.refreshToken);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await rotated.close();
  }
});
