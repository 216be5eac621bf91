import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK } from 'jose';
import { JwksUnavailableError, createIdTokenVerifier, signingAlgorithms } from '../src/oidc/id-token.js';

async function key(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return {
    jwk,
    sign: (alg = 'RS256') =>
      new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg, kid }).setIssuedAt().sign(privateKey),
  };
}

/** A JWKS endpoint stand-in that counts its fetches, and a clock the test moves. */
function setup(initial: JWK[]) {
  const published = { keys: [...initial] } as JSONWebKeySet;
  let now = 1_000_000;
  let down = false;
  const fetches: number[] = [];
  const verify = createIdTokenVerifier({
    jwksUri: new URL('https://idp.example/jwks'),
    algorithms: ['RS256'],
    fetchJwks: async () => {
      fetches.push(now);
      if (down) throw new Error('HTTP 503');
      return structuredClone(published);
    },
    now: () => now,
  });
  return {
    verify,
    published,
    fetches,
    advance: (ms: number) => {
      now += ms;
    },
    setDown: (value: boolean) => {
      down = value;
    },
  };
}

describe('the ID token verifier', () => {
  test('a JWKS that cannot be fetched is an outage, not a forgery: JwksUnavailableError', async () => {
    const a = await key('a');
    const s = setup([a.jwk]);
    s.setDown(true);
    await expect(s.verify(await a.sign())).rejects.toBeInstanceOf(JwksUnavailableError);
  });

  test('an expired cache whose refetch fails keeps verifying with the keys it held', async () => {
    const a = await key('a');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    s.advance(11 * 60 * 1000);
    s.setDown(true);
    await s.verify(await a.sign());
    await s.verify(await a.sign());
    // One failed refetch, then a pause before the next, rather than one per token.
    expect(s.fetches).toHaveLength(2);
  });

  test('an unknown kid whose refetch fails spends no cooldown: the next token refetches', async () => {
    const a = await key('a');
    const b = await key('b');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    s.published.keys.push(b.jwk);
    s.setDown(true);
    await expect(s.verify(await b.sign())).rejects.toBeInstanceOf(JwksUnavailableError);
    s.setDown(false);
    await s.verify(await b.sign());
  });

  test('fetches the JWKS once and reuses it', async () => {
    const a = await key('a');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    await s.verify(await a.sign());
    expect(s.fetches).toHaveLength(1);
  });

  test('a key published after the last fetch is found with one refetch', async () => {
    const a = await key('a');
    const b = await key('b');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    s.published.keys.push(b.jwk);
    await s.verify(await b.sign());
    expect(s.fetches).toHaveLength(2);
  });

  test('unknown kids refetch at most once per cooldown, then are refused without a fetch', async () => {
    const a = await key('a');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    const stranger = await key('stranger');
    await expect(s.verify(await stranger.sign())).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    expect(s.fetches).toHaveLength(2);
    for (let i = 0; i < 5; i++) {
      await expect(s.verify(await stranger.sign())).rejects.toMatchObject({
        code: 'ERR_JWKS_NO_MATCHING_KEY',
      });
    }
    expect(s.fetches).toHaveLength(2);
    s.advance(31_000);
    await expect(s.verify(await stranger.sign())).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    expect(s.fetches).toHaveLength(3);
  });

  test('concurrent tokens with a new kid share one refetch', async () => {
    const a = await key('a');
    const b = await key('b');
    const s = setup([a.jwk]);
    await s.verify(await a.sign());
    s.published.keys.push(b.jwk);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => b.sign()));
    await Promise.all(tokens.map((t) => s.verify(t)));
    expect(s.fetches).toHaveLength(2);
  });

  test('a key the IdP withdrew stops being trusted once the cached set is old', async () => {
    const a = await key('a');
    const b = await key('b');
    const s = setup([a.jwk, b.jwk]);
    await s.verify(await a.sign());
    s.published.keys.splice(0, 1);
    s.advance(11 * 60_000);
    await expect(s.verify(await a.sign())).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' });
    await s.verify(await b.sign());
  });

  test('a flipped signature byte is refused', async () => {
    const a = await key('a');
    const s = setup([a.jwk]);
    const [h, p, sig] = (await a.sign()).split('.') as [string, string, string];
    const bytes = Buffer.from(sig, 'base64url');
    bytes[3]! ^= 0x01;
    await expect(s.verify(`${h}.${p}.${bytes.toString('base64url')}`)).rejects.toMatchObject({
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    });
  });

  test('alg none and a symmetric alg are refused, whatever the JWKS holds', async () => {
    const secret = new TextEncoder().encode('a-shared-secret-of-enough-length-0123');
    const s = setup([{ kty: 'oct', k: Buffer.from(secret).toString('base64url'), kid: 'h' }]);
    const hs = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'HS256', kid: 'h' })
      .sign(secret);
    await expect(s.verify(hs)).rejects.toMatchObject({ code: 'ERR_JOSE_ALG_NOT_ALLOWED' });
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${hs.split('.')[1]}.`;
    await expect(s.verify(none)).rejects.toBeDefined();
  });

  test('only asymmetric algorithms are allowed, and RS256 when the IdP names none', () => {
    expect(signingAlgorithms(undefined)).toEqual(['RS256']);
    expect(signingAlgorithms(['HS256', 'none', 'ES256', 'RS256'])).toEqual(['ES256', 'RS256']);
    expect(signingAlgorithms(['RS256', 'ES256'], 'ES256')).toEqual(['ES256']);
    expect(signingAlgorithms(['RS256'], 'HS256')).toEqual([]);
  });
});
