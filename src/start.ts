import { createApp, type App } from './app.js';
import { describeConfig } from './config/describe.js';
import { ConfigError, type Config } from './config/load.js';
import type { Logger } from './log.js';
import { createOidcClient } from './oidc/client.js';
import { attachDevServerUpgrades } from './proxy/dev-server.js';
import { listen, type RunningServer } from './server.js';
import { MemorySessionStore } from './session/memory-store.js';
import { RedisSessionStore } from './session/redis-store.js';
import type { SessionStore } from './session/store.js';

export interface Coatcheck {
  readonly app: App;
  readonly running: RunningServer;
  /** Drains, then closes the store. */
  stop(): Promise<void>;
}

/** Builds and starts one coatcheck from a validated config: the wiring shared by production and demo mode. */
export async function startCoatcheck(config: Config, log: Logger): Promise<Coatcheck> {
  // First, so it is on record even when Redis or the IdP is what fails next.
  log.info({ config: describeConfig(config) }, 'effective configuration');
  for (const warning of config.warnings) log.warn(warning);
  let store: SessionStore;
  if (config.store.kind === 'redis') {
    const redisStore = new RedisSessionStore(config.store, {
      prefix: config.store.keyPrefix,
      waitTimeoutMs: config.store.waitTimeoutMs,
      log,
    });
    const reachable = await redisStore.ready().then(
      () => true,
      (err: unknown) => {
        log.error(
          { err: { message: (err as Error).message } },
          'Redis is not reachable yet; /readyz answers 503 until it is',
        );
        return false;
      },
    );
    const problem = reachable ? await redisStore.accessProblem() : undefined;
    if (problem) {
      await redisStore.close();
      throw new ConfigError([`BFF_REDIS_URL: ${problem}`]);
    }
    store = redisStore;
  } else {
    log.warn(
      'session store: memory. Sessions live in this process only; use Redis for more than one instance',
    );
    store = new MemorySessionStore();
  }

  const oidc = createOidcClient(config, log);
  // Discover now so a wrong issuer shows at once; a failure is retried on demand, so an IdP outage at boot heals.
  await oidc.configuration().catch(() => undefined);

  if (config.publicUrl.startsWith('https:') && config.trustProxy === false) {
    log.warn(
      'BFF_PUBLIC_URL is https but BFF_TRUST_PROXY is false: cookies are still Secure, but X-Forwarded-For and the client address the upstream sees are those of the proxy',
    );
  }

  const app = createApp(config, { oidc, store, log });
  if (app.context.sessionCache) {
    log.info(
      { ttlSeconds: config.sessionCacheTtlMs / 1000 },
      'session cache on: API calls reuse a session read within the TTL; changes arrive over Redis pub/sub',
    );
  }
  const running = await listen(app, config.port, config.host, log);
  const upgrades = config.spaDevServer ? attachDevServerUpgrades(running.server, config, log) : undefined;
  log.info({ port: running.port, host: config.host, publicUrl: config.publicUrl }, 'coatcheck listening');
  return {
    app,
    running,
    async stop() {
      log.info('shutting down: draining in-flight requests');
      upgrades?.close();
      await running.stop();
      await store.close();
      log.info('stopped');
    },
  };
}
