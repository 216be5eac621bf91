import type { Server } from 'node:http';
import type { App } from './app.js';
import { bffFromConfig, type Bff, type BffDeps } from './bff.js';
import type { Config } from './config/load.js';
import type { AppContext } from './context.js';
import { markStopping } from './endpoints/health.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';
import { attachDevServerUpgrades } from './proxy/dev-server.js';
import { attachWebSocketProxy } from './proxy/websocket.js';
import { createHttpServer, drain, listenOn } from './server.js';
import type { SessionStore } from './session/store.js';

/**
 * What a caller other than main.ts may bring: tests bring a clock, hooks, a log sink and a shared
 * store. The same as createBff's.
 */
export type StartOptions = Omit<BffDeps, 'nodeEnv'>;

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
  /** The createBff instance the server runs. */
  readonly bff: Bff;
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

/**
 * Builds and starts one coatcheck from a validated config: the only wiring, used by main.ts, demo
 * mode and the tests alike.
 */
export async function startCoatcheck(config: Config, options: StartOptions = {}): Promise<Coatcheck> {
  const bff = await bffFromConfig(config, options);
  const { listener: app, context, store, metrics } = bff;
  const log = context.log;
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
    await bff.close();
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
      await bff.close();
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
    // The store last but one, and tracing last: in-flight requests used them until now.
    await bff.close();
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
    bff,
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
