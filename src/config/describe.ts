import type { Config } from './load.js';

/** A URL as an operator may read it in a log: no user name, password, query or fragment. */
function shown(url: string): string {
  const u = new URL(url);
  if (!u.username && !u.password && !u.search && !u.hash) return url;
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return u.href;
}

function describeStore(store: Config['store']): string {
  if (store.kind === 'memory') return 'memory';
  if (store.topology === 'sentinel') {
    return `redis sentinel master ${store.masterName} via ${store.sentinelUrls.map(shown).join(', ')}`;
  }
  if (store.topology === 'cluster') return `redis cluster via ${store.clusterUrls.map(shown).join(', ')}`;
  return `redis at ${shown(store.url)}`;
}

/**
 * The effective configuration for the start-up log line: what an operator checks first when coatcheck
 * misbehaves. Built field by field, so a new secret in Config never reaches the log by accident;
 * authorization parameters are named, not shown, since a deployment may put anything there.
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const seconds = (ms: number): number => ms / 1000;
  return {
    issuer: shown(config.issuer),
    publicUrl: config.publicUrl,
    clientId: config.client.id,
    clientAuthMethod: config.client.auth.kind === 'secret' ? config.client.auth.method : 'private_key_jwt',
    scopes: config.scopes.join(' '),
    authParams: Object.keys(config.authParams),
    userinfo: config.userinfo,
    profile: config.profile,
    store: describeStore(config.store),
    routes: config.routes.map((r) => `${r.path} -> ${shown(r.target)}`),
    trustProxy: config.trustProxy,
    staticDir: config.staticDir,
    spaDevServer: config.spaDevServer,
    timeoutsSeconds: {
      sessionIdle: seconds(config.idleTimeoutMs),
      sessionAbsolute: seconds(config.absoluteTimeoutMs),
      refreshSkew: seconds(config.refreshSkewMs),
      refreshLock: seconds(config.refreshLockTtlMs),
      sessionCache: seconds(config.sessionCacheTtlMs),
      upstream: seconds(config.upstreamTimeoutMs),
      headers: seconds(config.headersTimeoutMs),
      shutdownDelay: seconds(config.shutdownDelayMs),
      shutdownTimeout: seconds(config.shutdownTimeoutMs),
    },
    maxBodySize: config.maxBodySize,
    logLevel: config.logLevel,
  };
}
