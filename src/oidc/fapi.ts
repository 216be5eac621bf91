import type { ServerMetadata } from 'openid-client';

/** The deployment profiles BFF_PROFILE names. */
export const PROFILES = ['fapi2'] as const;
export type Profile = (typeof PROFILES)[number];

/**
 * FAPI 2.0 Security Profile §5.4.1: the only JWS algorithms for client assertions, DPoP proofs and ID
 * tokens. EdDSA means Ed25519 there.
 */
export const FAPI2_ALGS = ['PS256', 'ES256', 'EdDSA'] as const;

const isFapi2Alg = (alg: string): boolean => (FAPI2_ALGS as readonly string[]).includes(alg);

/** The ID token algorithms coatcheck accepts: under the profile, only those the profile allows. */
export function idTokenAlgorithms(profile: Profile | undefined, algorithms: readonly string[]): string[] {
  return profile === 'fapi2' ? algorithms.filter(isFapi2Alg) : [...algorithms];
}

/**
 * Why this IdP cannot serve a FAPI 2.0 client although it answers. Each is a deployment fault the
 * operator fixes at the IdP; none of them stops start-up, and logins answer 503 while they hold.
 */
export function fapi2IdpProblems(server: ServerMetadata, idTokenAlgs: readonly string[]): string[] {
  const problems: string[] = [];
  // RFC 9207: without it a mix-up attack cannot be told from a real response, and openid-client
  // checks `iss` only when the IdP says it sends one.
  if (server.authorization_response_iss_parameter_supported !== true) {
    problems.push(
      "BFF_PROFILE=fapi2 requires the RFC 9207 iss parameter in authorization responses, but the identity provider's metadata does not set authorization_response_iss_parameter_supported to true; logins answer 503 until it does",
    );
  }
  if (idTokenAlgs.length === 0) {
    problems.push(
      `BFF_PROFILE=fapi2 accepts ID tokens signed with ${FAPI2_ALGS.join(', ')} only, but the identity provider's id_token_signing_alg_values_supported names none of them; logins answer 503 until it does`,
    );
  }
  return problems;
}
