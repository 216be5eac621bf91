import * as client from 'openid-client';
import type { OidcClient } from './client.js';
import { BffError } from '../errors.js';
import { describeIdpError, mapOidcError } from './errors.js';
import { JwksUnavailableError } from './id-token.js';
import type { TokenSet } from './token-set.js';
import { newDpopKey } from './dpop.js';
import { assertDpopBound, dpopHandle, revokeRefreshToken, toTokenSet } from './tokens.js';
import { unmetStepUp, type StepUpRequest } from './step-up-check.js';

export interface LoginChecks {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  /** What the login asked beyond a sign-in: the ID token must deliver it. */
  readonly stepUp?: StepUpRequest;
}

/** What a login asks of the IdP beyond a sign-in; each replaces the same parameter from BFF_AUTH_PARAMS. */
export interface LoginRequest {
  readonly acrValues?: string;
  readonly maxAge?: number;
  readonly prompt?: 'none';
}

/** The answers to prompt=none that mean "the IdP would have to show a page": the SPA decides what next. */
export const SILENT_LOGIN_ERRORS: ReadonlySet<string> = new Set([
  'login_required',
  'consent_required',
  'interaction_required',
  'account_selection_required',
]);

/** The OAuth error the IdP put in the authorization response, when that is why the login failed. */
export function authorizationResponseError(err: unknown): string | undefined {
  const cause = err instanceof BffError ? err.cause : err;
  return cause instanceof client.AuthorizationResponseError ? cause.error : undefined;
}

export interface LoginStart extends LoginChecks {
  readonly url: URL;
}

export interface LoginResult {
  readonly tokens: TokenSet;
  readonly sub: string;
  readonly sid: string | undefined;
  readonly claims: Record<string, unknown>;
}

/** ID token claims about the protocol rather than the user; the SPA has no use for them. */
const PROTOCOL_CLAIMS = new Set([
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'exp',
  'iat',
  'nbf',
  'jti',
  'aud',
  'azp',
]);

export async function startLogin(oidc: OidcClient, request: LoginRequest = {}): Promise<LoginStart> {
  const configuration = await oidc.configuration();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const codeVerifier = client.randomPKCECodeVerifier();
  const cfg = oidc.settings;
  const params = {
    ...cfg.authParams,
    ...(request.acrValues !== undefined ? { acr_values: request.acrValues } : {}),
    ...(request.maxAge !== undefined ? { max_age: String(request.maxAge) } : {}),
    ...(request.prompt ? { prompt: request.prompt } : {}),
    response_type: 'code',
    redirect_uri: cfg.redirectUri,
    scope: cfg.scopes.join(' '),
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  };
  // One request for both ways to the IdP, so PAR and the redirect can never differ in what they ask.
  const authorization = withResources(params, cfg.loginResources);
  const problem = oidc.unsuitable();
  if (problem) throw new BffError('idp_unavailable', { message: IDP_UNSUITABLE });
  const url = usePar(cfg.par, configuration)
    ? await pushed(oidc, configuration, authorization)
    : client.buildAuthorizationUrl(configuration, authorization);
  return { url, state, nonce, codeVerifier };
}

/**
 * RFC 8707 §2.1: one `resource` parameter per resource, so the grant covers every route's token. Opt-in
 * (BFF_LOGIN_RESOURCES): some IdPs refuse more than one, Entra ID with AADSTS901002.
 */
function withResources(params: Record<string, string>, resources: readonly string[]): URLSearchParams {
  const request = new URLSearchParams(params);
  for (const resource of resources) request.append('resource', resource);
  return request;
}

/** Shown to a user while BFF_PAR=required meets an IdP without PAR: the operator's fault, named in the log. */
const IDP_UNSUITABLE =
  'coatcheck cannot sign you in with this identity provider right now. If you operate this service, its log names the cause.';

function usePar(mode: OidcClient['settings']['par'], configuration: client.Configuration): boolean {
  if (mode === 'off') return false;
  return mode === 'required' || Boolean(configuration.serverMetadata().pushed_authorization_request_endpoint);
}

/**
 * RFC 9126: the parameters go to the IdP over the back channel, authenticated as the client, and the
 * browser carries only client_id and the request_uri, so nothing of the request can be read or
 * changed on the way.
 */
async function pushed(
  oidc: OidcClient,
  configuration: client.Configuration,
  params: URLSearchParams,
): Promise<URL> {
  try {
    return await oidc.timed('par', () => client.buildAuthorizationUrlWithPAR(configuration, params));
  } catch (err) {
    const mapped = mapOidcError(err, 'other');
    oidc.log.warn({ error: mapped.code, idp: describeIdpError(err) }, 'pushed authorization request failed');
    throw mapped;
  }
}

/**
 * Validates the authorization response (state, RFC 9207 iss, error=) and redeems the code with the
 * PKCE verifier. openid-client checks the ID token's claims, nonce and algorithm; its signature is
 * verified here against the IdP's JWKS, because the library trusts the token endpoint's TLS for it.
 */
export async function completeLogin(
  oidc: OidcClient,
  callbackUrl: URL,
  checks: LoginChecks,
  now: () => number,
): Promise<LoginResult> {
  try {
    const configuration = await oidc.configuration();
    // RFC 9449: the session's key is made here, before the code is redeemed, so the IdP binds every
    // token of the session to it. It is sealed with the tokens and never leaves the server.
    const dpopKey = oidc.settings.dpop ? await newDpopKey(oidc.settings.dpop.alg) : undefined;
    const dpop = dpopKey ? { DPoP: await dpopHandle(configuration, dpopKey) } : undefined;
    const response = await oidc.timed('token', () =>
      client.authorizationCodeGrant(
        configuration,
        callbackUrl,
        {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          expectedNonce: checks.nonce,
          idTokenExpected: true,
        },
        undefined,
        dpop,
      ),
    );
    if (dpopKey) {
      try {
        assertDpopBound(response);
      } catch (err) {
        if (response.refresh_token) await revokeRefreshToken(oidc, response.refresh_token);
        throw new BffError('code_exchange_failed', { cause: err });
      }
    }
    try {
      await oidc.verifyIdToken(response.id_token!);
    } catch (err) {
      if (response.refresh_token) await revokeRefreshToken(oidc, response.refresh_token);
      // Unverifiable is not forged: an IdP whose keys cannot be fetched right now is an outage.
      if (err instanceof JwksUnavailableError) throw new BffError('idp_unavailable', { cause: err });
      throw new BffError('code_exchange_failed', { cause: err });
    }
    const idClaims = response.claims()!;
    const unmet = checks.stepUp && unmetStepUp(idClaims, checks.stepUp);
    if (unmet) {
      if (response.refresh_token) await revokeRefreshToken(oidc, response.refresh_token);
      // The reason reaches the log through the cause; the browser gets only the code.
      throw new BffError('step_up_failed', { cause: new Error(unmet) });
    }
    let claims: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(idClaims)) if (!PROTOCOL_CLAIMS.has(k)) claims[k] = v;
    if (oidc.settings.userinfo && configuration.serverMetadata().userinfo_endpoint) {
      try {
        const userinfo = await oidc.timed('userinfo', () =>
          client.fetchUserInfo(configuration, response.access_token, idClaims.sub, dpop),
        );
        claims = { ...claims, ...userinfo };
      } catch (err) {
        oidc.log.warn({ idp: describeIdpError(err) }, 'userinfo request failed; using ID token claims');
      }
    }
    return {
      tokens: {
        ...toTokenSet(response, undefined, now(), oidc.settings.refreshSkewMs),
        ...(dpopKey ? { dpopKey } : {}),
      },
      sub: idClaims.sub,
      sid: typeof idClaims.sid === 'string' ? idClaims.sid : undefined,
      claims,
    };
  } catch (err) {
    const mapped = mapOidcError(err, 'login');
    // A refused code exchange or an IdP outage is the operator's to fix; a denied or stale login is the user's.
    const level = mapped.code === 'code_exchange_failed' || mapped.status >= 500 ? 'warn' : 'info';
    oidc.log[level]({ error: mapped.code, idp: describeIdpError(err) }, 'login could not be completed');
    throw mapped;
  }
}
