import { parse, serialize, type SerializeOptions } from 'cookie';
import { sign, unsign } from 'cookie-signature';

/**
 * Cookie names and attributes. Over https the names carry the `__Host-` prefix, which makes the
 * browser insist on Secure, Path=/ and no Domain, so a sibling subdomain cannot plant or overwrite them.
 */
export const SESSION_COOKIE = 'coatcheck';
/**
 * One login cookie per login in flight (`coatcheck-login-<id>`), so parallel tabs never overwrite each
 * other's; it holds the sealed login transaction (session/login-transaction.ts).
 */
export const LOGIN_COOKIE = 'coatcheck-login';

export function cookieName(base: string, secure: boolean): string {
  return secure ? `__Host-${base}` : base;
}

/** Browsers match the `__Host-` prefix in any case (RFC 6265bis), so this does too. */
export function isBffCookie(name: string): boolean {
  const bare = name.slice(0, 7).toLowerCase() === '__host-' ? name.slice(7) : name;
  return bare === SESSION_COOKIE || bare.startsWith(`${LOGIN_COOKIE}-`);
}

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header || !header.includes(name)) return undefined;
  return parse(header)[name];
}

/** Every cookie in the header whose name starts with `prefix`, as [name, value] pairs. */
export function cookiesNamedWith(header: string | undefined, prefix: string): [string, string][] {
  if (!header || !header.includes(prefix)) return [];
  return Object.entries(parse(header)).filter(
    (entry): entry is [string, string] => entry[0].startsWith(prefix) && entry[1] !== undefined,
  );
}

/** Signed with the first secret; any listed secret verifies, so secrets rotate without logging users out. */
export function signValue(value: string, secrets: readonly string[]): string {
  return sign(value, secrets[0]!);
}

export function unsignValue(signed: string | undefined, secrets: readonly string[]): string | undefined {
  if (!signed || signed.length > 512) return undefined;
  for (const secret of secrets) {
    const value = unsign(signed, secret);
    if (value !== false) return value;
  }
  return undefined;
}

export function cookieHeader(
  name: string,
  value: string,
  opts: { secure: boolean; sameSite: 'strict' | 'lax'; maxAgeMs?: number },
): string {
  const options: SerializeOptions = {
    httpOnly: true,
    secure: opts.secure,
    sameSite: opts.sameSite,
    path: '/',
  };
  if (opts.maxAgeMs !== undefined) options.maxAge = Math.max(0, Math.floor(opts.maxAgeMs / 1000));
  return serialize(name, value, options);
}

export function clearCookieHeader(name: string, secure: boolean): string {
  return serialize(name, '', {
    httpOnly: true,
    secure,
    sameSite: 'lax',
    path: '/',
    expires: new Date(0),
  });
}

/** A cookie besides coatcheck's own that must not go upstream (the host's session cookie, in middleware mode). */
export type CookieFilter = (name: string, value: string) => boolean;

/**
 * The Cookie header minus coatcheck's own cookies (and those `alsoDrop` names: the host's session
 * cookie, in middleware mode), for forwarding upstream; undefined when nothing is left.
 */
export function stripBffCookies(header: string | undefined, alsoDrop?: CookieFilter): string | undefined {
  if (!header) return undefined;
  if (!alsoDrop && !header.includes(SESSION_COOKIE)) return header;
  const kept = header
    .split(';')
    .map((part) => part.trim())
    .filter((part) => {
      const eq = part.indexOf('=');
      const name = (eq === -1 ? part : part.slice(0, eq)).trim();
      return part && !isBffCookie(name) && !alsoDrop?.(name, eq === -1 ? '' : part.slice(eq + 1));
    });
  return kept.length ? kept.join('; ') : undefined;
}
