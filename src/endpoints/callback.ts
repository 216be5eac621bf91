import type { Request, Response } from 'express';
import { redirect } from '../http/redirect.js';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { SILENT_LOGIN_ERRORS, authorizationResponseError, completeLogin } from '../oidc/login.js';
import { requestSession, setSessionCookie } from '../http/request-session.js';
import { clearCookieHeader, readCookie } from '../security/cookies.js';
import { loginCookieName, loginId, openLogin, remainingMs } from '../session/login-transaction.js';
import { newLogoutId } from '../session/sessions.js';
import { withBffError } from './silent-login.js';

/**
 * GET /bff/callback: finishes the login. Only a request carrying the login's own cookie gets past the
 * first check, so someone who sees the callback URL cannot use it, nor spend it before the browser
 * does. The login is then marked used before the code is redeemed, so it completes at most once.
 * Any session the browser had is destroyed and a new id issued, so nothing from before the login
 * survives it: a step-up login too, whose ID token must first show the acr and auth_time it asked for.
 * A silent login (prompt=none) that the IdP cannot complete without its pages returns the browser to
 * returnTo with bff_error, and leaves any session as it was.
 */
export function callback(ctx: AppContext) {
  const succeeded = ctx.metrics.logins.labels('success');
  const complete = handle(ctx);
  // Every finished callback is counted once: success, or the error code its answer carries.
  return async (req: Request, res: Response): Promise<void> => {
    let refused: string | undefined;
    try {
      refused = await complete(req, res);
    } catch (err) {
      ctx.metrics.logins.labels(err instanceof BffError ? err.code : 'internal_error').inc();
      throw err;
    }
    if (refused) ctx.metrics.logins.labels(refused).inc();
    else succeeded.inc();
  };
}

/** Resolves to the error code of a login that was refused without an error response, else undefined. */
function handle(ctx: AppContext) {
  return async (req: Request, res: Response): Promise<'login_failed' | undefined> => {
    res.setHeader('Cache-Control', 'no-store');
    const state = req.query.state;
    if (typeof state !== 'string' || state.length === 0 || state.length > 256) {
      throw new BffError('login_state_invalid', { message: 'The login response has no valid state.' });
    }

    const secure = ctx.requestFacts.secure(req);
    const id = loginId(state);
    const loginCookie = loginCookieName(id, secure);
    const sealed = readCookie(req.headers.cookie, loginCookie);
    if (sealed !== undefined) res.append('Set-Cookie', clearCookieHeader(loginCookie, secure));
    const now = ctx.now();
    const tx = openLogin(sealed, id, ctx.config.sessionSecrets, now);
    if (!tx || tx.state !== state) {
      throw new BffError('login_state_invalid', {
        message:
          'The login response does not belong to a login started in this browser, or that login expired.',
      });
    }

    const query = req.originalUrl.indexOf('?');
    const callbackUrl = new URL(ctx.config.redirectUri);
    callbackUrl.search = query === -1 ? '' : req.originalUrl.slice(query);
    // Completes at most once; a failed one leaves nothing behind, and its cookie is cleared with this response.
    const stepUp =
      tx.acrValues !== undefined || tx.maxAge !== undefined
        ? { acrValues: tx.acrValues, maxAge: tx.maxAge, startedAt: tx.issuedAt }
        : undefined;
    let result;
    try {
      result = await ctx.sessions.completeLoginOnce(id, remainingMs(tx, now), () =>
        completeLogin(
          ctx.oidc,
          callbackUrl,
          { state, nonce: tx.nonce, codeVerifier: tx.codeVerifier, ...(stepUp ? { stepUp } : {}) },
          ctx.now,
        ),
      );
    } catch (err) {
      // Only after state and iss were checked does the IdP's error count as its answer.
      const code = tx.silent ? authorizationResponseError(err) : undefined;
      if (code === undefined || !SILENT_LOGIN_ERRORS.has(code)) throw err;
      redirect(res, withBffError(tx.returnTo, code));
      return 'login_failed';
    }
    if (!result) {
      throw new BffError('login_state_invalid', { message: 'This login response was already used.' });
    }

    const previous = await requestSession(ctx, req, res);
    if (previous) await ctx.sessions.destroy(previous);
    if (tx.replaces && tx.replaces !== previous?.key) await ctx.sessions.destroy({ key: tx.replaces });

    // With the host's express-session, the host session is regenerated and names the new record.
    const host = ctx.hostSession;
    const created = await ctx.sessions.create(
      { sub: result.sub, sid: result.sid, logoutId: newLogoutId(), claims: result.claims },
      result.tokens,
      ctx.now(),
      host && (await host.begin(req, ctx.now())),
    );
    if (host) await host.remember(req, result, created.absoluteExpiresAt);
    else setSessionCookie(ctx, req, res, created.id, created.absoluteExpiresAt);
    ctx.log.info({ reqId: res.locals.requestId, sub: result.sub }, 'login completed');
    redirect(res, tx.returnTo);
    return undefined;
  };
}
