import type { IncomingMessage } from 'node:http';
import type { Request, Response } from 'express';
import type { AppContext } from '../context.js';
import type { SessionCache } from '../session/cache.js';
import type { Session } from '../session/sessions.js';

export function hasSessionCookie(ctx: AppContext, req: Request): boolean {
  return ctx.sessionCookie.read(req.headers.cookie, ctx.requestFacts.secure(req)) !== undefined;
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
  bypass?: { inc(): void },
): Promise<Session | undefined> {
  const signed = ctx.sessionCookie.read(cookieHeader, secure);
  if (!signed) return undefined;
  if (!cache) bypass?.inc();
  const now = ctx.now();
  const hit = cache?.get(signed, now);
  if (hit) return hit;
  const id = ctx.sessionCookie.open(signed);
  if (!id) return undefined;
  const load = () => ctx.sessions.load(id, now);
  const session = cache ? await cache.loadOnce(signed, now, load) : await load();
  // A genuine cookie whose session is gone: its idle or absolute lifetime ran out (or it was ended
  // elsewhere while this browser kept the cookie). Counted per request that finds it so.
  if (!session) ctx.metrics.sessionEnds.expired.inc();
  return session;
}

/**
 * The session of this request: its coatcheck cookie's, or with `session: 'express-session'` the
 * one kept for its host session (req.sessionID), cached under the host session id.
 */
export async function sessionOfRequest(
  ctx: AppContext,
  req: IncomingMessage,
  cache?: SessionCache,
  bypass?: { inc(): void },
): Promise<Session | undefined> {
  const host = ctx.hostSession;
  if (!host) return sessionFromCookie(ctx, req.headers.cookie, ctx.requestFacts.secure(req), cache, bypass);
  const located = host.locate(req);
  if (!located) return undefined;
  if (!cache) bypass?.inc();
  const now = ctx.now();
  const hit = cache?.get(located.cacheKey, now);
  if (hit) return hit;
  const load = async (): Promise<Session | undefined> => {
    for (const id of located.ids) {
      const session = await ctx.sessions.load(id, now);
      if (session) return session;
    }
    return undefined;
  };
  const session = cache ? await cache.loadOnce(located.cacheKey, now, load) : await load();
  if (!session) ctx.metrics.sessionEnds.expired.inc();
  return session;
}

/** The storage key of the session this request's cookie names, without loading it. */
export function sessionKeyFromCookie(ctx: AppContext, req: Request): string | undefined {
  if (ctx.hostSession) {
    const id = ctx.hostSession.locate(req)?.ids[0];
    return id ? ctx.sessions.keyOf(id) : undefined;
  }
  const id = ctx.sessionCookie.open(ctx.sessionCookie.read(req.headers.cookie, ctx.requestFacts.secure(req)));
  return id ? ctx.sessions.keyOf(id) : undefined;
}

/** The session named by this request's cookie, loaded once per request; undefined when there is none. */
export async function requestSession(
  ctx: AppContext,
  req: Request,
  res: Response,
): Promise<Session | undefined> {
  if ('session' in res.locals) return res.locals.session as Session | undefined;
  const session = await sessionOfRequest(ctx, req);
  res.locals.session = session;
  return session;
}

export function setSessionCookie(
  ctx: AppContext,
  req: Request,
  res: Response,
  id: string,
  absoluteExpiresAt: number,
): void {
  ctx.sessionCookie.set(res, ctx.requestFacts.secure(req), id, absoluteExpiresAt - ctx.now());
}

export function clearSessionCookie(ctx: AppContext, req: Request, res: Response): void {
  ctx.sessionCookie.clear(res, ctx.requestFacts.secure(req));
}
