import type { Request, Response } from 'express';
import { redirect } from '../http/redirect.js';
import { sessionKeyFromCookie } from '../http/request-session.js';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { startLogin } from '../oidc/login.js';
import { parseLoginRequest } from './login-request.js';
import { clearCookieHeader, cookieHeader } from '../security/cookies.js';
import { safeReturnTo } from '../security/return-url.js';
import {
  LOGIN_TTL_MS,
  MAX_RETURN_TO_LENGTH,
  loginCookieName,
  loginCookiesToExpire,
  loginId,
  sealLogin,
  type LoginTransaction,
} from '../session/login-transaction.js';

/**
 * GET /bff/login?returnTo=/path: starts an authorization-code flow with PKCE. It may also ask for
 * acr_values and max_age (step-up) or prompt=none (a silent login); see login-request.ts. The transaction travels
 * in a sealed SameSite=Lax cookie of its own, so logins started in parallel tabs each complete and
 * nothing is stored until a callback succeeds. The oldest login cookies are expired as new ones are
 * set, so unfinished logins can never grow the browser's Cookie header past what servers accept.
 */
export function login(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<void> => {
    const rawReturnTo = req.query.returnTo;
    const returnTo = safeReturnTo(rawReturnTo === undefined ? `${ctx.config.basePath}/` : rawReturnTo);
    if (!returnTo) throw new BffError('invalid_return_url');
    if (returnTo.length > MAX_RETURN_TO_LENGTH) {
      throw new BffError('invalid_return_url', {
        message: `returnTo must be at most ${MAX_RETURN_TO_LENGTH} characters once percent-encoded.`,
      });
    }

    const asked = parseLoginRequest(req.query, ctx.config.allowedAcrValues);

    // Nothing is stored yet, but the callback needs the store: a login that cannot finish is refused
    // here, before the user is sent through the IdP for nothing.
    await ctx.sessions.checkStore();
    // The authorization URL is built from metadata loaded earlier, so without this check an IdP outage
    // would only show once the browser got there.
    if (await ctx.oidc.knownUnreachable()) throw new BffError('idp_unavailable');

    const secure = ctx.requestFacts.secure(req);
    const { sessionSecrets } = ctx.config;
    const now = ctx.now();
    for (const name of loginCookiesToExpire(req.headers.cookie, secure, sessionSecrets, now)) {
      res.append('Set-Cookie', clearCookieHeader(name, secure));
    }

    const start = await startLogin(ctx.oidc, asked);
    const tx: LoginTransaction = {
      state: start.state,
      nonce: start.nonce,
      codeVerifier: start.codeVerifier,
      returnTo,
      replaces: sessionKeyFromCookie(ctx, req),
      issuedAt: now,
      ...(asked.acrValues !== undefined ? { acrValues: asked.acrValues } : {}),
      ...(asked.maxAge !== undefined ? { maxAge: asked.maxAge } : {}),
      ...(asked.prompt === 'none' ? { silent: true } : {}),
    };
    res.append(
      'Set-Cookie',
      cookieHeader(loginCookieName(loginId(start.state), secure), sealLogin(tx, sessionSecrets), {
        secure,
        sameSite: 'lax',
        maxAgeMs: LOGIN_TTL_MS,
      }),
    );
    res.setHeader('Cache-Control', 'no-store');
    redirect(res, start.url.href);
  };
}
