import { generateKeyPairSync } from 'node:crypto';
import type { ServerMetadata } from 'openid-client';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { fapi2IdpProblems, idTokenAlgorithms } from '../src/oidc/fapi.js';
import { signingAlgorithms } from '../src/oidc/id-token.js';
import { configProblems, validEnv } from './support/config-env.js';

function privateJwk(type: 'rsa' | 'ec' | 'ed25519', options: object = {}, extra: object = {}): string {
  const { privateKey } = generateKeyPairSync(type as 'rsa', options as { modulusLength: number });
  return JSON.stringify({ ...privateKey.export({ format: 'jwk' }), ...extra });
}

const rsa = (bits = 2048, extra: object = {}) => privateJwk('rsa', { modulusLength: bits }, extra);

/** A production environment under the profile: no secret, an RSA key without "alg", nothing else. */
const fapiEnv: Record<string, string> = {
  ...validEnv,
  BFF_CLIENT_SECRET: '',
  BFF_PROFILE: 'fapi2',
  BFF_CLIENT_PRIVATE_KEY: rsa(),
};

describe('BFF_PROFILE=fapi2', () => {
  test('alone turns on PAR (required), DPoP (ES256) and private_key_jwt, an RSA key signing PS256', () => {
    const config = loadConfig(fapiEnv);
    expect(config.profile).toBe('fapi2');
    expect(config.par).toBe('required');
    expect(config.dpop).toEqual({ alg: 'ES256' });
    expect(config.client.auth).toMatchObject({ kind: 'private_key_jwt', alg: 'PS256' });
    expect(config.warnings).toEqual([]);
  });

  test('a PEM RSA key signs PS256 too; without the profile the same key signs RS256', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(loadConfig({ ...fapiEnv, BFF_CLIENT_PRIVATE_KEY: pem }).client.auth).toMatchObject({
      alg: 'PS256',
    });
    const plain = { ...validEnv, BFF_CLIENT_AUTH_METHOD: 'private_key_jwt', BFF_CLIENT_PRIVATE_KEY: pem };
    expect(loadConfig(plain).client.auth).toMatchObject({ alg: 'RS256' });
  });

  test.each([
    ['an EC P-256 key', 'ES256', () => privateJwk('ec', { namedCurve: 'P-256' })],
    ['an Ed25519 key', 'EdDSA', () => privateJwk('ed25519')],
    ['an RSA JWK that names PS256', 'PS256', () => rsa(2048, { alg: 'PS256' })],
  ])('%s signs %s', (_name, alg, key) => {
    expect(loadConfig({ ...fapiEnv, BFF_CLIENT_PRIVATE_KEY: key() }).client.auth).toMatchObject({ alg });
  });

  test('settings that meet the profile, set explicitly, are accepted', () => {
    const config = loadConfig({
      ...fapiEnv,
      BFF_PAR: 'required',
      BFF_DPOP: 'true',
      BFF_DPOP_ALG: 'EdDSA',
      BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
    });
    expect(config.dpop).toEqual({ alg: 'EdDSA' });
  });

  test('conflicting settings stop start-up, every one listed at once', () => {
    expect(
      configProblems({
        ...fapiEnv,
        BFF_PAR: 'off',
        BFF_DPOP: 'false',
        BFF_DPOP_ALG: 'RS256',
        BFF_CLIENT_AUTH_METHOD: 'client_secret_basic',
        BFF_CLIENT_SECRET: 'super-secret-client-credential',
      }),
    ).toEqual([
      'BFF_PAR: conflicts with BFF_PROFILE=fapi2, which requires pushed authorization requests; set required or leave it unset',
      'BFF_DPOP: conflicts with BFF_PROFILE=fapi2, which requires sender-constrained tokens; set true or leave it unset',
      'BFF_DPOP_ALG: conflicts with BFF_PROFILE=fapi2, which allows PS256, ES256 or EdDSA only',
      'BFF_CLIENT_AUTH_METHOD: conflicts with BFF_PROFILE=fapi2, which requires private_key_jwt client authentication; set private_key_jwt or leave it unset',
    ]);
  });

  test('BFF_PAR=auto conflicts too: it would fall back to a plain authorization request', () => {
    expect(configProblems({ ...fapiEnv, BFF_PAR: 'auto' })).toEqual([
      expect.stringMatching(/^BFF_PAR: conflicts with BFF_PROFILE=fapi2/),
    ]);
  });

  test.each([
    ['an RSA JWK that names RS256', () => rsa(2048, { alg: 'RS256' }), /"alg" is RS256.*set "alg" to PS256/],
    [
      'an EC P-384 key',
      () => privateJwk('ec', { namedCurve: 'P-384' }),
      /use an RSA, EC P-256 or Ed25519 key/,
    ],
    ['an RSA key of 1024 bits', () => rsa(1024), /at least 2048 bits/],
  ])('%s is refused', (_name, key, message) => {
    const problems = configProblems({ ...fapiEnv, BFF_CLIENT_PRIVATE_KEY: key() });
    expect(problems).toEqual([
      expect.stringMatching(/^BFF_CLIENT_PRIVATE_KEY: conflicts with BFF_PROFILE=fapi2/),
    ]);
    expect(problems[0]).toMatch(message);
  });

  test('no key is a problem named after the profile, listed with the other problems', () => {
    const problems = configProblems({ ...fapiEnv, BFF_CLIENT_PRIVATE_KEY: '', BFF_PAR: 'off' });
    expect(problems).toEqual(
      expect.arrayContaining([
        'BFF_CLIENT_PRIVATE_KEY: is required with BFF_PROFILE=fapi2',
        expect.stringMatching(/^BFF_PAR: conflicts/),
      ]),
    );
  });

  test('a client secret left set is ignored with a warning, not an error', () => {
    const config = loadConfig({ ...fapiEnv, BFF_CLIENT_SECRET: 'super-secret-client-credential' });
    expect(config.client.auth.kind).toBe('private_key_jwt');
    expect(config.warnings).toEqual([
      'BFF_CLIENT_SECRET: is ignored: BFF_PROFILE=fapi2 authenticates with private_key_jwt',
    ]);
  });

  test('an unknown profile is refused', () => {
    expect(configProblems({ ...validEnv, BFF_PROFILE: 'fapi1' })).toEqual([
      'BFF_PROFILE: must be fapi2, or unset for none',
    ]);
  });

  test('without the profile nothing changes: the defaults stay bearer, no PAR, client_secret_basic', () => {
    const config = loadConfig(validEnv);
    expect(config.profile).toBeUndefined();
    expect(config.par).toBe('off');
    expect(config.dpop).toBeUndefined();
    expect(config.client.auth).toMatchObject({ kind: 'secret', method: 'client_secret_basic' });
  });

  test('the error message lists the profile conflicts with every other problem', () => {
    let error: unknown;
    try {
      loadConfig({ ...fapiEnv, BFF_DPOP: 'no', BFF_PORT: 'x' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/BFF_DPOP: conflicts[\s\S]*BFF_PORT: must be a port/);
  });
});

describe("an IdP's metadata under BFF_PROFILE=fapi2", () => {
  const metadata = (m: Partial<ServerMetadata>): ServerMetadata => ({ issuer: 'https://idp.example', ...m });
  const algs = (advertised: string[] | undefined) =>
    idTokenAlgorithms('fapi2', signingAlgorithms(advertised));

  test('suits when it promises iss and signs ID tokens with a FAPI algorithm', () => {
    const server = metadata({ authorization_response_iss_parameter_supported: true });
    expect(fapi2IdpProblems(server, algs(['RS256', 'PS256']))).toEqual([]);
    expect(algs(['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519', 'HS256'])).toEqual([
      'PS256',
      'ES256',
      'EdDSA',
    ]);
  });

  test('is unsuitable when its ID token algorithms are none of PS256, ES256, EdDSA (RS256 by default)', () => {
    const server = metadata({ authorization_response_iss_parameter_supported: true });
    expect(fapi2IdpProblems(server, algs(undefined))).toEqual([
      expect.stringMatching(/accepts ID tokens signed with PS256, ES256, EdDSA only/),
    ]);
    expect(fapi2IdpProblems(server, algs(['RS256', 'ES384']))).toHaveLength(1);
  });

  test('is unsuitable without authorization_response_iss_parameter_supported: true', () => {
    expect(fapi2IdpProblems(metadata({}), algs(['ES256']))).toEqual([
      expect.stringMatching(/RFC 9207 iss parameter/),
    ]);
  });

  test('without the profile, ID token algorithms are not narrowed', () => {
    expect(idTokenAlgorithms(undefined, ['RS256', 'PS256'])).toEqual(['RS256', 'PS256']);
  });
});
