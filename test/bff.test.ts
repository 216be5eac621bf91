import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { request } from 'undici';
import { createBff, UnknownResourceError, type Bff, type BffOptions } from '../src/index.js';
import { BffError } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { SESSION_COOKIE } from '../src/security/cookies.js';
import { startTestIdp, type TestIdp } from './support/idp.js';
import { freePort } from './support/ports.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { csrf, loggedIn } from './support/session.js';
import { ALICE, AUDIENCE, CLIENT_ID, CLIENT_SECRET, SESSION_SECRET } from './support/stack.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

/** A second API with its own audience (RFC 8707), behind the route /reports. */
const REPORTS = 'urn:coatcheck:test-reports';

/** A host app of the kind a team already runs: its own page and routes, with coatcheck mounted. */
interface Host {
  readonly url: string;
  readonly bff: Bff;
  readonly server: Server;
  readonly logs: string[];
}

describe('createBff mounted in a host Express 5 app', () => {
  let redis: TestRedis;
  let idp: TestIdp;
  let upstream: TestUpstream;
  let hosts: Host[];
  let offset = 0;
  const now = () => Date.now() + offset;

  async function startHost(port: number): Promise<Host> {
    const url = `http://127.0.0.1:${port}`;
    const options: BffOptions = {
      publicUrl: url,
      issuer: idp.issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      sessionSecret: SESSION_SECRET,
      redisUrl: redis.url,
      routes: [
        { path: '/api', target: `${upstream.url}/v1` },
        { path: '/reports', target: `${upstream.url}/reports`, resource: REPORTS },
      ],
      // oidc-provider issues a refresh token for offline_access only with prompt=consent (OIDC Core §11).
      authParams: { prompt: 'consent' },
      logLevel: 'debug',
    };
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
    const bff = await createBff(options, { log, now });
    const app = express();
    // A host that parses some bodies before coatcheck, by mistake, on a path that is an API route's.
    app.use('/api/parsed', express.json());
    app.use(bff.middleware);
    app.get('/', (_req, res) => {
      res.type('html').send('<h1>the host page</h1>');
    });
    app.get('/me', bff.requireSession(), (req, res) => {
      res.json({ claims: req.bff?.claims, sub: req.bff?.sub });
    });
    app.get('/page', bff.requireSession({ csrf: false }), (req, res) => {
      res.type('html').send(`<p>hello ${String(req.bff?.claims.name)}</p>`);
    });
    app.get('/server-call', bff.requireSession({ csrf: false }), async (req, res) => {
      const token = await bff.getAccessToken(req);
      const api = await request(`${upstream.url}/v1/orders`, {
        headers: { authorization: `Bearer ${token}` },
      });
      res.json({ status: api.statusCode, body: await api.body.json(), token });
    });
    // A route without requireSession: getAccessToken itself says there is no session.
    app.get('/token', async (req, res) => {
      const resource = typeof req.query.resource === 'string' ? req.query.resource : undefined;
      res.json({ token: await bff.getAccessToken(req, { resource }) });
    });
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      if (err instanceof BffError) res.status(err.status).json(err.toJSON());
      else if (err instanceof UnknownResourceError) res.status(500).json({ error: err.code });
      else res.status(500).json({ error: 'host_error' });
    });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return { url, bff, server, logs };
  }

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startUpstream();
    const ports = [await freePort(), await freePort()];
    idp = await startTestIdp({
      users: [ALICE],
      audience: AUDIENCE,
      resources: [REPORTS],
      accessTokenTtl: 300,
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          redirect_uris: ports.map((p) => `http://127.0.0.1:${p}/bff/callback`),
          post_logout_redirect_uris: ports.map((p) => `http://127.0.0.1:${p}/`),
        },
      ],
    });
    hosts = [await startHost(ports[0]!), await startHost(ports[1]!)];
  });

  afterAll(async () => {
    for (const h of hosts ?? []) {
      h.server.closeAllConnections();
      await new Promise((resolve) => h.server.close(resolve));
      await h.bff.close();
    }
    await idp?.close();
    await upstream?.close();
    await redis?.stop();
  });

  const verify = async (token: string) => {
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    return (await jwtVerify(token, jwks, { issuer: idp.issuer, audience: AUDIENCE })).payload;
  };

  test('login through /bff/login and /bff/callback, then an API call through the proxy route', async () => {
    const b = await loggedIn(hosts[0]!.url);
    const user = await b.go(`${hosts[0]!.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
    expect(JSON.parse(user.text).claims.name).toBe(ALICE.claims.name);

    const before = upstream.requests.length;
    const api = await b.go(`${hosts[0]!.url}/api/things?x=1`, { headers: csrf });
    expect(api.status).toBe(200);
    const forwarded = upstream.requests.slice(before);
    expect(forwarded.map((r) => r.url)).toEqual(['/v1/things?x=1']);
    const auth = String(forwarded[0]!.headers.authorization);
    expect((await verify(auth.replace(/^Bearer /, ''))).sub).toBe(ALICE.sub);
    // coatcheck's session cookie never travels upstream (the IdP's, on the same test host, may).
    expect(String(forwarded[0]!.headers.cookie ?? '')).not.toContain(`${SESSION_COOKIE}=`);
  });

  test('an API call whose body a host parser already read is refused, not forwarded empty', async () => {
    const before = upstream.counts.started;
    const res = await request(`${hosts[0]!.url}/api/parsed/things`, {
      method: 'POST',
      headers: { ...csrf, 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(res.statusCode).toBe(500);
    expect(((await res.body.json()) as { error: string }).error).toBe('internal_error');
    expect(upstream.counts.started).toBe(before);
    expect(hosts[0]!.logs.join('')).toContain('mount bff.middleware before body parsers');
  });

  test('the host keeps its own routes; unknown /bff paths are coatcheck 404s in JSON', async () => {
    const page = await request(`${hosts[0]!.url}/`);
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toBe('<h1>the host page</h1>');
    const unknown = await request(`${hosts[0]!.url}/bff/nope`);
    expect(unknown.statusCode).toBe(404);
    expect(await unknown.body.json()).toEqual({ error: 'not_found', message: 'Not found.' });
  });

  test('requireSession(): 401 JSON without a session, 403 JSON without X-CSRF, and req.bff.claims with both', async () => {
    const none = await request(`${hosts[0]!.url}/me`, { headers: csrf });
    expect(none.statusCode).toBe(401);
    expect(none.headers['content-type']).toMatch(/^application\/json/);
    expect(((await none.body.json()) as { error: string }).error).toBe('unauthenticated');

    const b = await loggedIn(hosts[0]!.url);
    const noCsrf = await b.go(`${hosts[0]!.url}/me`);
    expect(noCsrf.status).toBe(403);
    expect(JSON.parse(noCsrf.text).error).toBe('csrf_header_missing');

    const ok = await b.go(`${hosts[0]!.url}/me`, { headers: csrf });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toMatchObject({ sub: ALICE.sub, claims: { name: ALICE.claims.name } });
    // Claims only: no token reaches the host's response.
    expect(ok.text).not.toMatch(/access_?token|refresh_?token|eyJ/i);
  });

  test('requireSession({ csrf: false }) serves page navigations, and still wants a session', async () => {
    const none = await request(`${hosts[0]!.url}/page`);
    expect(none.statusCode).toBe(401);
    expect(((await none.body.json()) as { error: string }).error).toBe('unauthenticated');
    const b = await loggedIn(hosts[0]!.url);
    const page = await b.go(`${hosts[0]!.url}/page`);
    expect(page.status).toBe(200);
    expect(page.text).toBe(`<p>hello ${ALICE.claims.name}</p>`);
  });

  test('getAccessToken(req) returns a token the API accepts; without a session it rejects with a 401 BffError', async () => {
    const b = await loggedIn(hosts[0]!.url);
    const res = await b.go(`${hosts[0]!.url}/server-call`);
    expect(res.status).toBe(200);
    const { status, token } = JSON.parse(res.text) as { status: number; token: string };
    expect(status).toBe(200);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${token}`);
    expect((await verify(token)).sub).toBe(ALICE.sub);

    const anonymous = await request(`${hosts[0]!.url}/token`);
    expect(anonymous.statusCode).toBe(401);
    expect(((await anonymous.body.json()) as { error: string }).error).toBe('unauthenticated');
  });

  test('getAccessToken accepts a configured route as resource and refuses any other with UnknownResourceError', async () => {
    const b = await loggedIn(hosts[0]!.url);
    const byPath = await b.go(`${hosts[0]!.url}/token?resource=/api`);
    expect(byPath.status).toBe(200);
    const byTarget = await b.go(
      `${hosts[0]!.url}/token?resource=${encodeURIComponent(`${upstream.url}/v1`)}`,
    );
    expect(JSON.parse(byTarget.text).token).toBe(JSON.parse(byPath.text).token);
    const unknown = await b.go(`${hosts[0]!.url}/token?resource=https://other.example.com`);
    expect(unknown.status).toBe(500);
    expect(JSON.parse(unknown.text)).toEqual({ error: 'unknown_resource' });
  });

  test("getAccessToken with a route's resource returns that route's own token, for its audience", async () => {
    const b = await loggedIn(hosts[0]!.url);
    const main = JSON.parse((await b.go(`${hosts[0]!.url}/token`)).text) as { token: string };
    const reports = await b.go(`${hosts[0]!.url}/token?resource=${encodeURIComponent(REPORTS)}`);
    expect(reports.status).toBe(200);
    const token = (JSON.parse(reports.text) as { token: string }).token;
    expect(token).not.toBe(main.token);
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    const claims = (await jwtVerify(token, jwks, { issuer: idp.issuer, audience: REPORTS })).payload;
    expect(claims.sub).toBe(ALICE.sub);
    // The same token again, from the other instance: obtained once, kept in the session.
    const again = await b.go(`${hosts[1]!.url}/token?resource=/reports`);
    expect(JSON.parse(again.text)).toEqual({ token });
  });

  test('at expiry, concurrent getAccessToken calls over two instances sharing Redis make exactly one refresh grant', async () => {
    const b = await loggedIn(hosts[0]!.url);
    const first = JSON.parse((await b.go(`${hosts[0]!.url}/server-call`)).text) as { token: string };
    const start = { ...idp.counters, grantErrors: [...idp.counters.grantErrors] };

    // Past the refresh point of the token just issued (its lifetime is the IdP's 300 s).
    offset += 300_000;
    const cookie = await b.jar.getCookieString(hosts[0]!.url);
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const res = await request(`${hosts[i % 2]!.url}/server-call`, { headers: { cookie } });
        const body = (await res.body.json()) as { status: number; token: string };
        return { host: res.statusCode, api: body.status, token: body.token };
      }),
    );
    // Every host answer and every upstream answer to the server-side calls is 200.
    expect(results.filter((r) => r.host !== 200 || r.api !== 200)).toEqual([]);
    expect(idp.counters.refreshGrants - start.refreshGrants).toBe(1);
    expect(idp.counters.refreshReuse).toBe(start.refreshReuse);
    expect(idp.counters.grantErrors).toEqual(start.grantErrors);
    const tokens = new Set(results.map((r) => r.token));
    expect(tokens.size).toBe(1);
    const [fresh] = [...tokens];
    expect(fresh).not.toBe(first.token);
    expect((await verify(fresh!)).sub).toBe(ALICE.sub);

    // The proxy path shares the refresher: the same token, with no second grant.
    const api = await b.go(`${hosts[1]!.url}/api/after`, { headers: csrf });
    expect(api.status).toBe(200);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${fresh}`);
    expect(idp.counters.refreshGrants - start.refreshGrants).toBe(1);

    // No token in either instance's log.
    for (const h of hosts) expect(h.logs.join('')).not.toContain(fresh);
  });
});
