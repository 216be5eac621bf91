import * as client from 'openid-client';
import { BffError, type ErrorCode } from '../errors.js';
import type { TokenSet } from './token-set.js';

/** OAuth errors whose text is the IdP's own and safe to repeat to the browser. */
const SAFE_IDP_ERROR = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/;

function causeChain(err: Error): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  return chain;
}

/**
 * A refresh response that arrived but must not be used (an ID token that fails verification, or
 * names another issuer or subject). The refresh token was already rotated, so the session ends.
 */
export class InvalidTokenResponseError extends BffError {
  /** Whether the refresh token that came with the response was revoked at the IdP. */
  readonly revoked: boolean;

  constructor(options: { revoked: boolean; cause: unknown }) {
    super('session_expired', { cause: options.cause });
    this.revoked = options.revoked;
  }
}

/**
 * A refresh answer whose ID token could not be checked because the IdP's keys could not be fetched.
 * The refresh token in it has already replaced the old one, so `keep` holds it (with the previous
 * access and ID token, due for refresh at once) for the session to store; the request gets a 503.
 */
export class UnverifiedRefreshError extends BffError {
  readonly keep: TokenSet;

  constructor(keep: TokenSet, cause: unknown) {
    super('idp_unavailable', { cause });
    this.keep = keep;
  }
}

export interface IdpErrorDetails {
  /** The OAuth `error` code, e.g. invalid_client. */
  error?: string;
  error_description?: string;
  /** HTTP status of the IdP's answer. */
  status?: number;
  /** The error codes down the cause chain, outermost first, e.g. OAUTH_RESPONSE_IS_NOT_JSON, ECONNREFUSED, CERT_HAS_EXPIRED. */
  code?: string;
  /** The messages down the cause chain, outermost first: "fetch failed < connect ECONNREFUSED …". */
  message?: string;
}

/** IdP-chosen text is logged, so it is cut short and stripped of anything but printable ASCII. */
const printable = (value: unknown, max = 200): string | undefined =>
  typeof value === 'string' ? value.replace(/[^\x20-\x7e]/g, '?').slice(0, max) : undefined;

/**
 * What an operator needs to act on an IdP failure, and nothing more: the OAuth error, its
 * description, the HTTP status and the underlying error codes. Library errors carry whole response
 * bodies and tokens, so fields are picked one by one rather than logging the error.
 */
export function describeIdpError(err: unknown): IdpErrorDetails {
  const details: IdpErrorDetails = {};
  const codes: string[] = [];
  const messages: string[] = [];
  let e: unknown = err instanceof BffError && err.cause ? err.cause : err;
  // Duck-typed, not instanceof: fetch's errors come from Node's own realm, not always this one.
  for (let depth = 0; depth < 6 && typeof e === 'object' && e !== null; depth++) {
    if (isResponse(e)) {
      details.status ??= e.status;
      break;
    }
    if (Array.isArray(e)) {
      // WWW-Authenticate challenges: the OAuth error of a 401 travels in their parameters.
      const parameters = (e[0] as { parameters?: Record<string, unknown> } | undefined)?.parameters;
      details.error ??= printable(parameters?.error, 100);
      details.error_description ??= printable(parameters?.error_description);
      break;
    }
    const fields = e as { status?: unknown; error?: unknown; error_description?: unknown; code?: unknown };
    if (typeof fields.status === 'number') details.status ??= fields.status;
    if (e instanceof client.ResponseBodyError || e instanceof client.AuthorizationResponseError) {
      details.error ??= printable(fields.error, 100);
      details.error_description ??= printable(fields.error_description);
    }
    if (typeof fields.code === 'string' && !codes.includes(fields.code)) codes.push(fields.code);
    const message = printable((e as { message?: unknown }).message);
    if (message && !messages.includes(message)) messages.push(message);
    e = (e as { cause?: unknown }).cause;
  }
  if (codes.length > 0) details.code = codes.join(' < ');
  if (messages.length > 0) details.message = messages.join(' < ');
  return details;
}

function isResponse(value: object): value is Response {
  return (
    typeof (value as Response).status === 'number' && typeof (value as Response).headers?.get === 'function'
  );
}

function isNetworkFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return true;
  if (err instanceof TypeError && /fetch failed/i.test(err.message)) return true;
  return isNetworkFailure(err.cause);
}

/**
 * The one place that turns openid-client/oauth4webapi errors into coatcheck errors. `context`
 * names what was being attempted, because the same library error means different things there:
 * invalid_grant on a code exchange is a bad login; on a refresh it ends the session.
 */
export function mapOidcError(err: unknown, context: 'login' | 'refresh' | 'other'): BffError {
  if (err instanceof BffError) return err;
  if (isNetworkFailure(err)) return new BffError('idp_unavailable', { cause: err });

  if (err instanceof client.AuthorizationResponseError) {
    const code = SAFE_IDP_ERROR.test(err.error) ? err.error : 'error';
    return new BffError('login_failed', {
      message: `The identity provider refused the login: ${code}.`,
      cause: err,
    });
  }

  if (err instanceof client.ResponseBodyError) {
    if (err.status >= 500) return new BffError('idp_unavailable', { cause: err });
    if (err.error === 'invalid_grant') {
      return new BffError(context === 'refresh' ? 'session_expired' : 'code_exchange_failed', { cause: err });
    }
    // invalid_client and the like are deployment faults, not the user's: keep the session, say the IdP is unusable.
    return new BffError(context === 'login' ? 'code_exchange_failed' : 'idp_unavailable', { cause: err });
  }

  if (err instanceof Error) {
    // openid-client wraps oauth4webapi's precise error ("unexpected iss…") in a generic one: read the chain.
    const message = causeChain(err)
      .map((e) => e.message)
      .join(' | ');
    const codeOf = (err as { code?: string }).code;
    if (/"iss" \(issuer\)/.test(message)) return new BffError('issuer_mismatch', { cause: err });
    if (/"state"/.test(message)) return new BffError('login_state_invalid', { cause: err });
    if (codeOf === 'OAUTH_RESPONSE_IS_NOT_JSON' || codeOf === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
      return new BffError('idp_unavailable', { cause: err });
    }
    const fallback: ErrorCode = context === 'login' ? 'code_exchange_failed' : 'idp_unavailable';
    return new BffError(fallback, { cause: err });
  }
  return new BffError('internal_error', { cause: err });
}
