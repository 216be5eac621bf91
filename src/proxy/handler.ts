import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { sendJsonError } from '../http/error-handler.js';
import { logWhenDone, requestIdOf } from '../http/request-log.js';
import { sessionOfRequest } from '../http/request-session.js';
import { lowercaseSecurityHeaders } from '../http/security-headers.js';
import type { Session } from '../session/sessions.js';
import { hasCsrfHeader } from '../security/csrf.js';
import { signerFor } from '../oidc/dpop.js';
import { tokenFor } from '../oidc/token-set.js';
import { forward } from './forward.js';
import { upstreamRequestHeaders } from './headers.js';
import { compileRoutes, type RouteMatch } from './routes.js';
import { isSafePath } from './safe-path.js';
import { stepUpAnswer } from './step-up.js';

/**
 * The hot path: every API call of the SPA, handled before Express. It does what the Express stack
 * would (security headers, request id and log line, JSON errors) without running a router and a
 * dozen helmet middlewares per call. One Redis round trip (load + slide), then a streamed hop over
 * a keep-alive pool. Returns false for requests that are not for an API route.
 */
export function apiProxy(ctx: AppContext): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { config, log, requestFacts: facts } = ctx;
  const match = compileRoutes(config.routes);
  const security = lowercaseSecurityHeaders(config);
  const publicUrl = new URL(config.publicUrl);
  const forwarded = { proto: publicUrl.protocol.slice(0, -1), host: publicUrl.host };
  const maxBodySize = config.maxBodySize;
  const stepUp = (wwwAuthenticate: string | string[] | undefined) =>
    stepUpAnswer(wwwAuthenticate, config.basePath);
  const { metrics, tracer } = ctx;
  const cacheBypass = ctx.sessionCache ? undefined : metrics.cacheResults.bypass;
  const recordApi = (status: number, seconds: number) => metrics.request('api', status, seconds);
  // Bound per configured route now, keyed as compileRoutes keys them ('' for '/').
  const routeMetrics = new Map(
    config.routes.map((r) => [r.path === '/' ? '' : r.path, metrics.route(r.path)]),
  );

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    found: RouteMatch,
    requestId: string,
    own: ReadonlyArray<readonly [string, string]>,
  ): Promise<void> {
    // Each route's own list, from API_METHODS (config/schema.ts), which leaves TRACE out.
    if (!found.route.methods.has(req.method ?? '')) {
      res.setHeader('Allow', found.route.allow);
      throw new BffError('method_not_allowed', { message: `This API route accepts ${found.route.allow}.` });
    }
    if (!isSafePath(path)) throw new BffError('invalid_path');
    if (!hasCsrfHeader(req)) throw new BffError('csrf_header_missing');
    // Refused before the session is read: nothing of it is forwarded, and the connection closes
    // rather than reading a body that is known to be too large.
    const length = req.headers['content-length'];
    if (maxBodySize && length !== undefined && Number(length) > maxBodySize) {
      res.setHeader('Connection', 'close');
      throw new BffError('payload_too_large');
    }
    const loading = tracer.start('session load');
    let session: Session | undefined;
    try {
      // A `none` route never attaches a token, so it has no use for the session.
      if (found.route.token !== 'none')
        session = await sessionOfRequest(ctx, req, ctx.sessionCache, cacheBypass);
    } catch (err) {
      loading.end(err);
      throw err;
    }
    loading.end();
    if (!session && found.route.token === 'user') throw new BffError('unauthenticated');
    const target = found.route.tokenTarget;
    const tokens = session && (await ctx.refresher.fresh(session, target));
    const access = tokens && tokenFor(tokens, target);

    const upstreamPath = found.route.basePath + found.rest;
    const fullPath = upstreamPath.charCodeAt(0) === 47 ? upstreamPath : `/${upstreamPath}`;
    const dpopKey = tokens?.dpopKey;
    const call = tracer.upstream(found.route.path, req.method!, found.route.origin);
    const upstreamHeaders = upstreamRequestHeaders(
      req.headers,
      access && `${dpopKey ? 'DPoP' : 'Bearer'} ${access.accessToken}`,
      { for: facts.forwardedFor(req), ...forwarded },
      requestId,
      ctx.hostSession?.upstreamCookieFilter(req),
    );
    call.inject(upstreamHeaders);
    const forwarding = forward(ctx.upstream, req, res, {
      origin: found.route.origin,
      path: fullPath,
      headers: upstreamHeaders,
      dpop: dpopKey && {
        nonces: ctx.dpopNonces,
        proof: (nonce) =>
          signerFor(dpopKey).proof({
            htm: req.method!,
            htu: found.route.origin + pathOnly(fullPath),
            // A key comes only with a session, whose token for this route fresh() made sure of.
            accessToken: access!.accessToken,
            nonce,
          }),
      },
      timeoutMs: config.upstreamTimeoutMs,
      ownHeaders: own,
      maxBodySize,
      stepUp,
      metrics: routeMetrics.get(found.route.path),
    });
    await call.track(forwarding, res);
  }

  return (req, res) => {
    const path = facts.pathBelowBase(req.url ?? '/');
    if (path === undefined) return false;
    const found = match(path);
    if (!found) return false;
    const id = requestIdOf(req);
    // coatcheck's own headers go out with the answer's head, in one writeHead (forward.ts), or
    // with an error's.
    const own = [...security, ['x-request-id', id] as const];
    logWhenDone(ctx.accessLog, req, res, id, recordApi);
    tracer.route(found.route.path);
    handle(req, res, path, found, id, own).catch((err: unknown) => {
      if (!res.headersSent) for (const [name, value] of own) res.setHeader(name, value);
      sendJsonError(log, err, res, id);
    });
    return true;
  };
}

/** RFC 9449 §4.2: a proof's htu has no query (and a request path has no fragment). */
function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}
