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
      sentinelUsername: urls[0]?.username ? safeDecode(urls[0].username) : undefined,
      sentinelPassword: urls[0]?.password ? safeDecode(urls[0].password) : undefined,
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

/** A refusal that waiting will not cure: the server's certificate, or the credentials sent to it. */
interface Refusal {
  readonly kind: 'trust' | 'tls' | 'auth';
  readonly reason: string;
}

/** Certificate-chain failures: the fix is the CA coatcheck trusts. */
const UNTRUSTED =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_[A-Z_]+)$/;
/** Other handshake failures, e.g. a name the certificate lacks, or a server that does not speak TLS. */
const TLS_FAILED = /^(ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_[A-Z_]+)$/;

function refusalOf(err: Error & { code?: unknown }): Refusal | undefined {
  if (/^(WRONGPASS|NOAUTH)\b/.test(err.message)) return { kind: 'auth', reason: err.message };
  const code = typeof err.code === 'string' ? err.code : '';
  if (UNTRUSTED.test(code)) return { kind: 'trust', reason: err.message };
  if (TLS_FAILED.test(code)) return { kind: 'tls', reason: err.message };
  return undefined;
}

interface Probe {
  readonly refusal?: Refusal;
  readonly reply?: unknown;
}

/** One command on a one-shot connection that neither queues nor retries, and why it was refused. */
async function probe(
  at: { host: string; port: number },
  options: RedisOptions,
  command: string,
  ...args: string[]
): Promise<Probe> {
  const client = new Redis({
    ...at,
    ...options,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000,
    commandTimeout: 2000,
  });
  let refusal: Refusal | undefined;
  // ioredis reports a failed handshake or AUTH as an event; the command itself only sees the close.
  client.on('error', (err: Error) => {
    refusal ??= refusalOf(err);
  });
  try {
    await client.connect();
    return { reply: await client.call(command, ...args) };
  } catch (err) {
    return { refusal: refusal ?? refusalOf(err as Error) };
  } finally {
    // disconnect() on a client that never connected arms a timer on a closed socket.
    if (client.status !== 'end') client.disconnect();
  }
}

const credentialsOf = (u: URL): RedisOptions => ({
  ...(u.username ? { username: safeDecode(u.username) } : {}),
  ...(u.password ? { password: safeDecode(u.password) } : {}),
});

/** Collects refusals as lines per variable; endpoints refused for the same reason share one line. */
class Findings {
  private readonly lines = new Map<string, string[]>();
  constructor(private readonly caFile: string | undefined) {}

  /** `urlVariable` names the endpoint; `authLine` says what was refused, with `{where}` for the endpoint. */
  note(where: string, refusal: Refusal | undefined, urlVariable: string, authLine: string): void {
    if (!refusal) return;
    const untrusted = this.caFile
      ? `is not trusted with the CA in BFF_REDIS_CA_FILE (${refusal.reason})`
      : `is not trusted (${refusal.reason}); set BFF_REDIS_CA_FILE to the CA that signed it`;
    const line = {
      trust: `BFF_REDIS_CA_FILE: the TLS certificate of {where} ${untrusted}`,
      tls: `${urlVariable}: the TLS handshake with {where} failed (${refusal.reason})`,
      auth: `${authLine} (${refusal.reason})`,
    }[refusal.kind];
    this.lines.set(line, [...(this.lines.get(line) ?? []), where]);
  }

  list(secrets: readonly string[]): string[] {
    return [...this.lines].map(([line, places]) => {
      let text = line.replace('{where}', places.join(', '));
      for (const secret of secrets) text = text.split(secret).join('[redacted]');
      return text;
    });
  }
}

/**
 * Why Redis refuses coatcheck for good, one line per thing to fix: an untrusted certificate or
 * rejected credentials, for every endpoint at once. Empty when nothing permanent was found (Redis down
 * or still starting), which start-up reports as "not reachable yet" instead. No password appears.
 */
export async function connectionProblems(target: RedisTarget): Promise<string[]> {
  const findings = new Findings(target.caFile);
  const bare = (u: URL): string => `${u.protocol}//${u.host}`;
  const withTls = (urls: readonly string[], options: RedisOptions): RedisOptions => {
    const tls = tlsFor(urls, target.caFile);
    return tls ? { ...options, tls } : options;
  };
  const secrets: (string | undefined)[] = [];

  if (target.topology === 'standalone') {
    const u = parse(target.url);
    secrets.push(u.password);
    const { refusal } = await probe(address(u), withTls([target.url], credentialsOf(u)), 'PING');
    const authLine = u.password
      ? 'BFF_REDIS_URL: {where} refused the credentials in the URL'
      : 'BFF_REDIS_URL: {where} wants credentials; put them in the URL (redis://user:password@host:port)';
    findings.note(bare(u), refusal, 'BFF_REDIS_URL', authLine);
    return findings.list(redactable(secrets));
  }

  secrets.push(target.password);
  const dataCredentials: RedisOptions = { username: target.username, password: target.password };
  const refusedData = target.password
    ? `${target.username ? 'BFF_REDIS_USERNAME, ' : ''}BFF_REDIS_PASSWORD: {where} refused them`
    : 'BFF_REDIS_PASSWORD: {where} wants credentials; set BFF_REDIS_PASSWORD (and BFF_REDIS_USERNAME for an ACL user)';
  if (target.topology === 'sentinel') {
    const urls = target.sentinelUrls.map(parse);
    secrets.push(...urls.map((u) => u.password));
    const answers = await Promise.all(
      urls.map((u) =>
        probe(
          address(u),
          withTls(target.sentinelUrls, credentialsOf(u)),
          'SENTINEL',
          'get-master-addr-by-name',
          target.masterName,
        ),
      ),
    );
    // Noted in the configured order, whichever answered first.
    for (const [i, u] of urls.entries()) {
      const authLine = u.password
        ? 'BFF_REDIS_SENTINEL_CONNECTION_URLS: {where} refused the credentials in its URL'
        : 'BFF_REDIS_SENTINEL_CONNECTION_URLS: {where} wants credentials; put them in its URL';
      findings.note(
        `sentinel ${bare(u)}`,
        answers[i]?.refusal,
        'BFF_REDIS_SENTINEL_CONNECTION_URLS',
        authLine,
      );
    }
    // The data node is checked where the sentinels say the master is, as the client would find it.
    const master = answers.map((a) => a.reply).find((r): r is [string, string] => Array.isArray(r));
    if (master) {
      const at = { host: master[0], port: Number(master[1]) };
      const { refusal } = await probe(at, withTls(target.sentinelUrls, dataCredentials), 'PING');
      const where = `master ${target.masterName} at ${at.host}:${at.port}`;
      findings.note(where, refusal, 'BFF_REDIS_SENTINEL_CONNECTION_URLS', refusedData);
    }
  } else {
    const urls = target.clusterUrls.map(parse);
    const answers = await Promise.all(
      urls.map((u) => probe(address(u), withTls(target.clusterUrls, dataCredentials), 'PING')),
    );
    for (const [i, u] of urls.entries()) {
      findings.note(`node ${bare(u)}`, answers[i]?.refusal, 'BFF_REDIS_CLUSTER_CONNECTION_URLS', refusedData);
    }
  }
  return findings.list(redactable(secrets));
}

/**
 * Each secret as configured and as it may appear URL-decoded. The lines are built from addresses and
 * server replies, which carry no password; this is a second guard. A very short password is skipped,
 * as cutting it out would mangle the addresses.
 */
function redactable(secrets: readonly (string | undefined)[]): string[] {
  return secrets
    .filter((s): s is string => s !== undefined && s.length >= 4)
    .flatMap((s) => [s, safeDecode(s)]);
}

/** A URL's user or password as typed: a stray "%" is taken literally rather than throwing a URIError. */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
