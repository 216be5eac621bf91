import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { createLogger } from './log.js';
import { createOidcClient } from './oidc/client.js';
import { listen } from './server.js';
import { MemorySessionStore } from './session/memory-store.js';
import { RedisSessionStore } from './session/redis-store.js';
import type { SessionStore } from './session/store.js';

/** The only reader of process.env: validate, wire up, listen, and stop cleanly on a signal. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`coatcheck: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  const log = createLogger(config.logLevel);
  let store: SessionStore;
  if (config.store.kind === 'redis') {
    const redisStore = new RedisSessionStore(config.store.url);
    await redisStore.ready().catch((err: unknown) => {
      log.error(
        { err: { message: (err as Error).message } },
        'Redis is not reachable yet; /readyz answers 503 until it is',
      );
    });
    store = redisStore;
  } else {
    log.warn(
      'BFF_SESSION_STORE=memory: sessions live in this process only; use Redis for more than one instance',
    );
    store = new MemorySessionStore();
  }

  const oidc = createOidcClient(config, log);
  // Discover now so a wrong issuer shows at once; a failure is retried on demand, so an IdP outage at boot heals.
  await oidc.configuration().catch(() => undefined);

  if (config.publicUrl.startsWith('https:') && config.trustProxy === false) {
    log.warn(
      'BFF_PUBLIC_URL is https but BFF_TRUST_PROXY is false: behind a TLS-terminating proxy, cookies will lack Secure and the __Host- prefix',
    );
  }

  const app = createApp(config, { oidc, store, log });
  const running = await listen(app, config.port, config.host, log);
  log.info({ port: running.port, host: config.host, publicUrl: config.publicUrl }, 'coatcheck listening');

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
    running
      .stop()
      .then(() => store.close())
      .then(
        () => {
          log.info('stopped');
          process.exit(0);
        },
        (err: unknown) => {
          log.error({ err: { message: (err as Error).message } }, 'error during shutdown');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`coatcheck: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
