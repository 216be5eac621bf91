import * as client from 'openid-client';
import { BffError, type ErrorCode } from '../errors.js';

/** OAuth errors whose text is the IdP's own and safe to repeat to the browser. */
const SAFE_IDP_ERROR = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/;

function causeChain(err: Error): Error[] {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = e.cause) chain.push(e);
  return chain;
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
