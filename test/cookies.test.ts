import { request } from 'undici';
import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

describe('cookies behind a TLS-terminating proxy (BFF_TRUST_PROXY=true)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { BFF_TRUST_PROXY: 'true' } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('over https the session cookie is Secure and __Host- prefixed, and works', async () => {
    const b = new Browser({ tlsOrigins: [stack.bff.url] });
    const page = await b.login(stack.bff.url);
    // The callback clears the login's own cookie once it is used.
    const cleared = page.setCookies.find((c) => c.startsWith('__Host-coatcheck-login-'))!;
    expect(cleared).toMatch(/=; Path=\/; Expires=Thu, 01 Jan 1970/);
    const session = page.setCookies.find((c) => c.startsWith('__Host-coatcheck='))!;
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).toMatch(/; Path=\//);
    expect(session).not.toMatch(/Domain=/i);
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
  });

  test('the login cookie is Secure and __Host- prefixed over https', async () => {
    const b = new Browser({ tlsOrigins: [stack.bff.url] });
    const start = await b.go(`${stack.bff.url}/bff/login`, { follow: false });
    const cookie = start.setCookies.find((c) => c.startsWith('__Host-coatcheck-login-'))!;
    expect(cookie).toMatch(/; Secure/);
    expect(cookie).toMatch(/; SameSite=Lax/);
  });

  test('over https a sixth login start expires the oldest __Host- login cookie', async () => {
    const b = new Browser({ tlsOrigins: [stack.bff.url] });
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      stack.clock.advance(1000);
      const start = await b.go(`${stack.bff.url}/bff/login`, { follow: false });
      const set = start.setCookies.find(
        (c) => c.startsWith('__Host-coatcheck-login-') && /Max-Age=600/.test(c),
      )!;
      expect(set).toMatch(/; Secure/);
      names.push(set.slice(0, set.indexOf('=')));
      if (i === 5) {
        const expired = start.setCookies.filter((c) => /Expires=Thu, 01 Jan 1970/.test(c));
        expect(expired).toEqual([expect.stringMatching(new RegExp(`^${names[0]}=; Path=/; .*Secure`))]);
      }
    }
    const held = (await b.jar.getCookies(stack.bff.url)).filter((c) =>
      c.key.startsWith('__Host-coatcheck-login-'),
    );
    expect(held.map((c) => c.key).sort()).toEqual(names.slice(1).sort());
  });

  test('over plain http the cookie has no Secure flag and no prefix', async () => {
    const page = await new Browser().login(stack.bff.url);
    const session = page.setCookies.find((c) => c.startsWith('coatcheck='))!;
    expect(session).not.toMatch(/Secure/);
  });

  test('the cookie name follows the scheme: a plain-http request reads only the unprefixed name', async () => {
    const b = await loggedIn(stack.bff, { tlsOrigins: [stack.bff.url] });
    const value = (await b.jar.getCookies(stack.bff.url)).find((c) => c.key === '__Host-coatcheck')!;
    const res = await request(`${stack.bff.url}/bff/user`, {
      headers: { ...csrf, cookie: `coatcheck=${value.value}` },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    const forged = await request(`${stack.bff.url}/bff/user`, {
      headers: { ...csrf, cookie: `__Host-coatcheck=${value.value}` },
    });
    await forged.body.dump();
    expect(forged.statusCode).toBe(401);
  });
});

describe('X-Forwarded-Proto is ignored without BFF_TRUST_PROXY', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('a spoofed X-Forwarded-Proto does not change the cookie', async () => {
    const start = await request(`${stack.bff.url}/bff/login`, { headers: { 'x-forwarded-proto': 'https' } });
    await start.body.dump();
    const cookies = ([] as string[]).concat(start.headers['set-cookie'] ?? []);
    expect(cookies.some((c) => c.startsWith('coatcheck-login-'))).toBe(true);
    expect(cookies.some((c) => c.startsWith('__Host-'))).toBe(false);
  });
});
