import { MANAGEMENT_PATHS } from './http/management-paths.js';

/**
 * Every error coatcheck shows a client, in one place. The code is the stable, documented part of
 * the contract; the message is safe to show; a cause is for the log only.
 */
export const ERRORS = {
  invalid_request: { status: 400, message: 'The request is malformed.' },
  invalid_return_url: { status: 400, message: 'returnTo must be a same-origin relative path such as /app.' },
  login_state_invalid: {
    status: 400,
    message: 'The login response does not match a login started in this browser, or was already used.',
  },
  login_failed: { status: 400, message: 'The identity provider refused the login.' },
  issuer_mismatch: { status: 400, message: 'The login response came from an unexpected issuer.' },
  code_exchange_failed: { status: 400, message: 'The authorization code could not be exchanged.' },
  logout_sid_mismatch: { status: 400, message: 'The logout request does not carry this session’s sid.' },
  invalid_path: { status: 400, message: 'The request path is not allowed.' },
  invalid_logout_token: { status: 400, message: 'The logout token is invalid.' },
  step_up_failed: {
    status: 400,
    message: 'The identity provider did not sign you in as strongly or as recently as was asked.',
  },
  unauthenticated: { status: 401, message: `No valid session. Log in at ${MANAGEMENT_PATHS.login}.` },
  session_expired: { status: 401, message: 'The session has ended. Log in again.' },
  step_up_required: {
    status: 401,
    message: 'The API asks for a stronger or more recent sign-in. Sign in again at loginUrl.',
  },
  csrf_header_missing: { status: 403, message: 'This endpoint requires the header X-CSRF: 1.' },
  origin_not_allowed: { status: 403, message: 'A WebSocket must be opened from this app’s own origin.' },
  not_found: { status: 404, message: 'Not found.' },
  method_not_allowed: {
    status: 405,
    message: 'API routes accept GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS.',
  },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  too_many_sockets: {
    status: 429,
    message: 'This session has as many WebSockets open as it may have. Close one before opening another.',
  },
  internal_error: { status: 500, message: 'Something went wrong in coatcheck.' },
  upstream_unreachable: { status: 502, message: 'The API could not be reached.' },
  idp_unavailable: { status: 503, message: 'The identity provider is unavailable. Try again shortly.' },
  store_unavailable: { status: 503, message: 'The session store is unavailable. Try again shortly.' },
  upstream_timeout: { status: 504, message: 'The API did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class BffError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  /** `message` overrides the default text and is shown to the client, so it must never hold a secret. */
  constructor(code: ErrorCode, options: { message?: string; cause?: unknown } = {}) {
    super(options.message ?? ERRORS[code].message, { cause: options.cause });
    this.name = 'BffError';
    this.code = code;
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: ErrorCode; message: string } {
    return { error: this.code, message: this.message };
  }
}
