import { createHash } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';

/** How old a proof may be; also how long its jti is remembered, since an older one is refused anyway. */
const MAX_PROOF_AGE_S = 60;

/** A request as the resource server received it. */
export interface DpopRequest {
  readonly method: string;
  /** The URL the request was sent to, without query and fragment (RFC 9449 §4.2). */
  readonly htu: string;
  readonly authorization: string | undefined;
  readonly proof: string | string[] | undefined;
}

export type DpopVerdict =
  | { readonly ok: true; readonly accessToken: JWTPayload; readonly jkt: string }
  | {
      readonly ok: false;
      readonly reason: string;
      /** The WWW-Authenticate header of the 401, when the refusal is a challenge (RFC 9449 §7.1, §9). */
      readonly challenge?: string;
      /** The nonce to send in DPoP-Nonce with a use_dpop_nonce challenge. */
      readonly nonce?: string;
    };

export interface DpopVerifierOptions {
  /** Verifies the access token itself (signature, issuer, audience, expiry) and returns its claims. */
  readonly verifyAccessToken: (token: string) => Promise<JWTPayload>;
  /** The nonce proofs must carry right now, when the server demands one. */
  readonly nonce?: () => string;
}

/**
 * What RFC 9449 §7 asks of a resource server: a DPoP-bound access token with a proof whose signature,
 * typ, htm, htu, ath, iat and jti (never seen before) hold, whose key's thumbprint equals the token's
 * cnf.jkt, and (when the server wants one) its nonce.
 */
export function createDpopVerifier(opts: DpopVerifierOptions): (req: DpopRequest) => Promise<DpopVerdict> {
  const seenJti = new Map<string, number>();

  /** Forgets jtis older than any proof that could still be accepted, so the set stays small. */
  function remember(jti: string, nowS: number): void {
    for (const [old, expires] of seenJti) {
      if (expires > nowS) break;
      seenJti.delete(old);
    }
    seenJti.set(jti, nowS + MAX_PROOF_AGE_S * 2);
  }

  return async (req) => {
    const refuse = (reason: string, challenge?: string, nonce?: string): DpopVerdict => ({
      ok: false,
      reason,
      ...(challenge ? { challenge } : {}),
      ...(nonce ? { nonce } : {}),
    });
    const auth = req.authorization ?? '';
    if (!auth.startsWith('DPoP ')) return refuse('not a DPoP token', 'DPoP');
    if (typeof req.proof !== 'string') return refuse('no proof', 'DPoP');
    const token = auth.slice(5);
    let claims: JWTPayload;
    let jkt: string;
    try {
      const header = decodeProtectedHeader(req.proof);
      const verified = await jwtVerify(req.proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        maxTokenAge: MAX_PROOF_AGE_S,
      });
      claims = verified.payload;
      jkt = await calculateJwkThumbprint(header.jwk!);
    } catch (err) {
      return refuse(`bad proof: ${(err as Error).message}`);
    }
    if (claims.htm !== req.method) return refuse(`htm ${String(claims.htm)}`);
    if (claims.htu !== req.htu) return refuse(`htu ${String(claims.htu)}`);
    if (claims.ath !== createHash('sha256').update(token).digest('base64url')) return refuse('ath');
    if (typeof claims.jti !== 'string' || seenJti.has(claims.jti)) return refuse('jti replayed');
    remember(claims.jti, Math.floor(Date.now() / 1000));
    const nonce = opts.nonce?.();
    if (nonce !== undefined && claims.nonce !== nonce) {
      return refuse(
        'nonce',
        'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
        nonce,
      );
    }
    let accessToken: JWTPayload;
    try {
      accessToken = await opts.verifyAccessToken(token);
    } catch (err) {
      return refuse(`bad access token: ${(err as Error).message}`);
    }
    const cnf = accessToken.cnf as { jkt?: string } | undefined;
    if (cnf?.jkt !== jkt) return refuse('cnf.jkt does not match the proof key');
    return { ok: true, accessToken, jkt };
  };
}
