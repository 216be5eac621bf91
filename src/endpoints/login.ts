import { createHash, randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import { redirect } from '../http/redirect.js';
import { secureCookies, sessionKeyFromCookie } from '../http/request-session.js';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { startLogin } from '../oidc/login.js';
import { LOGIN_COOKIE, cookieHeader, cookieName, signValue } from '../security/cookies.js';
import { safeReturnTo } from '../security/return-url.js';

/** Long enough to type a password and pass MFA; short enough that a forgotten tab's login cannot be replayed later. */
export const LOGIN_TTL_MS = 10 * 60 * 1000;

export interface LoginTransaction {
  /** Names this login's cookie. */
  readonly id: string;
  /** Hash of the browser binding in the login cookie: the callback must come from the browser that started. */
  readonly binding: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly returnTo: string;
  /**
   * Storage key of the session the browser had when it started this login. The IdP's redirect back
   * is cross-site, so the SameSite=Strict session cookie is not sent to the callback; this is how
   * the callback still ends that session.
   */
  readonly replaces?: string;
}

export function bindingHash(binding: string): string {
  return createHash('sha256').update(binding).digest('base64url');
}

export function loginCookieName(id: string, secure: boolean): string {
  return cookieName(`${LOGIN_COOKIE}-${id}`, secure);
}

/**
 * GET /bff/login?returnTo=/path: starts an authorization-code flow with PKCE. The transaction lives
 * server-side under its state; the browser keeps only a random binding value in a SameSite=Lax
 * cookie of its own, so logins started in parallel tabs each complete.
 */
export function login(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<void> => {
    const rawReturnTo = req.query.returnTo;
    const returnTo = safeReturnTo(rawReturnTo === undefined ? `${ctx.config.basePath}/` : rawReturnTo);
    if (!returnTo) throw new BffError('invalid_return_url');

    const secure = secureCookies(ctx, req);
    const id = randomBytes(6).toString('base64url');
    const binding = randomBytes(32).toString('base64url');
    const start = await startLogin(ctx.oidc);
    const tx: LoginTransaction = {
      id,
      binding: bindingHash(binding),
      nonce: start.nonce,
      codeVerifier: start.codeVerifier,
      returnTo,
      replaces: sessionKeyFromCookie(ctx, req),
    };
    await ctx.sessions.store.putLogin(start.state, JSON.stringify(tx), LOGIN_TTL_MS);

    res.append(
      'Set-Cookie',
      cookieHeader(loginCookieName(id, secure), signValue(binding, ctx.config.sessionSecrets), {
        secure,
        sameSite: 'lax',
        maxAgeMs: LOGIN_TTL_MS,
      }),
    );
    res.setHeader('Cache-Control', 'no-store');
    redirect(res, start.url.href);
  };
}
