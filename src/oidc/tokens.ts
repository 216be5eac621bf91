import * as client from 'openid-client';
import { refreshTime, type TokenSet } from '../session/sessions.js';
import type { OidcClient } from './client.js';
import { mapOidcError } from './errors.js';

/** Used when the IdP does not say how long an access token lives: short, so a wrong guess heals quickly. */
const ASSUMED_LIFETIME_S = 300;

export function toTokenSet(
  response: client.TokenEndpointResponse,
  previous: TokenSet | undefined,
  now: number,
  skewMs: number,
): TokenSet {
  const lifetimeS = typeof response.expires_in === 'number' ? response.expires_in : ASSUMED_LIFETIME_S;
  const expiresAt = now + lifetimeS * 1000;
  const set: TokenSet = {
    accessToken: response.access_token,
    tokenType: response.token_type ?? 'bearer',
    expiresAt,
    refreshAt: refreshTime(now, expiresAt, skewMs),
    // An IdP that does not rotate answers a refresh without a new refresh token: keep the old one.
    refreshToken: response.refresh_token ?? previous?.refreshToken,
    idToken: response.id_token ?? previous?.idToken,
    scope: response.scope ?? previous?.scope,
  };
  return set;
}

export async function refreshTokens(
  oidc: OidcClient,
  previous: TokenSet,
  now: () => number,
): Promise<TokenSet> {
  try {
    const configuration = await oidc.configuration();
    const response = await client.refreshTokenGrant(configuration, previous.refreshToken!);
    return toTokenSet(response, previous, now(), oidc.settings.refreshSkewMs);
  } catch (err) {
    throw mapOidcError(err, 'refresh');
  }
}

/** RFC 7009. Best effort: a failure is logged and never blocks the logout it belongs to. */
export async function revokeRefreshToken(oidc: OidcClient, refreshToken: string): Promise<boolean> {
  try {
    const configuration = await oidc.configuration();
    if (!configuration.serverMetadata().revocation_endpoint) return false;
    await client.tokenRevocation(configuration, refreshToken, { token_type_hint: 'refresh_token' });
    return true;
  } catch (err) {
    oidc.log.warn({ err: { message: (err as Error).message } }, 'refresh token revocation failed');
    return false;
  }
}
