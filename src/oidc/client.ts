import { createPrivateKey } from 'node:crypto';
import * as client from 'openid-client';
import { importJWK, importPKCS8, type JWK } from 'jose';
import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import { mapOidcError } from './errors.js';

/** How long a failed discovery is remembered before the next request may try again. */
const RETRY_DISCOVERY_MS = 2000;
const IDP_TIMEOUT_S = 10;

export interface OidcClient {
  readonly settings: Config;
  readonly log: Logger;
  /** The discovered configuration; discovers on first use and again after a failure, so an IdP outage at boot heals. */
  configuration(): Promise<client.Configuration>;
  /** For /readyz: is the IdP's metadata reachable right now? */
  metadataReachable(): Promise<boolean>;
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
    log.info({ issuer: cfg.issuer }, 'identity provider metadata loaded');
    return configuration;
  }

  return {
    settings: cfg,
    log,
    configuration() {
      if (!pending) {
        if (Date.now() - failedAt < RETRY_DISCOVERY_MS)
          return Promise.reject(mapOidcError(lastFailure, 'other'));
        pending = discover().catch((err: unknown) => {
          pending = undefined;
          failedAt = Date.now();
          lastFailure = err;
          log.warn({ err: { message: (err as Error).message } }, 'identity provider discovery failed');
          throw mapOidcError(err, 'other');
        });
      }
      return pending;
    },
    async metadataReachable() {
      const url = new URL(cfg.issuer);
      url.pathname = `${url.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    },
  };
}
