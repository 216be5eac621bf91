import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

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

// Derived on each use. A cache of derived keys used to save HKDF on every API call; the session
// cache (cache.ts) now spares those calls any decryption at all, so it was dropped rather than
// keep raw session ids in another map. HKDF now runs on cache misses only.
function keyFor(sessionId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', sessionId, 'coatcheck/session', 'record-v1', 32));
}

/** AES-256-GCM; `field` is bound as associated data so sealed values cannot be swapped between fields. */
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
