import type { Request, Response } from 'express';
import { redirect } from '../http/redirect.js';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { completeLogin } from '../oidc/login.js';
import { requestSession, secureCookies, setSessionCookie } from '../http/request-session.js';
import { clearCookieHeader, readCookie, unsignValue } from '../security/cookies.js';
import { newLogoutId } from '../session/sessions.js';
import { bindingHash, loginCookieName, type LoginTransaction } from './login.js';

/**
 * GET /bff/callback: finishes the login. The transaction is taken (and so deleted) before anything
 * else, so a replayed or failed callback can never be completed later. Any session the browser had
 * is destroyed and a new id issued, so nothing from before the login survives it.
 */
export function callback(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    const state = req.query.state;
    if (typeof state !== 'string' || state.length === 0 || state.length > 256) {
      throw new BffError('login_state_invalid', { message: 'The login response has no valid state.' });
    }
    const raw = await ctx.sessions.store.takeLogin(state);
    if (!raw) throw new BffError('login_state_invalid');
    const tx = JSON.parse(raw) as LoginTransaction;

    const secure = secureCookies(ctx, req);
    const loginCookie = loginCookieName(tx.id, secure);
    res.append('Set-Cookie', clearCookieHeader(loginCookie, secure));
    const binding = unsignValue(readCookie(req.headers.cookie, loginCookie), ctx.config.sessionSecrets);
    if (!binding || bindingHash(binding) !== tx.binding) {
      throw new BffError('login_state_invalid', {
        message: 'The login response does not belong to a login started in this browser.',
      });
    }

    const query = req.originalUrl.indexOf('?');
    const callbackUrl = new URL(ctx.config.redirectUri);
    callbackUrl.search = query === -1 ? '' : req.originalUrl.slice(query);
    const result = await completeLogin(
      ctx.oidc,
      callbackUrl,
      {
        state,
        nonce: tx.nonce,
        codeVerifier: tx.codeVerifier,
      },
      ctx.now,
    );

    const previous = await requestSession(ctx, req, res);
    if (previous) await ctx.sessions.destroy(previous);
    if (tx.replaces && tx.replaces !== previous?.key) await ctx.sessions.destroy({ key: tx.replaces });

    const created = await ctx.sessions.create(
      { sub: result.sub, sid: result.sid, logoutId: newLogoutId(), claims: result.claims },
      result.tokens,
      ctx.now(),
    );
    setSessionCookie(ctx, req, res, created.id, created.absoluteExpiresAt);
    ctx.log.info({ reqId: res.locals.requestId, sub: result.sub }, 'login completed');
    redirect(res, tx.returnTo);
  };
}
