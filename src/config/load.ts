import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MANAGEMENT_PATHS } from '../http/management-paths.js';
import type { Profile } from '../oidc/fapi.js';
import { unknownNameWarnings } from './names.js';
import { applyProfile, fapi2ClientKey } from './profile.js';
import { envSchema, type RouteConfig } from './schema.js';

/** A private key as the operator gave it, its format detected once here. */
export type ClientPrivateKey =
  | { readonly format: 'jwk'; readonly jwk: JsonWebKey & { readonly kid?: string } }
  | { readonly format: 'pem'; readonly pem: string };

/** How coatcheck authenticates to the token endpoint: parsed and checked at start-up, never again. */
import type { DpopAlg } from '../oidc/dpop-algs.js';

export type ParMode = 'off' | 'auto' | 'required';

export type ClientAuth =
  | {
      readonly kind: 'secret';
      readonly method: 'client_secret_basic' | 'client_secret_post';
      readonly secret: string;
    }
  | { readonly kind: 'private_key_jwt'; readonly key: ClientPrivateKey; readonly alg: string };

/** Settings every Redis topology shares. */
interface RedisCommon {
  readonly kind: 'redis';
  /** Authenticates to the data nodes in the Sentinel and Cluster topologies (standalone: in the URL). */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** A CA (PEM file path) to trust for rediss:// connections, besides Node's own. */
  readonly caFile: string | undefined;
  readonly keyPrefix: string;
  /** How long a rotated token's write waits for a replica to acknowledge it; 0: no WAIT. */
  readonly waitTimeoutMs: number;
}

/** The Redis store, by topology: exactly one of BFF_REDIS_URL, the Sentinel pair, or the Cluster seeds. */
export type RedisStoreConfig = RedisCommon &
  (
    | { readonly topology: 'standalone'; readonly url: string }
    | {
        readonly topology: 'sentinel';
        readonly sentinelUrls: readonly string[];
        readonly masterName: string;
      }
    | { readonly topology: 'cluster'; readonly clusterUrls: readonly string[] }
  );

export interface Config {
  readonly port: number;
  readonly host: string;
  /** Origin plus optional base path, without a trailing slash. */
  readonly publicUrl: string;
  /** '' or a path like '/app': every endpoint is mounted below it. */
  readonly basePath: string;
  readonly redirectUri: string;
  readonly postLogoutRedirectUri: string;
  readonly issuer: string;
  /** Plain-http discovery is only ever allowed for a loopback issuer (tests, demo mode, local IdPs). */
  readonly allowInsecureIssuer: boolean;
  readonly client: { readonly id: string; readonly auth: ClientAuth };
  readonly scopes: readonly string[];
  readonly authParams: Readonly<Record<string, string>>;
  /** The acr values a login may ask for (step-up); an empty list refuses every acr_values. */
  readonly allowedAcrValues: readonly string[];
  readonly userinfo: boolean;
  /** RFC 9126 pushed authorization requests: never, when the IdP advertises them, or always. */
  readonly par: ParMode;
  /** With BFF_LOGIN_RESOURCES: every route's `resource`, once each, asked for at login (RFC 8707). */
  readonly loginResources: readonly string[];
  /** RFC 9449: tokens bound to a per-session key, with proofs on every token request and API call. */
  readonly dpop: { readonly alg: DpopAlg } | undefined;
  /** BFF_PROFILE: a security profile whose requirements were enforced at start-up and apply at run time. */
  readonly profile: Profile | undefined;
  readonly store: RedisStoreConfig | { readonly kind: 'memory' };
  readonly sessionSecrets: readonly string[];
  readonly routes: readonly RouteConfig[];
  readonly trustProxy: boolean | number | string;
  readonly idleTimeoutMs: number;
  readonly absoluteTimeoutMs: number;
  readonly refreshSkewMs: number;
  readonly refreshLockTtlMs: number;
  /** How long the API path may answer from this process's copy of a session; 0 turns the cache off. */
  readonly sessionCacheTtlMs: number;
  readonly upstreamTimeoutMs: number;
  /** Largest request body an API route forwards, in bytes; 0 means no limit. */
  readonly maxBodySize: number;
  /** How long a client may take to send its whole request head. */
  readonly headersTimeoutMs: number;
  /** A built SPA to serve, with index.html as the fallback for client-side routes. */
  readonly staticDir: string | undefined;
  /** A dev server (e.g. Vite) that gets every GET no route or endpoint claims, WebSocket upgrades included. */
  readonly spaDevServer: string | undefined;
  readonly logLevel: string;
  /** The separate Prometheus listener; undefined when BFF_METRICS_PORT is unset. */
  readonly metrics: { readonly port: number; readonly host: string } | undefined;
  /** After SIGTERM: how long /readyz answers 503 while coatcheck still serves, so load balancers notice. */
  readonly shutdownDelayMs: number;
  /** Then how long in-flight requests, downloads and streams included, may take to finish. */
  readonly shutdownTimeoutMs: number;
  /** Problems that do not stop start-up (unknown BFF_* names), for the logger to report. */
  readonly warnings: readonly string[];
}

const bullets = (lines: readonly string[]): string => lines.map((p) => `  - ${p}`).join('\n');

/**
 * Thrown when the environment is not a usable configuration; lists every problem at once. The
 * process exits before a logger exists, so the warnings travel in the message too.
 */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  constructor(problems: string[], warnings: readonly string[] = []) {
    super(
      `invalid configuration:\n${bullets(problems)}` +
        (warnings.length ? `\nwarnings:\n${bullets(warnings)}` : ''),
    );
    this.name = 'ConfigError';
    this.problems = problems;
    this.warnings = warnings;
  }
}

/** The example files in config/ ship these; a deployment that still has one was never filled in. */
const PLACEHOLDERS = [/change-me-/i, /\b([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}\b/i];

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/;

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** The signing algorithm for a key that names none: the usual one for its type. */
function defaultAlg(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  return type === 'ec' ? 'ES256' : type === 'ed25519' ? 'EdDSA' : 'RS256';
}

/**
 * The one rule for BFF_CLIENT_PRIVATE_KEY: a JSON object is a private JWK, anything else must be a
 * PEM private key; either must load as a private key here, so a bad key stops start-up.
 */
function parsePrivateKey(raw: string): Extract<ClientAuth, { kind: 'private_key_jwt' }> | string {
  const trimmed = raw.trim();
  if (trimmed.startsWith('{')) {
    let jwk: JsonWebKey & { kid?: string; alg?: string };
    try {
      jwk = JSON.parse(trimmed) as typeof jwk;
    } catch {
      return 'must be a PEM private key or a private JWK';
    }
    if (typeof jwk.kty !== 'string' || typeof jwk.d !== 'string') {
      return 'must be a private JWK (with "kty" and "d")';
    }
    try {
      const alg = jwk.alg ?? defaultAlg(createPrivateKey({ key: jwk, format: 'jwk' }));
      return { kind: 'private_key_jwt', key: { format: 'jwk', jwk }, alg };
    } catch {
      return 'must be a private JWK (with "kty" and "d")';
    }
  }
  if (!(trimmed.startsWith('-----BEGIN') && trimmed.includes('PRIVATE KEY-----'))) {
    return 'must be a PEM private key or a private JWK';
  }
  try {
    const key = createPrivateKey(trimmed);
    const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
    return { kind: 'private_key_jwt', key: { format: 'pem', pem }, alg: defaultAlg(key) };
  } catch {
    return 'must be a PEM private key or a private JWK';
  }
}

const DEFAULT_IDLE_MS = 1_800_000;
const DEFAULT_CACHE_TTL_MS = 5000;
const secondsText = (ms: number): string => `${ms / 1000} s`;

/**
 * Settings that constrain each other. A default adapts to the settings it depends on, so only a value
 * the operator set can conflict, and then that value is the one named.
 */
function resolveTiming(e: {
  BFF_SESSION_ABSOLUTE_TIMEOUT: number;
  BFF_SESSION_IDLE_TIMEOUT: number | undefined;
  BFF_SESSION_CACHE_TTL: number | undefined;
}): { idleMs: number; cacheTtlMs: number; problems: string[] } {
  const problems: string[] = [];
  const absoluteMs = e.BFF_SESSION_ABSOLUTE_TIMEOUT;
  const idleMs = e.BFF_SESSION_IDLE_TIMEOUT ?? Math.min(DEFAULT_IDLE_MS, absoluteMs);
  if (idleMs > absoluteMs) {
    problems.push(
      `BFF_SESSION_IDLE_TIMEOUT: must not be longer than BFF_SESSION_ABSOLUTE_TIMEOUT (${secondsText(absoluteMs)})`,
    );
  }
  // A cache hit does not slide the idle timeout in Redis; a load at least once per cache TTL does.
  const cacheTtlMs = e.BFF_SESSION_CACHE_TTL ?? Math.min(DEFAULT_CACHE_TTL_MS, Math.floor(idleMs / 2));
  if (cacheTtlMs >= idleMs) {
    const idleFrom =
      e.BFF_SESSION_IDLE_TIMEOUT === undefined && absoluteMs < DEFAULT_IDLE_MS
        ? ', from BFF_SESSION_ABSOLUTE_TIMEOUT'
        : '';
    problems.push(
      `BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT (${secondsText(idleMs)}${idleFrom})`,
    );
  }
  return { idleMs, cacheTtlMs, problems };
}

const REDIS_TOPOLOGIES = [
  'BFF_REDIS_URL',
  'BFF_REDIS_SENTINEL_CONNECTION_URLS',
  'BFF_REDIS_CLUSTER_CONNECTION_URLS',
] as const;

const redisUrls = (value: string | undefined): URL[] =>
  (value ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .flatMap((u) => {
      try {
        return [new URL(u)];
      } catch {
        return [];
      }
    });

/** Exactly one topology, and the settings that only make sense with some of them. */
function redisTopologyProblems(env: Record<string, string>): string[] {
  const problems: string[] = [];
  const set = REDIS_TOPOLOGIES.filter((name) => env[name]);
  if (set.length === 0) {
    problems.push(
      `BFF_REDIS_URL: is required unless BFF_SESSION_STORE=memory; set exactly one of ${REDIS_TOPOLOGIES.join(', ')}`,
    );
  } else if (set.length > 1) {
    problems.push(`${set.join(', ')}: conflict; set exactly one of ${REDIS_TOPOLOGIES.join(', ')}`);
  }
  const sentinel = Boolean(env.BFF_REDIS_SENTINEL_CONNECTION_URLS);
  if (sentinel && !env.BFF_REDIS_SENTINEL_MASTER_NAME) {
    problems.push('BFF_REDIS_SENTINEL_MASTER_NAME: is required with BFF_REDIS_SENTINEL_CONNECTION_URLS');
  }
  if (!sentinel && env.BFF_REDIS_SENTINEL_MASTER_NAME) {
    problems.push('BFF_REDIS_SENTINEL_MASTER_NAME: applies only with BFF_REDIS_SENTINEL_CONNECTION_URLS');
  }
  // ioredis authenticates to every sentinel with one user and password.
  const sentinelCredentials = new Set(
    redisUrls(env.BFF_REDIS_SENTINEL_CONNECTION_URLS).map((u) => `${u.username}:${u.password}`),
  );
  if (sentinelCredentials.size > 1) {
    problems.push('BFF_REDIS_SENTINEL_CONNECTION_URLS: every sentinel URL must carry the same credentials');
  }
  if (redisUrls(env.BFF_REDIS_CLUSTER_CONNECTION_URLS).some((u) => u.username || u.password)) {
    problems.push(
      'BFF_REDIS_CLUSTER_CONNECTION_URLS: must not carry credentials; set BFF_REDIS_USERNAME and BFF_REDIS_PASSWORD',
    );
  }
  if (set.length === 1 && set[0] === 'BFF_REDIS_URL') {
    for (const name of ['BFF_REDIS_USERNAME', 'BFF_REDIS_PASSWORD'] as const) {
      if (env[name]) {
        problems.push(
          `${name}: applies to the Sentinel and Cluster topologies; with BFF_REDIS_URL put the credentials in the URL`,
        );
      }
    }
  }
  if (env.BFF_REDIS_CA_FILE) {
    const tls = REDIS_TOPOLOGIES.some((name) => redisUrls(env[name]).some((u) => u.protocol === 'rediss:'));
    if (!tls) problems.push('BFF_REDIS_CA_FILE: applies only to rediss:// URLs');
    else if (!existsSync(env.BFF_REDIS_CA_FILE)) problems.push('BFF_REDIS_CA_FILE: no such file');
  }
  return problems;
}

function redisStoreConfig(e: ReturnType<typeof envSchema.parse>): RedisStoreConfig {
  const common = {
    kind: 'redis',
    username: e.BFF_REDIS_USERNAME,
    password: e.BFF_REDIS_PASSWORD,
    caFile: e.BFF_REDIS_CA_FILE ? resolve(e.BFF_REDIS_CA_FILE) : undefined,
    keyPrefix: e.BFF_REDIS_KEY_PREFIX,
    waitTimeoutMs: e.BFF_REDIS_WAIT_TIMEOUT,
  } as const;
  if (e.BFF_REDIS_SENTINEL_CONNECTION_URLS) {
    return {
      ...common,
      topology: 'sentinel',
      sentinelUrls: e.BFF_REDIS_SENTINEL_CONNECTION_URLS,
      masterName: e.BFF_REDIS_SENTINEL_MASTER_NAME!,
    };
  }
  if (e.BFF_REDIS_CLUSTER_CONNECTION_URLS) {
    return { ...common, topology: 'cluster', clusterUrls: e.BFF_REDIS_CLUSTER_CONNECTION_URLS };
  }
  return { ...common, topology: 'standalone', url: e.BFF_REDIS_URL! };
}

/**
 * Validates the environment once. Only main.ts passes process.env here; tests pass plain objects.
 * Empty variables count as unset, so `FOO=` in an env file means "use the default".
 */
export function loadConfig(rawEnv: Record<string, string | undefined>): Config {
  const setEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(rawEnv)) {
    if (!k.startsWith('BFF_') || v === undefined) continue;
    if (v === '' && k !== 'BFF_AUTH_PARAMS') continue;
    setEnv[k] = v;
  }
  return configFromVariables(setEnv, { warnings: unknownNameWarnings(setEnv), nodeEnv: rawEnv.NODE_ENV });
}

/**
 * The one validation behind both adapters, the environment (loadConfig) and the options object
 * (options.ts): settings keyed by their variable names, in the environment's text form.
 */
export function configFromVariables(
  setEnv: Record<string, string>,
  context: { readonly warnings: readonly string[]; readonly nodeEnv: string | undefined },
): Config {
  // A profile's defaults first, so what it implies is validated like what was set.
  const profiled = applyProfile(setEnv);
  const env = profiled.env;
  const warnings = [...context.warnings, ...profiled.warnings];
  const problems: string[] = [...profiled.problems];
  for (const [name, value] of Object.entries(env)) {
    if (PLACEHOLDERS.some((p) => p.test(value))) {
      problems.push(`${name}: still has the placeholder from the example configuration; set your own value`);
    }
  }
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '(environment)');
      const missing = issue.code === 'invalid_type' && env[name] === undefined;
      problems.push(`${name}: ${missing ? 'is required' : issue.message}`);
    }
  }

  // Cross-variable rules: checked even when single variables failed, so every problem shows at once.
  const method = env.BFF_CLIENT_AUTH_METHOD ?? 'client_secret_basic';
  let privateKeyAuth: Extract<ClientAuth, { kind: 'private_key_jwt' }> | undefined;
  if (method !== 'private_key_jwt' && !env.BFF_CLIENT_SECRET) {
    problems.push(`BFF_CLIENT_SECRET: is required with BFF_CLIENT_AUTH_METHOD=${method}`);
  }
  if (method === 'private_key_jwt') {
    if (!env.BFF_CLIENT_PRIVATE_KEY) {
      const why = setEnv.BFF_CLIENT_AUTH_METHOD
        ? 'BFF_CLIENT_AUTH_METHOD=private_key_jwt'
        : 'BFF_PROFILE=fapi2';
      problems.push(`BFF_CLIENT_PRIVATE_KEY: is required with ${why}`);
    } else {
      const parsedKey = parsePrivateKey(env.BFF_CLIENT_PRIVATE_KEY);
      const profileKey =
        typeof parsedKey === 'string' ? parsedKey : fapi2ClientKey(setEnv.BFF_PROFILE as Profile, parsedKey);
      if (typeof profileKey === 'string') problems.push(`BFF_CLIENT_PRIVATE_KEY: ${profileKey}`);
      else privateKeyAuth = profileKey;
    }
  }
  if ((env.BFF_SESSION_STORE ?? 'redis') === 'redis') problems.push(...redisTopologyProblems(env));
  if (env.BFF_AUTH_PARAMS) {
    const reserved = [
      'response_type',
      'client_id',
      'redirect_uri',
      'scope',
      'state',
      'nonce',
      'code_challenge',
    ];
    for (const key of new URLSearchParams(env.BFF_AUTH_PARAMS).keys()) {
      if (reserved.includes(key) || key.startsWith('code_challenge')) {
        problems.push(`BFF_AUTH_PARAMS: "${key}" is set by coatcheck itself and cannot be overridden`);
      }
    }
  }

  // A dev server has no CSP and its own history of path-traversal bugs: never in front of users.
  if (env.BFF_SPA_DEV_SERVER && context.nodeEnv === 'production') {
    problems.push('BFF_SPA_DEV_SERVER: is for development and is refused when NODE_ENV=production');
  }
  if (env.BFF_STATIC_DIR && env.BFF_SPA_DEV_SERVER) {
    problems.push(
      'BFF_STATIC_DIR: cannot be combined with BFF_SPA_DEV_SERVER; serve a build or a dev server, not both',
    );
  } else if (env.BFF_STATIC_DIR && !existsSync(join(env.BFF_STATIC_DIR, 'index.html'))) {
    problems.push('BFF_STATIC_DIR: must be a directory containing index.html');
  }

  // Metrics on the public port would publish them to every client.
  const metricsPort = Number(env.BFF_METRICS_PORT);
  if (metricsPort > 0 && metricsPort === Number(env.BFF_PORT ?? 8080)) {
    problems.push('BFF_METRICS_PORT: must differ from BFF_PORT; metrics are never served on the public port');
  }

  if (problems.length > 0 || !parsed.success) throw new ConfigError([...new Set(problems)], warnings);
  const e = parsed.data;

  const timing = resolveTiming(e);
  if (timing.problems.length) throw new ConfigError(timing.problems, warnings);

  const publicUrl = e.BFF_PUBLIC_URL.replace(/\/+$/, '');
  const basePath = new URL(publicUrl).pathname.replace(/\/+$/, '');
  const issuerHost = new URL(e.BFF_ISSUER).host.replace(/:\d+$/, '');

  // No prompt by default: IdPs that honour prompt=consent would show a consent screen at every login.
  // OIDC Core §11 lets an IdP ignore offline_access without it; such an IdP gets it via BFF_AUTH_PARAMS.
  const authParams = Object.fromEntries(new URLSearchParams(e.BFF_AUTH_PARAMS ?? ''));

  return deepFreeze<Config>({
    port: e.BFF_PORT,
    host: e.BFF_HOST,
    publicUrl,
    basePath,
    redirectUri: `${publicUrl}${MANAGEMENT_PATHS.callback}`,
    postLogoutRedirectUri: e.BFF_POST_LOGOUT_REDIRECT_URI ?? `${publicUrl}/`,
    issuer: e.BFF_ISSUER,
    allowInsecureIssuer: new URL(e.BFF_ISSUER).protocol === 'http:' && LOOPBACK.test(issuerHost),
    client: {
      id: e.BFF_CLIENT_ID,
      auth:
        e.BFF_CLIENT_AUTH_METHOD === 'private_key_jwt'
          ? privateKeyAuth!
          : { kind: 'secret', method: e.BFF_CLIENT_AUTH_METHOD, secret: e.BFF_CLIENT_SECRET! },
    },
    scopes: e.BFF_SCOPES,
    authParams,
    allowedAcrValues: e.BFF_ALLOWED_ACR_VALUES,
    userinfo: e.BFF_USERINFO,
    par: e.BFF_PAR,
    loginResources: e.BFF_LOGIN_RESOURCES
      ? [...new Set(e.BFF_ROUTES.flatMap((r) => (r.resource === undefined ? [] : [r.resource])))]
      : [],
    dpop: e.BFF_DPOP ? { alg: e.BFF_DPOP_ALG } : undefined,
    profile: e.BFF_PROFILE,
    store: e.BFF_SESSION_STORE === 'memory' ? { kind: 'memory' } : redisStoreConfig(e),
    sessionSecrets: e.BFF_SESSION_SECRET,
    routes: e.BFF_ROUTES,
    trustProxy: e.BFF_TRUST_PROXY,
    idleTimeoutMs: timing.idleMs,
    absoluteTimeoutMs: e.BFF_SESSION_ABSOLUTE_TIMEOUT,
    refreshSkewMs: e.BFF_REFRESH_SKEW,
    refreshLockTtlMs: e.BFF_REFRESH_LOCK_TTL,
    sessionCacheTtlMs: timing.cacheTtlMs,
    upstreamTimeoutMs: e.BFF_UPSTREAM_TIMEOUT,
    maxBodySize: e.BFF_MAX_BODY_SIZE,
    headersTimeoutMs: e.BFF_HEADERS_TIMEOUT,
    staticDir: e.BFF_STATIC_DIR ? resolve(e.BFF_STATIC_DIR) : undefined,
    spaDevServer: e.BFF_SPA_DEV_SERVER?.replace(/\/+$/, ''),
    logLevel: e.BFF_LOG_LEVEL,
    metrics:
      e.BFF_METRICS_PORT === undefined
        ? undefined
        : { port: e.BFF_METRICS_PORT, host: e.BFF_METRICS_HOST ?? e.BFF_HOST },
    shutdownDelayMs: e.BFF_SHUTDOWN_DELAY,
    shutdownTimeoutMs: e.BFF_SHUTDOWN_TIMEOUT,
    warnings,
  });
}
