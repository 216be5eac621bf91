import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { ClientMetadata, KoaContextWithOIDC } from 'oidc-provider';
import { request } from 'undici';
import { Browser } from './support/browser.js';
import { startDpopUpstream, type DpopUpstream } from './support/dpop-upstream.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';
import { startStack, type Stack, type StackOptions } from './support/stack.js';
import { DpopSigner } from '../src/oidc/dpop.js';

/** coatcheck's client key: RSA, with no "alg", so the profile has to choose PS256 for it. */
async function clientKey(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('PS256', { extractable: true });
  return {
    privateJwk: { ...(await exportJWK(privateKey)), kid: 'coatcheck-1' },
    publicJwk: { ...(await exportJWK(publicKey)), kid: 'coatcheck-1', use: 'sig' },
  };
}

/**
 * The client's public key, published at a jwks_uri. Registered inline (`jwks`), oidc-provider refuses
 * it under jest's VM modules: its plain-object check compares constructors across realms.
 */
async function keyServer(publicJwk: JWK): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`, server };
}

/**
 * A client registered as FAPI 2.0 wants it: private_key_jwt with PS256, no secret, DPoP-bound
 * tokens. The IdP refuses a client assertion signed with any other algorithm.
 */
function fapiClient(jwksUri: string, idTokenAlg: string): Partial<ClientMetadata> {
  return {
    client_secret: undefined,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'PS256',
    jwks_uri: jwksUri,
    dpop_bound_access_tokens: true,
    id_token_signed_response_alg: idTokenAlg,
  } as Partial<ClientMetadata>;
}

/** A stack whose IdP runs oidc-provider's FAPI 2.0 profile, requiring PAR and DPoP nonces. */
async function fapiStack(
  opts: Omit<Partial<StackOptions>, 'routes'> & { idTokenAlg?: string; routes?: string } = {},
): Promise<Stack> {
  const { privateJwk, publicJwk } = await clientKey();
  const keys = await keyServer(publicJwk);
  const stack = await startStack({
    ...opts,
    routes: undefined,
    fapi2: true,
    par: 'required',
    dpopNonces: true,
    client: fapiClient(keys.url, opts.idTokenAlg ?? 'ES256'),
    env: {
      // Nothing but the profile and the key: PAR, DPoP and private_key_jwt are the profile's defaults.
      BFF_PROFILE: 'fapi2',
      BFF_CLIENT_SECRET: '',
      BFF_CLIENT_PRIVATE_KEY: JSON.stringify(privateJwk),
      ...(opts.routes ? { BFF_ROUTES: opts.routes } : {}),
      ...opts.env,
    },
  });
  const closeStack = stack.close.bind(stack);
  return Object.assign(stack, {
    async close() {
      await closeStack();
      keys.server.closeAllConnections();
      await new Promise<void>((resolve) => keys.server.close(() => resolve()));
    },
  });
}

async function call(stack: Stack, b: Browser, path: string, bff = stack.bff) {
  const cookie = await b.jar.getCookieString(bff.url);
  const res = await request(`${bff.url}${path}`, { headers: { ...csrf, cookie } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe("BFF_PROFILE=fapi2 against oidc-provider's FAPI 2.0 profile, two instances sharing Redis", () => {
  let stack: Stack;
  let api: DpopUpstream;
  /** The authorization responses the IdP sent back to coatcheck, as the browser carried them. */
  const responses: URL[] = [];
  const clientAssertionAlgs: string[] = [];

  beforeAll(async () => {
    api = await startDpopUpstream((token) => stack.verifyAccessToken(token), { nonces: true });
    stack = await fapiStack({
      instances: 2,
      routes: JSON.stringify([{ path: '/api', target: `${api.url}/v1` }]),
    });
    stack.idp.provider.use(async (ctx, next) => {
      await next();
      const location = String(ctx.response.headers.location ?? '');
      if (location.includes('/bff/callback')) responses.push(new URL(location));
    });
    stack.idp.provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
      const assertion = (ctx.oidc.body as Record<string, unknown> | undefined)?.client_assertion;
      if (typeof assertion === 'string') clientAssertionAlgs.push(decodeProtectedHeader(assertion).alg!);
    });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await api?.close();
  });

  let b: Browser;
  let pushes = 0;

  test('login: pushed (the browser carries only client_id and request_uri), iss checked, PS256 client assertion, ES256 ID token, DPoP-bound tokens', async () => {
    stack.idp.provider.on('pushed_authorization_request.success', () => pushes++);
    const start = await new Browser().go(`${stack.bff.url}/bff/login`, { follow: false });
    expect([...new URL(String(start.headers.location)).searchParams.keys()].sort()).toEqual([
      'client_id',
      'request_uri',
    ]);
    b = await loggedIn(stack.bff);
    expect(pushes).toBe(2);
    expect(responses.at(-1)!.searchParams.get('iss')).toBe(stack.idp.issuer);
    expect(clientAssertionAlgs).toEqual(['PS256']);

    const session = (await stack.sessionOf(b))!;
    expect(decodeProtectedHeader(session.tokens.idToken!).alg).toBe('ES256');
    expect(session.tokens.tokenType.toLowerCase()).toBe('dpop');
    const at = decodeJwt(session.tokens.accessToken) as { cnf?: { jkt?: string } };
    expect(at.cnf?.jkt).toBe(new DpopSigner(session.tokens.dpopKey!).jkt);
    expect(session.tokens.dpopKey!.alg).toBe('ES256');
  });

  test('API calls on either instance carry DPoP proofs the API verifies', async () => {
    for (const bff of stack.bffs) {
      const res = await call(stack, b, '/api/accounts?page=1', bff);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ ok: true, sub: 'alice-0001' });
    }
    expect(api.log.served.filter((s) => s.path === '/v1/accounts')).toHaveLength(2);
  });

  test('a refresh on the second instance authenticates with a PS256 assertion and keeps the key', async () => {
    const grants = stack.idp.counters.refreshGrants;
    const before = await advanceToRefresh(stack, b, stack.bffs[1]);
    expect((await call(stack, b, '/api/accounts', stack.bffs[1])).status).toBe(200);
    expect(stack.idp.counters.refreshGrants).toBe(grants + 1);
    expect(clientAssertionAlgs).toEqual(['PS256', 'PS256']);
    const after = (await stack.sessionOf(b))!;
    expect(after.tokens.accessToken).not.toBe(before.tokens.accessToken);
    expect((decodeJwt(after.tokens.accessToken) as { cnf: { jkt: string } }).cnf.jkt).toBe(
      new DpopSigner(before.tokens.dpopKey!).jkt,
    );
    expect((await call(stack, b, '/api/accounts', stack.bffs[0])).status).toBe(200);
  });

  test('logout revokes the refresh token at the IdP and ends the session on both instances', async () => {
    const session = (await stack.sessionOf(b))!;
    const user = JSON.parse((await call(stack, b, '/bff/user')).body) as { logoutUrl: string };
    const page = await b.go(`${stack.bff.url}${user.logoutUrl}`, { follow: false });
    expect(page.status).toBe(302);
    expect(String(page.headers.location)).toContain(`${stack.idp.issuer}/session/end`);
    expect(await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!)).toBeUndefined();
    for (const bff of stack.bffs) expect((await call(stack, b, '/bff/user', bff)).status).toBe(401);
  });

  test('/readyz is ready', async () => {
    const ready = await request(`${stack.bff.url}/readyz`);
    expect(await ready.body.json()).toEqual({ status: 'ready', checks: { store: 'ok', idp: 'ok' } });
  });

  test('an authorization response without iss is refused, and no session is made', async () => {
    // The IdP promised iss in its metadata; a response without it is what a mix-up attack looks like.
    stack.idp.provider.use(async (ctx, next) => {
      await next();
      const location = String(ctx.response.headers.location ?? '');
      if (!location.includes('/bff/callback')) return;
      const url = new URL(location);
      url.searchParams.delete('iss');
      ctx.redirect(url.href);
    });
    const mixedUp = new Browser();
    const page = await mixedUp.login(stack.bff.url);
    expect(responses.at(-1)!.searchParams.has('iss')).toBe(false);
    expect(responses.at(-1)!.searchParams.has('code')).toBe(true);
    expect(page.status).toBe(400);
    expect((await call(stack, mixedUp, '/bff/user')).status).toBe(401);
  });
});

describe('BFF_PROFILE=fapi2 with an ID token signed RS256', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await fapiStack({ store: 'memory', idTokenAlg: 'RS256' });
  }, 60_000);
  afterAll(() => stack?.close());

  test('the login is refused, the refresh token revoked, and the log says why', async () => {
    const revoked = stack.idp.counters.grantsRevoked;
    const b = new Browser();
    const page = await b.login(stack.bff.url);
    expect(page.status).toBe(400);
    expect(page.text).toContain('code_exchange_failed');
    expect((await call(stack, b, '/bff/user')).status).toBe(401);
    expect(stack.idp.counters.grantsRevoked).toBe(revoked + 1);
    expect(stack.bff.logs.join('')).toMatch(/"error":"code_exchange_failed".*ERR_JOSE_ALG_NOT_ALLOWED/);
  });
});

describe('BFF_PROFILE=fapi2 with an IdP whose metadata does not promise iss (RFC 9207)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await fapiStack({
      store: 'memory',
      beforeStart: (idp) =>
        idp.provider.use(async (ctx, next) => {
          await next();
          if (ctx.path === '/.well-known/openid-configuration') {
            delete (ctx.body as Record<string, unknown>).authorization_response_iss_parameter_supported;
          }
        }),
    });
  }, 60_000);
  afterAll(() => stack?.close());

  test('start-up succeeds; logins and /readyz answer 503 "unsuitable"; the log names the cause', async () => {
    const login = await request(`${stack.bff.url}/bff/login`, { headers: { accept: 'application/json' } });
    expect(login.statusCode).toBe(503);
    expect(((await login.body.json()) as { error: string }).error).toBe('idp_unavailable');
    const ready = await request(`${stack.bff.url}/readyz`);
    expect(ready.statusCode).toBe(503);
    expect(await ready.body.json()).toEqual({
      status: 'not_ready',
      checks: { store: 'ok', idp: 'unsuitable' },
    });
    expect(stack.bff.logs.join('')).toMatch(
      /BFF_PROFILE=fapi2 requires the RFC 9207 iss parameter.*authorization_response_iss_parameter_supported/,
    );
  });
});
