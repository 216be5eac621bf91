import { SignJWT, generateKeyPair } from 'jose';
import { Redis } from 'ioredis';
import type { TokenSet } from '../src/oidc/token-set.js';
import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { keyFor, newSessionId, openRecord, seal, sealRecord, storageId } from '../src/session/crypto.js';
import { pack, unpack } from '../src/session/record-codec.js';
import { RedisSessionStore } from '../src/session/redis-store.js';
import { Sessions, type SessionData } from '../src/session/sessions.js';
import { startRedis, type TestRedis } from './support/redis.js';

let redis: TestRedis;
let store: RedisSessionStore;
let raw: Redis;
let sessions: Sessions;

beforeAll(async () => {
  redis = await startRedis();
  store = new RedisSessionStore(redis.url);
  await store.ready();
  raw = new Redis(redis.url);
  sessions = new Sessions(store, { idleMs: 1_800_000, absoluteMs: 28_800_000 });
});
afterAll(async () => {
  raw?.disconnect();
  await store?.close();
  await redis?.stop();
});

const issuer = 'http://127.0.0.1:36959';

/** Tokens as the demo IdP (src/demo/idp.ts) issues them: RS256 JWTs with its claims, an opaque refresh token. */
async function demoIdpTokens(): Promise<{ tokens: TokenSet; data: SessionData }> {
  const { privateKey } = await generateKeyPair('RS256');
  const now = Math.floor(Date.now() / 1000);
  const accessToken = await new SignJWT({ jti: newSessionId(), client_id: 'coatcheck-bench' })
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'demo-1' })
    .setSubject('bench-user-0001')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .setIssuer(issuer)
    .setAudience('urn:coatcheck:api')
    .sign(privateKey);
  const claims = { name: 'Bench User', email: 'bench@example.com', email_verified: true };
  const idToken = await new SignJWT({ ...claims, nonce: newSessionId() })
    .setProtectedHeader({ alg: 'RS256', kid: 'demo-1' })
    .setSubject('bench-user-0001')
    .setAudience('coatcheck-bench')
    .setExpirationTime(now + 3600)
    .setIssuedAt(now)
    .setIssuer(issuer)
    .sign(privateKey);
  const tokens: TokenSet = {
    accessToken,
    tokenType: 'bearer',
    expiresAt: now * 1000 + 3_600_000,
    refreshAt: now * 1000 + 3_570_000,
    refreshToken: newSessionId().slice(0, 43),
    idToken,
    scope: '',
  };
  const data: SessionData = {
    sub: 'bench-user-0001',
    logoutId: newSessionId().slice(0, 22),
    claims: { sub: 'bench-user-0001', ...claims, iss: issuer },
  };
  return { tokens, data };
}

/** What bench/run.mjs counts: MEMORY USAGE of every key a login leaves in Redis. */
async function redisBytes(): Promise<number> {
  let total = 0;
  for (const key of await raw.keys('coatcheck:*'))
    total += (await raw.memory('USAGE', key, 'SAMPLES', 0)) ?? 0;
  return total;
}

describe('the size of a session in Redis', () => {
  beforeEach(() => raw.flushall());

  test('a session with demo-IdP tokens takes at most 2.5 KB, its login marker and index included', async () => {
    const { tokens, data } = await demoIdpTokens();
    await sessions.completeLoginOnce('login-1', 600_000, () => sessions.create(data, tokens, Date.now()));
    const bytes = await redisBytes();
    expect(bytes).toBeLessThanOrEqual(2560);
    expect(await raw.keys('coatcheck:*')).toHaveLength(3);
  });

  test('the tokens field holds raw bytes, not base64', async () => {
    const { tokens, data } = await demoIdpTokens();
    const { id } = await sessions.create(data, tokens, Date.now());
    const field = await raw.hgetBuffer(`coatcheck:s:${storageId(id)}`, 't');
    expect(field![0]).toBe(0x01);
    // Smaller than the JWTs' signatures alone would be in base64url.
    expect(field!.length).toBeLessThan(tokens.accessToken.length + tokens.idToken!.length);
  });
});

describe('records of the earlier format (a rolling upgrade)', () => {
  test('a session written as base64url JSON still loads, and a refresh rewrites it in the new format', async () => {
    const { tokens, data } = await demoIdpTokens();
    const id = newSessionId();
    const key = storageId(id);
    const now = Date.now();
    // Exactly what the previous version stored: seal() of the JSON, base64url text.
    await store.create(key, {
      createdAt: now,
      absoluteExpiresAt: now + 60_000,
      idleMs: 60_000,
      data: seal(id, 'data', JSON.stringify(data)),
      tokens: seal(id, 'tokens', JSON.stringify(tokens)),
      sub: data.sub,
      sid: undefined,
    });
    const session = await sessions.load(id, now);
    expect(session?.tokens).toEqual(tokens);
    expect(session?.data()).toEqual(data);

    const refreshed = { ...tokens, accessToken: `${tokens.accessToken.slice(0, -4)}AAAA` };
    expect(await sessions.writeTokens({ id, key }, session!.version, refreshed)).toBe(true);
    expect((await raw.hgetBuffer(`coatcheck:s:${key}`, 't'))![0]).toBe(0x01);
    expect((await sessions.readTokens({ id, key }))?.tokens).toEqual(refreshed);
    expect((await sessions.load(id, now))?.data()).toEqual(data);
  });
});

describe('sealing', () => {
  test('the record key is HKDF-SHA256 as hkdfSync derives it, for any session id', () => {
    const hkdf = (id: string) => Buffer.from(hkdfSync('sha256', id, 'coatcheck/session', 'record-v1', 32));
    expect(keyFor(newSessionId()).equals(hkdf(newSessionId()))).toBe(false);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (id) => keyFor(id).equals(hkdf(id))),
      { numRuns: 500 },
    );
    const id = newSessionId();
    expect(keyFor(id)).toHaveLength(32);
    expect(keyFor(id).equals(hkdf(id))).toBe(true);
  });

  test('a sealed value opens only for its session and field', () => {
    const id = newSessionId();
    const sealed = sealRecord(id, 'tokens', { accessToken: 'x' });
    expect(openRecord(id, 'tokens', sealed)).toEqual({ accessToken: 'x' });
    expect(openRecord(newSessionId(), 'tokens', sealed)).toBeUndefined();
    expect(openRecord(id, 'data', sealed)).toBeUndefined();
  });

  test('a tampered or truncated value does not open', () => {
    const id = newSessionId();
    const sealed = sealRecord(id, 'tokens', { accessToken: 'x' });
    const flipped = sealed.slice(0, -1) + String.fromCharCode(sealed.charCodeAt(sealed.length - 1) ^ 1);
    expect(openRecord(id, 'tokens', flipped)).toBeUndefined();
    expect(openRecord(id, 'tokens', sealed.slice(0, 20))).toBeUndefined();
    expect(openRecord(id, 'tokens', '')).toBeUndefined();
    expect(openRecord(id, 'tokens', 'not sealed at all')).toBeUndefined();
  });
});

describe('packing', () => {
  test.each([
    ['a JWT', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU'],
    ['base64url whose last character has spare bits set', 'AAAAAAAAAAAAAAAAAAAAAB'],
    ['a length no base64 has', 'AAAAAAAAAAAAAAAAA'],
    ['empty segments', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.'],
    ['dots only', '................'],
    ['a string that starts with NUL', '\u0000AAAA.BBBB'],
    ['two NULs', '\u0000\u00004.4'],
    ['text', 'Grüße, 世界 — not base64url at all'],
    ['short base64url', 'abcd'],
  ])('%s comes back exactly', (_name, text) => {
    const value = { text, nested: [text, { text }], n: 1, b: true, nil: null };
    expect(unpack(pack(value))).toEqual(value);
  });

  test('fields it has never seen are packed too', () => {
    const value = {
      routeTokens: { '/api/a': { accessToken: 'eyJhbGciOiJFUzI1NiJ9.e30.' + 'A'.repeat(86) } },
    };
    expect(unpack(pack(value))).toEqual(value);
    expect(pack(value).length).toBeLessThan(JSON.stringify(value).length);
  });
});
