import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import helmet from 'helmet';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from './config/load.js';
import type { AppContext } from './context.js';
import { backchannelLogout } from './endpoints/backchannel-logout.js';
import { callback } from './endpoints/callback.js';
import { healthz, readyz } from './endpoints/health.js';
import { login } from './endpoints/login.js';
import { logout } from './endpoints/logout.js';
import { user } from './endpoints/user.js';
import { BffError } from './errors.js';
import { errorHandler } from './http/error-handler.js';
import { requestLog } from './http/request-log.js';
import { MANAGEMENT_BASE_PATH, MANAGEMENT_PATHS } from './http/management-paths.js';
import { requestFacts } from './http/request-facts.js';
import { sessionCookie } from './http/session-cookie.js';
import { helmetOptions } from './http/security-headers.js';
import { createAccessLogger, type Logger } from './log.js';
import { DpopNonces } from './oidc/dpop.js';
import { Metrics } from './metrics.js';
import type { OidcClient } from './oidc/client.js';
import { refreshTokens } from './oidc/tokens.js';
import { spaStatic } from './http/spa-static.js';
import { devServerProxy } from './proxy/dev-server.js';
import { apiProxy } from './proxy/handler.js';
import { requireCsrfHeader } from './security/csrf.js';
import { SessionCache } from './session/cache.js';
import type { HostSession } from './session/host-session.js';
import { TokenRefresher, type RefreshHooks } from './session/refresh.js';
import { measuredStore } from './session/measured-store.js';
import { OpenSockets } from './session/open-sockets.js';
import { sessionChangeFeed } from './session/open-sockets-feed.js';
import { Sessions } from './session/sessions.js';
import type { SessionStore } from './session/store.js';
import { NOOP_TRACER, type Tracer } from './tracing/tracer.js';

export interface AppDeps {
  readonly oidc: OidcClient;
  readonly store: SessionStore;
  readonly log: Logger;
  /** The keep-alive pool for upstream calls; one is made when not given. */
  readonly upstream?: Dispatcher;
  readonly now?: () => number;
  readonly refreshHooks?: RefreshHooks;
  /** Where the app counts; a fresh registry when not given (the one the OIDC client times into, in start.ts). */
  readonly metrics?: Metrics;
  /** Tracing, when configured (src/tracing/sdk.ts); the no-op tracer when not given. */
  readonly tracer?: Tracer;
  /** Middleware mode with express-session: the browser's session is the host's (src/session/host-session.ts). */
  readonly hostSession?: HostSession;
}

/** A request listener for http.createServer, with the context it was built from. */
export interface App {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly context: AppContext;
  /** The API routes' fast path alone: true when it took the request (middleware mode, src/bff.ts). */
  readonly fastPath: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** The Express app behind the fast path, for middleware mode to hand /bff/* requests to. */
  readonly express: express.Express;
}

/**
 * Builds an app from a validated config. It never listens: main.ts or a test decides where it runs.
 * API routes take a fast path before Express (src/proxy/handler.ts); everything else is Express.
 */
export function createApp(config: Config, deps: AppDeps): App {
  const now = deps.now ?? Date.now;
  const metrics = deps.metrics ?? new Metrics();
  const tracer = deps.tracer ?? NOOP_TRACER;
  const changes = sessionChangeFeed(deps.store);
  const sessions = new Sessions(measuredStore(changes.store, metrics), {
    idleMs: config.idleTimeoutMs,
    absoluteMs: config.absoluteTimeoutMs,
  });
  const refresher = new TokenRefresher({
    sessions,
    refresh: (tokens, target) => refreshTokens(deps.oidc, tokens, now, target),
    lockTtlMs: config.refreshLockTtlMs,
    waitTimeoutMs: config.upstreamTimeoutMs,
    log: deps.log,
    now,
    hooks: deps.refreshHooks,
    metrics,
    tracer,
  });
  const ctx: AppContext = {
    config,
    requestFacts: requestFacts(config),
    sessionCookie: sessionCookie(config.sessionSecrets),
    hostSession: deps.hostSession,
    oidc: deps.oidc,
    sessions,
    refresher,
    dpopNonces: new DpopNonces(),
    openSockets: new OpenSockets({
      sessions,
      feed: changes.feed,
      idleMs: config.idleTimeoutMs,
      now,
      log: deps.log,
    }),
    sessionCache:
      config.sessionCacheTtlMs > 0 && deps.store.invalidations
        ? new SessionCache(
            deps.store.invalidations,
            config.sessionCacheTtlMs,
            undefined,
            metrics.cacheResults,
          )
        : undefined,
    upstream:
      deps.upstream ??
      new Agent({
        keepAliveTimeout: 30_000,
        connect: { timeout: Math.min(config.upstreamTimeoutMs, 10_000) },
      }),
    log: deps.log,
    accessLog: createAccessLogger(deps.log),
    now,
    metrics,
    tracer,
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // The same compiled function as the fast path's, so req.secure and req.ip agree with it.
  app.set('trust proxy', ctx.requestFacts.trust);
  app.use(helmet(helmetOptions(config)));
  app.use(requestLog(ctx.accessLog, metrics, config.basePath, tracer));

  // API routes (BFF_ROUTES) never reach the router below: the listener offers every request to the
  // fast path (src/proxy/handler.ts) first, which sets the same headers, log line and JSON errors
  // itself; only what it declines goes through Express.
  const apiFastPath = apiProxy(ctx);
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    if (!apiFastPath(req, res)) app(req, res);
  };

  const router = express.Router({ caseSensitive: true });
  router.get('/healthz', healthz);
  router.get('/readyz', readyz(ctx));
  router.get(MANAGEMENT_PATHS.login, login(ctx));
  router.get(MANAGEMENT_PATHS.callback, callback(ctx));
  router.get(MANAGEMENT_PATHS.user, requireCsrfHeader, user(ctx));
  router.get(MANAGEMENT_PATHS.logout, logout(ctx));
  router.post(MANAGEMENT_PATHS.backchannelLogout, ...backchannelLogout(ctx));
  router.use(MANAGEMENT_BASE_PATH, () => {
    throw new BffError('not_found');
  });
  if (config.staticDir) router.use(...spaStatic(config.staticDir));
  else if (config.spaDevServer) router.use(devServerProxy(ctx, config.spaDevServer));
  router.use(() => {
    throw new BffError('not_found');
  });

  app.use(config.basePath || '/', router);
  app.use(() => {
    throw new BffError('not_found');
  });
  app.use(errorHandler(deps.log, config.basePath));
  // Probes are not traced: they would be most of the spans and say nothing.
  const untraced = new Set([`${config.basePath}/healthz`, `${config.basePath}/readyz`]);
  return Object.assign(tracer.instrument(listener, untraced), {
    context: ctx,
    fastPath: apiFastPath,
    express: app,
  });
}
