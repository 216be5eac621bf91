import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { pack, unpack } from './record-codec.js';

/**
 * A Redis dump must not be enough to use or read a session. The store therefore never sees the
 * session id: records live under a hash of it, and their secret fields are sealed with a key derived
 * from it. Only a request that presents the cookie can find and open its own record.
 */

/** 256 random bits, as in the cookie. */
export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export function storageId(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url');
}

const KEY_SALT = Buffer.from('coatcheck/session');
/** HKDF-Expand's input for the first (and only) block of output: info, then the counter 1. */
const KEY_INFO_BLOCK = Buffer.concat([Buffer.from('record-v1'), Buffer.of(1)]);

/**
 * HKDF-SHA256 (RFC 5869) with salt 'coatcheck/session' and info 'record-v1', 32 bytes: the same key
 * as hkdfSync('sha256', sessionId, 'coatcheck/session', 'record-v1', 32), which a test checks. One
 * block of output is two HMACs, and spelled out so they cost a fraction of hkdfSync's per-call setup,
 * on every cache miss of the proxy path.
 *
 * Derived on each use: the session cache (cache.ts) spares most calls any decryption, and a cache of
 * derived keys would keep raw session ids in another map.
 */
export function keyFor(sessionId: string): Buffer {
  const prk = createHmac('sha256', KEY_SALT).update(sessionId).digest();
  return createHmac('sha256', prk).update(KEY_INFO_BLOCK).digest();
}

/**
 * The first byte of a sealed record value in the current format: packed and compressed
 * (record-codec.ts), then AES-256-GCM, stored as raw bytes. It is not a base64url character, so
 * values written by earlier versions (base64url text) still open, and a rolling upgrade keeps
 * everyone signed in.
 */
const PACKED_V1 = 0x01;

/**
 * Seals a session's value for the store, as a byte string (one char per byte). `field` and the
 * format version are bound as associated data, so sealed values cannot be swapped between fields
 * or read as another format.
 */
export function sealRecord(sessionId: string, field: string, value: unknown): string {
  const key = keyFor(sessionId);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`${PACKED_V1}:${field}`));
  const body = Buffer.concat([cipher.update(pack(value)), cipher.final()]);
  return Buffer.concat([Buffer.of(PACKED_V1), iv, cipher.getAuthTag(), body]).toString('latin1');
}

/** Undefined when the value was not sealed for this session and field, in this format or an earlier one. */
export function openRecord(sessionId: string, field: string, sealed: string): unknown {
  if (sealed.charCodeAt(0) !== PACKED_V1) {
    const json = open(sessionId, field, sealed);
    return json === undefined ? undefined : (JSON.parse(json) as unknown);
  }
  try {
    const raw = Buffer.from(sealed, 'latin1');
    if (raw.length < 29) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', keyFor(sessionId), raw.subarray(1, 13), {
      authTagLength: 16,
    });
    decipher.setAAD(Buffer.from(`${PACKED_V1}:${field}`));
    decipher.setAuthTag(raw.subarray(13, 29));
    return unpack(Buffer.concat([decipher.update(raw.subarray(29)), decipher.final()]));
  } catch {
    return undefined;
  }
}

/** The format before sealRecord: JSON, AES-256-GCM with `field` as associated data, base64url. */
export function seal(sessionId: string, field: string, plaintext: string): string {
  return sealWithKey(keyFor(sessionId), field, plaintext);
}

/** Returns undefined when the value was not sealed for this session and field. */
export function open(sessionId: string, field: string, sealed: string): string | undefined {
  return openWithKey(keyFor(sessionId), field, sealed);
}

/** AES-256-GCM, with `context` as associated data: base64url(iv | tag | ciphertext). */
export function sealWithKey(key: Buffer, context: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** Undefined for anything not sealed under this key and context, garbage included. */
export function openWithKey(key: Buffer, context: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 28) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12), { authTagLength: 16 });
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
