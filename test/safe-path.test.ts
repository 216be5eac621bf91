import fc from 'fast-check';
import { isSafePath } from '../src/proxy/safe-path.js';

const enc = (s: string): string =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

describe('isSafePath: dot segments hidden by invisible characters or Unicode look-alikes', () => {
  test.each([
    ['a NUL between the dots', '/api/.%00./admin'],
    ['a NUL after the dots', '/api/..%00/admin'],
    ['a leading space', '/api/%20../admin'],
    ['a trailing tab', '/api/..%09/admin'],
    ['a newline between the dots', '/api/.%0a./admin'],
    ['a carriage return before a single dot', '/api/%0d./admin'],
    ['DEL', '/api/..%7f/admin'],
    ['a C1 control', `/api/..${enc('\u0085')}/admin`],
    ['a no-break space', `/api/${enc('\u00a0')}../admin`],
    ['a zero-width space', `/api/.${enc('\u200b')}./admin`],
    ['a byte order mark', `/api/${enc('\ufeff')}../admin`],
    ['full-width dots', '/api/%ef%bc%8e%ef%bc%8e/admin'],
    ['full-width dots, upper case', '/api/%EF%BC%8E%EF%BC%8E/admin'],
    ['one full-width dot and one plain', '/api/%ef%bc%8e./admin'],
    ['a single full-width dot', '/api/%ef%bc%8e/admin'],
    ['a one-dot leader pair', `/api/${enc('\u2024\u2024')}/admin`],
    ['a two-dot leader', `/api/${enc('\u2025')}/admin`],
    ['small full stops', `/api/${enc('\ufe52\ufe52')}/admin`],
    ['full-width dots before a full-width solidus', `/api/${enc('\uff0e\uff0e\uff0fadmin')}`],
    ['full-width dots before a full-width semicolon', `/api/${enc('\uff0e\uff0e\uff1b')}/admin`],
    ['full-width dots, encoded twice', `/api/${enc('\uff0e\uff0e').replace(/%/g, '%25')}/admin`],
    ['full-width percent-encoding of dots', `/api/${enc('\uff05\uff12\uff45\uff05\uff12\uff45')}/admin`],
    ['an ideographic space and full-width dots', `/api/${enc('\u3000\uff0e\uff0e')}/admin`],
    ['dots before an encoded "?"', '/api/x/..%3fa'],
    ['encoded dots before an encoded "?"', '/api/x/%2e%2e%3fa'],
    ['dots before an encoded "#"', '/api/x/..%23a'],
    ['dots before a twice-encoded "#"', '/api/x/..%2523'],
  ])('refuses %s', (_name, path) => {
    expect(isSafePath(path)).toBe(false);
  });

  test.each([
    '/api/things',
    '/api/files/report..v2.pdf',
    '/api/files/my%20file.pdf',
    '/api/files/%ef%bc%8e%ef%bc%8e.txt',
    `/api/search/${enc('日本語')}`,
    `/api/${enc('caf\u00e9')}/menu`,
    '/api/a%00b',
    '/api/...',
    '/api/x?next=../../admin',
    `/api/${enc('100\uff05 done')}`,
  ])('lets %s through', (path) => {
    expect(isSafePath(path)).toBe(true);
  });
});

describe('isSafePath: properties', () => {
  const plainChar = fc.constantFrom(..."abcxyz0123-_~!$&'()*+,=:@".split(''));
  const plainSegment = fc.string({ unit: plainChar, minLength: 1, maxLength: 8 });

  test('paths without ".", "%", "\\" or "#" are always safe', () => {
    fc.assert(
      fc.property(fc.array(plainSegment, { maxLength: 6 }), (segments) => {
        expect(isSafePath(`/api/${segments.join('/')}`)).toBe(true);
      }),
    );
  });

  // Things an upstream may strip or fold, and ways a client may encode each character.
  const invisible = fc.constantFrom(
    '\u0000',
    ' ',
    '\t',
    '\n',
    '\r',
    '\u007f',
    '\u00a0',
    '\u200b',
    '\ufeff',
    '\u3000',
  );
  const dot = fc.constantFrom('.', '\uff0e', '\ufe52', '\u2024');
  const encoding = fc.constantFrom(
    (c: string) => (c === '.' ? c : enc(c)),
    (c: string) => enc(c),
    (c: string) => enc(c).toUpperCase(),
    (c: string) => enc(c).replace(/%/g, '%25'),
  );
  const padded = fc.tuple(
    fc.array(invisible, { maxLength: 2 }),
    fc.array(dot, { minLength: 1, maxLength: 2 }),
    fc.array(invisible, { maxLength: 2 }),
  );

  test('a segment that is "." or ".." once stripped and folded is refused, however it is encoded', () => {
    fc.assert(
      fc.property(
        fc.array(plainSegment, { maxLength: 3 }),
        padded,
        fc.array(plainSegment, { maxLength: 3 }),
        encoding,
        (before, [lead, dots, trail], after, encode) => {
          const segment = [...lead, ...dots, ...trail].map(encode).join('');
          const path = ['/api', ...before, segment, ...after].join('/');
          expect([path, isSafePath(path)]).toEqual([path, false]);
        },
      ),
    );
  });

  test('a segment with at least one visible non-dot character is let through', () => {
    fc.assert(
      fc.property(padded, plainSegment, encoding, ([lead, dots, trail], word, encode) => {
        const segment = [...lead, ...dots, ...trail].map(encode).join('') + word;
        const path = `/api/${segment}/x`;
        expect([path, isSafePath(path)]).toEqual([path, true]);
      }),
    );
  });
});
