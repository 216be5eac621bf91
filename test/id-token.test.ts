import { Browser } from './support/browser.js';
import { CLIENT_SECRET, startStack, type Stack } from './support/stack.js';
import {
  flippedSignatureByte,
  newSigningKey,
  resignedByIdp,
  resignedWith,
  rewriteTokenResponses,
  signedWithSecret,
  unsigned,
  type IdTokenRewrite,
  type TokenRewriter,
} from './support/token-rewrite.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';

describe('ID tokens are verified, not trusted', () => {
  let stack: Stack;
  let rewriter: TokenRewriter;
  beforeAll(async () => {
    stack = await startStack();
    rewriter = rewriteTokenResponses(stack.idp);
  });
  afterEach(() => rewriter.clear());
  afterAll(async () => {
    await stack?.close();
  });

  async function user(b: Browser) {
    return b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
  }

  describe('at login', () => {
    test('a token re-signed with the IdP key, with a changed claim, is accepted (the control)', async () => {
      rewriter.set(
        'authorization_code',
        resignedByIdp(stack.idp, (c) => ({ ...c, test_marker: 'resigned' })),
      );
      const b = await loggedIn(stack.bff);
      const me = await user(b);
      expect(me.status).toBe(200);
      expect(JSON.parse(me.text).claims.test_marker).toBe('resigned');
    });

    const refused: [string, () => Promise<IdTokenRewrite>][] = [
      ['a flipped signature byte', async () => flippedSignatureByte],
      ['a foreign key under the IdP key id', async () => resignedWith(await newSigningKey('demo-1'))],
      ['a foreign key under an unknown key id', async () => resignedWith(await newSigningKey('foreign-1'))],
      ['alg none', async () => unsigned],
      ['HS256 with the client secret (an unexpected algorithm)', async () => signedWithSecret(CLIENT_SECRET)],
    ];
    test.each(refused)('%s is refused: 400 code_exchange_failed and no session', async (_name, make) => {
      rewriter.set('authorization_code', await make());
      const b = new Browser();
      const page = await b.login(stack.bff.url);
      expect(page.status).toBe(400);
      expect(JSON.parse(page.text).error).toBe('code_exchange_failed');
      expect((await user(b)).status).toBe(401);
    });
  });

  describe('in a refresh response', () => {
    async function dueSession(): Promise<{ b: Browser; refreshToken: string }> {
      const b = await loggedIn(stack.bff);
      const s = await advanceToRefresh(stack, b);
      return { b, refreshToken: s.tokens.refreshToken! };
    }

    test('a token re-signed with the IdP key, with a changed claim, is accepted (the control)', async () => {
      const { b, refreshToken } = await dueSession();
      rewriter.set(
        'refresh_token',
        resignedByIdp(stack.idp, (c) => ({ ...c, test_marker: 'resigned' })),
      );
      expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
      const session = (await stack.sessionOf(b))!;
      expect(session.tokens.refreshToken).not.toBe(refreshToken);
      expect(await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!)).toBeDefined();
    });

    test('a 200 that is no token response (a proxy page) keeps the session and its refresh token', async () => {
      const { b, refreshToken } = await dueSession();
      let intercept = true;
      stack.idp.provider.use(async (ctx, next) => {
        if (intercept && ctx.path === '/token') {
          intercept = false;
          ctx.status = 200;
          ctx.type = 'html';
          ctx.body = '<html>a proxy page</html>';
          return;
        }
        await next();
      });
      const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
      expect(api.status).toBe(503);
      expect(JSON.parse(api.text).error).toBe('idp_unavailable');
      expect(await stack.idp.provider.RefreshToken.find(refreshToken)).toBeDefined();
      expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    });

    const refused: [string, () => Promise<IdTokenRewrite>][] = [
      ['a flipped signature byte', async () => flippedSignatureByte],
      ['a foreign key', async () => resignedWith(await newSigningKey('demo-1'))],
      [
        'another sub (OIDC Core 12.2)',
        async () => resignedByIdp(stack.idp, (c) => ({ ...c, sub: 'mallory' })),
      ],
      [
        'another iss',
        async () => resignedByIdp(stack.idp, (c) => ({ ...c, iss: 'https://attacker.example' })),
      ],
      ['alg none', async () => unsigned],
    ];
    test.each(refused)(
      '%s ends the session, revokes the new refresh token and warns',
      async (_name, make) => {
        const { b } = await dueSession();
        const logged = stack.bff.logs.length;
        const rewritten = rewriter.rewrittenRefreshTokens.length;
        rewriter.set('refresh_token', await make());

        const api = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
        expect(api.status).toBe(401);
        expect(JSON.parse(api.text).error).toBe('session_expired');
        expect((await user(b)).status).toBe(401);

        expect(rewriter.rewrittenRefreshTokens).toHaveLength(rewritten + 1);
        const issued = rewriter.rewrittenRefreshTokens.at(-1)!;
        expect(await stack.idp.provider.RefreshToken.find(issued)).toBeUndefined();

        const lines = stack.bff.logs.slice(logged).map((l) => JSON.parse(l) as Record<string, unknown>);
        const warning = lines.find((l) => l.msg === 'token refresh failed');
        expect(warning).toMatchObject({
          level: 40,
          outcome: 'idp_error',
          reason: 'invalid_token_response',
          sessionEnded: true,
          refreshTokenRevoked: true,
        });
        expect(stack.bff.logs.slice(logged).join('')).not.toContain(issued);
      },
    );
  });
});

describe('IdP signing key rotation', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('a token signed with a key published after the first login is accepted (one JWKS refetch)', async () => {
    const rewriter = rewriteTokenResponses(stack.idp);
    const jwksRequests: string[] = [];
    stack.idp.provider.use(async (ctx, next) => {
      if (ctx.path === '/jwks') jwksRequests.push(String(ctx.get('user-agent')));
      await next();
    });
    const first = await loggedIn(stack.bff);
    expect((await first.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
    const fetchesBefore = jwksRequests.length;

    const next = await newSigningKey('rotated-1');
    rewriter.publish(next.publicJwk);
    rewriter.set('authorization_code', resignedWith(next));
    const second = await loggedIn(stack.bff);
    expect((await second.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
    expect(jwksRequests.length).toBe(fetchesBefore + 1);
  });
});

describe('IdP keys that cannot be fetched', () => {
  let stack: Stack;
  let jwksDown = false;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
    stack.idp.provider.use(async (ctx, next) => {
      if (ctx.path === '/jwks' && jwksDown) {
        ctx.status = 503;
        ctx.body = 'unavailable';
        return;
      }
      await next();
    });
  });
  afterAll(async () => {
    jwksDown = false;
    await stack?.close();
  });

  // First in this stack, so the verifier has never held keys, and no unknown-kid refetch is on cooldown.
  test('at login: 503 idp_unavailable rather than a refused code, and no session', async () => {
    const rewriter = rewriteTokenResponses(stack.idp);
    const next = await newSigningKey('rotated-at-login');
    rewriter.publish(next.publicJwk);
    rewriter.set('authorization_code', resignedWith(next));
    jwksDown = true;
    const b = new Browser();
    const res = await b.login(stack.bff.url);
    jwksDown = false;
    rewriter.clear();
    expect(res.status).toBe(503);
    expect(await stack.sessionOf(b)).toBeUndefined();
  });

  test('during a refresh: 503, and the session keeps the rotated refresh token, neither ended nor revoked', async () => {
    const rewriter = rewriteTokenResponses(stack.idp);
    const b = await loggedIn(stack.bff);
    const before = (await stack.sessionOf(b))!;

    // The IdP rotates its key, and its JWKS is briefly unreachable when the first such token arrives.
    const next = await newSigningKey('rotated-during-outage');
    rewriter.publish(next.publicJwk);
    rewriter.set('refresh_token', resignedWith(next));
    jwksDown = true;
    await advanceToRefresh(stack, b);

    const during = await b.go(`${stack.bff.url}/api/x`, { headers: csrf });
    expect(during.status).toBe(503);
    expect(JSON.parse(during.text)).toMatchObject({ error: 'idp_unavailable' });
    const kept = (await stack.sessionOf(b))!;
    expect(kept).toBeDefined();
    expect(kept.tokens.refreshToken).not.toBe(before.tokens.refreshToken);
    expect(kept.tokens.accessToken).toBe(before.tokens.accessToken);
    expect(await stack.idp.provider.RefreshToken.find(kept.tokens.refreshToken!)).toBeDefined();

    jwksDown = false;
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    expect((await b.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
    expect(stack.idp.counters.refreshReuse).toBe(0);
    rewriter.clear();
  });
});
