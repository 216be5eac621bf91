import { createHmac, hkdfSync } from 'node:crypto';

/**
 * With the host's express-session, the browser's session id is no secret from the store: connect-redis
 * keeps each session under `sess:<id>`, in clear. Hashing that id (crypto.ts) would then give anyone
 * with a dump the way to every record and its key. So in this mode coatcheck's record id is derived
 * from BFF_SESSION_SECRET and the host's session id together: the store key is a hash of it and the
 * sealing key an HKDF of it (Sessions does both), and neither can be computed without the secret.
 */
export function hostRecordId(secret: string, hostSessionId: string): string {
  return Buffer.from(
    hkdfSync('sha256', secret, hostSessionId, 'coatcheck/host-session-record-v1', 32),
  ).toString('base64url');
}

/** One candidate per secret, the current one first, so rotating BFF_SESSION_SECRET logs nobody out. */
export function hostRecordIds(secrets: readonly string[], hostSessionId: string): string[] {
  return secrets.map((secret) => hostRecordId(secret, hostSessionId));
}

/**
 * The secret that seals and names the host-session index (host-session-index.ts): the index holds
 * host session ids, which must not be readable or recognisable in a dump either.
 */
export function indexKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, '', 'coatcheck/host-session-index-v1', 32));
}

/** A keyed hash: an index name or field that nobody without the secret can compute or reverse. */
export function keyedName(key: Buffer, ...parts: string[]): string {
  return createHmac('sha256', key).update(parts.join('\0')).digest('base64url');
}
