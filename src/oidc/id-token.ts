import { compactVerify, createLocalJWKSet, errors, type JSONWebKeySet } from 'jose';

/** Keys the IdP has dropped from its JWKS stop being trusted once the cached set is this old. */
const JWKS_MAX_AGE_MS = 10 * 60 * 1000;
/** At most one refetch for an unknown key in this window, so a stream of unknown kids cannot flood the IdP. */
const UNKNOWN_KID_COOLDOWN_MS = 30 * 1000;
/** Only asymmetric algorithms: an ID token signed with the client secret (HS*) or not at all proves nothing here. */
const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$/;

export interface IdTokenVerifierOptions {
  readonly jwksUri: URL;
  /** Algorithms the IdP may sign ID tokens with; anything else, `none` included, is refused. */
  readonly algorithms: readonly string[];
  readonly fetchJwks: (uri: URL) => Promise<JSONWebKeySet>;
  readonly now?: () => number;
}

/**
 * The IdP's keys could not be fetched: nothing is known about the token's signature either way, so
 * it is neither accepted nor treated as forged.
 */
export class JwksUnavailableError extends Error {
  constructor(cause: unknown) {
    super("The IdP's JWKS could not be fetched.", { cause });
    this.name = 'JwksUnavailableError';
  }
}

/**
 * Verifies the JWS signature of an ID token; throws a jose error when it does not hold, and
 * JwksUnavailableError when the keys to decide it cannot be had.
 */
export type IdTokenVerifier = (idToken: string) => Promise<void>;

export function signingAlgorithms(advertised: readonly string[] | undefined, registered?: string): string[] {
  const wanted = registered ? [registered] : (advertised ?? ['RS256']);
  return wanted.filter((alg) => ASYMMETRIC.test(alg));
}

/**
 * The IdP's JWKS, cached, with one rate-limited refetch when a token names a key the cache does not
 * hold: that is how a key rotation at the IdP reaches coatcheck without a restart. The rate limit
 * counts only refetches for unknown keys, so the first token after a rotation is never refused.
 */
export function createIdTokenVerifier(opts: IdTokenVerifierOptions): IdTokenVerifier {
  const now = opts.now ?? Date.now;
  const algorithms = [...opts.algorithms];
  let keys: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  let lastUnknownKidRefetch = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;

  function load(): Promise<void> {
    pending ??= opts
      .fetchJwks(opts.jwksUri)
      .then((jwks) => {
        keys = createLocalJWKSet(jwks);
        fetchedAt = now();
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  /** A refetch that fails keeps the keys already held: an IdP blip must not refuse tokens they verify. */
  async function refetch(): Promise<void> {
    try {
      await (pending ?? load());
    } catch (err) {
      if (!keys) throw new JwksUnavailableError(err);
      // Ask again after a pause rather than on every token while the IdP is away.
      fetchedAt = now() - JWKS_MAX_AGE_MS + UNKNOWN_KID_COOLDOWN_MS;
    }
  }

  return async (idToken) => {
    if (algorithms.length === 0)
      throw new errors.JOSEAlgNotAllowed('no asymmetric ID token algorithm is allowed');
    if (!keys || now() - fetchedAt >= JWKS_MAX_AGE_MS || pending) await refetch();
    try {
      await compactVerify(idToken, keys!, { algorithms });
      return;
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (!pending && now() - lastUnknownKidRefetch < UNKNOWN_KID_COOLDOWN_MS) throw err;
      const previousAttempt = lastUnknownKidRefetch;
      lastUnknownKidRefetch = now();
      try {
        await (pending ?? load());
      } catch (fetchErr) {
        // Only a refetch that answered spends the cooldown; this one says nothing about the key.
        lastUnknownKidRefetch = previousAttempt;
        throw new JwksUnavailableError(fetchErr);
      }
    }
    await compactVerify(idToken, keys!, { algorithms });
  };
}
