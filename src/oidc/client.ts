import { createPrivateKey } from 'node:crypto';
import * as client from 'openid-client';
import { importJWK, importPKCS8, type JSONWebKeySet, type JWK } from 'jose';
import { BffError } from '../errors.js';
import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import { describeIdpError, mapOidcError } from './errors.js';
import { createIdTokenVerifier, signingAlgorithms, type IdTokenVerifier } from './id-token.js';
import { capturingFetch } from './response-capture.js';

/** How long a failed discovery is remembered before the next request may try again. */
const RETRY_DISCOVERY_MS = 2000;
const IDP_TIMEOUT_S = 10;
/** Shown while discovery has never worked: a deployment fault the user cannot fix, so it points at the log. */
const NEVER_REACHED =
  'coatcheck cannot reach its identity provider. If you operate this service, its log names the cause.';

export interface OidcClient {
  readonly settings: Config;
  readonly log: Logger;
  /** The discovered configuration; discovers on first use and again after a failure, so an IdP outage at boot heals. */
  configuration(): Promise<client.Configuration>;
  /** For /readyz: is the IdP's metadata reachable right now? */
  metadataReachable(): Promise<boolean>;
  /**
   * Verifies an ID token's JWS signature against the IdP's JWKS. openid-client skips this for
   * tokens from the token endpoint, and its key cache refuses a rotated key for a while.
   */
  verifyIdToken(idToken: string): Promise<void>;
}

export function discoveryUrl(issuer: string): URL {
  const url = new URL(issuer);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
  return url;
}

async function fetchJwks(uri: URL, allowInsecure: boolean): Promise<JSONWebKeySet> {
  if (uri.protocol !== 'https:' && !(allowInsecure && uri.protocol === 'http:')) {
    throw new Error(`The IdP's jwks_uri must use https: ${uri.href}`);
  }
  const res = await fetch(uri, {
    headers: { accept: 'application/json' },
    signal: AbortSignal.timeout(IDP_TIMEOUT_S * 1000),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw Object.assign(new Error(`The IdP's JWKS endpoint answered HTTP ${res.status}`), {
      status: res.status,
    });
  }
  const jwks = (await res.json()) as JSONWebKeySet;
  if (!jwks || !Array.isArray(jwks.keys)) throw new Error("The IdP's JWKS has no keys array.");
  return jwks;
}

async function clientAuth(cfg: Config): Promise<client.ClientAuth> {
  const { authMethod, secret, privateKey } = cfg.client;
  if (authMethod === 'client_secret_post') return client.ClientSecretPost(secret);
  if (authMethod === 'client_secret_basic') return client.ClientSecretBasic(secret);
  const raw = privateKey!.trim();
  if (raw.startsWith('{')) {
    const jwk = JSON.parse(raw) as JWK;
    const alg = jwk.alg ?? (jwk.kty === 'EC' ? 'ES256' : jwk.kty === 'OKP' ? 'EdDSA' : 'RS256');
    const key = (await importJWK(jwk, alg)) as client.CryptoKey;
    return client.PrivateKeyJwt(jwk.kid ? { key, kid: jwk.kid } : key);
  }
  const keyObject = createPrivateKey(raw);
  const type = keyObject.asymmetricKeyType;
  const alg = type === 'ec' ? 'ES256' : type === 'ed25519' ? 'EdDSA' : 'RS256';
  const pkcs8 = keyObject.export({ format: 'pem', type: 'pkcs8' }).toString();
  return client.PrivateKeyJwt(await importPKCS8(pkcs8, alg));
}

export function createOidcClient(cfg: Config, log: Logger): OidcClient {
  let pending: Promise<client.Configuration> | undefined;
  let failedAt = 0;
  let lastFailure: unknown;
  let discovered = false;
  let verifier: IdTokenVerifier | undefined;

  async function discover(): Promise<client.Configuration> {
    const auth = await clientAuth(cfg);
    const metadata: Partial<client.ClientMetadata> = cfg.client.secret
      ? { client_secret: cfg.client.secret }
      : {};
    const configuration = await client.discovery(new URL(cfg.issuer), cfg.client.id, metadata, auth, {
      execute: cfg.allowInsecureIssuer ? [client.allowInsecureRequests] : [],
      timeout: IDP_TIMEOUT_S,
    });
    configuration.timeout = IDP_TIMEOUT_S;
    configuration[client.customFetch] = (url, options) => capturingFetch(url, options as RequestInit);
    const server = configuration.serverMetadata();
    verifier = server.jwks_uri
      ? createIdTokenVerifier({
          jwksUri: new URL(server.jwks_uri),
          algorithms: signingAlgorithms(
            server.id_token_signing_alg_values_supported,
            configuration.clientMetadata().id_token_signed_response_alg,
          ),
          fetchJwks: (uri) => fetchJwks(uri, cfg.allowInsecureIssuer),
        })
      : undefined;
    discovered = true;
    log.info({ issuer: cfg.issuer }, 'identity provider metadata loaded');
    return configuration;
  }

  function discoveryError(err: unknown): BffError {
    if (!discovered) return new BffError('idp_unavailable', { message: NEVER_REACHED, cause: err });
    return mapOidcError(err, 'other');
  }

  const oidc: OidcClient = {
    settings: cfg,
    log,
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
    async metadataReachable() {
      const url = discoveryUrl(cfg.issuer);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    },
  };
  return oidc;
}
