import type { ServerResponse } from 'node:http';
import {
  SESSION_COOKIE,
  clearCookieHeader,
  cookieHeader,
  cookieName,
  readCookie,
  signValue,
  unsignValue,
} from '../security/cookies.js';

/**
 * The session cookie: HttpOnly, SameSite=Strict, signed with BFF_SESSION_SECRET, and named with the
 * __Host- prefix on secure requests (RequestFacts.secure). Endpoints and the API fast path all go
 * through this one object, so the name and attributes cannot drift apart.
 */
export interface SessionCookie {
  name(secure: boolean): string;
  /** The signed value as sent; the session cache keys on it, so a cache hit costs no signature check. */
  read(cookieHeader: string | undefined, secure: boolean): string | undefined;
  /** The session id a signed value carries; undefined unless one of the secrets signed it. */
  open(signed: string | undefined): string | undefined;
  /** Lives as long as the session can (the absolute timeout); idle expiry is enforced server-side. */
  set(res: ServerResponse, secure: boolean, id: string, maxAgeMs: number): void;
  clear(res: ServerResponse, secure: boolean): void;
}

export function sessionCookie(secrets: readonly string[]): SessionCookie {
  const secureName = cookieName(SESSION_COOKIE, true);
  const plainName = cookieName(SESSION_COOKIE, false);
  const name = (secure: boolean): string => (secure ? secureName : plainName);
  return {
    name,
    read: (header, secure) => readCookie(header, name(secure)),
    open: (signed) => unsignValue(signed, secrets),
    set(res, secure, id, maxAgeMs) {
      res.appendHeader(
        'Set-Cookie',
        cookieHeader(name(secure), signValue(id, secrets), { secure, sameSite: 'strict', maxAgeMs }),
      );
    },
    clear(res, secure) {
      res.appendHeader('Set-Cookie', clearCookieHeader(name(secure), secure));
    },
  };
}
