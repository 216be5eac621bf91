import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import * as client from 'openid-client';
import { BffError } from '../errors.js';
import type { OidcClient } from './client.js';

/** OIDC RP-Initiated Logout; undefined when the IdP has no end_session_endpoint. */
export async function endSessionUrl(
  oidc: OidcClient,
  idTokenHint: string | undefined,
): Promise<URL | undefined> {
  const configuration = await oidc.configuration();
  if (!configuration.serverMetadata().end_session_endpoint) return undefined;
  const params: Record<string, string> = {
    post_logout_redirect_uri: oidc.settings.postLogoutRedirectUri,
    client_id: oidc.settings.client.id,
  };
  if (idTokenHint) params.id_token_hint = idTokenHint;
  return client.buildEndSessionUrl(configuration, params);
}

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** How long after its iat a logout token is accepted, and so how long its jti is remembered. */
const LOGOUT_TOKEN_MAX_AGE_S = 300;

export interface LogoutTokenClaims {
  readonly iss: string;
  readonly jti: string;
  readonly sid?: string;
  readonly sub?: string;
}

const jwksCache = new WeakMap<object, ReturnType<typeof createRemoteJWKSet>>();

/**
 * OIDC Back-Channel Logout 1.0 §2.6: signature against the IdP's JWKS, iss, aud, iat (and exp when
 * present), the events claim, no nonce, and a sid or sub. Replay (jti) is the caller's to check,
 * since it needs the shared store. Throws BffError('invalid_logout_token') on any failure.
 */
export async function verifyLogoutToken(oidc: OidcClient, token: string): Promise<LogoutTokenClaims> {
  const configuration = await oidc.configuration();
  const metadata = configuration.serverMetadata();
  if (!metadata.jwks_uri)
    throw new BffError('invalid_logout_token', { message: 'The IdP publishes no JWKS.' });
  let jwks = jwksCache.get(configuration);
  if (!jwks) {
    jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
    jwksCache.set(configuration, jwks);
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, jwks, {
      issuer: metadata.issuer,
      audience: oidc.settings.client.id,
      requiredClaims: ['iat', 'jti'],
      maxTokenAge: LOGOUT_TOKEN_MAX_AGE_S,
      clockTolerance: 30,
    }));
  } catch (err) {
    throw new BffError('invalid_logout_token', { cause: err });
  }
  const events = payload.events as Record<string, unknown> | undefined;
  const event = events?.[BACKCHANNEL_EVENT];
  const problem =
    !event || typeof event !== 'object'
      ? 'The logout token has no back-channel logout event.'
      : 'nonce' in payload
        ? 'A logout token must not contain a nonce.'
        : typeof payload.sid !== 'string' && typeof payload.sub !== 'string'
          ? 'The logout token names neither a sid nor a sub.'
          : undefined;
  if (problem) throw new BffError('invalid_logout_token', { message: problem });
  return {
    iss: payload.iss!,
    jti: payload.jti!,
    sid: typeof payload.sid === 'string' ? payload.sid : undefined,
    sub: typeof payload.sub === 'string' ? payload.sub : undefined,
  };
}

export const LOGOUT_TOKEN_REPLAY_WINDOW_MS = (LOGOUT_TOKEN_MAX_AGE_S + 60) * 1000;
