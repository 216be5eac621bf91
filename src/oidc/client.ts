import * as client from 'openid-client';
import { importJWK, importPKCS8, type JSONWebKeySet, type JWK } from 'jose';
import { BffError } from '../errors.js';
import type { ClientAuth, Config, ParMode } from '../config/load.js';
import type { Logger } from '../log.js';
import type { IdpEndpoint, Metrics } from '../metrics.js';
import { NOOP_TRACER, type Tracer } from '../tracing/tracer.js';
import { describeIdpError, mapOidcError } from './errors.js';
import { fapi2IdpProblems, idTokenAlgorithms } from './fapi.js';
import { createIdTokenVerifier, signingAlgorithms, type IdTokenVerifier } from './id-token.js';
import { capturingFetch } from './response-capture.js';

/** How long a failed discovery is remembered before the next request may try again. */
const RETRY_DISCOVERY_MS = 2000;
/** How long a failed reachability check stands before login checks again. */
const RECHECK_UNREACHABLE_MS = 2000;
const IDP_TIMEOUT_S = 10;
/** Shown while discovery has never worked: a deployment fault the user cannot fix, so it points at the log. */
const NO_PAR_ENDPOINT =
  "BFF_PAR=required, but the identity provider's metadata has no pushed_authorization_request_endpoint; logins answer 503 until it has one";
const NEVER_REACHED =
  'coatcheck cannot reach its identity provider. If you operate this service, its log names the cause.';

/** What the OIDC layer needs from the configuration, and nothing else: no session secrets, no routes. */
export interface OidcSettings {
  readonly issuer: string;
  /** Plain-http discovery and JWKS, for a loopback issuer only. */
  readonly allowInsecureIssuer: boolean;
  readonly client: { readonly id: string; readonly auth: ClientAuth };
  readonly redirectUri: string;
  readonly postLogoutRedirectUri: string;
  readonly scopes: readonly string[];
  readonly authParams: Readonly<Record<string, string>>;
  readonly userinfo: boolean;
  readonly refreshSkewMs: number;
  readonly par: ParMode;
  readonly loginResources: Config['loginResources'];
  readonly dpop: Config['dpop'];
  readonly profile: Config['profile'];
}

/** Picks the OIDC settings out of a validated config; the config is deep-frozen, so is this. */
export function oidcSettings(config: Config): OidcSettings {
  return Object.freeze({
    issuer: config.issuer,
    allowInsecureIssuer: config.allowInsecureIssuer,
    client: config.client,
    redirectUri: config.redirectUri,
    postLogoutRedirectUri: config.postLogoutRedirectUri,
    scopes: config.scopes,
    authParams: config.authParams,
    userinfo: config.userinfo,
    refreshSkewMs: config.refreshSkewMs,
    par: config.par,
    loginResources: config.loginResources,
    dpop: config.dpop,
    profile: config.profile,
  });
}

export interface OidcClient {
  readonly settings: OidcSettings;
  readonly log: Logger;
  /** The discovered configuration; discovers on first use and again after a failure, so an IdP outage at boot heals. */
  configuration(): Promise<client.Configuration>;
  /** For /readyz: is the IdP's metadata reachable right now? The answer is remembered for login. */
  metadataReachable(): Promise<boolean>;
  /** Has the metadata been loaded (discovery succeeded) at least once? */
  metadataLoaded(): boolean;
  /**
   * Why this IdP cannot serve this configuration although it answers, or undefined: with
   * BFF_PAR=required, metadata without a PAR endpoint; with BFF_PROFILE=fapi2, metadata without
   * RFC 9207 iss support or a FAPI 2.0 ID token algorithm. Login and /readyz answer 503 meanwhile.
   */
  unsuitable(): string | undefined;
  /**
   * For login: did the last reachability check find the IdP down? Nothing is checked while the IdP
   * was last seen up; once it was seen down, a stale answer is checked again, so login heals on its own.
   */
  knownUnreachable(): Promise<boolean>;
  /**
   * Verifies an ID token's JWS signature against the IdP's JWKS. openid-client skips this for
   * tokens from the token endpoint, and its key cache refuses a rotated key for a while.
   */
  verifyIdToken(idToken: string): Promise<void>;
  /** Runs one call to the IdP, timed under its endpoint's name. */
  timed<T>(endpoint: IdpEndpoint, call: () => Promise<T>): Promise<T>;
}

export function discoveryUrl(issuer: string): URL {
  const url = new URL(issuer);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
  return url;
}

/** Real key sets are a few KB; the cap keeps a misbehaving endpoint from filling memory. */
const MAX_JWKS_BYTES = 512 * 1024;

async function readCapped(res: Response, max: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  for (let next = await reader?.read(); next && !next.done; next = await reader!.read()) {
    size += next.value.byteLength;
    if (size > max) {
      await reader!.cancel();
      throw new Error(`The IdP's JWKS is larger than ${max} bytes.`);
    }
    chunks.push(next.value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function fetchJwks(uri: URL, allowInsecure: boolean): Promise<JSONWebKeySet> {
  if (uri.protocol !== 'https:' && !(allowInsecure && uri.protocol === 'http:')) {
    throw new Error(`The IdP's jwks_uri must use https: ${uri.href}`);
  }
  // No redirects: one could lead from https to http, or to a host the discovery document never named.
  const res = await fetch(uri, {
    headers: { accept: 'application/json' },
    redirect: 'error',
    signal: AbortSignal.timeout(IDP_TIMEOUT_S * 1000),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw Object.assign(new Error(`The IdP's JWKS endpoint answered HTTP ${res.status}`), {
      status: res.status,
    });
  }
  const body = await readCapped(res, MAX_JWKS_BYTES);
  const jwks = JSON.parse(body) as JSONWebKeySet;
  if (!jwks || !Array.isArray(jwks.keys)) throw new Error("The IdP's JWKS has no keys array.");
  return jwks;
}

async function clientAuth(auth: ClientAuth): Promise<client.ClientAuth> {
  if (auth.kind === 'secret') {
    return auth.method === 'client_secret_post'
      ? client.ClientSecretPost(auth.secret)
      : client.ClientSecretBasic(auth.secret);
  }
  if (auth.key.format === 'pem') return client.PrivateKeyJwt(await importPKCS8(auth.key.pem, auth.alg));
  const { jwk } = auth.key;
  const key = (await importJWK(jwk as JWK, auth.alg)) as client.CryptoKey;
  return client.PrivateKeyJwt(jwk.kid ? { key, kid: jwk.kid } : key);
}

export function createOidcClient(
  cfg: OidcSettings,
  log: Logger,
  metrics?: Metrics,
  tracer: Tracer = NOOP_TRACER,
): OidcClient {
  const timed = <T>(endpoint: IdpEndpoint, call: () => Promise<T>): Promise<T> =>
    tracer.run(`idp ${endpoint}`, () => (metrics ? metrics.idp(endpoint, call) : call()), 'client');
  let pending: Promise<client.Configuration> | undefined;
  let failedAt = 0;
  let lastFailure: unknown;
  let discovered = false;
  let verifier: IdTokenVerifier | undefined;
  let problem: string | undefined;
  let reachability: { ok: boolean; at: number } | undefined;
  let probing: Promise<boolean> | undefined;

  async function probe(): Promise<boolean> {
    let ok: boolean;
    try {
      const res = await fetch(discoveryUrl(cfg.issuer), { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      ok = res.ok;
    } catch {
      ok = false;
    }
    if (reachability && reachability.ok !== ok) {
      if (ok) log.info({ issuer: cfg.issuer }, 'identity provider reachable again');
      else log.warn({ issuer: cfg.issuer }, 'identity provider unreachable; login answers 503 meanwhile');
    }
    reachability = { ok, at: Date.now() };
    return ok;
  }

  async function discover(): Promise<client.Configuration> {
    const auth = await clientAuth(cfg.client.auth);
    // ID tokens signed with the secret (HS*) are refused anyway, so only the secret methods carry it.
    const metadata: Partial<client.ClientMetadata> =
      cfg.client.auth.kind === 'secret' ? { client_secret: cfg.client.auth.secret } : {};
    const configuration = await timed('discovery', () =>
      client.discovery(new URL(cfg.issuer), cfg.client.id, metadata, auth, {
        execute: cfg.allowInsecureIssuer ? [client.allowInsecureRequests] : [],
        timeout: IDP_TIMEOUT_S,
      }),
    );
    configuration.timeout = IDP_TIMEOUT_S;
    configuration[client.customFetch] = (url, options) => capturingFetch(url, options as RequestInit);
    const server = configuration.serverMetadata();
    const algorithms = idTokenAlgorithms(
      cfg.profile,
      signingAlgorithms(
        server.id_token_signing_alg_values_supported,
        configuration.clientMetadata().id_token_signed_response_alg,
      ),
    );
    verifier = server.jwks_uri
      ? createIdTokenVerifier({
          jwksUri: new URL(server.jwks_uri),
          algorithms,
          fetchJwks: (uri) => timed('jwks', () => fetchJwks(uri, cfg.allowInsecureIssuer)),
        })
      : undefined;
    discovered = true;
    log.info({ issuer: cfg.issuer }, 'identity provider metadata loaded');
    const problems = [
      ...(cfg.par === 'required' && !server.pushed_authorization_request_endpoint ? [NO_PAR_ENDPOINT] : []),
      ...(cfg.profile === 'fapi2' ? fapi2IdpProblems(server, algorithms) : []),
    ];
    for (const p of problems) log.error({ issuer: cfg.issuer }, p);
    problem = problems.length ? problems.join('; ') : undefined;
    return configuration;
  }

  function discoveryError(err: unknown): BffError {
    if (!discovered) return new BffError('idp_unavailable', { message: NEVER_REACHED, cause: err });
    return mapOidcError(err, 'other');
  }

  const oidc: OidcClient = {
    settings: cfg,
    log,
    timed,
    configuration() {
      if (!pending) {
        if (Date.now() - failedAt < RETRY_DISCOVERY_MS) return Promise.reject(discoveryError(lastFailure));
        pending = discover().catch((err: unknown) => {
          pending = undefined;
          failedAt = Date.now();
          lastFailure = err;
          log.warn(
            { discoveryUrl: discoveryUrl(cfg.issuer).href, idp: describeIdpError(err) },
            'identity provider discovery failed',
          );
          throw discoveryError(err);
        });
      }
      return pending;
    },
    async verifyIdToken(idToken) {
      await oidc.configuration();
      if (!verifier)
        throw new Error('The IdP publishes no jwks_uri, so ID token signatures cannot be verified.');
      await verifier(idToken);
    },
    metadataReachable() {
      probing ??= probe().finally(() => (probing = undefined));
      return probing;
    },
    metadataLoaded: () => discovered,
    unsuitable: () => problem,
    async knownUnreachable() {
      if (!reachability || reachability.ok) return false;
      if (Date.now() - reachability.at < RECHECK_UNREACHABLE_MS) return true;
      return !(await oidc.metadataReachable());
    },
  };
  return oidc;
}
