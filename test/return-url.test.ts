import fc from 'fast-check';
import { safeReturnTo } from '../src/security/return-url.js';

/** Characters that make return URLs interesting: separators, escapes, dots, whitespace and controls. */
const tricky = fc.constantFrom(
  '/',
  '\\',
  '.',
  '%',
  '2',
  'e',
  'E',
  'f',
  'F',
  '5',
  'c',
  'C',
  ':',
  '@',
  '?',
  '#',
  'a',
  ' ',
  '\t',
  '\n',
  '\r',
  '\u0000',
  '\u007f',
  '\u00a0',
  '\u3002',
  '\uff0f',
  '\uff3c',
  'é',
);

/** Paths made of segments that parsing collapses or reinterprets: dots, encoded dots, empty ones. */
const segments = fc
  .array(
    fc.constantFrom('', '.', '..', '%2e', '%2E', '.%2e', '%2e%2e', 'a', 'evil.example', '%5c', '%2f', '\\'),
    {
      maxLength: 6,
    },
  )
  .map((parts) => `/${parts.join('/')}`);

/** Any string, with a bias towards ones that start like a path so that some are accepted. */
const candidate = fc.oneof(
  fc.string({ unit: tricky, maxLength: 24 }),
  fc.string({ unit: tricky, maxLength: 24 }).map((s) => `/${s}`),
  fc.string({ unit: 'grapheme', maxLength: 24 }).map((s) => `/${s}`),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  segments,
);

// eslint-disable-next-line no-control-regex -- control characters are what the property is about
const CONTROL = /[\u0000-\u001f\u007f]/;

describe('safeReturnTo', () => {
  test('an accepted value is a same-origin relative path, whatever the input', () => {
    fc.assert(
      fc.property(candidate, (value) => {
        const result = safeReturnTo(value);
        if (result === undefined) return;
        expect(result.startsWith('/')).toBe(true);
        expect(result.startsWith('//')).toBe(false);
        expect(result.startsWith('/\\')).toBe(false);
        expect(result).not.toMatch(CONTROL);
        expect(result).not.toContain('\\');
        // It fits in a Location header as it is.
        expect(result).toMatch(/^[\x21-\x7e]*$/);
        for (const base of [
          'https://x.example',
          'https://x.example/deep/page?q=1',
          'http://127.0.0.1:8080/',
        ]) {
          expect(new URL(result, base).origin).toBe(new URL(base).origin);
        }
        // A browser strips tabs and newlines before resolving; there are none to strip.
        expect(new URL(result.replace(/[\t\n\r]/g, ''), 'https://x.example').host).toBe('x.example');
      }),
      { numRuns: 2000 },
    );
  });

  test('an accepted value is accepted again unchanged', () => {
    fc.assert(
      fc.property(candidate, (value) => {
        const result = safeReturnTo(value);
        if (result !== undefined) expect(safeReturnTo(result)).toBe(result);
      }),
      { numRuns: 2000 },
    );
  });

  test('anything not starting with a single "/" is refused', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: tricky, maxLength: 24 }).filter((s) => !s.startsWith('/')),
          fc.string({ unit: tricky, maxLength: 24 }).map((s) => `//${s}`),
          fc.string({ unit: tricky, maxLength: 24 }).map((s) => `/\\${s}`),
          fc.webUrl(),
        ),
        (value) => {
          expect(safeReturnTo(value)).toBeUndefined();
        },
      ),
    );
  });

  test('a control character or backslash anywhere is refused', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: tricky, maxLength: 12 }),
        fc.constantFrom('\t', '\n', '\r', '\u0000', '\u001b', '\u007f', '\\'),
        fc.string({ unit: tricky, maxLength: 12 }),
        (before, bad, after) => {
          expect(safeReturnTo(`/${before}${bad}${after}`)).toBeUndefined();
        },
      ),
    );
  });

  test('a plain path with query and fragment comes back as it was', () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9_~-]{1,8}$/);
    fc.assert(
      fc.property(
        fc.array(segment, { minLength: 1, maxLength: 5 }),
        fc.option(segment, { nil: undefined }),
        fc.option(segment, { nil: undefined }),
        (segments, query, fragment) => {
          const path = `/${segments.join('/')}${query ? `?q=${query}` : ''}${fragment ? `#${fragment}` : ''}`;
          expect(safeReturnTo(path)).toBe(path);
        },
      ),
    );
  });

  test('anything but a non-empty string of at most 2048 characters is refused', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything().filter((v) => typeof v !== 'string'),
          fc.constant(''),
          fc.constant(`/${'a'.repeat(2048)}`),
        ),
        (value) => {
          expect(safeReturnTo(value)).toBeUndefined();
        },
      ),
    );
  });
});
