import type { IncomingMessage } from 'node:http';
import { Redis } from 'ioredis';
import { createLogger } from '../src/log.js';
import { upstreamRequestHeaders } from '../src/proxy/headers.js';
import { storageId } from '../src/session/crypto.js';
import { HostSession, hostCookieWarnings } from '../src/session/host-session.js';
import {
  HostSessionIndex,
  memoryIndexBackend,
  redisIndexBackend,
  type IndexBackend,
} from '../src/session/host-session-index.js';
import { hostRecordId, hostRecordIds } from '../src/session/sealing-key.js';
import { startRedis, type TestRedis } from './support/redis.js';

const SECRET = 'a-session-secret-that-is-long-enough-0001';
const OLD_SECRET = 'an-older-session-secret-still-accepted-02';

describe('record ids from the host session id and the secret', () => {
  test('the record id, and so its store key and sealing key, cannot be made from the host session id alone', () => {
    const hostId = 'Xq3v9-host-session-id';
    const id = hostRecordId(SECRET, hostId);
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(id).not.toContain(hostId);
    // What a dump reader can compute from a connect-redis key is not the record's key.
    expect(storageId(id)).not.toBe(storageId(hostId));
    expect(hostRecordId(OLD_SECRET, hostId)).not.toBe(id);
    expect(hostRecordId(SECRET, `${hostId}x`)).not.toBe(id);
    expect(hostRecordId(SECRET, hostId)).toBe(id);
  });

  test('one candidate per secret, the current one first, for rotation', () => {
    expect(hostRecordIds([SECRET, OLD_SECRET], 'h')).toEqual([
      hostRecordId(SECRET, 'h'),
      hostRecordId(OLD_SECRET, 'h'),
    ]);
  });
});

describe('the host session cookie settings', () => {
  test('a cookie as strong as coatcheck’s gets no warning', () => {
    expect(hostCookieWarnings({ httpOnly: true, sameSite: 'lax', secure: true }, true)).toEqual([]);
    expect(hostCookieWarnings({ httpOnly: true, sameSite: 'strict', secure: false }, false)).toEqual([]);
  });

  test('not HttpOnly, no SameSite, and not Secure behind https are each named', () => {
    const warnings = hostCookieWarnings({ httpOnly: false, secure: false }, true);
    expect(warnings).toHaveLength(3);
    expect(warnings.join('\n')).toMatch(/HttpOnly/);
    expect(warnings.join('\n')).toMatch(/SameSite/);
    expect(warnings.join('\n')).toMatch(/Secure/);
    expect(hostCookieWarnings({ httpOnly: true, sameSite: 'none', secure: true }, true)).toHaveLength(1);
  });
});

describe('the host session cookie never goes upstream', () => {
  const forwarded = { for: '127.0.0.1', proto: 'http', host: 'app.example' };
  test('it is dropped with coatcheck’s own, and other cookies pass', () => {
    const out = upstreamRequestHeaders(
      { cookie: 'theme=dark; my.sid=s%3Aabc.sig; coatcheck=x.y' },
      'Bearer t',
      forwarded,
      undefined,
      (name) => name === 'my.sid',
    );
    expect(out.cookie).toBe('theme=dark');
    const only = upstreamRequestHeaders(
      { cookie: 'my.sid=s%3Aabc.sig' },
      'Bearer t',
      forwarded,
      undefined,
      (name) => name === 'my.sid',
    );
    expect(only.cookie).toBeUndefined();
  });

  test('a name other than the configured one is learned, once, from the request whose session it carries, and warned about', () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (line: string) => void lines.push(line) });
    const host = new HostSession({
      secrets: [SECRET],
      index: new HostSessionIndex(memoryIndexBackend(), [SECRET]),
      log,
      https: false,
    });
    const req = {
      headers: { cookie: 'theme=dark; shop.sid=s%3Ahost-id-1.c2lnbmF0dXJl' },
      session: {
        coatcheck: { since: 1 },
        regenerate() {},
        destroy() {},
        cookie: { httpOnly: true, sameSite: 'lax' },
      },
      sessionID: 'host-id-1',
    } as unknown as IncomingMessage;
    expect(host.locate(req)?.ids).toEqual([hostRecordId(SECRET, 'host-id-1')]);
    expect([...host.cookieNames]).toEqual(['connect.sid', 'shop.sid']);
    const named = lines.filter((l) => l.includes('sessionCookieName'));
    expect(named).toHaveLength(1);
    expect(named[0]).toContain('shop.sid');
    expect(named[0]).not.toContain('host-id-1');
    // Learning stops at the first sighting: a later request cannot add names.
    host.observe({
      ...req,
      headers: { cookie: 'other=s%3Ahost-id-1.c2lnbmF0dXJl' },
    } as unknown as IncomingMessage);
    expect([...host.cookieNames]).toEqual(['connect.sid', 'shop.sid']);
  });

  test('whatever its name, a cookie holding the signed session id is kept from the upstream, encoded or not', () => {
    const host = new HostSession({
      secrets: [SECRET],
      index: new HostSessionIndex(memoryIndexBackend(), [SECRET]),
      log: createLogger('silent'),
      https: false,
      cookieName: 'app.sid',
    });
    const req = { headers: {}, sessionID: 'host-id-2' } as unknown as IncomingMessage;
    const drop = host.upstreamCookieFilter(req);
    const out = upstreamRequestHeaders(
      {
        cookie:
          'theme=dark; app.sid=s%3Aother.sig; copy=s%3Ahost-id-2.sig; raw=s:host-id-2.sig; low=s%3ahost-id-2.sig; q="s%3Ahost-id-2.sig"; near=s%3Ahost-id-22.sig',
      },
      'Bearer t',
      forwarded,
      undefined,
      drop,
    );
    expect(out.cookie).toBe('theme=dark; near=s%3Ahost-id-22.sig');
    // Without a session id (express-session not mounted), the configured name still goes.
    expect(host.upstreamCookieFilter({ headers: {} } as IncomingMessage)('app.sid', 'x')).toBe(true);
  });

  test('a host session that carries no login costs no lookup, and a request without express-session is an error', () => {
    const host = new HostSession({
      secrets: [SECRET],
      index: new HostSessionIndex(memoryIndexBackend(), [SECRET]),
      log: createLogger('silent'),
      https: false,
    });
    const fresh = { headers: {}, session: { regenerate() {}, destroy() {} }, sessionID: 'h2' };
    expect(host.locate(fresh as unknown as IncomingMessage)).toBeUndefined();
    expect(() => host.locate({ headers: {} } as IncomingMessage)).toThrow(/express-session mounted before/);
  });
});

let redis: TestRedis;
let client: Redis;
beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe.each([
  ['Redis', () => redisIndexBackend(client, 'coatcheck:')],
  ['memory', () => memoryIndexBackend()],
] as [string, () => IndexBackend][])('the host-session index on %s', (_name, backend) => {
  const later = () => Date.now() + 60_000;

  test('finds host sessions by sid and by sub, and forgets exactly those it found', async () => {
    const index = new HostSessionIndex(backend(), [SECRET]);
    await index.add({ hostId: 'h-1', sub: 'alice', sid: 'idp-1' }, later());
    await index.add({ hostId: 'h-2', sub: 'alice', sid: 'idp-2' }, later());
    await index.add({ hostId: 'h-3', sub: 'bob', sid: undefined }, later());
    expect((await index.find('sid', 'idp-1')).ids).toEqual(['h-1']);
    const alice = await index.find('sub', 'alice');
    expect(alice.ids.sort()).toEqual(['h-1', 'h-2']);
    await index.add({ hostId: 'h-4', sub: 'alice', sid: 'idp-4' }, later());
    await alice.forget();
    expect((await index.find('sub', 'alice')).ids).toEqual(['h-4']);
    expect((await index.find('sub', 'bob')).ids).toEqual(['h-3']);
    await index.remove({ hostId: 'h-3', sub: 'bob', sid: undefined });
    expect((await index.find('sub', 'bob')).ids).toEqual([]);
  });

  test('entries made under an older secret are still found after rotation', async () => {
    const shared = backend();
    await new HostSessionIndex(shared, [OLD_SECRET]).add(
      { hostId: 'h-old', sub: 'carol', sid: undefined },
      later(),
    );
    const rotated = new HostSessionIndex(shared, [SECRET, OLD_SECRET]);
    expect((await rotated.find('sub', 'carol')).ids).toEqual(['h-old']);
    // Without the secret that made them, they are found by nobody.
    expect((await new HostSessionIndex(shared, [SECRET]).find('sub', 'carol')).ids).toEqual([]);
  });
});

test('a Redis dump of the index shows no host session id, subject or IdP session id, and it expires', async () => {
  const index = new HostSessionIndex(redisIndexBackend(client, 'dump-test:'), [SECRET]);
  await index.add(
    { hostId: 'host-session-dumped', sub: 'dave-subject', sid: 'dave-idp-sid' },
    Date.now() + 60_000,
  );
  const keys = await client.keys('dump-test:*');
  expect(keys).toHaveLength(2);
  let dump = keys.join('\n');
  for (const key of keys) {
    dump += JSON.stringify(await client.hgetall(key));
    const ttl = await client.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  }
  for (const secret of ['host-session-dumped', 'dave-subject', 'dave-idp-sid'])
    expect(dump).not.toContain(secret);
});

test('weak host cookie settings are logged once, when the first request shows them', () => {
  const lines: string[] = [];
  const host = new HostSession({
    secrets: [SECRET],
    index: new HostSessionIndex(memoryIndexBackend(), [SECRET]),
    log: createLogger('info', { write: (line: string) => void lines.push(line) }),
    https: true,
  });
  const req = {
    headers: {},
    session: { regenerate() {}, destroy() {}, cookie: { httpOnly: false, secure: false } },
    sessionID: 'h',
  } as unknown as IncomingMessage;
  host.locate(req);
  host.locate(req);
  const warnings = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
  expect(warnings.map((w) => w.level)).toEqual([40, 40, 40]);
  expect(warnings.map((w) => w.msg).join('\n')).toMatch(/HttpOnly[\s\S]*SameSite[\s\S]*Secure/);
});

test('with hostSessionCookie, weak settings are logged at start-up, before any request, and not again', () => {
  const lines: string[] = [];
  const host = new HostSession({
    secrets: [SECRET],
    index: new HostSessionIndex(memoryIndexBackend(), [SECRET]),
    log: createLogger('info', { write: (line: string) => void lines.push(line) }),
    https: true,
    cookie: { httpOnly: true, sameSite: 'lax', secure: false },
  });
  const atStart = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  expect(atStart).toEqual(['the host session cookie is not Secure although BFF_PUBLIC_URL is https']);
  const req = {
    headers: {},
    session: { regenerate() {}, destroy() {}, cookie: { httpOnly: false, secure: false } },
    sessionID: 'h',
  } as unknown as IncomingMessage;
  host.locate(req);
  expect(lines).toHaveLength(1);
});

describe("createBff's session option", () => {
  const options = {
    issuer: 'http://127.0.0.1:9/unreachable-idp',
    clientId: 'c',
    clientSecret: 'a-client-secret',
    publicUrl: 'http://127.0.0.1:3000',
    sessionSecret: SECRET,
    sessionStore: 'memory' as const,
    routes: [{ path: '/api', target: 'http://127.0.0.1:9/v1' }],
  };

  test('anything but express-session is refused, with the other problems at once', async () => {
    const { createBff, ConfigError } = await import('../src/index.js');
    const bad = { ...options, session: 'cookie-session' } as unknown as Parameters<typeof createBff>[0];
    await expect(createBff(bad)).rejects.toThrow(ConfigError);
    await expect(createBff({ ...bad, publicUrl: 'nope' })).rejects.toThrow(
      /session: must be 'express-session'[\s\S]*publicUrl/,
    );
  });

  test('mounted without express-session before it, an API call is a 500 with a log line that says so', async () => {
    const { createBff } = await import('../src/index.js');
    const express = (await import('express')).default;
    const supertest = (await import('supertest')).default;
    const lines: string[] = [];
    const bff = await createBff(
      { ...options, session: 'express-session' },
      { log: createLogger('info', { write: (line: string) => void lines.push(line) }) },
    );
    try {
      const app = express();
      app.use(bff.middleware);
      const res = await supertest(app).get('/api/x').set('x-csrf', '1');
      expect(res.status).toBe(500);
      expect(res.body.error).toBe('internal_error');
      expect(lines.join('')).toMatch(/needs express-session mounted before/);
    } finally {
      await bff.close();
    }
  });
});
