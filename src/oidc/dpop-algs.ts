/** The proof algorithms coatcheck signs DPoP proofs with (RFC 9449 §4.2 leaves the choice to the client). */
export const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] as const;
export type DpopAlg = (typeof DPOP_ALGS)[number];
