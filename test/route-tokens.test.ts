import { Redis } from 'ioredis';
import { request } from 'undici';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Browser } from './support/browser.js';
import { startAudienceUpstream, type AudienceUpstream } from './support/audience-upstream.js';
import { configProblems, validEnv } from './support/config-env.js';
import { csrf, loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

const ORDERS = 'https://orders.example.com';
const BILLING = 'urn:coatcheck:test-billing';
const UNKNOWN = 'https://not-registered.example.com';

let stack: Stack;
let orders: AudienceUpstream;
let billing: AudienceUpstream;
/** Refresh grants the IdP completed, by the resource they asked for ('' for the login's token). */
const grants = new Map<string, number>();
const grantsFor = (resource: string) => grants.get(resource) ?? 0;

beforeAll(async () => {
  // The APIs ask for the issuer at their first call, by which time the IdP runs.
  orders = await startAudienceUpstream(ORDERS, () => stack.idp.issuer);
  billing = await startAudienceUpstream(BILLING, () => stack.idp.issuer);
  stack = await startStack({
    instances: 2,
    resources: [ORDERS, BILLING],
    env: { BFF_SCOPES: 'openid profile email offline_access api' },
    routes: (upstream) => [
      // Today's kind of entry, unchanged: the login's token.
      { path: '/api', target: `${upstream}/v1` },
      { path: '/orders', target: orders.url, resource: ORDERS },
      // The same (resource, scope, params) as /orders, scopes aside: the same token.
      { path: '/orders-v2', target: `${orders.url}/v2`, resource: ORDERS },
      // Other parameters: a token of its own, though for the same API.
      {
        path: '/orders-hinted',
        target: `${orders.url}/hinted`,
        resource: ORDERS,
        tokenParams: { x_hint: '1' },
      },
      { path: '/billing', target: billing.url, resource: BILLING, scope: 'api' },
      { path: '/public', target: `${upstream}/public`, token: 'none' },
      { path: '/maybe', target: `${upstream}/maybe`, token: 'optional' },
      { path: '/readonly', target: `${upstream}/ro`, methods: ['GET', 'HEAD'] },
      { path: '/unknown', target: orders.url, resource: UNKNOWN },
    ],
  });
  stack.idp.provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    if (ctx.oidc.params?.grant_type !== 'refresh_token') return;
    const resource = String(ctx.oidc.params.resource ?? '');
    grants.set(resource, grantsFor(resource) + 1);
  });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await orders?.close();
  await billing?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function call(
  b: Browser | undefined,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; instance?: number } = {},
): Promise<Answer> {
  const bff = stack.bffs[opts.instance ?? 0]!;
  const cookie = b ? await b.jar.getCookieString(bff.url) : '';
  const res = await request(`${bff.url}${path}`, {
    method: opts.method ?? 'GET',
    headers: { ...csrf, ...(cookie ? { cookie } : {}), ...opts.headers },
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** Moves coatcheck's clock past the point where every token the session holds is due. */
async function advancePastAllTokens(b: Browser): Promise<void> {
  const { tokens } = (await stack.sessionOf(b))!;
  const due = Math.max(tokens.refreshAt, ...Object.values(tokens.routeTokens ?? {}).map((t) => t.refreshAt));
  stack.clock.advance(due - stack.clock.now() + 1000);
}

const lastRequest = () => stack.upstream.requests.at(-1)!;

describe('a route with a resource gets a token for its own API', () => {
  let b: Browser;
  beforeAll(async () => {
    b = await loggedIn(stack.bff);
  });

  test('each API verifies a token whose aud is its own; the unchanged route keeps the login token', async () => {
    const before = { orders: grantsFor(ORDERS), billing: grantsFor(BILLING), login: grantsFor('') };
    expect((await call(b, '/orders/o/1')).status).toBe(200);
    expect((await call(b, '/billing/b/1', { instance: 1 })).status).toBe(200);
    expect((await call(b, '/api/x')).status).toBe(200);

    expect(orders.served.at(-1)!.aud).toBe(ORDERS);
    expect(billing.served.at(-1)!.aud).toBe(BILLING);
    expect(orders.refused).toEqual([]);
    expect(billing.refused).toEqual([]);
    const loginToken = String(lastRequest().headers.authorization).slice(7);
    await stack.verifyAccessToken(loginToken);
    // Obtained from the refresh token at first use, one grant each; the login's token needed none.
    expect(grantsFor(ORDERS) - before.orders).toBe(1);
    expect(grantsFor(BILLING) - before.billing).toBe(1);
    expect(grantsFor('')).toBe(before.login);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });

  test('the route tokens live in the sealed token set, beside the one refresh token they rotated', async () => {
    const { tokens } = (await stack.sessionOf(b))!;
    expect(Object.keys(tokens.routeTokens ?? {})).toHaveLength(2);
    // Used again, on either instance, without asking the IdP.
    const count = grantsFor(ORDERS);
    expect((await call(b, '/orders/o/2', { instance: 1 })).status).toBe(200);
    expect(grantsFor(ORDERS)).toBe(count);
    const redis = new Redis(stack.redis!.url);
    const raw = await redis.hgetall(`coatcheck:s:${(await stack.sessionOf(b))!.key}`);
    await redis.quit();
    expect(raw.t).toBeDefined();
    expect(JSON.stringify(raw)).not.toContain(orders.served.at(-1)!.token);
  });

  test('routes that ask for the same token share it; other parameters get another token', async () => {
    const shared = grantsFor(ORDERS);
    expect((await call(b, '/orders-v2/o/3')).status).toBe(200);
    expect(grantsFor(ORDERS)).toBe(shared);
    const [a, v2] = orders.served.slice(-2);
    expect(v2!.token).toBe(a!.token);

    expect((await call(b, '/orders-hinted/o/4')).status).toBe(200);
    expect(grantsFor(ORDERS)).toBe(shared + 1);
    expect(orders.served.at(-1)!.token).not.toBe(a!.token);
    expect(orders.served.at(-1)!.aud).toBe(ORDERS);
    expect(Object.keys((await stack.sessionOf(b))!.tokens.routeTokens!)).toHaveLength(3);
  });
});

describe('at expiry, across routes and replicas', () => {
  test('100 concurrent calls over both routes and two instances, 3 expiries: all 200, one grant per resource each time, no reuse', async () => {
    const b = await loggedIn(stack.bff);
    // Each route's token obtained once, so every round below is a refresh of an existing token.
    expect((await call(b, '/orders/warm')).status).toBe(200);
    expect((await call(b, '/billing/warm')).status).toBe(200);
    const start = {
      orders: grantsFor(ORDERS),
      billing: grantsFor(BILLING),
      login: grantsFor(''),
      reuse: stack.idp.counters.refreshReuse,
      revoked: stack.idp.counters.grantsRevoked,
      errors: [...stack.idp.counters.grantErrors],
    };
    const previous = { orders: orders.served.at(-1)!.token, billing: billing.served.at(-1)!.token };

    for (let round = 1; round <= 3; round++) {
      await advancePastAllTokens(b);
      const seen = { orders: orders.served.length, billing: billing.served.length };
      const statuses = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const route = i % 4 < 2 ? 'orders' : 'billing';
          return (await call(b, `/${route}/round/${round}/${i}`, { instance: i % 2 })).status;
        }),
      );
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(grantsFor(ORDERS) - start.orders).toBe(round);
      expect(grantsFor(BILLING) - start.billing).toBe(round);
      expect(grantsFor('')).toBe(start.login);

      const ordersTokens = new Set(orders.served.slice(seen.orders).map((s) => s.token));
      const billingTokens = new Set(billing.served.slice(seen.billing).map((s) => s.token));
      expect([ordersTokens.size, billingTokens.size]).toEqual([1, 1]);
      expect(ordersTokens.has(previous.orders)).toBe(false);
      expect(billingTokens.has(previous.billing)).toBe(false);
      previous.orders = [...ordersTokens][0]!;
      previous.billing = [...billingTokens][0]!;
    }
    expect(orders.refused).toEqual([]);
    expect(billing.refused).toEqual([]);
    expect(stack.idp.counters.refreshReuse).toBe(start.reuse);
    expect(stack.idp.counters.grantsRevoked).toBe(start.revoked);
    expect(stack.idp.counters.grantErrors).toEqual(start.errors);
    // The login's token, due all along, still refreshes with the refresh token the routes rotated.
    expect((await call(b, '/api/after', { instance: 1 })).status).toBe(200);
    expect(grantsFor('')).toBe(start.login + 1);
    expect(stack.idp.counters.refreshReuse).toBe(start.reuse);
  });
});

describe('token policies', () => {
  test('"none": no Authorization header reaches the API, the browser\'s own neither, and no session is needed', async () => {
    const b = await loggedIn(stack.bff);
    const withSession = await call(b, '/public/p', { headers: { authorization: 'Bearer forged-by-page' } });
    expect(withSession.status).toBe(200);
    expect(lastRequest().url).toBe('/public/p');
    expect(lastRequest().headers.authorization).toBeUndefined();
    expect(String(lastRequest().headers.cookie ?? '')).not.toMatch(/coatcheck/);

    expect((await call(undefined, '/public/anonymous')).status).toBe(200);
    expect(lastRequest().headers.authorization).toBeUndefined();
  });

  test('"none" still needs X-CSRF', async () => {
    const res = await request(`${stack.bff.url}/public/p`);
    expect(res.statusCode).toBe(403);
    expect(await res.body.json()).toMatchObject({ error: 'csrf_header_missing' });
  });

  test('"optional": the login token with a session, nothing without one', async () => {
    const b = await loggedIn(stack.bff);
    expect((await call(b, '/maybe/with')).status).toBe(200);
    const auth = String(lastRequest().headers.authorization);
    expect(auth).toMatch(/^Bearer /);
    expect((await stack.verifyAccessToken(auth.slice(7))).sub).toBe('alice-0001');

    const anonymous = await call(undefined, '/maybe/without', {
      headers: { authorization: 'Bearer forged' },
    });
    expect(anonymous.status).toBe(200);
    expect(lastRequest().url).toBe('/maybe/without');
    expect(lastRequest().headers.authorization).toBeUndefined();
  });

  test('"user" (the default) still needs a session', async () => {
    expect(JSON.parse((await call(undefined, '/orders/x')).body)).toMatchObject({ error: 'unauthenticated' });
    expect((await call(undefined, '/api/x')).status).toBe(401);
  });
});

describe('methods', () => {
  test('a method outside the route\'s "methods" gets 405 with the route\'s Allow, and nothing is forwarded', async () => {
    const b = await loggedIn(stack.bff);
    const forwarded = stack.upstream.requests.length;
    const res = await call(b, '/readonly/x', { method: 'POST' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(JSON.parse(res.body)).toMatchObject({ error: 'method_not_allowed' });
    expect(stack.upstream.requests.length).toBe(forwarded);
    expect((await call(b, '/readonly/x')).status).toBe(200);
  });

  test('a route without "methods" keeps today\'s list, TRACE still refused', async () => {
    const b = await loggedIn(stack.bff);
    const res = await call(b, '/api/x', { method: 'TRACE' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
    expect((await call(b, '/api/x', { method: 'PATCH' })).status).toBe(200);
  });
});

describe('a route token the IdP refuses', () => {
  test('an IdP outage is a 503 that keeps the session; the token comes once the IdP is back', async () => {
    const b = await loggedIn(stack.bff);
    stack.idp.failTokenEndpoint(503);
    try {
      const res = await call(b, '/billing/outage');
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ error: 'idp_unavailable' });
    } finally {
      stack.idp.failTokenEndpoint(undefined);
    }
    expect(await stack.sessionOf(b)).toBeDefined();
    const reuse = stack.idp.counters.refreshReuse;
    expect((await call(b, '/billing/back', { instance: 1 })).status).toBe(200);
    expect(billing.served.at(-1)!.aud).toBe(BILLING);
    expect(stack.idp.counters.refreshReuse).toBe(reuse);
  });

  test('ends the session, rather than replay a refresh token the refusal may have spent', async () => {
    const b = await loggedIn(stack.bff);
    const reuse = stack.idp.counters.refreshReuse;
    const res = await call(b, '/unknown/x');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'session_expired' });
    expect(stack.idp.counters.grantErrors.at(-1)).toMatch(/resource|target/i);
    expect(await stack.sessionOf(b)).toBeUndefined();
    expect((await call(b, '/api/x', { instance: 1 })).status).toBe(401);
    expect(stack.idp.counters.refreshReuse).toBe(reuse);
  });
});

describe('configuration of the route fields', () => {
  const routes = (route: object) => ({
    ...validEnv,
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:5000', ...route }]),
  });

  test('every bad field of a route is listed at once', () => {
    const problems = configProblems(
      routes({
        resource: 'not a uri',
        scope: 'two  spaces',
        tokenParams: { grant_type: 'password' },
        token: 'sometimes',
        methods: ['GET', 'TRACE'],
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^BFF_ROUTES: in route 1, "resource" must be an absolute URI without a fragment/,
        ),
        expect.stringMatching(/^BFF_ROUTES: in route 1, "scope" must be space-separated scopes/),
        expect.stringMatching(/^BFF_ROUTES: in route 1, "tokenParams" must not set grant_type/),
        expect.stringMatching(/^BFF_ROUTES: in route 1, "token" must be "user", "optional" or "none"/),
        expect.stringMatching(/^BFF_ROUTES: in route 1, "methods" may list only GET, HEAD, POST/),
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  test.each([
    [{ resource: 'https://api.example.com#frag' }, /"resource" must be an absolute URI without a fragment/],
    [{ resource: 7 }, /"resource" must be a string/],
    [{ tokenParams: { audience: 1 } }, /"tokenParams" must be an object of string values/],
    [{ tokenParams: ['a'] }, /"tokenParams" must be an object of string values/],
    [{ methods: [] }, /"methods" must list at least one method/],
    [{ methods: 'GET' }, /"methods" must be an array such as \["GET","POST"\]/],
    [{ methods: ['get'] }, /"methods" may list only/],
    [{ token: 'none', resource: ORDERS }, /"token": "none" gets no token, so it cannot have "resource"/],
    [{ timeout: 1 }, /a route may have only "path", "target", "resource"/],
  ])('%j is refused', (route, message) => {
    expect(configProblems(routes(route)).join('\n')).toMatch(message);
  });

  test('the new fields load, with their defaults; an entry without them is as before', () => {
    expect(configProblems(routes({}))).toEqual([]);
    expect(
      configProblems(
        routes({
          resource: 'urn:example:api',
          scope: 'orders:read orders:write',
          tokenParams: { audience: 'https://api.example.com' },
          token: 'optional',
          methods: ['GET'],
        }),
      ),
    ).toEqual([]);
  });
});
