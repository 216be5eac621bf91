import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import type { OidcClient } from './client.js';
import { JwksUnavailableError } from './id-token.js';
import {
  InvalidTokenResponseError,
  UnverifiedRefreshError,
  describeIdpError,
  mapOidcError,
} from './errors.js';
import { captureTokenResponse, type CapturedTokenResponse } from './response-capture.js';
import { signerFor, type DpopKeyJwk } from './dpop.js';
import { refreshTime, type AccessToken, type TokenSet, type TokenTarget } from './token-set.js';

/** Used when the IdP does not say how long an access token lives: short, so a wrong guess heals quickly. */
const ASSUMED_LIFETIME_S = 300;

/** Refusals an IdP gives before it looks at the refresh token (client authentication, DPoP proof): the token is not spent. */
const BEFORE_THE_GRANT = new Set([
  'invalid_client',
  'unauthorized_client',
  'use_dpop_nonce',
  'invalid_dpop_proof',
]);

function accessTokenOf(
  response: client.TokenEndpointResponse,
  now: number,
  skewMs: number,
  previousScope: string | undefined,
): AccessToken {
  const lifetimeS = typeof response.expires_in === 'number' ? response.expires_in : ASSUMED_LIFETIME_S;
  const expiresAt = now + lifetimeS * 1000;
  const scope = response.scope ?? previousScope;
  return {
    accessToken: response.access_token,
    tokenType: response.token_type ?? 'bearer',
    expiresAt,
    refreshAt: refreshTime(now, expiresAt, skewMs),
    ...(scope !== undefined ? { scope } : {}),
  };
}

export function toTokenSet(
  response: client.TokenEndpointResponse,
  previous: TokenSet | undefined,
  now: number,
  skewMs: number,
): TokenSet {
  const set: TokenSet = {
    ...accessTokenOf(response, now, skewMs, previous?.scope),
    // An IdP that does not rotate answers a refresh without a new refresh token: keep the old one.
    refreshToken: response.refresh_token ?? previous?.refreshToken,
    ...refreshExpiry(response, previous, now),
    idToken: response.id_token ?? previous?.idToken,
    ...(previous?.dpopKey ? { dpopKey: previous.dpopKey } : {}),
    // Still valid, and obtained with the grant this refresh continues.
    ...(previous?.routeTokens ? { routeTokens: previous.routeTokens } : {}),
  };
  return set;
}

/** The whole set again, with the route's token replaced and the refresh token the same answer rotated. */
function withRouteToken(
  response: client.TokenEndpointResponse,
  previous: TokenSet,
  target: TokenTarget,
  now: number,
  skewMs: number,
): TokenSet {
  const token = accessTokenOf(response, now, skewMs, previous.routeTokens?.[target.key]?.scope);
  // The refresh token's end follows the refresh token: a rotated one brings its own (or none known).
  const { refreshExpiresAt: _previousEnd, ...kept } = previous;
  return {
    ...kept,
    ...refreshExpiry(response, previous, now),
    refreshToken: response.refresh_token ?? previous.refreshToken,
    idToken: response.id_token ?? previous.idToken,
    routeTokens: { ...previous.routeTokens, [target.key]: token },
  };
}

/** RFC 8707 §2.2 and RFC 6749 §6: what a refresh asks for beyond the login's token. */
function targetParameters(target: TokenTarget): Record<string, string> {
  return {
    ...target.params,
    ...(target.resource !== undefined ? { resource: target.resource } : {}),
    ...(target.scope !== undefined ? { scope: target.scope } : {}),
  };
}

/**
 * When the refresh token expires: Keycloak says refresh_expires_in, the refresh-token-expiration
 * draft says refresh_token_expires_in. Keycloak's 0 means "no fixed end" (offline tokens), so only a
 * positive lifetime counts. A new refresh token without a stated lifetime has an unknown one; a
 * response without a new refresh token leaves the kept one's as it was, unless it restates it.
 */
function refreshExpiry(
  response: client.TokenEndpointResponse,
  previous: TokenSet | undefined,
  now: number,
): { refreshExpiresAt?: number } {
  for (const name of ['refresh_expires_in', 'refresh_token_expires_in']) {
    const raw = response[name];
    const seconds = typeof raw === 'string' && /^\d{1,10}$/.test(raw) ? Number(raw) : raw;
    if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0) {
      return { refreshExpiresAt: now + seconds * 1000 };
    }
  }
  if (response.refresh_token || previous?.refreshExpiresAt === undefined) return {};
  return { refreshExpiresAt: previous.refreshExpiresAt };
}

/** OIDC Core 12.2: a refreshed ID token speaks of the same user, from the same issuer, as the first one. */
function assertSameSubject(previous: TokenSet, claims: client.IDToken): void {
  if (!previous.idToken) return;
  const original = decodeJwt(previous.idToken);
  for (const claim of ['iss', 'sub'] as const) {
    if (claims[claim] !== original[claim]) {
      throw new Error(`The refreshed ID token's "${claim}" differs from the original ID token's.`);
    }
  }
}

/**
 * The IdP answered, but its answer cannot be used. The refresh token it carried has already replaced
 * the old one, so the session cannot go on: that token is revoked and the session ends.
 */
async function refuseResponse(
  oidc: OidcClient,
  previous: TokenSet,
  captured: CapturedTokenResponse,
  cause: unknown,
): Promise<never> {
  const rotated = captured.refreshToken ?? previous.refreshToken;
  const revoked = rotated ? await revokeRefreshToken(oidc, rotated) : false;
  throw new InvalidTokenResponseError({ revoked, cause });
}

/**
 * The refresh-token grant, for the login's token or, with a target, for a route's own. A new ID token
 * in the answer has its signature verified and must name the original issuer and subject; when it
 * does not, the answer is refused (see refuseResponse). Either way the answer's refresh token
 * replaces the session's, for every token of it.
 */
export async function refreshTokens(
  oidc: OidcClient,
  previous: TokenSet,
  now: () => number,
  target?: TokenTarget,
): Promise<TokenSet> {
  const captured: CapturedTokenResponse = {};
  let response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
  try {
    const configuration = await oidc.configuration();
    response = await captureTokenResponse(captured, () =>
      oidc.timed('token', async () =>
        client.refreshTokenGrant(
          configuration,
          previous.refreshToken!,
          target && targetParameters(target),
          previous.dpopKey ? { DPoP: await dpopHandle(configuration, previous.dpopKey) } : undefined,
        ),
      ),
    );
    if (previous.dpopKey) assertDpopBound(response);
  } catch (err) {
    // A token response that the library refused, e.g. its ID token failed the claim or algorithm checks.
    if (captured.received && !(err instanceof client.ResponseBodyError)) {
      return refuseResponse(oidc, previous, captured, err);
    }
    // A route's parameters are new to the grant, and an IdP may rotate the refresh token before it
    // checks them (oidc-provider does): a refused request may have spent the token, and using it
    // again would be a replay. So the session ends, its refresh token revoked in case it still lives.
    if (
      target &&
      err instanceof client.ResponseBodyError &&
      err.status < 500 &&
      err.error !== 'invalid_grant' &&
      !BEFORE_THE_GRANT.has(err.error)
    ) {
      const revoked = await revokeRefreshToken(oidc, previous.refreshToken!);
      throw new InvalidTokenResponseError({ revoked, cause: err });
    }
    throw mapOidcError(err, 'refresh');
  }
  if (response.id_token) {
    try {
      await oidc.verifyIdToken(response.id_token);
      assertSameSubject(previous, response.claims()!);
    } catch (err) {
      if (err instanceof JwksUnavailableError) {
        const rotated = response.refresh_token ?? previous.refreshToken;
        // The login's token is due again at once; a route's was due already and stays so.
        const keep: TokenSet = target
          ? { ...previous, refreshToken: rotated }
          : { ...previous, refreshToken: rotated, refreshAt: now() };
        throw new UnverifiedRefreshError(keep, err);
      }
      return refuseResponse(oidc, previous, captured, err);
    }
  }
  return target
    ? withRouteToken(response, previous, target, now(), oidc.settings.refreshSkewMs)
    : toTokenSet(response, previous, now(), oidc.settings.refreshSkewMs);
}

/** openid-client's DPoP handle for a session's key: it signs the proofs and retries once on use_dpop_nonce. */
export async function dpopHandle(
  configuration: client.Configuration,
  jwk: DpopKeyJwk,
): Promise<client.DPoPHandle> {
  return client.getDPoPHandle(configuration, await signerFor(jwk).keyPair());
}

/** A DPoP session must not quietly fall back to bearer tokens: a token the IdP did not bind is refused. */
export function assertDpopBound(response: client.TokenEndpointResponse): void {
  if (response.token_type?.toLowerCase() !== 'dpop') {
    throw new Error(`The IdP answered a DPoP token request with token_type "${response.token_type}".`);
  }
}

/** RFC 7009. Best effort: a failure is logged and never blocks the logout it belongs to. */
export async function revokeRefreshToken(oidc: OidcClient, refreshToken: string): Promise<boolean> {
  try {
    const configuration = await oidc.configuration();
    if (!configuration.serverMetadata().revocation_endpoint) return false;
    await oidc.timed('revocation', () =>
      client.tokenRevocation(configuration, refreshToken, { token_type_hint: 'refresh_token' }),
    );
    return true;
  } catch (err) {
    oidc.log.warn({ idp: describeIdpError(err) }, 'refresh token revocation failed');
    return false;
  }
}
