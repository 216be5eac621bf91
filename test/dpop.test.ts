import { createHash } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { DPOP_ALGS, DpopNonces, DpopSigner, htuOf, newDpopKey, nonceChallenge } from '../src/oidc/dpop.js';

describe('a session DPoP key', () => {
  test.each(DPOP_ALGS)(
    '%s: proofs verify against the key in their own header, with every claim',
    async (alg) => {
      const signer = new DpopSigner(await newDpopKey(alg));
      const proof = signer.proof({
        htm: 'POST',
        htu: 'https://api.example.com/v1/orders',
        accessToken: 'at-1',
        nonce: 'n-1',
      });
      const header = decodeProtectedHeader(proof);
      expect(header.typ).toBe('dpop+jwt');
      expect(header.alg).toBe(alg);
      expect(header.jwk).toEqual(signer.publicJwk);
      expect(header.jwk).not.toHaveProperty('d');
      const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [alg] });
      expect(payload).toMatchObject({
        htm: 'POST',
        htu: 'https://api.example.com/v1/orders',
        nonce: 'n-1',
        ath: createHash('sha256').update('at-1').digest('base64url'),
      });
      expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
      expect(signer.jkt).toBe(await calculateJwkThumbprint(signer.publicJwk));
    },
  );

  test('each proof has its own jti; a proof without a token has no ath', async () => {
    const signer = new DpopSigner(await newDpopKey('ES256'));
    const a = await jwtVerify(signer.proof({ htm: 'GET', htu: 'https://x/a' }), EmbeddedJWK);
    const b = await jwtVerify(signer.proof({ htm: 'GET', htu: 'https://x/a' }), EmbeddedJWK);
    expect(a.payload.jti).not.toBe(b.payload.jti);
    expect(a.payload).not.toHaveProperty('ath');
    expect(a.payload).not.toHaveProperty('nonce');
  });

  test('a tampered proof does not verify', async () => {
    const signer = new DpopSigner(await newDpopKey('ES256'));
    const [h, p, s] = signer.proof({ htm: 'GET', htu: 'https://x/a' }).split('.');
    const forged = Buffer.from(
      JSON.stringify({ htm: 'DELETE', htu: 'https://x/a', iat: 1, jti: 'j' }),
    ).toString('base64url');
    await expect(jwtVerify(`${h}.${forged}.${s}`, EmbeddedJWK)).rejects.toThrow();
    expect(p).toBeDefined();
  });

  test('the stored JWK survives a JSON round trip and signs as the same key', async () => {
    const jwk = await newDpopKey('ES256');
    const again = new DpopSigner(JSON.parse(JSON.stringify(jwk)));
    expect(again.jkt).toBe(new DpopSigner(jwk).jkt);
  });

  test('openid-client accepts the key pair for its own DPoP handle', async () => {
    const signer = new DpopSigner(await newDpopKey('ES256'));
    const pair = await signer.keyPair();
    expect(pair.privateKey.type).toBe('private');
    expect(pair.publicKey.type).toBe('public');
    const configuration = new client.Configuration({ issuer: 'https://idp.example.com' }, 'c');
    expect(() => client.getDPoPHandle(configuration, pair)).not.toThrow();
  });
});

test('htu drops the query and the fragment, nothing else', () => {
  expect(htuOf('https://api.example.com:8443/v1/a%20b?x=1#f')).toBe('https://api.example.com:8443/v1/a%20b');
  expect(htuOf('http://127.0.0.1:5000/')).toBe('http://127.0.0.1:5000/');
});

describe('nonce challenges', () => {
  test('a 401 with use_dpop_nonce and a DPoP-Nonce is one', () => {
    expect(
      nonceChallenge(401, {
        'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="x"',
        'dpop-nonce': 'abc',
      }),
    ).toBe('abc');
    expect(
      nonceChallenge(401, {
        'www-authenticate': ['Bearer realm="r"', 'DPoP algs="ES256", error="use_dpop_nonce"'],
        'dpop-nonce': 'abc',
      }),
    ).toBe('abc');
  });
  test('anything else is not', () => {
    expect(
      nonceChallenge(400, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'a' }),
    ).toBeUndefined();
    expect(
      nonceChallenge(401, { 'www-authenticate': 'DPoP error="invalid_token"', 'dpop-nonce': 'a' }),
    ).toBeUndefined();
    expect(nonceChallenge(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"' })).toBeUndefined();
  });
  test('nonces are remembered per origin, bounded', () => {
    const n = new DpopNonces(2);
    n.remember('https://a', '1');
    n.remember('https://b', '2');
    n.remember('https://c', '3');
    expect(n.get('https://a')).toBeUndefined();
    expect(n.get('https://c')).toBe('3');
  });
});
