import { decodeJwt } from 'jose';
import { request } from 'undici';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Browser } from './support/browser.js';
import { startDpopUpstream, type DpopUpstream } from './support/dpop-upstream.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';
import { configProblems, validEnv } from './support/config-env.js';
import { DpopSigner } from '../src/oidc/dpop.js';

let stack: Stack;
let api: DpopUpstream;
/** use_dpop_nonce answers from the IdP's token endpoint, from oidc-provider's own events. */
let idpNonceChallenges = 0;

beforeAll(async () => {
  api = await startDpopUpstream((token) => stack.verifyAccessToken(token), { nonces: true });
  stack = await startStack({
    instances: 2,
    dpopNonces: true,
    client: { dpop_bound_access_tokens: true },
    env: {
      BFF_DPOP: 'true',
      BFF_USERINFO: 'true',
      BFF_ROUTES: JSON.stringify([{ path: '/api', target: `${api.url}/v1` }]),
    },
  });
  stack.idp.provider.on('grant.error', (_ctx: KoaContextWithOIDC, err: Error & { error?: string }) => {
    if (err.error === 'use_dpop_nonce') idpNonceChallenges++;
  });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await api?.close();
});

async function call(b: Browser, path = '/api/orders?x=1', method = 'GET', bff = stack.bff) {
  const cookie = await b.jar.getCookieString(bff.url);
  const res = await request(`${bff.url}${path}`, {
    method,
    headers: { ...csrf, cookie, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    body: method === 'POST' ? '{"a":1}' : undefined,
  });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

describe('a DPoP session', () => {
  let b: Browser;
  beforeAll(async () => {
    b = await loggedIn(stack.bff);
  });

  test('its tokens are bound to its own key, which stays on the server', async () => {
    const session = (await stack.sessionOf(b))!;
    expect(session.tokens.tokenType.toLowerCase()).toBe('dpop');
    const key = session.tokens.dpopKey!;
    expect(key.alg).toBe('ES256');
    const at = decodeJwt(session.tokens.accessToken) as { cnf?: { jkt?: string } };
    expect(at.cnf?.jkt).toBe(new DpopSigner(key).jkt);
    // Userinfo, called with a proof at login, answered: its claims reached the session.
    const user = await request(`${stack.bff.url}/bff/user`, {
      headers: { ...csrf, cookie: await b.jar.getCookieString(stack.bff.url) },
    });
    const text = await user.body.text();
    expect(user.statusCode).toBe(200);
    expect(JSON.parse(text).claims.email).toBe('alice@example.com');
    expect(text).not.toContain(key.d);
  });

  test('the IdP challenged for a nonce and the login still completed', () => {
    expect(idpNonceChallenges).toBeGreaterThanOrEqual(1);
  });

  test('an API call carries DPoP <token> and a proof the API accepts, after one nonce challenge', async () => {
    const before = api.log.challenges;
    const first = await call(b);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ ok: true, sub: 'alice-0001' });
    const again = await call(b, '/api/orders/7', 'DELETE');
    expect(again.status).toBe(200);
    // The nonce was learned once, by this instance, and then sent without being asked.
    expect(api.log.challenges - before).toBeLessThanOrEqual(1);
    expect(api.log.served.at(-1)).toMatchObject({ method: 'DELETE', path: '/v1/orders/7' });
  });

  test('a request with a body is not replayed: a nonce challenge reaches the SPA as it is', async () => {
    api.rotateNonce();
    const post = await call(b, '/api/orders', 'POST');
    expect(post.status).toBe(401);
    expect(String(post.headers['www-authenticate'])).toMatch(/use_dpop_nonce/);
    // The nonce is now known: the SPA's retry succeeds.
    expect((await call(b, '/api/orders', 'POST')).status).toBe(200);
  });

  test('a browser cannot send its own proof upstream', async () => {
    const cookie = await b.jar.getCookieString(stack.bff.url);
    const res = await request(`${stack.bff.url}/api/orders`, {
      headers: { ...csrf, cookie, dpop: 'forged.proof.value' },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
  });

  test('a stolen access token is refused by the API without a proof, as a bearer token or with a foreign key', async () => {
    const { accessToken } = (await stack.sessionOf(b))!.tokens;
    const asBearer = await request(`${api.url}/v1/orders`, {
      headers: { authorization: `Bearer ${accessToken}` },
    });
    await asBearer.body.dump();
    expect(asBearer.statusCode).toBe(401);
    const noProof = await request(`${api.url}/v1/orders`, {
      headers: { authorization: `DPoP ${accessToken}` },
    });
    await noProof.body.dump();
    expect(noProof.statusCode).toBe(401);
    const { newDpopKey } = await import('../src/oidc/dpop.js');
    const thief = new DpopSigner(await newDpopKey('ES256'));
    const steal = (nonce?: string) =>
      request(`${api.url}/v1/orders`, {
        headers: {
          authorization: `DPoP ${accessToken}`,
          dpop: thief.proof({ htm: 'GET', htu: `${api.url}/v1/orders`, accessToken, nonce }),
        },
      });
    // The thief learns the API's nonce as anyone can, then proves possession of the wrong key.
    const challenged = await steal();
    await challenged.body.dump();
    const foreign = await steal(String(challenged.headers['dpop-nonce']));
    await foreign.body.dump();
    expect(foreign.statusCode).toBe(401);
    expect(api.log.refused.slice(-4)).toEqual([
      'not a DPoP token',
      'no proof',
      'nonce',
      'cnf.jkt does not match the proof key',
    ]);
  });

  test('a refresh carries a proof; the new token is bound to the same key', async () => {
    const grants = stack.idp.counters.refreshGrants;
    const before = await advanceToRefresh(stack, b);
    expect((await call(b)).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(grants + 1);
    const after = (await stack.sessionOf(b))!;
    expect(after.tokens.accessToken).not.toBe(before.tokens.accessToken);
    expect(after.tokens.dpopKey).toEqual(before.tokens.dpopKey);
    expect((decodeJwt(after.tokens.accessToken) as { cnf: { jkt: string } }).cnf.jkt).toBe(
      new DpopSigner(before.tokens.dpopKey!).jkt,
    );
  });
});

test('100 concurrent calls at expiry over two instances: one refresh, no reuse, all 200', async () => {
  const b = await loggedIn(stack.bff);
  // Both instances know the API's nonce, as they would after any traffic.
  for (const bff of stack.bffs) expect((await call(b, '/api/warm', 'GET', bff)).status).toBe(200);
  const grants = stack.idp.counters.refreshGrants;
  const reuse = stack.idp.counters.refreshReuse;
  await advanceToRefresh(stack, b);
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => call(b, `/api/orders/${i}`, 'GET', stack.bffs[i % 2])),
  );
  expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
  expect(stack.idp.counters.refreshGrants).toBe(grants + 1);
  expect(stack.idp.counters.refreshReuse).toBe(reuse);
}, 60_000);

test('BFF_DPOP_ALG takes the algorithms coatcheck signs with, and nothing else', () => {
  expect(configProblems({ ...validEnv, BFF_DPOP: 'true', BFF_DPOP_ALG: 'HS256' })).toEqual([
    expect.stringMatching(/^BFF_DPOP_ALG: must be one of ES256, ES384, PS256, RS256, EdDSA/),
  ]);
  expect(configProblems({ ...validEnv, BFF_DPOP: 'true', BFF_DPOP_ALG: 'PS256' })).toEqual([]);
});
