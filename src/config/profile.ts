import { createPrivateKey, type KeyObject } from 'node:crypto';
import { FAPI2_ALGS, type Profile } from '../oidc/fapi.js';
import type { ClientAuth } from './load.js';

const FALSE = ['false', '0', 'no'];

/** What BFF_PROFILE=fapi2 sets when the operator left a variable unset: each value meets the profile. */
const FAPI2_DEFAULTS = {
  BFF_PAR: 'required',
  BFF_DPOP: 'true',
  BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
} as const;

const ALGS_TEXT = `${FAPI2_ALGS.slice(0, -1).join(', ')} or ${FAPI2_ALGS.at(-1)}`;

export interface ProfileOutcome {
  /** The environment with the profile's defaults filled in where the operator set nothing. */
  readonly env: Record<string, string>;
  readonly problems: string[];
  readonly warnings: string[];
}

/**
 * Applies BFF_PROFILE to the raw environment, before the schema reads it: the profile's defaults fill
 * what is unset, and every setting the operator made that the profile forbids is a problem, named with
 * the value that would meet it. Only set values can conflict, so the profile never makes a valid
 * configuration invalid by itself.
 */
export function applyProfile(env: Record<string, string>): ProfileOutcome {
  if (env.BFF_PROFILE !== 'fapi2') return { env, problems: [], warnings: [] };
  const problems: string[] = [];
  const warnings: string[] = [];
  const conflict = (name: string, why: string): void => {
    problems.push(`${name}: conflicts with BFF_PROFILE=fapi2, ${why}`);
  };
  if (env.BFF_PAR !== undefined && env.BFF_PAR !== 'required') {
    conflict('BFF_PAR', 'which requires pushed authorization requests; set required or leave it unset');
  }
  if (env.BFF_DPOP !== undefined && FALSE.includes(env.BFF_DPOP)) {
    conflict('BFF_DPOP', 'which requires sender-constrained tokens; set true or leave it unset');
  }
  if (env.BFF_DPOP_ALG !== undefined && !(FAPI2_ALGS as readonly string[]).includes(env.BFF_DPOP_ALG)) {
    conflict('BFF_DPOP_ALG', `which allows ${ALGS_TEXT} only`);
  }
  const method = env.BFF_CLIENT_AUTH_METHOD;
  if (method !== undefined && method !== 'private_key_jwt') {
    conflict(
      'BFF_CLIENT_AUTH_METHOD',
      'which requires private_key_jwt client authentication; set private_key_jwt or leave it unset',
    );
  } else if (env.BFF_CLIENT_SECRET !== undefined) {
    warnings.push('BFF_CLIENT_SECRET: is ignored: BFF_PROFILE=fapi2 authenticates with private_key_jwt');
  }
  return { env: { ...FAPI2_DEFAULTS, ...env }, problems, warnings };
}

/** The algorithm a key of this type signs with under the profile, or undefined when the profile has none for it. */
function fapi2AlgOf(key: KeyObject): string | undefined {
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return 'PS256';
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'ES256' : undefined;
    case 'ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

/**
 * The client key under the profile: an RSA key signs with PS256 (never RS256), an EC key must be
 * P-256, and a JWK's own "alg" must be the one its key type allows (§5.4.1). RSA keys are at least
 * 2048 bits (§5.4.1 too).
 */
export function fapi2ClientKey(
  profile: Profile | undefined,
  auth: Extract<ClientAuth, { kind: 'private_key_jwt' }>,
): Extract<ClientAuth, { kind: 'private_key_jwt' }> | string {
  if (profile !== 'fapi2') return auth;
  const key =
    auth.key.format === 'pem'
      ? createPrivateKey(auth.key.pem)
      : createPrivateKey({ key: auth.key.jwk, format: 'jwk' });
  const alg = fapi2AlgOf(key);
  if (!alg) {
    return `conflicts with BFF_PROFILE=fapi2, which allows ${ALGS_TEXT} only: use an RSA, EC P-256 or Ed25519 key`;
  }
  const modulus = key.asymmetricKeyDetails?.modulusLength;
  if (modulus !== undefined && modulus < 2048) {
    return 'conflicts with BFF_PROFILE=fapi2, which requires RSA keys of at least 2048 bits';
  }
  const named = auth.key.format === 'jwk' ? (auth.key.jwk as { alg?: string }).alg : undefined;
  if (named !== undefined && named !== alg) {
    return `conflicts with BFF_PROFILE=fapi2: the JWK's "alg" is ${named}, and this key signs with ${alg} only under the profile; set "alg" to ${alg} or remove it`;
  }
  return { ...auth, alg };
}
