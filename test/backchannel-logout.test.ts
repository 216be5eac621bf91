import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { Browser } from './support/browser.js';
import { CLIENT_ID, signOutAtIdp, startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

const EVENT = { 'http://schemas.openid.net/event/backchannel-logout': {} };
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ instances: 2 });
});
afterAll(async () => {
  await stack?.close();
});

async function post(body: string, contentType = 'application/x-www-form-urlencoded', instance = 0) {
  const res = await request(`${stack.bffs[instance]!.url}/bff/backchannel-logout`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, cacheControl: res.headers['cache-control'], text };
}

const form = (token: string): string => new URLSearchParams({ logout_token: token }).toString();

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: stack.idp.issuer,
    aud: CLIENT_ID,
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 120,
    jti: randomUUID(),
    events: EVENT,
    sub: 'alice-0001',
    ...extra,
  };
}

async function status(b: Browser, instance: number): Promise<number> {
  return (await b.go(`${stack.bffs[instance]!.url}/bff/user`, { headers: csrf })).status;
}

test('logging out at the IdP makes it post a logout token that ends that session on every replica', async () => {
  const alice = await loggedIn(stack.bffs[0]!);
  const other = await loggedIn(stack.bffs[1]!);
  expect(await status(alice, 1)).toBe(200);

  await signOutAtIdp(stack, alice);
  expect(stack.idp.counters.backchannelErrors).toEqual([]);

  expect(await status(alice, 0)).toBe(401);
  expect(await status(alice, 1)).toBe(401);
  // Another browser of the same user has its own IdP session (sid), which stays.
  expect(await status(other, 0)).toBe(200);
});

test('a token with sub and no sid ends every session of that subject, whichever replica made it', async () => {
  const one = await loggedIn(stack.bffs[0]!);
  const two = await loggedIn(stack.bffs[1]!);
  const session = (await stack.sessionOf(one))!;

  const res = await post(form(await stack.idp.sign(claims(), 'logout+jwt')), undefined, 1);
  expect(res.status).toBe(200);
  expect(res.cacheControl).toBe('no-store');
  expect(await status(one, 0)).toBe(401);
  expect(await status(two, 1)).toBe(401);
  // Its token set and index entries went with it.
  expect(await stack.bff.store.readTokens(session.key)).toBeUndefined();
});

test('a replayed logout token is refused', async () => {
  const token = await stack.idp.sign(claims({ sub: 'nobody' }));
  expect((await post(form(token))).status).toBe(200);
  const replay = await post(form(token), undefined, 1);
  expect(replay.status).toBe(400);
  expect(replay.cacheControl).toBe('no-store');
  expect(JSON.parse(replay.text).error).toBe('invalid_logout_token');
});

describe('invalid logout tokens get 400 with Cache-Control: no-store and end nothing', () => {
  let victim: Browser;
  beforeAll(async () => {
    victim = await loggedIn(stack.bffs[0]!);
  });
  afterEach(async () => {
    expect(await status(victim, 0)).toBe(200);
  });

  const cases: [string, () => Promise<string>][] = [
    ['no logout_token field', async () => 'other=1'],
    ['garbage', async () => form('not.a.jwt')],
    ['a wrong aud', async () => form(await stack.idp.sign(claims({ aud: 'someone-else' })))],
    ['a wrong iss', async () => form(await stack.idp.sign(claims({ iss: 'https://evil.example' })))],
    ['no events claim', async () => form(await stack.idp.sign(claims({ events: undefined })))],
    ['the wrong event', async () => form(await stack.idp.sign(claims({ events: { 'urn:other': {} } })))],
    ['a nonce', async () => form(await stack.idp.sign(claims({ nonce: 'n' })))],
    ['neither sid nor sub', async () => form(await stack.idp.sign(claims({ sub: undefined })))],
    ['no jti', async () => form(await stack.idp.sign(claims({ jti: undefined })))],
    ['no iat', async () => form(await stack.idp.sign(claims({ iat: undefined })))],
    [
      'an iat far in the past',
      async () => form(await stack.idp.sign(claims({ iat: Math.floor(Date.now() / 1000) - 3600 }))),
    ],
    [
      'an expired exp',
      async () => form(await stack.idp.sign(claims({ exp: Math.floor(Date.now() / 1000) - 600 }))),
    ],
    [
      'a signature by another key with the IdP’s kid',
      async () => {
        const { privateKey } = await generateKeyPair('RS256');
        return form(
          await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'demo-1' }).sign(privateKey),
        );
      },
    ],
    [
      'alg none',
      async () => {
        const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
        return form(`${enc({ alg: 'none' })}.${enc(claims())}.`);
      },
    ],
    [
      'an HMAC signature keyed with the IdP’s public key',
      async () => {
        const { publicKey } = await generateKeyPair('RS256', { extractable: true });
        const secret = new TextEncoder().encode(JSON.stringify(await exportJWK(publicKey)));
        return form(await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(secret));
      },
    ],
  ];

  test.each(cases)('%s', async (_name, make) => {
    const res = await post(await make());
    expect(res.status).toBe(400);
    expect(res.cacheControl).toBe('no-store');
    expect(JSON.parse(res.text)).toEqual({ error: 'invalid_logout_token', message: expect.any(String) });
  });

  test('a JSON body instead of a form', async () => {
    const res = await post(
      JSON.stringify({ logout_token: await stack.idp.sign(claims()) }),
      'application/json',
    );
    expect(res.status).toBe(400);
    expect(res.cacheControl).toBe('no-store');
  });
});
