import type { DpopKeyJwk } from './dpop.js';

/** The tokens a session holds, as the OIDC layer obtained them. Stored sealed; never sent to the browser. */
export interface TokenSet {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Epoch ms at which the access token expires. */
  readonly expiresAt: number;
  /** Epoch ms from which a request refreshes the token before using it. */
  readonly refreshAt: number;
  readonly refreshToken?: string;
  /**
   * Epoch ms at which the refresh token expires, when the IdP said so (refresh_expires_in, or
   * refresh_token_expires_in): the session cannot outlive it.
   */
  readonly refreshExpiresAt?: number;
  readonly idToken?: string;
  readonly scope?: string;
  /** With BFF_DPOP: the session's private key, to which the IdP bound these tokens. */
  readonly dpopKey?: DpopKeyJwk;
}

/** When to refresh: `skew` before expiry, but never in the first half of a short-lived token's life. */
export function refreshTime(issuedAt: number, expiresAt: number, skewMs: number): number {
  const lifetime = Math.max(0, expiresAt - issuedAt);
  return issuedAt + Math.max(lifetime - skewMs, lifetime / 2);
}
