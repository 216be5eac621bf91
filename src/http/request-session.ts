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
import type { SessionCache } from '../session/cache.js';
import type { Session } from '../session/sessions.js';

/**
 * Secure (and so the __Host- name) when the request came over https, directly or through a trusted
 * proxy, and also whenever the public URL is https: then the browser is on https whatever this hop says.
 */
export function secureCookies(ctx: AppContext, req: Request): boolean {
  return req.secure || ctx.config.publicUrl.startsWith('https:');
}

export function hasSessionCookie(ctx: AppContext, req: Request): boolean {
  return readCookie(req.headers.cookie, cookieName(SESSION_COOKIE, secureCookies(ctx, req))) !== undefined;
}

/**
 * The session a Cookie header names; undefined when there is none. Garbage never reaches the store.
 * With a cache (the API path), a hit costs no signature check, no Redis round trip and no decryption.
 */
export async function sessionFromCookie(
  ctx: AppContext,
  cookieHeader: string | undefined,
  secure: boolean,
  cache?: SessionCache,
): Promise<Session | undefined> {
  const signed = readCookie(cookieHeader, cookieName(SESSION_COOKIE, secure));
  if (!signed) return undefined;
  const now = ctx.now();
  const hit = cache?.get(signed, now);
  if (hit) return hit;
  const begun = cache?.begin() ?? 0;
  const id = unsignValue(signed, ctx.config.sessionSecrets);
  if (!id) return undefined;
  const session = await ctx.sessions.load(id, now);
  if (session) cache?.put(signed, session, now, begun);
  return session;
}

/** The storage key of the session this request's cookie names, without loading it. */
export function sessionKeyFromCookie(ctx: AppContext, req: Request): string | undefined {
  const id = unsignValue(
    readCookie(req.headers.cookie, cookieName(SESSION_COOKIE, secureCookies(ctx, req))),
    ctx.config.sessionSecrets,
  );
  return id ? ctx.sessions.keyOf(id) : undefined;
}

/** The session named by this request's cookie, loaded once per request; undefined when there is none. */
export async function requestSession(
  ctx: AppContext,
  req: Request,
  res: Response,
): Promise<Session | undefined> {
  if ('session' in res.locals) return res.locals.session as Session | undefined;
  const session = await sessionFromCookie(ctx, req.headers.cookie, secureCookies(ctx, req));
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
  const secure = secureCookies(ctx, req);
  res.append(
    'Set-Cookie',
    cookieHeader(cookieName(SESSION_COOKIE, secure), signValue(id, ctx.config.sessionSecrets), {
      secure,
      sameSite: 'strict',
      maxAgeMs: absoluteExpiresAt - ctx.now(),
    }),
  );
}

export function clearSessionCookie(ctx: AppContext, req: Request, res: Response): void {
  const secure = secureCookies(ctx, req);
  res.append('Set-Cookie', clearCookieHeader(cookieName(SESSION_COOKIE, secure), secure));
}
