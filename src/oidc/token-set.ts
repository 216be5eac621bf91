import type { DpopKeyJwk } from './dpop.js';

/** One access token and when to renew it. */
export interface AccessToken {
  readonly accessToken: string;
  readonly tokenType: string;
  /** Epoch ms at which the access token expires. */
  readonly expiresAt: number;
  /** Epoch ms from which a request refreshes the token before using it. */
  readonly refreshAt: number;
  readonly scope?: string;
}

/**
 * The tokens a session holds, as the OIDC layer obtained them. Stored sealed, as one value, so every
 * token of a session is written at once with the one refresh token they share; never sent to the browser.
 * The top-level access token is the login's; routes with a token policy of their own use `routeTokens`.
 */
export interface TokenSet extends AccessToken {
  readonly refreshToken?: string;
  /**
   * Epoch ms at which the refresh token expires, when the IdP said so (refresh_expires_in, or
   * refresh_token_expires_in): the session cannot outlive it.
   */
  readonly refreshExpiresAt?: number;
  readonly idToken?: string;
  /** With BFF_DPOP: the session's private key, to which the IdP bound these tokens. */
  readonly dpopKey?: DpopKeyJwk;
  /** Access tokens obtained from the refresh token for routes' own (resource, scope, params), by `TokenTarget.key`. */
  readonly routeTokens?: Readonly<Record<string, AccessToken>>;
}

/** What a route asks the token endpoint for, beyond the login's token (RFC 8707 §2.2). */
export interface TokenTarget {
  /** Canonical: routes that ask for the same token share one, whatever order they list scopes or params in. */
  readonly key: string;
  readonly resource?: string;
  readonly scope?: string;
  readonly params: Readonly<Record<string, string>>;
}

/** The target a route's fields describe; undefined when the route uses the login's token. */
export function tokenTarget(route: {
  readonly resource?: string;
  readonly scope?: string;
  readonly tokenParams?: Readonly<Record<string, string>>;
}): TokenTarget | undefined {
  const params = route.tokenParams ?? {};
  if (route.resource === undefined && route.scope === undefined && Object.keys(params).length === 0) {
    return undefined;
  }
  const scope = route.scope?.split(' ').sort().join(' ');
  const sortedParams = Object.entries(params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    key: JSON.stringify([route.resource ?? null, scope ?? null, sortedParams]),
    ...(route.resource !== undefined ? { resource: route.resource } : {}),
    ...(scope !== undefined ? { scope } : {}),
    params: Object.fromEntries(sortedParams),
  };
}

/** The access token a target uses: the login's without one; undefined while the route has none yet. */
export function tokenFor(tokens: TokenSet, target: TokenTarget | undefined): AccessToken | undefined {
  return target ? tokens.routeTokens?.[target.key] : tokens;
}

/** When to refresh: `skew` before expiry, but never in the first half of a short-lived token's life. */
export function refreshTime(issuedAt: number, expiresAt: number, skewMs: number): number {
  const lifetime = Math.max(0, expiresAt - issuedAt);
  return issuedAt + Math.max(lifetime - skewMs, lifetime / 2);
}
