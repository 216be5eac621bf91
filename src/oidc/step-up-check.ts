/**
 * What a login asked of the IdP beyond a sign-in (RFC 9470 step-up): acr values and a maximum
 * authentication age. OIDC makes acr_values a voluntary request, so an IdP may answer with a weaker
 * login, and one may ignore max_age; the ID token says what it did, and that is what is checked.
 */
export interface StepUpRequest {
  /** Space-separated, as sent in acr_values. */
  readonly acrValues?: string;
  /** Seconds, as sent in max_age. */
  readonly maxAge?: number;
  /** Epoch ms at which the login was started: the authentication must not be older than maxAge before it. */
  readonly startedAt: number;
}

/**
 * Clocks of coatcheck and the IdP differ a little. The IdP enforces max_age itself; this check is
 * for one that ignored it, so a small allowance costs nothing real.
 */
const AUTH_TIME_TOLERANCE_S = 30;

/** Why the ID token does not deliver what the login asked, in words for the log; undefined when it does. */
export function unmetStepUp(claims: Record<string, unknown>, asked: StepUpRequest): string | undefined {
  if (asked.acrValues !== undefined) {
    const wanted = asked.acrValues.split(' ').filter(Boolean);
    if (typeof claims.acr !== 'string') return 'the ID token has no acr';
    if (!wanted.includes(claims.acr)) return 'the ID token’s acr is not one of those asked for';
  }
  if (asked.maxAge !== undefined) {
    const authTime = claims.auth_time;
    if (typeof authTime !== 'number' || !Number.isFinite(authTime)) return 'the ID token has no auth_time';
    if (authTime + asked.maxAge + AUTH_TIME_TOLERANCE_S < asked.startedAt / 1000) {
      return 'the ID token’s auth_time is older than max_age allows';
    }
  }
  return undefined;
}
