import type { Request, Response } from 'express';
import type { AppContext } from '../context.js';
import {
  SESSION_COOKIE,
  clearCookieHeader,
  cookieHeader,
  cookieName,
  readCookie,
  signValue,
  unsignValue,
} from '../security/cookies.js';
import type { Session } from '../session/sessions.js';

/** The session named by this request's cookie, loaded once per request; undefined when there is none. */
export async function requestSession(
  ctx: AppContext,
  req: Request,
  res: Response,
): Promise<Session | undefined> {
  if ('session' in res.locals) return res.locals.session as Session | undefined;
  const signed = readCookie(req.headers.cookie, cookieName(SESSION_COOKIE, req.secure));
  const id = unsignValue(signed, ctx.config.sessionSecrets);
  const session = id ? await ctx.sessions.load(id, ctx.now()) : undefined;
  res.locals.session = session;
  return session;
}

/** The cookie lives as long as the session can (the absolute timeout); idle expiry is enforced server-side. */
export function setSessionCookie(
  ctx: AppContext,
  req: Request,
  res: Response,
  id: string,
  absoluteExpiresAt: number,
): void {
  res.append(
    'Set-Cookie',
    cookieHeader(cookieName(SESSION_COOKIE, req.secure), signValue(id, ctx.config.sessionSecrets), {
      secure: req.secure,
      sameSite: 'strict',
      maxAgeMs: absoluteExpiresAt - ctx.now(),
    }),
  );
}

export function clearSessionCookie(req: Request, res: Response): void {
  res.append('Set-Cookie', clearCookieHeader(cookieName(SESSION_COOKIE, req.secure), req.secure));
}
