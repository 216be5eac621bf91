import type { Request, Response } from 'express';
import { redirect } from '../http/redirect.js';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { clearSessionCookie, hasSessionCookie, requestSession } from '../http/request-session.js';
import { endSessionUrl } from '../oidc/logout.js';
import { revokeRefreshToken } from '../oidc/tokens.js';

/**
 * GET /bff/logout?sid=…: a plain navigation, so the sid (known only to the SPA via /bff/user)
 * is what stops a cross-site page from logging the user out.
 */
export function logout(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    const session = await requestSession(ctx, req, res);
    if (!session) {
      // Only clear a cookie the request carried: a cross-site navigation arrives without the SameSite=Strict
      // cookie, and clearing it unconditionally would let any page log the user out of this browser.
      if (hasSessionCookie(ctx, req)) clearSessionCookie(ctx, req, res);
      redirect(res, ctx.config.postLogoutRedirectUri);
      return;
    }
    const data = session.data();
    if (req.query.sid !== data.logoutId) throw new BffError('logout_sid_mismatch');

    await ctx.sessions.destroy(session);
    ctx.metrics.sessionEnds.logout.inc();
    if (ctx.hostSession) await ctx.hostSession.end(req, data);
    else clearSessionCookie(ctx, req, res);
    const { refreshToken, idToken } = session.tokens;
    if (refreshToken) await revokeRefreshToken(ctx.oidc, refreshToken);
    ctx.log.info({ reqId: res.locals.requestId, sub: data.sub }, 'logout');

    let target: URL | undefined;
    try {
      target = await endSessionUrl(ctx.oidc, idToken);
    } catch {
      // IdP unreachable: the local session is gone either way, so finish the logout here.
    }
    redirect(res, target?.href ?? ctx.config.postLogoutRedirectUri);
  };
}
