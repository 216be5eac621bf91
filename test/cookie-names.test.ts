import fc from 'fast-check';
import { isBffCookie, LOGIN_COOKIE, SESSION_COOKIE, stripBffCookies } from '../src/security/cookies.js';

/** `__Host-` in any mix of upper and lower case, as browsers match it. */
const hostPrefix = fc
  .array(fc.boolean(), { minLength: 7, maxLength: 7 })
  .map((upper) => [...'__host-'].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));

const loginId = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);

/** coatcheck's own cookie names, with or without the prefix. */
const bffName = fc
  .tuple(
    fc.option(hostPrefix, { nil: '' }),
    fc.oneof(
      fc.constant(SESSION_COOKIE),
      loginId.map((id) => `${LOGIN_COOKIE}-${id}`),
    ),
  )
  .map(([prefix, base]) => `${prefix}${base}`);

/** Other cookie names, including near misses that must be left alone. */
const otherName = fc
  .oneof(
    fc.stringMatching(/^[A-Za-z0-9_.!#$&'*+^`|~-]{1,16}$/),
    fc.constantFrom(
      `${SESSION_COOKIE}x`,
      `${SESSION_COOKIE}-other`,
      `x${SESSION_COOKIE}`,
      LOGIN_COOKIE,
      `${LOGIN_COOKIE}_abc`,
      `__Secure-${SESSION_COOKIE}`,
      `__Host_${SESSION_COOKIE}`,
      `_Host-${SESSION_COOKIE}`,
    ),
  )
  .filter((n) => !isBffCookieByDefinition(n));

/** The rule spelled out independently of the implementation: one optional __Host- prefix, then our name. */
function isBffCookieByDefinition(name: string): boolean {
  const bare = /^__host-/i.test(name) ? name.slice('__host-'.length) : name;
  return bare === SESSION_COOKIE || bare.startsWith(`${LOGIN_COOKIE}-`);
}

const space = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });
const value = fc.stringMatching(/^[A-Za-z0-9%=._~-]{0,16}$/);

describe('isBffCookie', () => {
  test("coatcheck's names are recognised under any casing of the __Host- prefix", () => {
    fc.assert(
      fc.property(bffName, (name) => {
        expect(isBffCookie(name)).toBe(true);
      }),
    );
  });

  test('other names, near misses included, are not', () => {
    fc.assert(
      fc.property(otherName, (name) => {
        expect(isBffCookie(name)).toBe(false);
      }),
    );
  });

  test('agrees with the definition for any string', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 30 }),
          bffName,
          bffName.map((n) => `${n}\u0000`),
        ),
        (name) => {
          expect(isBffCookie(name)).toBe(isBffCookieByDefinition(name));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('stripBffCookies', () => {
  /** A Cookie header made of ours and others, in any order, with whitespace around names and separators. */
  const header = fc
    .array(
      fc.record({
        ours: fc.boolean(),
        bff: bffName,
        other: otherName,
        before: space,
        after: space,
        value,
      }),
      { minLength: 1, maxLength: 8 },
    )
    .map((parts) =>
      parts.map((p) => ({
        ours: p.ours,
        text: `${p.before}${p.ours ? p.bff : p.other}${p.after}=${p.value}`,
      })),
    );

  test("removes exactly coatcheck's cookies and keeps the others, in order", () => {
    fc.assert(
      fc.property(header, fc.constantFrom(';', '; ', ';\t', ' ; '), (parts, separator) => {
        const out = stripBffCookies(parts.map((p) => p.text).join(separator));
        const kept = out === undefined ? [] : out.split(';').map((s) => s.trim());
        expect(kept).toEqual(parts.filter((p) => !p.ours).map((p) => p.text.trim()));
      }),
      { numRuns: 1000 },
    );
  });

  test('nothing of ours survives, whatever the spacing or casing', () => {
    fc.assert(
      fc.property(header, (parts) => {
        const out = stripBffCookies(parts.map((p) => p.text).join(';'));
        for (const part of out?.split(';') ?? []) {
          const eq = part.indexOf('=');
          expect(isBffCookieByDefinition((eq === -1 ? part : part.slice(0, eq)).trim())).toBe(false);
        }
      }),
      { numRuns: 1000 },
    );
  });

  test('a header with none of ours is passed on as it was; an empty one is undefined', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(otherName, value), { minLength: 1, maxLength: 6 }), (pairs) => {
        const text = pairs.map(([n, v]) => `${n}=${v}`).join('; ');
        expect(stripBffCookies(text)).toBe(text);
      }),
    );
    expect(stripBffCookies(undefined)).toBeUndefined();
    expect(stripBffCookies('')).toBeUndefined();
  });
});
