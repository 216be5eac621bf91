import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { requestSession } from '../http/request-session.js';
import { hasCsrfHeader } from '../security/csrf.js';
import { forward } from './forward.js';
import { upstreamRequestHeaders } from './headers.js';
import { compileRoutes } from './routes.js';
import { isSafePath } from './safe-path.js';

/**
 * The hot path: every API call of the SPA. One Redis round trip (load + slide), then a streamed
 * hop over a keep-alive pool. Requests that match no route fall through to the next handler.
 */
export function apiProxy(ctx: AppContext) {
  const match = compileRoutes(ctx.config.routes);
  const timeoutMs = ctx.config.upstreamTimeoutMs;
  const publicUrl = new URL(ctx.config.publicUrl);
  const proto = publicUrl.protocol.slice(0, -1);
  const trustProxy = ctx.config.trustProxy !== false;

  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const found = match(req.url);
    if (!found) return next();
    if (!isSafePath(req.url)) throw new BffError('invalid_path');
    if (!hasCsrfHeader(req)) throw new BffError('csrf_header_missing');
    const session = await requestSession(ctx, req, res);
    if (!session) throw new BffError('unauthenticated');
    const tokens = await ctx.refresher.fresh(session);

    const { route, rest } = found;
    const path = route.basePath + rest;
    await forward(ctx.upstream, req, res, {
      origin: route.origin,
      path: path.charCodeAt(0) === 47 ? path : `/${path}`,
      headers: upstreamRequestHeaders(req.headers, `Bearer ${tokens.accessToken}`, {
        // req.ips lists the trusted proxy chain, client first; without trust proxy only the peer is known.
        for:
          trustProxy && req.ips.length
            ? `${req.ips.join(', ')}, ${req.socket.remoteAddress ?? ''}`
            : (req.socket.remoteAddress ?? ''),
        proto,
        host: publicUrl.host,
      }),
      timeoutMs,
    });
  };
}
