import fc from 'fast-check';

/*
 * Hostile HTTP/1.1 requests, as fast-check arbitraries. A case is a small description (sizes stay
 * numbers, so a shrunk counterexample prints readably) that `serialize` turns into the bytes sent.
 */

/** A header line: a value, or `size` bytes of filler (an enormous header without an enormous printout). */
export type HeaderSpec =
  { readonly name: string; readonly value: string } | { readonly name: string; readonly size: number };

export type BodySpec =
  | { readonly kind: 'none' }
  /** Content-Length framing; `declared` overrides the length sent (a lie shorter than the body). */
  | { readonly kind: 'length'; readonly bytes: number; readonly text?: string }
  | { readonly kind: 'chunked'; readonly chunks: readonly number[]; readonly flaw?: ChunkFlaw }
  /** Both framings at once (request smuggling), which a server must refuse. */
  | { readonly kind: 'both'; readonly bytes: number };

export type ChunkFlaw = 'bad-hex' | 'overflow' | 'extension' | 'trailer' | 'no-crlf' | 'lf-only';

export type SessionSpec = 'none' | 'valid' | 'forged-signature' | 'garbage' | 'duplicated' | 'huge';

export interface FuzzCase {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly host: 'ok' | 'missing' | 'twice' | 'garbage';
  readonly session: SessionSpec;
  readonly csrf: boolean;
  readonly headers: readonly HeaderSpec[];
  readonly body: BodySpec;
  /** A raw line inserted among the headers: folded, colon-less, bare-LF, NUL-bearing. */
  readonly brokenLine?: string;
  /** A Content-Encoding claim the body does not honour (or does, as garbage). */
  readonly encoding?: string;
}

/** What serialization needs from the live system: where it is, a logged-in cookie, the limits in force. */
export interface FuzzContext {
  readonly port: number;
  /** `coatcheck=<signed id>` of a logged-in session. */
  readonly sessionCookie: string;
  readonly maxBodySize: number;
}

const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'TRACE',
  'CONNECT',
  'PROPFIND',
  'MKCOL',
  'PURGE',
  'SEARCH',
  'QUERY',
  'LOCK',
  'M-SEARCH',
  'get',
  'BREW',
  'G ET',
  'GET\u0000',
  '',
];

const PREFIXES = [
  '/api',
  '/api/admin',
  '/root',
  '/bff',
  '/bff/login',
  '/bff/callback',
  '/bff/user',
  '/bff/logout',
  '/bff/backchannel-logout',
  '/healthz',
  '/readyz',
  '/',
  '/metrics',
  '/apix',
  '/API',
  '/bff/',
  '/bffx',
];

/** Path segments: ordinary, upstream behaviours (echo, status, big answers), and traversal tricks. */
const SEGMENTS = [
  'x',
  'users',
  'status/200',
  'status/404',
  'status/500',
  'status/503',
  'big',
  'early',
  'cookie-and-cache',
  '..',
  '.',
  '%2e%2e',
  '%2E%2e',
  '%2F',
  '%2f..%2f',
  '%5c',
  '%00',
  '%',
  '%zz',
  '%e0%a4',
  '%c0%af',
  '%ff',
  '',
  ';a=b',
  '\\..\\',
  '~',
  'é',
  '\u00ff',
  '\u2028',
  '%25',
];

// Raw control characters and spaces stop a request at Node's parser, so they are the rarer part.
const segment = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
);

const queryPart = fc.oneof(
  fc.constantFrom(
    'returnTo=/app',
    'returnTo=https://evil.example/',
    'returnTo=//evil.example',
    'returnTo=%2F%2Fevil',
    'returnTo=/\\evil',
    'code=abc&state=def',
    'code=&state=&iss=http://evil',
    'error=access_denied&state=x',
    'sid=abc',
    'sid=',
    'bytes=70000',
    'bytes=-1',
    'bytes=1e9',
    'a=%zz',
    'a=%',
    'a[b]=c',
    '__proto__=1',
    'constructor[prototype][x]=1',
  ),
  fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 })).map(([k, v]) => `${k}=${v}`),
);

/** The request target: origin-form mostly, then absolute-form, asterisk, authority, empty, enormous. */
const target = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...PREFIXES),
        fc.array(segment, { maxLength: 4 }),
        fc.option(fc.array(queryPart, { minLength: 1, maxLength: 3 }), { nil: undefined }),
      )
      .map(([prefix, segs, query]) => {
        const path = [prefix.replace(/\/$/, ''), ...segs].join('/') || '/';
        return query ? `${path}?${query.join('&')}` : path;
      }),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'http://127.0.0.1',
          'http://evil.example',
          'https://127.0.0.1',
          'http://user:pw@127.0.0.1',
        ),
        fc.constantFrom('/api/x', '/bff/user', '/bff/login', '/healthz', '/api/../bff/user'),
      )
      .map(([origin, path]) => origin + path),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '*',
      '127.0.0.1:80',
      '',
      'api/x',
      '//api/x',
      '///bff/user',
      '/api/x#frag',
      '/api/x?',
      '/api/x?#',
      '/api/x y',
      '/api/\tx',
      '/api/\u0001',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(4000, 8000, 16_000, 16_500, 70_000).map((n) => `/api/${'a'.repeat(n)}`),
  },
);

const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '',
      ' ',
      '1',
      '0',
      '-1',
      '99999999999999999999',
      'null',
      'gzip',
      'chunked',
      'keep-alive',
      'close',
      'upgrade',
      'x-csrf',
      'cookie, authorization',
      '100-continue',
      'websocket',
      'bytes=0-1,2-3',
      'Bearer stolen',
      'DPoP x',
      '00-00000000000000000000000000000000-0000000000000000-01',
      '00-zz-zz-zz',
      'for=1.2.3.4;proto=https',
      'https',
      'evil.example',
      'application/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=',
      'text/plain; charset=utf-1000',
      '*/*',
      'http://evil.example',
      'null',
    ),
  },
);

const HEADER_NAMES = [
  'accept',
  'accept-encoding',
  'authorization',
  'proxy-authorization',
  'content-type',
  'content-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'range',
  'if-none-match',
  'origin',
  'referer',
  'x-csrf',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-request-id',
  'traceparent',
  'tracestate',
  'dpop',
  'sec-fetch-site',
  'sec-fetch-mode',
  'host',
  'cookie',
  'set-cookie',
  '__proto__',
  'constructor',
];

/**
 * Framing headers (Content-Length, Transfer-Encoding) come only from the body's spec: a free-form one
 * would often promise a body that never comes, and a server rightly waits for it.
 */
const headerSpec: fc.Arbitrary<HeaderSpec> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      name: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...HEADER_NAMES) },
        { weight: 1, arbitrary: fc.stringMatching(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}$/) },
      ),
      value: headerValue,
    }),
  },
  {
    // Node's limit on the whole head is 16 KiB: below it, at it, and past it.
    weight: 1,
    arbitrary: fc.record({
      name: fc.constantFrom('x-big', 'cookie', 'authorization', 'x-forwarded-for', 'traceparent'),
      size: fc.constantFrom(1000, 8000, 15_000, 16_200, 16_384, 17_000, 100_000),
    }),
  },
);

const BROKEN_LINES = [
  ' folded continuation',
  '\tfolded: with tab',
  'no-colon-here',
  'space in name: x',
  'x-nul: a\u0000b',
  'x-bare-cr: a\rb',
  ': empty name',
  'x-utf8: é€😀',
  'x-lf-only: a\nx-next: b',
  'Transfer-Encoding : chunked',
  'Content-Length: 1, 2',
  'Content-Length: +5',
  'Content-Length: 0x10',
];

const body: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<BodySpec>({ kind: 'none' }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('length' as const),
      bytes: fc.oneof(fc.nat(200), fc.constantFrom(-1, -2, 0)),
      text: fc.option(
        fc.constantFrom(
          '{"a":1}',
          '{"__proto__":{"x":1}}',
          '{',
          'logout_token=a.b.c',
          'logout_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
          'logout_token=%zz',
          'logout_token=',
          '\u0000\u0001\u0002',
          '\u001f\u008b\u0008garbage-gzip',
        ),
        { nil: undefined },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        kind: fc.constant('chunked' as const),
        chunks: fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 4 }),
        flaw: fc.constantFrom<ChunkFlaw>('bad-hex', 'overflow', 'extension', 'trailer', 'no-crlf', 'lf-only'),
      },
      { requiredKeys: ['kind', 'chunks'] },
    ),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('both' as const), bytes: fc.nat(50) }) },
);

/** Bodies around BFF_MAX_BODY_SIZE (-1 means limit - 1 and so on), resolved at serialization. */
const OVER_LIMIT_MARK = -1000;
const nearLimitBody: fc.Arbitrary<BodySpec> = fc.oneof(
  fc.constantFrom(-1, 0, 1, 4096).map((d): BodySpec => ({ kind: 'length', bytes: OVER_LIMIT_MARK - d })),
  fc.constantFrom(-1, 0, 1, 4096).map((d): BodySpec => ({ kind: 'chunked', chunks: [OVER_LIMIT_MARK - d] })),
);

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.record(
  {
    method: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...METHODS.slice(0, 7)) },
      { weight: 2, arbitrary: fc.constantFrom(...METHODS) },
      { weight: 1, arbitrary: fc.stringMatching(/^[A-Z_-]{1,12}$/) },
    ),
    target,
    version: fc.oneof(
      { weight: 12, arbitrary: fc.constant('HTTP/1.1') },
      { weight: 1, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTX/1.1', 'HTTP/1', '') },
    ),
    host: fc.oneof(
      { weight: 10, arbitrary: fc.constant('ok' as const) },
      { weight: 1, arbitrary: fc.constantFrom('missing' as const, 'twice' as const, 'garbage' as const) },
    ),
    session: fc.constantFrom<SessionSpec>(
      'valid',
      'valid',
      'valid',
      'none',
      'forged-signature',
      'garbage',
      'duplicated',
      'huge',
    ),
    csrf: fc.boolean(),
    headers: fc.array(headerSpec, { maxLength: 6 }),
    body: fc.oneof({ weight: 8, arbitrary: body }, { weight: 1, arbitrary: nearLimitBody }),
    // Rare, or nearly every request would stop at Node's parser and never reach coatcheck.
    brokenLine: fc.oneof(
      { weight: 12, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom(...BROKEN_LINES) },
    ),
    encoding: fc.oneof(
      { weight: 8, arbitrary: fc.constant(undefined) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'zstd', 'x-unknown', 'gzip, gzip', 'identity'),
      },
    ),
  },
  { requiredKeys: ['method', 'target', 'version', 'host', 'session', 'csrf', 'headers', 'body'] },
);

function cookieFor(spec: SessionSpec, ctx: FuzzContext): string | undefined {
  const valid = ctx.sessionCookie;
  const value = valid.slice(valid.indexOf('=') + 1);
  switch (spec) {
    case 'none':
      return undefined;
    case 'valid':
      return valid;
    case 'forged-signature':
      // The same session id, signed with another key.
      return `coatcheck=${value.replace(/\.[^.]*$/, '.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')}`;
    case 'garbage':
      return 'coatcheck=%zz%; coatcheck-login-x=%E0%A4%A; =; ;;; a';
    case 'duplicated':
      return `coatcheck=s%3Aforged.sig; ${valid}; ${valid}; __Host-coatcheck=x`;
    case 'huge':
      return `${valid}; junk=${'j'.repeat(9000)}`;
  }
}

function filler(size: number): string {
  return 'a'.repeat(Math.max(0, size));
}

function chunked(chunks: readonly number[], flaw: ChunkFlaw | undefined): string {
  const eol = flaw === 'lf-only' ? '\n' : '\r\n';
  let out = '';
  for (const n of chunks) {
    const size = flaw === 'bad-hex' ? 'zz' : flaw === 'overflow' ? 'fffffffffffffffffff' : n.toString(16);
    const ext = flaw === 'extension' ? ';name="x"' : '';
    out += `${size}${ext}${eol}${filler(n)}${flaw === 'no-crlf' ? '' : eol}`;
  }
  out += `0${eol}`;
  if (flaw === 'trailer') out += `x-trailer: 1${eol}`;
  return out + eol;
}

/** The bytes of a case; `headOnly` is true when the response to it has no body (HEAD). */
export function serialize(c: FuzzCase, ctx: FuzzContext): { bytes: Buffer; headOnly: boolean } {
  const lines: string[] = [`${c.method} ${c.target} ${c.version}`.replace(/ {2,}/g, ' ')];
  const host = `127.0.0.1:${ctx.port}`;
  if (c.host === 'ok' || c.host === 'twice') lines.push(`Host: ${host}`);
  if (c.host === 'twice') lines.push('Host: evil.example');
  if (c.host === 'garbage') lines.push('Host: ev il/\u00ff');
  // Each exchange is one connection: the answer is read until it is whole, then the socket closes.
  lines.push('Connection: close');
  const cookie = cookieFor(c.session, ctx);
  if (cookie) lines.push(`Cookie: ${cookie}`);
  if (c.csrf) lines.push('X-CSRF: 1');
  for (const h of c.headers) lines.push(`${h.name}: ${'size' in h ? filler(h.size) : h.value}`);
  if (c.brokenLine !== undefined) lines.push(c.brokenLine);
  if (c.encoding !== undefined) lines.push(`Content-Encoding: ${c.encoding}`);

  let payload = '';
  const b = c.body;
  const resolve = (n: number): number => (n <= OVER_LIMIT_MARK ? ctx.maxBodySize + (OVER_LIMIT_MARK - n) : n);
  if (b.kind === 'length') {
    const bytes = resolve(b.bytes);
    payload = b.text ?? filler(bytes);
    // A negative length is sent as it is (a malformed header), with no body.
    lines.push(`Content-Length: ${bytes < 0 ? bytes : Buffer.byteLength(payload, 'latin1')}`);
    if (bytes < 0) payload = '';
  } else if (b.kind === 'chunked') {
    lines.push('Transfer-Encoding: chunked');
    payload = chunked(b.chunks.map(resolve), b.flaw);
  } else if (b.kind === 'both') {
    lines.push(`Content-Length: ${b.bytes}`, 'Transfer-Encoding: chunked');
    payload = chunked([b.bytes], undefined);
  }
  const head = `${lines.join('\r\n')}\r\n\r\n`;
  return {
    bytes: Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(payload, 'latin1')]),
    headOnly: c.method === 'HEAD',
  };
}

/** Paths whose 5xx is the upstream's own answer, passed through: the one injected fault in a fuzz run. */
export function upstreamFault(c: FuzzCase): boolean {
  return /\/status\/5\d\d/.test(c.target);
}

/**
 * The test upstream's /big sends `Content-Length: <bytes>` as given: for anything but a whole number
 * of bytes that is not HTTP, and a proxy's answer to an invalid response is its own 502.
 */
export function upstreamAnswerMalformed({ target }: FuzzCase): boolean {
  try {
    const url = new URL(`http://upstream${target}`);
    if (!url.pathname.endsWith('/big')) return false;
    const bytes = Number(url.searchParams.get('bytes') ?? 1024);
    return !(Number.isSafeInteger(bytes) && bytes >= 0);
  } catch {
    return false;
  }
}
