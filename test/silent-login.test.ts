import { request } from 'undici';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { Browser } from './support/browser.js';
import { advanceToRefresh, csrf } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';
import { withBffError } from '../src/endpoints/silent-login.js';
import { SESSION_COOKIE } from '../src/security/cookies.js';
import { toTokenSet } from '../src/oidc/tokens.js';

async function user(stack: Stack, b: Browser) {
  const cookie = await b.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}/bff/user`, { headers: { ...csrf, cookie } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function callApi(stack: Stack, b: Browser): Promise<number> {
  const cookie = await b.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}/api/x`, { headers: { ...csrf, cookie } });
  await res.body.dump();
  return res.statusCode;
}

const expiresAt = (u: { body: Record<string, unknown> }): number =>
  Date.parse(String(u.body.sessionExpiresAt));

describe('silent login (prompt=none)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ accessTokenTtl: 120 });
  });
  afterAll(() => stack?.close());

  test('with a live IdP session it signs in without an IdP page; with no refresh token the session ends with the access token', async () => {
    const b = new Browser();
    await b.login(stack.bff.url);
    const before = await stack.sessionOf(b);
    expect(before?.tokens.refreshToken).toBeDefined();

    const start = await b.go(`${stack.bff.url}/bff/login?prompt=none&returnTo=%2Fx`, { follow: false });
    const authorize = new URL(String(start.headers.location));
    // prompt=none replaces BFF_AUTH_PARAMS' prompt=consent (which the stack sets).
    expect(authorize.searchParams.getAll('prompt')).toEqual(['none']);
    const page = await b.go(authorize.href);
    expect(page.url).toBe(`${stack.bff.url}/x`);
    expect(page.history.some((u) => u.includes('/interaction/'))).toBe(false);

    const after = await stack.sessionOf(b);
    expect(after).toBeDefined();
    expect(after!.id).not.toBe(before!.id);
    // oidc-provider drops offline_access without prompt=consent (OIDC Core §11): no refresh token.
    expect(after!.tokens.refreshToken).toBeUndefined();
    const u = await user(stack, b);
    expect(u.status).toBe(200);
    expect(expiresAt(u)).toBe(after!.tokens.expiresAt);
    expect(expiresAt(u) - stack.clock.now()).toBeLessThanOrEqual(120_000);

    stack.clock.advance(after!.tokens.expiresAt - stack.clock.now() + 1000);
    expect((await user(stack, b)).status).toBe(401);
  });

  test('without an IdP session the browser returns to returnTo with bff_error=login_required, merged with its query', async () => {
    const b = new Browser();
    const logins = () =>
      stack.bff.coatcheck.context.metrics.registry
        .getSingleMetricAsString('coatcheck_logins_total')
        .then((t) => Number(/outcome="login_failed"\} (\d+)/.exec(t)?.[1] ?? 0));
    const failedBefore = await logins();
    const page = await b.go(
      `${stack.bff.url}/bff/login?prompt=none&returnTo=${encodeURIComponent('/x?tab=2#top')}`,
    );
    expect(page.history.some((u) => u.includes('/interaction/'))).toBe(false);
    expect(page.url).toBe(`${stack.bff.url}/x?tab=2&bff_error=login_required#top`);
    expect(page.history.at(-2)).toContain('/bff/callback?');
    expect(await stack.sessionOf(b)).toBeUndefined();
    expect(await logins()).toBe(failedBefore + 1);
  });

  test('a session the browser had survives a silent login the IdP cannot complete', async () => {
    const signedIn = new Browser();
    await signedIn.login(stack.bff.url);
    const before = await stack.sessionOf(signedIn);
    // The same coatcheck session in a browser without the IdP's cookies: its IdP session is gone.
    const b = new Browser();
    for (const c of await signedIn.jar.getCookies(stack.bff.url)) {
      if (c.key === SESSION_COOKIE) await b.jar.setCookie(c.toString(), stack.bff.url);
    }
    const page = await b.go(`${stack.bff.url}/bff/login?prompt=none&returnTo=%2Fx`);
    expect(page.url).toBe(`${stack.bff.url}/x?bff_error=login_required`);
    expect((await stack.sessionOf(b))?.id).toBe(before!.id);
    expect((await user(stack, b)).status).toBe(200);
  });

  test('a login without prompt=none that the IdP refuses is still an error page', async () => {
    const b = new Browser();
    const start = await b.go(`${stack.bff.url}/bff/login?returnTo=%2Fx`, { follow: false });
    const authorize = new URL(String(start.headers.location));
    const state = authorize.searchParams.get('state')!;
    const res = await b.go(
      `${stack.bff.url}/bff/callback?error=login_required&state=${encodeURIComponent(state)}&iss=${encodeURIComponent(stack.idp.issuer)}`,
      { headers: { accept: 'application/json' } },
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: 'login_failed' });
  });
});

describe('bff_error merges into returnTo', () => {
  test('keeps the path, query and fragment, and replaces an earlier bff_error', () => {
    expect(withBffError('/x', 'login_required')).toBe('/x?bff_error=login_required');
    expect(withBffError('/x?a=1&b=%20', 'consent_required')).toBe('/x?a=1&b=%20&bff_error=consent_required');
    expect(withBffError('/x?bff_error=login_required&a=1#h', 'interaction_required')).toBe(
      '/x?a=1&bff_error=interaction_required#h',
    );
    expect(withBffError('/x?#h', 'account_selection_required')).toBe(
      '/x?bff_error=account_selection_required#h',
    );
  });
});

describe('a session capped by its refresh token’s lifetime', () => {
  let stack: Stack;
  let stated: { name: string; seconds: number } | undefined;
  beforeAll(async () => {
    stack = await startStack({
      env: { BFF_SESSION_IDLE_TIMEOUT: '7200', BFF_SESSION_ABSOLUTE_TIMEOUT: '28800' },
    });
    // oidc-provider states no refresh token lifetime; Keycloak (refresh_expires_in) and the
    // refresh-token-expiration draft (refresh_token_expires_in) do. This hook adds one to its answers.
    stack.idp.provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
      await next();
      const body = ctx.body as Record<string, unknown> | undefined;
      if (stated && ctx.path === '/token' && body && typeof body === 'object' && body.refresh_token) {
        body[stated.name] = stated.seconds;
      }
    });
  });
  afterAll(() => stack?.close());

  test('refresh_expires_in at login caps sessionExpiresAt, and the session ends there', async () => {
    stated = { name: 'refresh_expires_in', seconds: 600 };
    const b = new Browser();
    const loginAt = stack.clock.now();
    await b.login(stack.bff.url);
    const u = await user(stack, b);
    expect(u.status).toBe(200);
    expect(expiresAt(u)).toBeGreaterThanOrEqual(loginAt + 600_000);
    expect(expiresAt(u)).toBeLessThan(stack.clock.now() + 600_000 + 1);

    stack.clock.advance(expiresAt(u) - stack.clock.now() + 1000);
    expect((await user(stack, b)).status).toBe(401);
    expect(await callApi(stack, b)).toBe(401);
  });

  test('refresh_token_expires_in in a refresh response moves the cap with the new refresh token', async () => {
    stated = { name: 'refresh_token_expires_in', seconds: 900 };
    const b = new Browser();
    await b.login(stack.bff.url);
    const first = expiresAt(await user(stack, b));

    stated = { name: 'refresh_token_expires_in', seconds: 1200 };
    await advanceToRefresh(stack, b);
    const refreshedAt = stack.clock.now();
    expect(await callApi(stack, b)).toBe(200);
    const second = expiresAt(await user(stack, b));
    expect(second).toBeGreaterThan(first);
    expect(second).toBeGreaterThanOrEqual(refreshedAt + 1_200_000);
    expect(second).toBeLessThan(refreshedAt + 1_200_000 + 5000);
  });

  test('without a stated lifetime the session keeps its configured end', async () => {
    stated = undefined;
    const b = new Browser();
    await b.login(stack.bff.url);
    const u = await user(stack, b);
    // The idle timeout (2 h) is the nearer end; no refresh token lifetime comes before it.
    expect(expiresAt(u) - stack.clock.now()).toBeGreaterThan(7_000_000);
  });
});

describe('a refresh token’s stated lifetime, as the token set keeps it', () => {
  const now = 1_000_000;
  const response = (extra: Record<string, unknown>) =>
    ({ access_token: 'at', token_type: 'bearer', expires_in: 60, ...extra }) as Parameters<
      typeof toTokenSet
    >[0];

  test('either name counts; Keycloak’s 0 (no fixed end) and nonsense do not', () => {
    const end = (extra: Record<string, unknown>) =>
      toTokenSet(response({ refresh_token: 'rt', ...extra }), undefined, now, 0).refreshExpiresAt;
    expect(end({ refresh_expires_in: 600 })).toBe(now + 600_000);
    expect(end({ refresh_token_expires_in: '900' })).toBe(now + 900_000);
    expect(end({ refresh_expires_in: 0 })).toBeUndefined();
    expect(end({ refresh_expires_in: -5 })).toBeUndefined();
    expect(end({ refresh_expires_in: 'soon' })).toBeUndefined();
    expect(end({})).toBeUndefined();
  });

  test('a refresh without a new refresh token keeps the old one’s end; a new one without a stated end has none', () => {
    const previous = toTokenSet(
      response({ refresh_token: 'rt', refresh_expires_in: 600 }),
      undefined,
      now,
      0,
    );
    expect(toTokenSet(response({}), previous, now + 1000, 0).refreshExpiresAt).toBe(now + 600_000);
    expect(
      toTokenSet(response({ refresh_token: 'rt2' }), previous, now + 1000, 0).refreshExpiresAt,
    ).toBeUndefined();
  });
});
