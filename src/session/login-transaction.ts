import { createHash, hkdfSync } from 'node:crypto';
import { LOGIN_COOKIE, cookieName, cookiesNamedWith } from '../security/cookies.js';
import { openWithKey, sealWithKey } from './crypto.js';

/**
 * A login in flight lives in the browser, not in the store: its own cookie, sealed with a key derived
 * from BFF_SESSION_SECRET. Starting a login therefore costs the server nothing an anonymous caller can
 * pile up, and the cookie itself binds the login to the browser that started it. Single use is enforced
 * at the callback, by a marker written only once a cookie that opens has been presented.
 */

/** Long enough to type a password and pass MFA; short enough that a forgotten tab's login cannot be replayed later. */
export const LOGIN_TTL_MS = 10 * 60 * 1000;

/**
 * Logins a browser keeps in flight: enough for a handful of tabs, few enough that their cookies
 * together stay far below the request-header limits of servers and proxies.
 */
export const MAX_LOGIN_COOKIES = 5;

/**
 * Bounds the one free-form field, so that even the largest login cookie stays small and all a
 * browser may hold of them fit easily in the header buffers of common proxies.
 */
export const MAX_RETURN_TO_LENGTH = 400;

export interface LoginTransaction {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly returnTo: string;
  /**
   * Storage key of the session the browser had when it started this login. The IdP's redirect back
   * is cross-site, so the SameSite=Strict session cookie is not sent to the callback; this is how
   * the callback still ends that session. Sealed like the rest, so the cookie reveals nothing of it.
   */
  readonly replaces?: string;
  /** Epoch ms: the login expires a lifetime after, and the oldest is the first a new login evicts. */
  readonly issuedAt: number;
  /**
   * What the login asked of the IdP beyond a sign-in, kept so the callback can check that the ID token
   * delivers it: the acr values (space-separated, as sent) and max_age in seconds (step-up, RFC 9470).
   */
  readonly acrValues?: string;
  readonly maxAge?: number;
  /** prompt=none: an IdP that would have to show a page sends the browser back to returnTo with bff_error. */
  readonly silent?: boolean;
}

/** The asked-for parts of a login, in the sealed value; absent keys keep a plain login's cookie as small as before. */
interface Asked {
  a?: string;
  m?: number;
  s?: 1;
}

/** Names a login's cookie and its replay marker; derived from the state, so the callback finds it directly. */
export function loginId(state: string): string {
  return createHash('sha256').update(state).digest('base64url').slice(0, 16);
}

export function loginCookieName(id: string, secure: boolean): string {
  return cookieName(`${LOGIN_COOKIE}-${id}`, secure);
}

/** The key under which the callback records that a login was used. */
export function replayMarker(id: string): string {
  return `login:${id}`;
}

export function remainingMs(tx: LoginTransaction, now: number): number {
  return tx.issuedAt + LOGIN_TTL_MS - now;
}

// Derived once per secret list (config is parsed once, so the list is one object for the process).
const derived = new WeakMap<readonly string[], readonly Buffer[]>();

/** Each listed secret gives a key, so a login started before a secret rotation still completes after it. */
function keysFor(secrets: readonly string[]): readonly Buffer[] {
  let keys = derived.get(secrets);
  if (!keys) {
    keys = secrets.map((s) =>
      Buffer.from(hkdfSync('sha256', s, 'coatcheck/login', 'login-transaction-v1', 32)),
    );
    derived.set(secrets, keys);
  }
  return keys;
}

// The id is associated data: a sealed value only opens under the cookie name it was issued for.
const context = (id: string): string => `coatcheck/login-v1:${id}`;

/** The cookie value: sealed with the first secret. */
export function sealLogin(tx: LoginTransaction, secrets: readonly string[]): string {
  const fields: (string | number | Asked)[] = [tx.issuedAt, tx.state, tx.nonce, tx.codeVerifier, tx.returnTo];
  const asked: Asked = {
    ...(tx.acrValues !== undefined ? { a: tx.acrValues } : {}),
    ...(tx.maxAge !== undefined ? { m: tx.maxAge } : {}),
    ...(tx.silent ? { s: 1 as const } : {}),
  };
  const hasAsked = Object.keys(asked).length > 0;
  if (tx.replaces !== undefined || hasAsked) fields.push(tx.replaces ?? '');
  if (hasAsked) fields.push(asked);
  return sealWithKey(keysFor(secrets)[0]!, context(loginId(tx.state)), JSON.stringify(fields));
}

/** Undefined for a value that was not sealed by coatcheck for this id, or whose login has expired. */
export function openLogin(
  sealed: string | undefined,
  id: string,
  secrets: readonly string[],
  now: number,
): LoginTransaction | undefined {
  if (!sealed || sealed.length > 2048) return undefined;
  for (const key of keysFor(secrets)) {
    const plain = openWithKey(key, context(id), sealed);
    if (plain === undefined) continue;
    const tx = parse(plain);
    if (!tx || loginId(tx.state) !== id || remainingMs(tx, now) <= 0) return undefined;
    return tx;
  }
  return undefined;
}

function parse(plain: string): LoginTransaction | undefined {
  let f: unknown;
  try {
    f = JSON.parse(plain);
  } catch {
    return undefined;
  }
  if (!Array.isArray(f) || f.length < 5 || f.length > 7 || typeof f[0] !== 'number') return undefined;
  if (!f.slice(1, 6).every((v) => typeof v === 'string')) return undefined;
  const [issuedAt, state, nonce, codeVerifier, returnTo, replaces] = f as [
    number,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  const asked = parseAsked(f[6]);
  if (!asked) return undefined;
  return {
    issuedAt,
    state,
    nonce,
    codeVerifier,
    returnTo,
    ...(replaces ? { replaces } : {}),
    ...(asked.a !== undefined ? { acrValues: asked.a } : {}),
    ...(asked.m !== undefined ? { maxAge: asked.m } : {}),
    ...(asked.s ? { silent: true } : {}),
  };
}

function parseAsked(v: unknown): Asked | undefined {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { a, m, s } = v as Record<string, unknown>;
  if (a !== undefined && typeof a !== 'string') return undefined;
  if (m !== undefined && !(Number.isSafeInteger(m) && (m as number) >= 0)) return undefined;
  if (s !== undefined && s !== 1) return undefined;
  return v as Asked;
}

/**
 * The login cookies a new login start must expire so that, with its own, the browser holds at most
 * MAX_LOGIN_COOKIES: every one that does not open or has expired, then the oldest of the rest.
 */
export function loginCookiesToExpire(
  cookieHeader: string | undefined,
  secure: boolean,
  secrets: readonly string[],
  now: number,
): string[] {
  const prefix = loginCookieName('', secure);
  const expire: string[] = [];
  const live: { name: string; issuedAt: number }[] = [];
  for (const [name, value] of cookiesNamedWith(cookieHeader, prefix)) {
    const tx = openLogin(value, name.slice(prefix.length), secrets, now);
    if (tx) live.push({ name, issuedAt: tx.issuedAt });
    else expire.push(name);
  }
  live.sort((a, b) => a.issuedAt - b.issuedAt);
  const excess = live.length - (MAX_LOGIN_COOKIES - 1);
  for (let i = 0; i < excess; i++) expire.push(live[i]!.name);
  return expire;
}
