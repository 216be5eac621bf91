import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { request } from 'undici';
import { DpopSigner } from '../src/oidc/dpop.js';
import { Browser } from './support/browser.js';
import { startAudienceUpstream, type AudienceUpstream } from './support/audience-upstream.js';
import { startDpopUpstream, type DpopUpstream } from './support/dpop-upstream.js';
import { csrf, loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

const ORDERS = 'https://orders.example.com';
const BILLING = 'urn:coatcheck:test-billing';

async function call(stack: Stack, b: Browser, path: string): Promise<{ status: number; body: string }> {
  const cookie = await b.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}${path}`, { headers: { ...csrf, cookie } });
  return { status: res.statusCode, body: await res.body.text() };
}

/** The `resource` values of each authorization request the IdP accepted at the redirect, or of each pushed one. */
function authorizationResources(stack: Stack, pushed: boolean): string[][] {
  const seen: string[][] = [];
  const record = (ctx: KoaContextWithOIDC) => {
    const r = ctx.oidc.params?.resource as string | string[] | undefined;
    seen.push(r === undefined ? [] : ([] as string[]).concat(r).sort());
  };
  if (pushed) stack.idp.provider.on('pushed_authorization_request.success', record);
  else stack.idp.provider.on('authorization.success', record);
  return seen;
}

describe.each([
  ['off', 'in the redirect'],
  ['required', 'in the pushed request'],
])('BFF_LOGIN_RESOURCES=true with BFF_PAR=%s', (par, where) => {
  let stack: Stack;
  let orders: AudienceUpstream;
  let billing: AudienceUpstream;
  let seen: string[][];
  beforeAll(async () => {
    orders = await startAudienceUpstream(ORDERS, () => stack.idp.issuer);
    billing = await startAudienceUpstream(BILLING, () => stack.idp.issuer);
    stack = await startStack({
      store: 'memory',
      resources: [ORDERS, BILLING],
      env: { BFF_LOGIN_RESOURCES: 'true', BFF_PAR: par },
      routes: (upstream) => [
        { path: '/api', target: upstream },
        { path: '/orders', target: orders.url, resource: ORDERS },
        { path: '/orders-too', target: orders.url, resource: ORDERS, scope: 'openid' },
        { path: '/billing', target: billing.url, resource: BILLING },
      ],
    });
    seen = authorizationResources(stack, par === 'required');
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await orders?.close();
    await billing?.close();
  });

  test(`every configured resource, once, goes to the IdP ${where}; each route's API gets its audience`, async () => {
    const b = await loggedIn(stack.bff);
    expect(seen).toEqual([[BILLING, ORDERS].sort()]);
    expect((await call(stack, b, '/orders/1')).status).toBe(200);
    expect((await call(stack, b, '/billing/1')).status).toBe(200);
    expect(orders.served.at(-1)!.aud).toBe(ORDERS);
    expect(billing.served.at(-1)!.aud).toBe(BILLING);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });
});

describe('without BFF_LOGIN_RESOURCES', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      store: 'memory',
      resources: [ORDERS],
      routes: (upstream) => [{ path: '/orders', target: upstream, resource: ORDERS }],
    });
  }, 60_000);
  afterAll(() => stack?.close());

  test('the authorization request names no resource: the default, as before', async () => {
    const page = await new Browser().go(`${stack.bff.url}/bff/login`, { follow: false });
    expect(new URL(String(page.headers.location)).searchParams.has('resource')).toBe(false);
  });
});

describe('route tokens of a DPoP session', () => {
  let stack: Stack;
  let api: DpopUpstream;
  beforeAll(async () => {
    const jwks = () => createRemoteJWKSet(new URL(`${stack.idp.issuer}/jwks`));
    api = await startDpopUpstream(
      async (token) =>
        (await jwtVerify(token, jwks(), { issuer: stack.idp.issuer, audience: ORDERS })).payload,
      { nonces: true },
    );
    stack = await startStack({
      store: 'memory',
      resources: [ORDERS],
      dpopNonces: true,
      client: { dpop_bound_access_tokens: true },
      env: { BFF_DPOP: 'true' },
      routes: () => [{ path: '/orders', target: `${api.url}/v1`, resource: ORDERS }],
    });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await api?.close();
  });

  test('are obtained with a proof, bound to the session key, and sent as DPoP tokens with a proof', async () => {
    const b = await loggedIn(stack.bff);
    const first = await call(stack, b, '/orders/7');
    expect(first.status).toBe(200);
    expect(api.log.refused.filter((r) => r !== 'nonce')).toEqual([]);

    const { tokens } = (await stack.sessionOf(b))!;
    const [token] = Object.values(tokens.routeTokens!);
    expect(token!.tokenType.toLowerCase()).toBe('dpop');
    const claims = decodeJwt(token!.accessToken) as { aud?: unknown; cnf?: { jkt?: string } };
    expect(claims.aud).toBe(ORDERS);
    expect(claims.cnf?.jkt).toBe(new DpopSigner(tokens.dpopKey!).jkt);
    expect(api.log.served.at(-1)!.jkt).toBe(claims.cnf?.jkt);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });
});
