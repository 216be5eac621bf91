import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisStoreConfig } from '../config/load.js';

/** What a store needs to reach Redis: the topology and its credentials, without the store's own settings. */
export type RedisTarget = RedisStoreConfig extends infer T
  ? T extends RedisStoreConfig
    ? Omit<T, 'kind' | 'keyPrefix' | 'waitTimeoutMs'>
    : never
  : never;

/** One client over whichever topology: ioredis gives both the same command surface. */
export type RedisClient = Redis | Cluster;

/**
 * Fail fast while Redis is away: a queued command would hold the browser's request hostage, and a
 * failover is better answered with a quick 503 than with requests piling up behind it.
 */
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 2000,
  connectTimeout: 2000,
};

const parse = (url: string): URL => new URL(url);
const address = (u: URL): { host: string; port: number } => ({
  host: u.hostname.replace(/^\[|\]$/g, ''),
  port: Number(u.port || 6379),
});

function tlsFor(urls: readonly string[], caFile: string | undefined): ConnectionOptions | undefined {
  if (!urls.some((u) => u.startsWith('rediss:'))) return undefined;
  return caFile ? { ca: readFileSync(caFile) } : {};
}

/** Where the client connects, for messages: no credentials. */
export function describeTarget(target: RedisTarget): string {
  const bare = (url: string): string => {
    const u = parse(url);
    return `${u.protocol}//${u.host}`;
  };
  if (target.topology === 'sentinel') {
    return `Redis master ${target.masterName} via sentinels ${target.sentinelUrls.map(bare).join(', ')}`;
  }
  if (target.topology === 'cluster') return `Redis Cluster via ${target.clusterUrls.map(bare).join(', ')}`;
  return `Redis at ${bare(target.url)}`;
}

/** The ioredis client for a topology; `overrides` tune the data-node connections (tests, the WAIT client). */
export function connectRedis(target: RedisTarget, overrides: RedisOptions = {}): RedisClient {
  if (target.topology === 'standalone') {
    const tls = tlsFor([target.url], target.caFile);
    return new Redis(target.url, { ...FAIL_FAST, ...(tls ? { tls } : {}), ...overrides });
  }
  const auth = { username: target.username, password: target.password };
  if (target.topology === 'sentinel') {
    const urls = target.sentinelUrls.map(parse);
    const tls = tlsFor(target.sentinelUrls, target.caFile);
    return new Redis({
      ...FAIL_FAST,
      ...auth,
      sentinels: urls.map(address),
      name: target.masterName,
      // The config allows one set of sentinel credentials; every URL carries the same.
      sentinelUsername: urls[0]?.username ? decodeURIComponent(urls[0].username) : undefined,
      sentinelPassword: urls[0]?.password ? decodeURIComponent(urls[0].password) : undefined,
      // Data nodes and sentinels share the scheme: a deployment that encrypts one encrypts both.
      ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
      ...overrides,
    });
  }
  const tls = tlsFor(target.clusterUrls, target.caFile);
  const options: ClusterOptions = {
    // A failover takes the node timeout plus an election; redirections retried meanwhile ride through
    // it, and commandTimeout still bounds every request.
    retryDelayOnFailover: 500,
    maxRedirections: 16,
    enableOfflineQueue: true,
    redisOptions: {
      ...FAIL_FAST,
      ...auth,
      ...(tls ? { tls } : {}),
      // Without it, a dead node's connection holds a timer that keeps the process alive after close.
      disconnectTimeout: 100,
      ...overrides,
    },
  };
  return new Cluster(
    target.clusterUrls.map((u) => address(parse(u))),
    options,
  );
}

/**
 * A plain connection for a subscriber, on a node of the topology. A cluster's PUBLISH reaches every
 * node, so any live node will do; each call picks another one, so a feed that lost its node moves on.
 */
export function subscriberConnector(client: RedisClient, target: RedisTarget): () => Redis {
  if (!(client instanceof Cluster)) return () => client.duplicate({ autoResubscribe: false });
  const seeds = target.topology === 'cluster' ? target.clusterUrls.map((u) => address(parse(u))) : [];
  let turn = 0;
  return () => {
    // The nodes the cluster client knows now; the seeds until it knows any.
    const known = client.nodes('all').map((n) => ({ host: n.options.host, port: n.options.port }));
    const nodes = known.length ? known : seeds;
    const node = nodes[turn++ % nodes.length];
    return new Redis({
      ...client.options.redisOptions,
      host: node?.host,
      port: node?.port,
      autoResubscribe: false,
      // This node may be gone for good; the feed picks another rather than retrying this one.
      retryStrategy: () => null,
    });
  };
}
