import { randomBytes } from 'node:crypto';
import {
  LOGIN_TTL_MS,
  MAX_RETURN_TO_LENGTH,
  loginCookieName,
  loginCookiesToExpire,
  loginId,
  openLogin,
  sealLogin,
  type LoginTransaction,
} from '../src/session/login-transaction.js';

describe('the sealed login transaction', () => {
  const OLD = 'the-secret-before-rotation-0123456789';
  const NEW = 'the-secret-after-rotation-0123456789a';
  const random = (): string => randomBytes(32).toString('base64url');
  const tx = (issuedAt: number, extra: Partial<LoginTransaction> = {}): LoginTransaction => ({
    state: random(),
    nonce: random(),
    codeVerifier: random(),
    returnTo: '/',
    replaces: random(),
    issuedAt,
    ...extra,
  });

  test('opens with every listed secret, so a login survives a secret rotation', () => {
    const t = tx(1000);
    const sealed = sealLogin(t, [OLD]);
    expect(openLogin(sealed, loginId(t.state), [NEW, OLD], 2000)).toEqual(t);
    expect(openLogin(sealed, loginId(t.state), [NEW], 2000)).toBeUndefined();
  });

  test('opens only under the cookie name it was issued for', () => {
    const t = tx(1000);
    const sealed = sealLogin(t, [OLD]);
    expect(openLogin(sealed, loginId(t.state), [OLD], 2000)).toEqual(t);
    expect(openLogin(sealed, loginId(tx(1000).state), [OLD], 2000)).toBeUndefined();
  });

  test('expires a lifetime after it was issued', () => {
    const t = tx(1000);
    const sealed = sealLogin(t, [OLD]);
    expect(openLogin(sealed, loginId(t.state), [OLD], 1000 + LOGIN_TTL_MS - 1)).toEqual(t);
    expect(openLogin(sealed, loginId(t.state), [OLD], 1000 + LOGIN_TTL_MS)).toBeUndefined();
  });

  test('a typical cookie is well under 1 KB', () => {
    const t = tx(Date.now(), { returnTo: '/orders?tab=open' });
    const pair = `${loginCookieName(loginId(t.state), true)}=${sealLogin(t, [OLD])}`;
    expect(pair.length).toBeLessThan(400);
    const largest = { ...t, returnTo: `/${'a'.repeat(MAX_RETURN_TO_LENGTH - 1)}` };
    const worst = `${loginCookieName(loginId(t.state), true)}=${sealLogin(largest, [OLD])}`;
    expect(worst.length).toBeLessThan(900);
  });

  test('a new login expires what does not open, then the oldest, keeping four beside its own', () => {
    const now = 10 * LOGIN_TTL_MS;
    const live = [5, 1, 4, 2, 3, 6].map((age) => tx(now - age * 1000));
    const cookies = live.map((t) => `${loginCookieName(loginId(t.state), false)}=${sealLogin(t, [OLD])}`);
    const stale = tx(now - LOGIN_TTL_MS);
    cookies.push(`${loginCookieName(loginId(stale.state), false)}=${sealLogin(stale, [OLD])}`);
    cookies.push(`${loginCookieName('forged', false)}=${sealLogin(tx(now), [OLD])}`);
    cookies.push('coatcheck=unrelated; other=1');
    const expired = loginCookiesToExpire(cookies.join('; '), false, [OLD], now);
    const nameOfAge = (age: number): string =>
      loginCookieName(loginId(live[[5, 1, 4, 2, 3, 6].indexOf(age)]!.state), false);
    expect(expired).toEqual([
      loginCookieName(loginId(stale.state), false),
      loginCookieName('forged', false),
      nameOfAge(6),
      nameOfAge(5),
    ]);
    expect(loginCookiesToExpire(cookies.join('; '), true, [OLD], now)).toEqual([]);
  });
});
