import type { IncomingMessage } from 'node:http';
import express from 'express';
import fc from 'fast-check';
import { isManagementPath } from '../src/http/management-paths.js';
import { compileTrust, pathBelowBase, requestFacts } from '../src/http/request-facts.js';

/** Only what the request facts read: the socket's peer (and TLS flag) and the forwarding headers. */
function req(peer: string, headers: Record<string, string> = {}, encrypted = false): IncomingMessage {
  return { socket: { remoteAddress: peer, encrypted }, headers } as unknown as IncomingMessage;
}

const facts = (trustProxy: boolean | number | string, publicUrl = 'http://127.0.0.1:3000') =>
  requestFacts({ trustProxy, publicUrl, basePath: '' });

describe('pathBelowBase: the base path is stripped on whole segments only', () => {
  test.each([
    ['', '/x?q=1', '/x?q=1'],
    ['/app', '/app', '/'],
    ['/app', '/app/', '/'],
    ['/app', '/app/api/x?q=1', '/api/x?q=1'],
    ['/app', '/app?q=1', '?q=1'],
    ['/app', '/appx', undefined],
    ['/app', '/appx/api', undefined],
    ['/app', '/ap', undefined],
    ['/app', '/App/api', undefined],
    ['/app', '/other/app', undefined],
    ['/a/b', '/a/b/c', '/c'],
    ['/a/b', '/a/bc', undefined],
  ])('base %p, URL %p gives %p', (base, url, below) => {
    expect(pathBelowBase(base, url)).toBe(below);
  });

  const segment = fc.string({
    unit: fc.constantFrom(...'abcxyz019-_.~'.split('')),
    minLength: 1,
    maxLength: 6,
  });
  const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`);

  test('what lies below the base comes back unchanged, and a longer first segment is never below it', () => {
    fc.assert(
      fc.property(path, path, segment, (base, rest, tail) => {
        expect(pathBelowBase(base, base + rest)).toBe(rest);
        expect(pathBelowBase(base, base + tail + rest)).toBeUndefined();
      }),
    );
  });

  test('the request facts strip their configured base path the same way', () => {
    const app = requestFacts({ trustProxy: false, publicUrl: 'http://x/app', basePath: '/app' });
    expect(app.pathBelowBase('/app/api')).toBe('/api');
    expect(app.pathBelowBase('/appx/api')).toBeUndefined();
  });
});

describe('isManagementPath: /bff and below, on whole segments', () => {
  test.each([
    ['/bff', true],
    ['/bff/login', true],
    ['/bff?x', true],
    ['/bffx', false],
    ['/api/bff', false],
  ])('%p: %p', (path, expected) => {
    expect(isManagementPath(path)).toBe(expected);
  });
});

describe('secure: https at this hop, through a trusted proxy, or by the public URL', () => {
  const https = { 'x-forwarded-proto': 'https' };

  test('an https public URL makes every request secure, whatever the hop says', () => {
    const f = facts(false, 'https://app.example.com');
    expect(f.secure(req('127.0.0.1'))).toBe(true);
    expect(f.secure(req('127.0.0.1', { 'x-forwarded-proto': 'http' }))).toBe(true);
  });

  test('without a trusted proxy, X-Forwarded-Proto is ignored', () => {
    expect(facts(false).secure(req('127.0.0.1', https))).toBe(false);
    expect(facts('10.0.0.0/8').secure(req('127.0.0.1', https))).toBe(false);
    expect(facts(0).secure(req('127.0.0.1', https))).toBe(false);
  });

  test.each<[boolean | number | string]>([[true], [1], ['loopback'], ['10.0.0.1, 127.0.0.1']])(
    'a trusted proxy (%p) saying https makes the request secure',
    (trust) => {
      const f = facts(trust);
      expect(f.secure(req('127.0.0.1', https))).toBe(true);
      expect(f.secure(req('127.0.0.1', { 'x-forwarded-proto': ' https , http' }))).toBe(true);
      expect(f.secure(req('127.0.0.1', { 'x-forwarded-proto': 'http' }))).toBe(false);
      expect(f.secure(req('127.0.0.1'))).toBe(false);
    },
  );

  test('TLS on the socket is secure unless a trusted proxy says otherwise, as in Express', () => {
    expect(facts(false).secure(req('127.0.0.1', {}, true))).toBe(true);
    expect(facts(true).secure(req('127.0.0.1', {}, true))).toBe(true);
    expect(facts(true).secure(req('127.0.0.1', { 'x-forwarded-proto': 'http' }, true))).toBe(false);
  });
});

describe('forwardedFor: the client chain as far as it is trusted', () => {
  const headers = { 'x-forwarded-for': '203.0.113.7, 10.0.0.2' };

  test.each<[boolean | number | string, string]>([
    [false, '127.0.0.1'],
    [true, '203.0.113.7, 10.0.0.2, 127.0.0.1'],
    [1, '10.0.0.2, 127.0.0.1'],
    ['loopback', '10.0.0.2, 127.0.0.1'],
    ['loopback, 10.0.0.0/8', '203.0.113.7, 10.0.0.2, 127.0.0.1'],
  ])('trust proxy %p gives %p', (trust, chain) => {
    expect(facts(trust).forwardedFor(req('127.0.0.1', headers))).toBe(chain);
  });
});

test('compileTrust answers as Express compiles the same setting', () => {
  const settings: (boolean | number | string)[] = [true, false, 0, 2, 'loopback', '10.0.0.0/8, 127.0.0.1'];
  const addresses = ['127.0.0.1', '10.1.2.3', '203.0.113.7', '::1', 'not-an-ip'];
  for (const setting of settings) {
    const app = express();
    app.set('trust proxy', setting);
    const theirs = app.get('trust proxy fn') as (addr: string, hop: number) => boolean;
    const ours = compileTrust(setting);
    for (const addr of addresses) {
      for (const hop of [0, 1, 2, 3])
        expect([setting, addr, hop, ours(addr, hop)]).toEqual([setting, addr, hop, theirs(addr, hop)]);
    }
  }
});
