import type { Server } from 'node:http';
import { createApp, type App } from './app.js';
import { describeConfig } from './config/describe.js';
import { markStopping } from './endpoints/health.js';
import { ConfigError, type Config } from './config/load.js';
import type { AppContext } from './context.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';
import { createOidcClient, oidcSettings } from './oidc/client.js';
import { attachDevServerUpgrades } from './proxy/dev-server.js';
import { attachWebSocketProxy } from './proxy/websocket.js';
import { createHttpServer, drain, listenOn } from './server.js';
import { MemorySessionStore } from './session/memory-store.js';
import { connectionProblems } from './session/redis-connection.js';
import { RedisSessionStore } from './session/redis-store.js';
import type { RefreshHooks } from './session/refresh.js';
import type { SessionStore } from './session/store.js';
import { startTracing } from './tracing/sdk.js';
import type { TracingSettings } from './tracing/settings.js';
import { NOOP_TRACER } from './tracing/tracer.js';

/** What a caller other than main.ts may bring: tests bring a clock, hooks, a log sink and a shared store. */
export interface StartOptions {
  /** Where log lines go; a logger at the configured level, to stdout, when not given. */
  readonly log?: Logger;
  /** coatcheck's clock; tests move it forward to reach expiry without waiting. */
  readonly now?: () => number;
  readonly refreshHooks?: RefreshHooks;
  /**
   * A store to use instead of the one the config names, e.g. one memory store that several
   * instances in a test share. Its owner closes it: close() leaves it open.
   */
  readonly store?: SessionStore;
  /** OpenTelemetry tracing (from the OTEL_* variables); off when not given. */
  readonly tracing?: TracingSettings;
}

/** One running coatcheck: its listener, store, upstream pool and upgrade handler, and how to stop them. */
export interface Coatcheck {
  /** The port it listens on: the configured one, or the one the OS chose for port 0. */
  readonly port: number;
  /** The metrics listener's port, when BFF_METRICS_PORT is set. */
  readonly metricsPort: number | undefined;
  readonly server: Server;
  readonly store: SessionStore;
  readonly context: AppContext;
  /** The request listener the server runs; in-process tests (supertest) call it without a socket. */
  readonly app: App;
  /**
   * Stops accepting, drains in-flight requests for up to `graceMs`, then closes the upstream pool
   * and last the store, which in-flight requests still use. Calling it again waits for the same stop.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * The SIGTERM path: /readyz answers 503 at once, everything else is served for BFF_SHUTDOWN_DELAY
   * while load balancers notice, then close() with BFF_SHUTDOWN_TIMEOUT as the grace period.
   */
  shutdown(): Promise<void>;
}

/** The store the config names; a Redis user that may not publish is a configuration error. */
async function openStore(config: Config, log: Logger, now: () => number): Promise<SessionStore> {
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

/**
 * Builds and starts one coatcheck from a validated config: the only wiring, used by main.ts, demo
 * mode and the tests alike.
 */
export async function startCoatcheck(config: Config, options: StartOptions = {}): Promise<Coatcheck> {
  const log = options.log ?? createLogger(config.logLevel);
  const now = options.now ?? Date.now;
  // First, so it is on record even when Redis or the IdP is what fails next.
  log.info({ config: describeConfig(config) }, 'effective configuration');
  for (const warning of config.warnings) log.warn(warning);
  // Before the store, so that missing SDK packages stop start-up with nothing left open.
  const tracer = options.tracing ? await startTracing(options.tracing, log) : NOOP_TRACER;
  const ownsStore = !options.store;
  const store = options.store ?? (await openStore(config, log, now));

  // Counted always (cheap); served, with the process metrics, only when BFF_METRICS_PORT is set.
  const metrics = new Metrics({ processMetrics: config.metrics !== undefined });
  const oidc = createOidcClient(oidcSettings(config), log, metrics, tracer);
  // Discover now so a wrong issuer shows at once; a failure is retried on demand, so an IdP outage at boot heals.
  await oidc.configuration().catch(() => undefined);

  if (config.publicUrl.startsWith('https:') && config.trustProxy === false) {
    log.warn(
      'BFF_PUBLIC_URL is https but BFF_TRUST_PROXY is false: cookies are still Secure, but X-Forwarded-For and the client address the upstream sees are those of the proxy',
    );
  }

  const app = createApp(config, {
    oidc,
    store,
    log,
    now,
    refreshHooks: options.refreshHooks,
    metrics,
    tracer,
  });
  const { context } = app;
  if (context.sessionCache) {
    log.info(
      { ttlSeconds: config.sessionCacheTtlMs / 1000 },
      'session cache on: API calls reuse a session read within the TTL; changes arrive over Redis pub/sub',
    );
  }
  const server = createHttpServer(app, config.headersTimeoutMs);
  const upgrades = config.spaDevServer ? attachDevServerUpgrades(server, config, log) : undefined;
  const webSockets = attachWebSocketProxy(server, context, {
    othersHandled: upgrades !== undefined,
    serve: app,
  });
  let port: number;
  try {
    port = await listenOn(server, config.port, config.host);
  } catch (err) {
    await context.upstream.close();
    if (ownsStore) await store.close();
    await tracer.shutdown();
    throw err;
  }
  log.info({ port, host: config.host, publicUrl: config.publicUrl }, 'coatcheck listening');
  let metricsServer: MetricsServer | undefined;
  if (config.metrics) {
    try {
      metricsServer = await startMetricsServer(metrics, config.metrics, log);
    } catch (err) {
      // A metrics port that cannot be bound fails the start, like the public one: nothing is left running.
      server.closeAllConnections();
      server.close();
      upgrades?.close();
      webSockets.close();
      await context.upstream.close();
      if (ownsStore) await store.close();
      await tracer.shutdown();
      throw err;
    }
  }

  let stopped: Promise<void> | undefined;
  let shuttingDown: Promise<void> | undefined;
  async function stop(graceMs: number): Promise<void> {
    markStopping(context);
    log.info('shutting down: draining in-flight requests');
    upgrades?.close();
    webSockets.close();
    await drain(server, graceMs, log);
    await context.upstream.close();
    if (ownsStore) await store.close();
    // Last, so the spans of the drained requests are exported too.
    await tracer.shutdown();
    log.info('stopped');
  }
  function close(graceMs = config.shutdownTimeoutMs): Promise<void> {
    stopped ??= stop(graceMs).finally(() => metricsServer?.close());
    return stopped;
  }
  return {
    port,
    metricsPort: metricsServer?.port,
    server,
    store,
    context,
    app,
    close,
    shutdown() {
      shuttingDown ??= (async () => {
        markStopping(context);
        log.info(
          { delaySeconds: config.shutdownDelayMs / 1000 },
          'shutting down: /readyz answers 503; still serving while load balancers notice',
        );
        await new Promise((resolve) => setTimeout(resolve, config.shutdownDelayMs));
        await close(config.shutdownTimeoutMs);
      })();
      return shuttingDown;
    },
  };
}
