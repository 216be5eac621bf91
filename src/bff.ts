import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createApp, type App } from './app.js';
import { describeConfig } from './config/describe.js';
import { ConfigError, type Config } from './config/load.js';
import type { AppContext } from './context.js';
import { BffError } from './errors.js';
import { sendJsonError } from './http/error-handler.js';
import { MANAGEMENT_BASE_PATH } from './http/management-paths.js';
import { underPrefix } from './http/path-prefix.js';
import { requestSession } from './http/request-session.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { createOidcClient, oidcSettings } from './oidc/client.js';
import { tokenFor, tokenTarget, type TokenTarget } from './oidc/token-set.js';
import { configFromOptions, type BffOptions } from './options.js';
import { compileRoutes } from './proxy/routes.js';
import { hasCsrfHeader } from './security/csrf.js';
import {
  hostSessionFor,
  hostSessionOptionProblems,
  type HostCookie,
  type HostStore,
} from './session/host-session.js';
import { MemorySessionStore } from './session/memory-store.js';
import { connectionProblems } from './session/redis-connection.js';
import { RedisSessionStore } from './session/redis-store.js';
import type { RefreshHooks } from './session/refresh.js';
import type { Session } from './session/sessions.js';
import type { SessionStore } from './session/store.js';
import { startTracing } from './tracing/sdk.js';
import type { TracingSettings } from './tracing/settings.js';
import { NOOP_TRACER } from './tracing/tracer.js';

/** What requireSession() puts on the request for the host's route. */
export interface BffRequestState {
  /** The ID token's claims (and userinfo's, when on), as GET /bff/user returns them. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly sub: string;
}

declare global {
  // Express's own augmentation point for Request.
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by coatcheck's requireSession(). */
      bff?: BffRequestState;
    }
  }
}

/** What the host app and tests may bring besides the options. */
export interface BffDeps {
  /** A pino logger; one at `logLevel`, to stdout, when not given. */
  readonly log?: Logger;
  /** coatcheck's clock; tests move it forward to reach expiry without waiting. */
  readonly now?: () => number;
  readonly refreshHooks?: RefreshHooks;
  /**
   * A store to use instead of the one the options name, e.g. one memory store that several
   * instances in a test share. Its owner closes it: close() leaves it open.
   */
  readonly store?: SessionStore;
  /** OpenTelemetry tracing; off when not given. */
  readonly tracing?: TracingSettings;
  /** Refuses spaDevServer when 'production'; process.env.NODE_ENV when not given. */
  readonly nodeEnv?: string;
}

export interface RequireSessionOptions {
  /** Require `X-CSRF: 1`, as the API routes do; false for page navigations, which cannot send it. */
  readonly csrf?: boolean;
}

export interface AccessTokenOptions {
  /**
   * The API the token is for: a configured route's path or target. Every route shares the session's
   * one token today; per-API tokens come later. Anything else is an UnknownResourceError.
   */
  readonly resource?: string;
}

/** getAccessToken() was asked for a resource no route names: a mistake in the host app, not the client's. */
export class UnknownResourceError extends Error {
  readonly code = 'unknown_resource';
  constructor(readonly resource: string) {
    super(`getAccessToken: no route has the resource, path or target ${JSON.stringify(resource)}`);
    this.name = 'UnknownResourceError';
  }
}

/** One coatcheck, for a host Express app (middleware) or the standalone server (listener). */
export interface Bff {
  /**
   * `app.use(bff.middleware)`: the /bff/* endpoints and the API routes. API calls take the fast path
   * when they reach it with the URL as the client sent it; everything else goes on to the host's routes.
   */
  readonly middleware: RequestHandler;
  /**
   * For the host's own routes: 401 JSON without a session, 403 JSON without `X-CSRF: 1` (unless
   * `csrf: false`), and otherwise `req.bff.claims`.
   */
  requireSession(options?: RequireSessionOptions): RequestHandler;
  /**
   * The user's access token for a server-side call, refreshed first when due: once across replicas,
   * by the same refresher as the API routes. Rejects with a BffError (`unauthenticated`,
   * `session_expired`, `idp_unavailable`, ...; it has `status` and `toJSON()`) or an UnknownResourceError.
   */
  getAccessToken(req: Request, options?: AccessTokenOptions): Promise<string>;
  /** Closes the upstream pool, tracing and the store it opened. The host stops its own server first. */
  close(): Promise<void>;
  /** The validated, frozen configuration. */
  readonly config: Config;
  /** The standalone server's request listener: everything the middleware serves, plus probes, the SPA and 404s. */
  readonly listener: App;
  readonly context: AppContext;
  readonly store: SessionStore;
  readonly metrics: Metrics;
}

/** A body parser ran before the middleware (body-parser marks the request; the stream has ended). */
function bodyAlreadyRead(req: Request): boolean {
  return (req as { _body?: unknown })._body === true || req.readableEnded;
}

/** Validates the options once, then wires a coatcheck up. It never listens: the host does, or start.ts. */
export async function createBff(options: BffOptions, deps: BffDeps = {}): Promise<Bff> {
  const { session, sessionCookieName, hostSessionStore, hostSessionCookie, settings } =
    withoutHostOptions(options);
  const problems = [
    ...(session === undefined || session === 'express-session'
      ? []
      : ["session: must be 'express-session', or left out for coatcheck's own session cookie"]),
    ...hostSessionOptionProblems({ session, sessionCookieName, hostSessionStore, hostSessionCookie }),
  ];
  let config: Config;
  try {
    config = configFromOptions(settings, { nodeEnv: deps.nodeEnv ?? process.env.NODE_ENV });
  } catch (err) {
    if (err instanceof ConfigError && problems.length) {
      throw new ConfigError([...problems, ...err.problems], err.warnings);
    }
    throw err;
  }
  if (problems.length) throw new ConfigError(problems);
  return bffFromConfig(config, deps, {
    hostSession:
      session === 'express-session'
        ? {
            cookieName: sessionCookieName as string | undefined,
            store: hostSessionStore as HostStore | undefined,
            cookie: hostSessionCookie as HostCookie | undefined,
          }
        : undefined,
  });
}

/** The middleware-mode options have no environment variable: they are taken out before validation. */
function withoutHostOptions(options: BffOptions): {
  session: unknown;
  sessionCookieName: unknown;
  hostSessionStore: unknown;
  hostSessionCookie: unknown;
  settings: BffOptions;
} {
  if (typeof options !== 'object' || options === null) {
    return {
      session: undefined,
      sessionCookieName: undefined,
      hostSessionStore: undefined,
      hostSessionCookie: undefined,
      settings: options,
    };
  }
  const { session, sessionCookieName, hostSessionStore, hostSessionCookie, ...settings } = options;
  return {
    session,
    sessionCookieName,
    hostSessionStore,
    hostSessionCookie,
    settings: settings as BffOptions,
  };
}

/** The store the config names; a Redis user that may not publish is a configuration error. */
async function openStore(
  config: Config,
  log: Logger,
  now: () => number,
  metrics: Metrics,
): Promise<SessionStore> {
  if (config.store.kind === 'memory') {
    log.warn(
      'session store: memory. Sessions live in this process only; use Redis for more than one instance',
    );
    return new MemorySessionStore(now);
  }
  const target = config.store;
  const store = new RedisSessionStore(target, {
    prefix: config.store.keyPrefix,
    waitTimeoutMs: config.store.waitTimeoutMs,
    onWaitTimeout: () => metrics.redisWaitTimeouts.inc(),
    log,
  });
  const reachable = await store.ready().then(
    () => true,
    async (err: unknown) => {
      // An untrusted certificate or rejected credentials will not pass by waiting: a configuration error.
      const refused = await connectionProblems(target);
      if (refused.length) {
        await store.close();
        throw new ConfigError(refused);
      }
      log.error(
        { err: { message: (err as Error).message } },
        'Redis is not reachable yet; /readyz answers 503 until it is',
      );
      return false;
    },
  );
  const problem = reachable ? await store.accessProblem() : undefined;
  if (problem) {
    await store.close();
    const variable = {
      standalone: 'BFF_REDIS_URL',
      sentinel: 'BFF_REDIS_SENTINEL_CONNECTION_URLS',
      cluster: 'BFF_REDIS_CLUSTER_CONNECTION_URLS',
    }[config.store.topology];
    throw new ConfigError([`${variable}: ${problem}`]);
  }
  return store;
}

/** The one wiring, from a validated config: createBff, the standalone server (start.ts) and demo mode. */
export async function bffFromConfig(
  config: Config,
  deps: BffDeps = {},
  /**
   * hostSession: the browser's session is the host's express-session (createBff's `session` option),
   * with its cookie's name and store when the host gave them.
   */
  mode: {
    readonly hostSession?: {
      readonly cookieName?: string;
      readonly store?: HostStore;
      readonly cookie?: HostCookie;
    };
  } = {},
): Promise<Bff> {
  const log = deps.log ?? createLogger(config.logLevel);
  const now = deps.now ?? Date.now;
  // First, so it is on record even when Redis or the IdP is what fails next.
  log.info({ config: describeConfig(config) }, 'effective configuration');
  for (const warning of config.warnings) log.warn(warning);
  // Before the store, so that missing SDK packages stop start-up with nothing left open.
  const tracer = deps.tracing ? await startTracing(deps.tracing, log) : NOOP_TRACER;
  // Counted always (cheap); served, with the process metrics, only when BFF_METRICS_PORT is set.
  const metrics = new Metrics({ processMetrics: config.metrics !== undefined });
  const ownsStore = !deps.store;
  let store: SessionStore;
  try {
    store = deps.store ?? (await openStore(config, log, now, metrics));
  } catch (err) {
    await tracer.shutdown();
    throw err;
  }

  const oidc = createOidcClient(oidcSettings(config), log, metrics, tracer);
  // Discover now so a wrong issuer shows at once; a failure is retried on demand, so an IdP outage at boot heals.
  await oidc.configuration().catch(() => undefined);

  if (config.publicUrl.startsWith('https:') && config.trustProxy === false) {
    log.warn(
      'BFF_PUBLIC_URL is https but BFF_TRUST_PROXY is false: cookies are still Secure, but X-Forwarded-For and the client address the upstream sees are those of the proxy',
    );
  }

  const listener = createApp(config, {
    oidc,
    store,
    log,
    now,
    refreshHooks: deps.refreshHooks,
    metrics,
    tracer,
    hostSession: mode.hostSession ? hostSessionFor(config, store, log, now, mode.hostSession) : undefined,
  });
  const { context } = listener;
  if (context.sessionCache) {
    log.info(
      { ttlSeconds: config.sessionCacheTtlMs / 1000 },
      'session cache on: API calls reuse a session read within the TTL; changes arrive over Redis pub/sub',
    );
  }

  const managementBase = config.basePath + MANAGEMENT_BASE_PATH;
  const matchRoute = compileRoutes(config.routes);
  const host = context.hostSession;
  const middleware: RequestHandler = (req, res, next) => {
    host?.observe(req);
    // Mounted below a path, Express has cut it off req.url; coatcheck routes on the URL as sent.
    const seen = req.url;
    const url = req.originalUrl ?? seen;
    req.url = url;
    if (bodyAlreadyRead(req)) {
      const path = context.requestFacts.pathBelowBase(url);
      if (path !== undefined && matchRoute(path)) {
        // Forwarding a body a parser already consumed would send the upstream an empty or hanging request.
        log.error(
          'an API route request reached bff.middleware with its body already read: mount bff.middleware before body parsers',
        );
        sendJsonError(log, new BffError('internal_error'), res, undefined);
        return;
      }
    }
    if (listener.fastPath(req, res)) return;
    if (!underPrefix(url, managementBase)) {
      req.url = seen;
      next();
      return;
    }
    const request = Object.getPrototypeOf(req) as object;
    const response = Object.getPrototypeOf(res) as object;
    // As Express does for a mounted app: the host's request and response prototypes come back after.
    listener.express(req, res, (err?: unknown) => {
      Object.setPrototypeOf(req, request);
      Object.setPrototypeOf(res, response);
      req.url = seen;
      next(err);
    });
  };

  const loaded = new WeakMap<Request, Session>();
  function requireSession(opts: RequireSessionOptions = {}): RequestHandler {
    const csrf = opts.csrf ?? true;
    return (req: Request, res: Response, next: NextFunction) => {
      const fail = (err: unknown) => sendJsonError(log, err, res, res.locals?.requestId);
      if (csrf && !hasCsrfHeader(req)) return fail(new BffError('csrf_header_missing'));
      requestSession(context, req, res)
        .then(async (session) => {
          if (!session) throw new BffError('unauthenticated');
          // Without a refresh token the session cannot outlive its access token (as GET /bff/user).
          if (!session.tokens.refreshToken && session.tokens.expiresAt <= now()) {
            await context.sessions.destroy(session);
            context.metrics.sessionEnds.expired.inc();
            throw new BffError('session_expired');
          }
          const data = session.data();
          loaded.set(req, session);
          req.bff = Object.freeze({ claims: data.claims, sub: data.sub });
        })
        // The host's route runs outside the chain: its own errors go to its error handlers, not here.
        .then(() => next(), fail);
    };
  }

  // A resource names a route by its RFC 8707 `resource`, its path or its target; the route's token policy decides which token.
  const targets = new Map<string, TokenTarget | undefined>();
  for (const r of config.routes) {
    if (r.token === 'none') continue;
    for (const name of [r.path, r.target, r.resource]) {
      if (name !== undefined && !targets.has(name)) targets.set(name, tokenTarget(r));
    }
  }
  async function getAccessToken(req: Request, opts: AccessTokenOptions = {}): Promise<string> {
    if (opts.resource !== undefined && !targets.has(opts.resource)) {
      throw new UnknownResourceError(opts.resource);
    }
    const target = opts.resource === undefined ? undefined : targets.get(opts.resource);
    if (config.dpop) {
      // A DPoP-bound token is useless without a proof signed by the session's key, which stays here.
      throw new Error(
        'getAccessToken: with dpop on, tokens are bound to coatcheck; call the API through a route',
      );
    }
    const session =
      loaded.get(req) ?? (await requestSession(context, req, req.res ?? ({ locals: {} } as Response)));
    if (!session) throw new BffError('unauthenticated');
    const tokens = await context.refresher.fresh(session, target);
    const access = tokenFor(tokens, target);
    if (!access) throw new BffError('unauthenticated');
    return access.accessToken;
  }

  let closed: Promise<void> | undefined;
  async function close(): Promise<void> {
    await context.upstream.close();
    if (ownsStore) await store.close();
    // Last, so the spans of the drained requests are exported too.
    await tracer.shutdown();
  }

  return {
    middleware,
    requireSession,
    getAccessToken,
    close: () => (closed ??= close()),
    config,
    listener,
    context,
    store,
    metrics,
  };
}
