import { parseChallenges } from '../src/proxy/step-up-challenge.js';
import { stepUpAnswer } from '../src/proxy/step-up.js';
import { unmetStepUp } from '../src/oidc/step-up-check.js';
import { parseLoginRequest } from '../src/endpoints/login-request.js';
import { BffError } from '../src/errors.js';
import { loadConfig } from '../src/config/load.js';
import { configProblems, validEnv } from './support/config-env.js';
import { loginId, openLogin, sealLogin, type LoginTransaction } from '../src/session/login-transaction.js';

describe('WWW-Authenticate parsing', () => {
  test('reads several challenges, quoted commas and escapes, in one value or several', () => {
    expect(
      parseChallenges(
        'Basic realm="a, b", Bearer error="insufficient_user_authentication", acr_values="x y", max_age=5',
      ),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'a, b' } },
      {
        scheme: 'bearer',
        params: { error: 'insufficient_user_authentication', acr_values: 'x y', max_age: '5' },
      },
    ]);
    expect(parseChallenges(['Negotiate abc==', 'DPoP ERROR="a\\"b", algs="ES256"'])).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'dpop', params: { error: 'a"b', algs: 'ES256' } },
    ]);
    expect(parseChallenges('Bearer')).toEqual([{ scheme: 'bearer', params: {} }]);
  });

  test('a repeated param keeps its first value; what does not parse is not guessed at', () => {
    expect(parseChallenges('Bearer error="a", error="insufficient_user_authentication"')).toEqual([
      { scheme: 'bearer', params: { error: 'a' } },
    ]);
    expect(parseChallenges('Bearer error="insufficient_user_authentication')).toEqual([
      { scheme: 'bearer', params: {} },
    ]);
  });
});

describe('the SPA’s step-up answer', () => {
  test('carries what the challenge carries, and a loginUrl below the base path', () => {
    expect(
      stepUpAnswer(
        'Bearer error="insufficient_user_authentication", acr_values="urn:a  urn:b", max_age="60"',
        '/portal',
      ),
    ).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      acr_values: 'urn:a urn:b',
      max_age: 60,
      loginUrl: '/portal/bff/login?acr_values=urn%3Aa+urn%3Ab&max_age=60',
    });
    expect(stepUpAnswer('Bearer error="insufficient_user_authentication"', '')).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      loginUrl: '/bff/login?',
    });
  });

  test('a malformed max_age is left out rather than passed on', () => {
    const answer = stepUpAnswer('Bearer error="insufficient_user_authentication", max_age="-1"', '');
    expect(answer).not.toHaveProperty('max_age');
    expect(answer?.loginUrl).toBe('/bff/login?');
  });

  test('other errors and other schemes are no step-up', () => {
    expect(stepUpAnswer('Bearer error="invalid_token"', '')).toBeUndefined();
    expect(stepUpAnswer('Basic error="insufficient_user_authentication"', '')).toBeUndefined();
    expect(stepUpAnswer(undefined, '')).toBeUndefined();
  });
});

describe('the callback’s step-up check', () => {
  const startedAt = 1_000_000_000_000;
  const t = startedAt / 1000;

  test('the acr must be one of those asked for', () => {
    expect(unmetStepUp({ acr: 'strong' }, { acrValues: 'strong other', startedAt })).toBeUndefined();
    expect(unmetStepUp({ acr: 'weak' }, { acrValues: 'strong', startedAt })).toMatch(/acr/);
    expect(unmetStepUp({}, { acrValues: 'strong', startedAt })).toMatch(/no acr/);
  });

  test('with max_age, auth_time must be present and recent enough, allowing for clock skew', () => {
    expect(unmetStepUp({ auth_time: t + 5 }, { maxAge: 0, startedAt })).toBeUndefined();
    expect(unmetStepUp({ auth_time: t - 20 }, { maxAge: 0, startedAt })).toBeUndefined();
    expect(unmetStepUp({ auth_time: t - 600 }, { maxAge: 0, startedAt })).toMatch(/auth_time/);
    expect(unmetStepUp({ auth_time: t - 600 }, { maxAge: 900, startedAt })).toBeUndefined();
    expect(unmetStepUp({}, { maxAge: 900, startedAt })).toMatch(/no auth_time/);
    expect(unmetStepUp({ auth_time: String(t) }, { maxAge: 900, startedAt })).toMatch(/no auth_time/);
  });
});

describe('/bff/login’s step-up and silent parameters', () => {
  const allowed = ['urn:a', 'urn:b'];
  const refused = (query: Record<string, unknown>) => {
    try {
      parseLoginRequest(query, allowed);
    } catch (err) {
      return err instanceof BffError ? err.code : 'other';
    }
    return 'accepted';
  };

  test('accepts allowed acr values, a max_age and prompt=none', () => {
    expect(parseLoginRequest({ acr_values: ' urn:b  urn:a', max_age: '0', prompt: 'none' }, allowed)).toEqual(
      { acrValues: 'urn:b urn:a', maxAge: 0, prompt: 'none' },
    );
    expect(parseLoginRequest({ returnTo: '/x' }, allowed)).toEqual({});
  });

  test('refuses everything else with invalid_request', () => {
    expect(refused({ acr_values: 'urn:c' })).toBe('invalid_request');
    expect(refused({ acr_values: 'urn:a' })).toBe('accepted');
    expect(refused({ acr_values: ['urn:a', 'urn:b'] })).toBe('invalid_request');
    expect(refused({ acr_values: `urn:a ${'urn:b '.repeat(50)}` })).toBe('invalid_request');
    expect(refused({ max_age: '1e3' })).toBe('invalid_request');
    expect(refused({ prompt: 'consent' })).toBe('invalid_request');
    expect(() => parseLoginRequest({ acr_values: 'urn:a' }, [])).toThrow(BffError);
  });
});

describe('the login transaction keeps what was asked', () => {
  const SECRET = ['a-login-transaction-secret-0123456789'];
  const base: LoginTransaction = {
    state: 'state-0123456789',
    nonce: 'nonce',
    codeVerifier: 'verifier',
    returnTo: '/x',
    issuedAt: 1000,
  };

  test('acr values, max_age and prompt=none survive sealing, with or without a replaced session', () => {
    for (const tx of [
      { ...base, acrValues: 'urn:a urn:b', maxAge: 0, silent: true },
      { ...base, replaces: 'key', maxAge: 30 },
      { ...base, silent: true },
      base,
    ]) {
      expect(openLogin(sealLogin(tx, SECRET), loginId(tx.state), SECRET, 2000)).toEqual(tx);
    }
  });
});

describe('BFF_ALLOWED_ACR_VALUES', () => {
  test('is a comma-separated list, empty by default', () => {
    expect(loadConfig({ ...validEnv }).allowedAcrValues).toEqual([]);
    expect(loadConfig({ ...validEnv, BFF_ALLOWED_ACR_VALUES: ' urn:a , phr,, ' }).allowedAcrValues).toEqual([
      'urn:a',
      'phr',
    ]);
  });

  test('refuses a value with a space, which acr_values could not carry', () => {
    expect(configProblems({ ...validEnv, BFF_ALLOWED_ACR_VALUES: 'urn:a, two words' })).toEqual([
      expect.stringMatching(/^BFF_ALLOWED_ACR_VALUES: .*without spaces/),
    ]);
  });
});
