import fc from 'fast-check';
import * as client from 'openid-client';
import { BffError, ERRORS, type ErrorCode } from '../src/errors.js';
import { mapOidcError } from '../src/oidc/errors.js';

type Context = 'login' | 'refresh' | 'other';
const context = fc.constantFrom<Context>('login', 'refresh', 'other');

/** A description the IdP chose, marked so that any echo of it is unmistakable. */
const description = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `DESCRIPTION-${s}`);
const oauthError = fc.oneof(
  fc.constantFrom(
    'invalid_grant',
    'invalid_client',
    'invalid_request',
    'unauthorized_client',
    'access_denied',
    'server_error',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

/** An error answer from the token endpoint, as openid-client raises it. */
const tokenEndpointError = fc
  .record({ error: oauthError, error_description: description, status: fc.integer({ min: 400, max: 599 }) })
  .map(
    ({ error, error_description, status }) =>
      new client.ResponseBodyError('server responded with an error in the response body', {
        cause: { error, error_description },
        response: new Response(null, { status }),
      }),
  );

/** An error= on the callback, as openid-client raises it. */
const authorizationError = fc.record({ error: oauthError, error_description: description }).map(
  (params) =>
    new client.AuthorizationResponseError('authorization response from the server is an error', {
      cause: new URLSearchParams(params),
    }),
);

/** The ways fetch reports that the IdP could not be reached, possibly wrapped by the library. */
const networkFailure = fc
  .tuple(
    fc.constantFrom(
      () =>
        new TypeError('fetch failed', {
          cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
        }),
      // fetch raises DOMExceptions, which are Errors in Node; built here in the test's own realm.
      () => Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }),
      () => Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }),
    ),
    fc.nat({ max: 3 }),
    description,
  )
  .map(([make, wraps, message]) => {
    let err: Error = make();
    for (let i = 0; i < wraps; i++) err = new Error(message, { cause: err });
    return err;
  });

/** Any other Error, with a message that may name a claim the library checks. */
const otherError = fc
  .tuple(
    fc.constantFrom('', 'unexpected JWT "iss" (issuer) claim value', 'unexpected "state" response parameter'),
    description,
    fc.option(fc.constantFrom('OAUTH_RESPONSE_IS_NOT_JSON', 'OAUTH_RESPONSE_IS_NOT_CONFORM', 'ERR_X'), {
      nil: undefined,
    }),
  )
  .map(([known, text, code]) => Object.assign(new Error(`${text} ${known}`), code ? { code } : {}));

const anyInput = fc.oneof(
  tokenEndpointError,
  authorizationError,
  networkFailure,
  otherError,
  fc.anything(),
  fc.constantFrom(...(Object.keys(ERRORS) as ErrorCode[])).map((code) => new BffError(code)),
);

// eslint-disable-next-line no-control-regex -- control characters are what must never reach a response
const CONTROL = /[\u0000-\u001f\u007f]/;

describe('mapOidcError', () => {
  test('every input maps to a registered BffError whose text is coatcheck’s, never the IdP’s description', () => {
    fc.assert(
      fc.property(anyInput, context, (input, ctx) => {
        const mapped = mapOidcError(input, ctx);
        expect(mapped).toBeInstanceOf(BffError);
        expect(Object.keys(ERRORS)).toContain(mapped.code);
        expect(mapped.status).toBe(ERRORS[mapped.code].status);
        expect(mapped.message).not.toContain('DESCRIPTION-');
        expect(mapped.message).not.toMatch(CONTROL);
        if (input instanceof BffError) expect(mapped).toBe(input);
        else expect(mapped.cause).toBe(input);
      }),
      { numRuns: 1000 },
    );
  });

  test('an error= on the callback is a 400 login_failed that repeats the error code only when it is plain text', () => {
    fc.assert(
      fc.property(authorizationError, context, (input, ctx) => {
        const mapped = mapOidcError(input, ctx);
        expect(mapped.code).toBe('login_failed');
        expect(mapped.status).toBe(400);
        const plain = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,100}$/.test(input.error);
        expect(mapped.message).toBe(
          `The identity provider refused the login: ${plain ? input.error : 'error'}.`,
        );
      }),
    );
  });

  test('a token-endpoint refusal during login is a 4xx; an IdP 5xx is a 503 in every context', () => {
    fc.assert(
      fc.property(tokenEndpointError, context, (input, ctx) => {
        const mapped = mapOidcError(input, ctx);
        if (input.status >= 500) {
          expect(mapped.code).toBe('idp_unavailable');
        } else if (ctx === 'login') {
          expect(mapped.code).toBe('code_exchange_failed');
          expect(mapped.status).toBeGreaterThanOrEqual(400);
          expect(mapped.status).toBeLessThan(500);
        } else if (input.error === 'invalid_grant') {
          // The grant is gone: on a refresh the session ends; elsewhere it is the IdP's fault.
          expect(mapped.code).toBe(ctx === 'refresh' ? 'session_expired' : 'code_exchange_failed');
        } else {
          // invalid_client and the like are deployment faults: the session stays, the IdP is unusable.
          expect(mapped.code).toBe('idp_unavailable');
        }
      }),
      { numRuns: 500 },
    );
  });

  test('a network failure, however wrapped, is idp_unavailable (503)', () => {
    fc.assert(
      fc.property(networkFailure, context, (input, ctx) => {
        const mapped = mapOidcError(input, ctx);
        expect(mapped.code).toBe('idp_unavailable');
        expect(mapped.status).toBe(503);
      }),
    );
  });

  test('during a login, a 5xx comes only from an IdP or network fault, or from something not an Error', () => {
    const fault = (input: unknown): boolean => {
      if (!(input instanceof Error)) return true;
      if (input instanceof client.ResponseBodyError) return input.status >= 500;
      const code = (input as { code?: unknown }).code;
      if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') return true;
      for (let e: unknown = input; e instanceof Error; e = e.cause) {
        if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.message === 'fetch failed') return true;
      }
      return false;
    };
    fc.assert(
      fc.property(anyInput, (input) => {
        const mapped = mapOidcError(input, 'login');
        if (mapped.status >= 500 && !(input instanceof BffError)) expect(fault(input)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  test('something that is not an Error is an internal_error (500)', () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => !(v instanceof Error)),
        context,
        (input, ctx) => {
          expect(mapOidcError(input, ctx).code).toBe('internal_error');
        },
      ),
    );
  });
});
