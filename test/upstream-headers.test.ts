import fc from 'fast-check';
import {
  CLIENT_CLAIM_HEADERS,
  CLIENT_CLAIM_PREFIXES,
  downstreamResponseHeaders,
  forwardableHeaders,
  isClientClaim,
  upstreamRequestHeaders,
} from '../src/proxy/headers.js';

const forwarded = { for: '10.0.0.7', proto: 'https', host: 'app.example' };

describe('request headers: the client cannot speak for coatcheck', () => {
  test('every listed name and prefix family is dropped, and coatcheck sets only its own three', () => {
    const incoming: Record<string, string> = { accept: 'application/json', 'x-csrf': '1' };
    for (const name of CLIENT_CLAIM_HEADERS) incoming[name] = 'admin';
    for (const prefix of CLIENT_CLAIM_PREFIXES) incoming[`${prefix}user`] = 'admin';
    const out = upstreamRequestHeaders(incoming, 'Bearer t', forwarded);
    expect(out).toEqual({
      accept: 'application/json',
      'x-csrf': '1',
      authorization: 'Bearer t',
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'app.example',
    });
  });

  test('X-Forwarded-User: admin does not reach the upstream', () => {
    expect(upstreamRequestHeaders({ 'x-forwarded-user': 'admin' }, 'Bearer t', forwarded)).not.toHaveProperty(
      'x-forwarded-user',
    );
  });

  const tokenChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_'.split(''));
  const suffix = fc.string({ unit: tokenChar, maxLength: 12 });

  test('any name in a prefix family is a claim', () => {
    fc.assert(
      fc.property(fc.constantFrom(...CLIENT_CLAIM_PREFIXES), suffix, (prefix, rest) => {
        expect(isClientClaim(prefix + rest)).toBe(true);
        expect(forwardableHeaders({ [prefix + rest]: 'x' })).toEqual({});
      }),
    );
  });

  test('a name that is neither listed nor in a family passes unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: tokenChar, minLength: 1, maxLength: 20 }), (name) => {
        fc.pre(!CLIENT_CLAIM_HEADERS.has(name) && !CLIENT_CLAIM_PREFIXES.some((p) => name.startsWith(p)));
        fc.pre(
          !['connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'host', 'expect', 'cookie'].includes(
            name,
          ),
        );
        fc.pre(!name.startsWith('proxy-') && !name.startsWith('x-') && name !== 'authorization');
        // Node's parser drops a header named __proto__ before coatcheck sees it (the assignment sets no key).
        fc.pre(name !== '__proto__');
        expect(forwardableHeaders({ [name]: 'v' })).toEqual({ [name]: 'v' });
      }),
    );
  });

  test.each(['x-forwardedness', 'x-forward', 'x-envoy', 'x-hostname', 'x-auth-request', 'remote-user-agent'])(
    '%s only looks alike and passes',
    (name) => {
      expect(isClientClaim(name)).toBe(false);
    },
  );
});

describe('response headers: Cache-Control for shared caches', () => {
  const cc = (value: string | string[]) =>
    downstreamResponseHeaders({ 'cache-control': value })['cache-control'];

  test.each<[string | string[], string]>([
    ['max-age=60', 'private, max-age=60'],
    [['max-age=60', 'must-revalidate'], 'private, max-age=60, must-revalidate'],
    ['max-age=60, private="Set-Cookie"', 'private, max-age=60, private="Set-Cookie"'],
    ['max-age=60, private="Set-Cookie, X-Private"', 'private, max-age=60, private="Set-Cookie, X-Private"'],
    ['max-age=60, private=Set-Cookie', 'private, max-age=60, private=Set-Cookie'],
    ['no-cache="private", max-age=60', 'private, no-cache="private", max-age=60'],
    ['no-cache', 'private, no-cache'],
    ['', 'private'],
  ])('%j leaves as %j', (value, expected) => {
    expect(cc(value)).toBe(expected);
  });

  test.each<[string | string[], string]>([
    ['private, max-age=60', 'private, max-age=60'],
    ['max-age=60, PRIVATE', 'max-age=60, PRIVATE'],
    [['max-age=60', 'private'], 'max-age=60, private'],
    ['public, max-age=60', 'public, max-age=60'],
    ['s-maxage=60', 's-maxage=60'],
    [['max-age=60', 'no-store'], 'max-age=60, no-store'],
    ['no-store', 'no-store'],
  ])('%j is already decided and leaves as %j', (value, expected) => {
    expect(cc(value)).toBe(expected);
  });

  test('an answer without Cache-Control leaves private, since Expires or Last-Modified let a shared cache keep it', () => {
    expect(
      downstreamResponseHeaders({ 'content-type': 'text/plain', expires: 'Thu, 01 Jan 2099 00:00:00 GMT' }),
    ).toEqual({
      'content-type': 'text/plain',
      expires: 'Thu, 01 Jan 2099 00:00:00 GMT',
      'cache-control': 'private',
    });
  });

  test('a Cache-Control the upstream lists in Connection is dropped as hop-by-hop, and the answer still leaves private', () => {
    expect(
      downstreamResponseHeaders({ connection: 'cache-control', 'cache-control': 'max-age=600' })[
        'cache-control'
      ],
    ).toBe('private');
  });

  const directive = fc.constantFrom(
    'max-age=60',
    'must-revalidate',
    'no-cache',
    'no-transform',
    'immutable',
    'stale-while-revalidate=30',
    'private="Set-Cookie"',
    'no-cache="Set-Cookie, private"',
  );

  test('however the same directives are split into lines, the answer is private exactly when not already decided', () => {
    fc.assert(
      fc.property(
        fc.array(directive, { minLength: 1, maxLength: 5 }),
        fc.option(fc.constantFrom('private', 'public', 'no-store', 's-maxage=10')),
        fc.integer({ min: 1, max: 5 }),
        (directives, decided, lines) => {
          const all = decided ? [...directives, decided] : directives;
          const split: string[] = Array.from({ length: Math.min(lines, all.length) }, () => '');
          all.forEach((d, i) => {
            const at = i % split.length;
            split[at] = split[at] ? `${split[at]}, ${d}` : d;
          });
          const out = String(cc(split.length === 1 ? split[0]! : split));
          expect(out.startsWith('private, ')).toBe(decided === null);
          expect(out.endsWith(split.join(', '))).toBe(true);
        },
      ),
    );
  });
});

describe('response headers: Set-Cookie', () => {
  const kept = (lines: string[]) => downstreamResponseHeaders({ 'set-cookie': lines })['set-cookie'];

  test.each([
    '=coatcheck=forged; Path=/',
    ' =coatcheck=forged; Path=/',
    '\t=__Host-coatcheck=forged; Path=/; Secure',
    '=theme=dark',
    '=',
    'nameless',
    'coatcheck=forged',
    ' coatcheck =forged',
    '__host-coatcheck=forged',
    'coatcheck-login-x=forged',
  ])('%j is dropped', (line) => {
    expect(kept([line, 'theme=light'])).toEqual(['theme=light']);
  });

  test.each(['theme=light', 'coatcheckx=1', 'my-coatcheck=1', 'a==b', 'a=; Path=/'])('%j is kept', (line) => {
    expect(kept([line])).toEqual([line]);
  });
});
