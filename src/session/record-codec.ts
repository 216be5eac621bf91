import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * The compact form of a session's sealed values, before encryption. Every session stores them, and
 * most of their bytes are tokens: JWTs and opaque strings in base64url, which text compression can
 * only bring down to the six bits a character carries. So any string that is base64url (dot-separated
 * segments, each decoding to exactly the same text again) is stored as its decoded bytes, and what
 * remains is JSON. The whole is deflated against a preset dictionary of the names and values that
 * token sets and claims share. None of this knows the fields: new fields in the object are packed
 * and compressed like the rest.
 *
 * Layout: skeleton length (2 bytes, big-endian) | skeleton JSON | the decoded segments, in the order
 * their strings appear in the skeleton. A packed string appears in the skeleton as NUL followed by
 * its segments' byte lengths joined by dots; a genuine string that starts with NUL gets one more.
 */

/** Strings shorter than this stay as they are: they save little and look base64url by accident. */
const MIN_PACKED = 16;
const BASE64URL = /^[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)*$/;
const MARK = '\u0000';
/** Refuses to inflate past this: sealed values are small, and a bigger one is not ours. */
const MAX_PLAIN = 1 << 20;

/**
 * Part of the format: a record deflated against it inflates only against exactly these bytes, so
 * it must never change. A changed dictionary is a new format version (crypto.ts).
 */
const DICTIONARY = Buffer.from(
  '{"accessToken":"tokenType":"bearer","expiresAt":"refreshAt":"refreshToken":"idToken":"scope":"openid profile email offline_access",' +
    '"dpopKey":{"kty":"EC","crv":"P-256","x":"y":"d":"}{"alg":"RS256","typ":"at+jwt","kid":"{"jti":"sub":"iat":"exp":"client_id":"iss":"https://"aud":' +
    '"nonce":"auth_time":"sid":"at_hash":"acr":"amr":"azp":"name":"email":"email_verified":true,"logoutId":"claims":{"',
);

/** The decoded segments of a base64url string, or undefined when it would not decode back to itself. */
function segmentsOf(text: string): Buffer[] | undefined {
  if (text.length < MIN_PACKED || !BASE64URL.test(text)) return undefined;
  const parts = text.split('.');
  const bytes = parts.map((part) => Buffer.from(part, 'base64url'));
  return bytes.every((b, i) => b.toString('base64url') === parts[i]) ? bytes : undefined;
}

export function pack(value: unknown): Buffer {
  const segments: Buffer[] = [];
  const skeleton = Buffer.from(
    JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v !== 'string') return v;
      if (v.startsWith(MARK)) return MARK + v;
      const bytes = segmentsOf(v);
      if (!bytes) return v;
      segments.push(...bytes);
      return MARK + bytes.map((b) => b.length).join('.');
    }),
  );
  if (skeleton.length > 0xffff) throw new RangeError('a sealed session value is too large to pack');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(skeleton.length);
  return deflateRawSync(Buffer.concat([length, skeleton, ...segments]), { level: 9, dictionary: DICTIONARY });
}

/** Throws on anything that pack did not produce. */
export function unpack(packed: Buffer): unknown {
  const plain = inflateRawSync(packed, { dictionary: DICTIONARY, maxOutputLength: MAX_PLAIN });
  const end = 2 + plain.readUInt16BE(0);
  let offset = end;
  return JSON.parse(plain.subarray(2, end).toString('utf8'), (_key, v: unknown) => {
    if (typeof v !== 'string' || !v.startsWith(MARK)) return v;
    if (v.startsWith(MARK, 1)) return v.slice(1);
    return v
      .slice(1)
      .split('.')
      .map((n) => {
        const length = Number(n);
        if (!Number.isInteger(length) || offset + length > plain.length) throw new RangeError('truncated');
        const segment = plain.subarray(offset, (offset += length));
        return segment.toString('base64url');
      })
      .join('.');
  });
}
