import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  randomUUID,
  sign,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { importJWK, type JWK } from 'jose';
import type * as client from 'openid-client';

import type { DpopAlg } from './dpop-algs.js';

export { DPOP_ALGS, type DpopAlg } from './dpop-algs.js';

const generate = promisify(generateKeyPair);

/**
 * A session's DPoP key pair as it is stored: one private JWK (its public half is derivable), sealed
 * with the session's tokens and never sent anywhere. `alg` travels with it, so a change of
 * BFF_DPOP_ALG applies to new sessions without breaking live ones.
 */
export interface DpopKeyJwk extends JWK {
  readonly alg: DpopAlg;
  readonly d: string;
}

/** A fresh key pair for one session. */
export async function newDpopKey(alg: DpopAlg): Promise<DpopKeyJwk> {
  const { privateKey } =
    alg === 'EdDSA'
      ? await generate('ed25519')
      : alg.startsWith('ES')
        ? await generate('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' })
        : await generate('rsa', { modulusLength: 2048 });
  return { ...(privateKey.export({ format: 'jwk' }) as JWK), alg } as DpopKeyJwk;
}

function publicJwkOf(key: KeyObject): JWK {
  const { kty, crv, x, y, n, e } = createPublicKey(key).export({ format: 'jwk' }) as JWK;
  // Only the members RFC 7638 hashes, in a fixed order: the proof's jwk header is then exactly the key.
  return kty === 'RSA' ? { e, kty, n } : kty === 'EC' ? { crv, kty, x, y } : { crv, kty, x };
}

const b64 = (value: string | Buffer): string => Buffer.from(value).toString('base64url');

/** RFC 7638 thumbprint of a public JWK: what a DPoP-bound token's cnf.jkt holds. */
export function thumbprint(publicJwk: JWK): string {
  return createHash('sha256').update(JSON.stringify(publicJwk)).digest('base64url');
}

/** RFC 9449 §4.2: htu is the target URI without query and fragment. */
export function htuOf(url: string | URL): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export interface ProofClaims {
  readonly htm: string;
  readonly htu: string;
  /** The access token the proof accompanies; its hash becomes `ath`. */
  readonly accessToken?: string;
  readonly nonce?: string;
}

/** One session's key, ready to sign: node:crypto signs synchronously, far cheaper than WebCrypto per call. */
export class DpopSigner {
  readonly publicJwk: JWK;
  readonly jkt: string;
  private readonly key: KeyObject;
  private readonly header: string;

  constructor(readonly jwk: DpopKeyJwk) {
    this.key = createPrivateKey({ key: { ...jwk }, format: 'jwk' });
    this.publicJwk = publicJwkOf(this.key);
    this.jkt = thumbprint(this.publicJwk);
    this.header = b64(JSON.stringify({ typ: 'dpop+jwt', alg: jwk.alg, jwk: this.publicJwk }));
  }

  /** A fresh proof: its own jti, the current time, and `ath` when it accompanies an access token. */
  proof(claims: ProofClaims, nowMs = Date.now()): string {
    const payload: Record<string, unknown> = {
      jti: randomUUID(),
      htm: claims.htm,
      htu: claims.htu,
      iat: Math.floor(nowMs / 1000),
    };
    if (claims.accessToken) payload.ath = createHash('sha256').update(claims.accessToken).digest('base64url');
    if (claims.nonce) payload.nonce = claims.nonce;
    const input = `${this.header}.${b64(JSON.stringify(payload))}`;
    return `${input}.${this.signature(input).toString('base64url')}`;
  }

  private signature(input: string): Buffer {
    const data = Buffer.from(input);
    switch (this.jwk.alg) {
      case 'EdDSA':
        return sign(null, data, this.key);
      case 'ES256':
        return sign('sha256', data, { key: this.key, dsaEncoding: 'ieee-p1363' });
      case 'ES384':
        return sign('sha384', data, { key: this.key, dsaEncoding: 'ieee-p1363' });
      case 'PS256':
        return sign('sha256', data, {
          key: this.key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 32,
        });
      case 'RS256':
        return sign('sha256', data, this.key);
    }
  }

  /** The same key as openid-client wants it, for the token, PAR and userinfo requests it makes. */
  keyPair(): Promise<client.CryptoKeyPair> {
    return (this.pair ??= this.importPair());
  }

  private pair: Promise<client.CryptoKeyPair> | undefined;

  private async importPair(): Promise<client.CryptoKeyPair> {
    const privateKey = (await importJWK(this.jwk, this.jwk.alg)) as client.CryptoKey;
    const publicKey = (await importJWK({ ...this.publicJwk, alg: this.jwk.alg }, this.jwk.alg, {
      extractable: true,
    })) as client.CryptoKey;
    return { privateKey, publicKey };
  }
}

/**
 * The last DPoP-Nonce each server sent, by origin. A server's nonce is not the session's: every
 * session's proofs to that server carry it. Another replica that has not seen it yet is challenged
 * once and learns it the same way.
 */
export class DpopNonces {
  private readonly nonces = new Map<string, string>();

  constructor(private readonly max = 1000) {}

  get(origin: string): string | undefined {
    return this.nonces.get(origin);
  }

  remember(origin: string, nonce: string | undefined): void {
    if (!nonce || this.nonces.get(origin) === nonce) return;
    if (this.nonces.size >= this.max && !this.nonces.has(origin)) {
      const oldest = this.nonces.keys().next().value;
      if (oldest !== undefined) this.nonces.delete(oldest);
    }
    this.nonces.set(origin, nonce);
  }
}

/**
 * RFC 9449 §9: a resource server that wants a nonce answers 401 with
 * `WWW-Authenticate: DPoP error="use_dpop_nonce"` and the nonce in `DPoP-Nonce`.
 */
export function nonceChallenge(
  statusCode: number,
  headers: Record<string, string | string[] | undefined>,
): string | undefined {
  if (statusCode !== 401) return undefined;
  const nonce = headers['dpop-nonce'];
  const challenge = [headers['www-authenticate'] ?? []].flat().join(', ');
  if (typeof nonce !== 'string' || !/\bDPoP\b[^]*error="?use_dpop_nonce"?/i.test(challenge)) return undefined;
  return nonce;
}

const signers = new Map<string, DpopSigner>();
const MAX_SIGNERS = 10_000;

/**
 * The signer for a stored key, parsed once per process: importing a key costs far more than a
 * signature, and the proxy path signs on every call.
 */
export function signerFor(jwk: DpopKeyJwk): DpopSigner {
  let signer = signers.get(jwk.d);
  if (!signer) {
    if (signers.size >= MAX_SIGNERS) signers.delete(signers.keys().next().value!);
    signers.set(jwk.d, (signer = new DpopSigner(jwk)));
  }
  return signer;
}
