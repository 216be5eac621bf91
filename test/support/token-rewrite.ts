import {
  SignJWT,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
} from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { TestIdp } from './idp.js';

/** Which token responses a rewrite applies to. */
export type GrantKind = 'authorization_code' | 'refresh_token';

/** Turns the ID token the IdP issued into the one the test wants coatcheck to receive. */
export type IdTokenRewrite = (idToken: string) => Promise<string>;

export interface TokenRewriter {
  /** Rewrites the ID token of the next token responses of this kind until `clear()`. */
  set(kind: GrantKind, rewrite: IdTokenRewrite): void;
  clear(): void;
  /** Publishes an extra key in the IdP's JWKS (a key rotation's first step). */
  publish(jwk: JWK): void;
  /** The refresh tokens of the refresh responses that were rewritten, in order. */
  readonly rewrittenRefreshTokens: string[];
}

/**
 * Rewrites the IdP's token responses before they leave it: a Koa middleware on the real
 * oidc-provider, so everything else about the exchange stays genuine.
 */
export function rewriteTokenResponses(idp: TestIdp): TokenRewriter {
  const rewrites = new Map<GrantKind, IdTokenRewrite>();
  const published: JWK[] = [];
  const rewrittenRefreshTokens: string[] = [];
  idp.provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    if (ctx.path === '/jwks' && ctx.status === 200 && published.length > 0) {
      const body = ctx.body as { keys: JWK[] };
      ctx.body = { keys: [...body.keys, ...published] };
      return;
    }
    if (ctx.path !== '/token' || ctx.status !== 200) return;
    const body = ctx.body as { id_token?: string; refresh_token?: string };
    const rewrite = rewrites.get(ctx.oidc?.params?.grant_type as GrantKind);
    if (!rewrite || !body.id_token) return;
    ctx.body = { ...body, id_token: await rewrite(body.id_token) };
    if (body.refresh_token && ctx.oidc?.params?.grant_type === 'refresh_token') {
      rewrittenRefreshTokens.push(body.refresh_token);
    }
  });
  return {
    set: (kind, rewrite) => rewrites.set(kind, rewrite),
    clear: () => rewrites.clear(),
    publish: (jwk) => published.push(jwk),
    rewrittenRefreshTokens,
  };
}

/** A signing key of the test's own, with its public JWK. */
export async function newSigningKey(
  kid: string,
): Promise<{ kid: string; publicJwk: JWK; sign: (p: JWTPayload) => Promise<string> }> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  return {
    kid,
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
    sign: (payload) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(privateKey),
  };
}

/** Re-signs the token's claims, changed by `change`, with the IdP's own key: a genuine token. */
export function resignedByIdp(
  idp: TestIdp,
  change: (claims: JWTPayload) => JWTPayload = (c) => c,
): IdTokenRewrite {
  return (token) => idp.sign(change(decodeJwt(token)), decodeProtectedHeader(token).typ);
}

/** Signs the token's claims with another key (under whatever kid that key has). */
export function resignedWith(key: { sign: (p: JWTPayload) => Promise<string> }): IdTokenRewrite {
  return (token) => key.sign(decodeJwt(token));
}

/** Flips one bit in the middle of the signature, leaving header and claims untouched. */
export const flippedSignatureByte: IdTokenRewrite = async (token) => {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const bytes = Buffer.from(signature, 'base64url');
  bytes[bytes.length >> 1]! ^= 0x01;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
};

/** The same claims, unsigned (`alg: none`). */
export const unsigned: IdTokenRewrite = async (token) => {
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  return `${header}.${token.split('.')[1]}.`;
};

/** The same claims signed HS256 with a shared secret, such as the client secret (an unexpected algorithm). */
export function signedWithSecret(secret: string): IdTokenRewrite {
  return (token) =>
    new SignJWT(decodeJwt(token))
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(secret));
}
