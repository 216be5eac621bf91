import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { isBffCookie, stripBffCookies, type CookieFilter } from '../security/cookies.js';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the ones coatcheck sets or replaces itself. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  'cookie',
  'authorization',
  // Only coatcheck, which holds the session's key, can sign a proof for its tokens.
  'dpop',
  // Some frameworks take the path or method from these, which would route around an upstream's
  // own rules for what the browser actually asked.
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

/**
 * Headers that gateways set and APIs trust, for who the client is or what it asked: the client
 * address, the original URL or method, the authenticated user. Whatever the browser sent under
 * these names is dropped, so the only such claims the upstream sees are the ones coatcheck adds
 * itself (X-Forwarded-For, -Proto and -Host). This is the one list; the README's security notes
 * name the same headers.
 *
 * Exact names, lowercased as Node gives them.
 */
export const CLIENT_CLAIM_HEADERS: ReadonlySet<string> = new Set([
  'forwarded',
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'cf-connecting-ip',
  'x-cluster-client-ip',
  'x-original-uri',
  'x-original-method',
  'x-original-host',
  'x-host',
  'remote-user',
  'x-remote-user',
]);

/** Whole families, by prefix: X-Forwarded-User, X-Auth-Request-Email, X-Amzn-Oidc-Data, X-Envoy-… */
export const CLIENT_CLAIM_PREFIXES: readonly string[] = [
  'x-forwarded-',
  'x-auth-request-',
  'x-amzn-oidc-',
  'x-envoy-',
];

/** Every prefix starts "x-", so most names are settled by their first two characters. */
export function isClientClaim(name: string): boolean {
  if (CLIENT_CLAIM_HEADERS.has(name)) return true;
  if (name.charCodeAt(0) !== 120 || name.charCodeAt(1) !== 45) return false;
  for (const prefix of CLIENT_CLAIM_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/** Response headers that belong to the hop, never relayed (a WebSocket's 101 gets coatcheck's own Connection and Upgrade). */
export const HOP_BY_HOP_RESPONSE: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (!value) return undefined;
  // Nearly every request and answer says just this; splitting it would find nothing to drop.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return undefined;
  const listed = (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s && s !== 'close' && s !== 'keep-alive');
  return listed.length ? new Set(listed) : undefined;
}

/** The end-to-end request headers, minus hop-by-hop ones, coatcheck's cookies and the client's own claims (isClientClaim). */
export function forwardableHeaders(
  incoming: IncomingHttpHeaders,
  hostCookies?: CookieFilter,
): Record<string, string | string[]> {
  const extra = connectionListed(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (NOT_FORWARDED.has(name) || isClientClaim(name) || extra?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  const cookie = stripBffCookies(incoming.cookie, hostCookies);
  if (cookie) out.cookie = cookie;
  return out;
}

export interface ForwardedFor {
  /** The client chain as far as it is trusted (Express's req.ips with trust proxy), else the peer address. */
  readonly for: string;
  /** From BFF_PUBLIC_URL, not from the client's Host header. */
  readonly proto: string;
  readonly host: string;
}

/** `requestId` is coatcheck's id for the request (request-log.ts), sent as X-Request-Id so both logs can be matched. */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  authorization: string | undefined,
  forwarded: ForwardedFor,
  requestId?: string,
  /** The host's session cookie (middleware mode with express-session), dropped like coatcheck's own. */
  hostCookies?: CookieFilter,
): Record<string, string | string[]> {
  const out = forwardableHeaders(incoming, hostCookies);
  // Without a token (a route with "token": "none" or "optional"), no Authorization at all: the browser's is never passed on.
  if (authorization) out.authorization = authorization;
  if (requestId) out['x-request-id'] = requestId;
  if (forwarded.for) out['x-forwarded-for'] = forwarded.for;
  out['x-forwarded-proto'] = forwarded.proto;
  out['x-forwarded-host'] = forwarded.host;
  return out;
}

/**
 * Whether a Set-Cookie line from an upstream could plant or overwrite one of coatcheck's cookies.
 * The name is parsed the way browsers do (trimmed, RFC 6265 §5.2), not matched as a prefix, so
 * "__Host-coatcheck =x" cannot slip past. A cookie whose name is empty ("=coatcheck=x", or a line
 * without "=") is sent back by browsers as its bare value, which a server reads as "name=value":
 * it could pose as any cookie, coatcheck's included, and no API needs one, so every such line is
 * dropped rather than only those whose value looks like ours.
 */
function setsBffCookie(line: string): boolean {
  const end = line.indexOf(';');
  const pair = end === -1 ? line : line.slice(0, end);
  const eq = pair.indexOf('=');
  if (eq === -1) return true;
  const name = pair.slice(0, eq).trim();
  return name === '' || isBffCookie(name);
}

/**
 * A directive that already keeps a per-user answer out of shared caches (an unqualified `private`,
 * `no-store`), or says the API meant it to be shared (`public`, `s-maxage`). A qualified
 * `private="Set-Cookie"` does not count: it lets a shared cache store the body.
 */
const DECIDED = /(?:^|,)[ \t]*(?:(?:private|public|no-store)[ \t]*(?:,|$)|s-maxage[ \t]*=)/i;
/** Quoted directive values, which may hold commas and directive names. */
const QUOTED = /"(?:[^"\\]|\\.)*"?/g;

/** Whether a Cache-Control list (every line of it, joined) leaves shared caches to decide for themselves. */
function needsPrivate(list: string): boolean {
  return !DECIDED.test(list.includes('"') ? list.replace(QUOTED, '""') : list);
}

/**
 * The upstream's response headers for the browser: unchanged, except hop-by-hop headers, any
 * Set-Cookie that would overwrite coatcheck's own cookies, and caching. The browser's request
 * carried a cookie, not the Authorization header the upstream saw, so a shared cache in front of
 * coatcheck would not know the answer is per user: a Cache-Control that neither says `private`
 * nor decides for shared caches (`public`, `s-maxage`, `no-store`) gets `private` in front, and an
 * answer without one (or whose Cache-Control the upstream named in Connection) gets `private`.
 * Several Cache-Control lines are one list (RFC 9110 §5.3), and leave as one line.
 */
export function downstreamResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
): OutgoingHttpHeaders {
  const extra = connectionListed(upstream.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in upstream) {
    if (HOP_BY_HOP_RESPONSE.has(name) || extra?.has(name)) continue;
    const value = upstream[name];
    if (value !== undefined) out[name] = value;
  }
  const setCookie = out['set-cookie'];
  if (setCookie !== undefined) {
    const kept = (Array.isArray(setCookie) ? setCookie : [String(setCookie)]).filter(
      (c) => !setsBffCookie(c),
    );
    if (kept.length) out['set-cookie'] = kept;
    else delete out['set-cookie'];
  }
  const cacheControl = out['cache-control'];
  if (cacheControl === undefined) {
    // Without Cache-Control a shared cache may still store the answer (Expires, or heuristic
    // freshness from Last-Modified, RFC 9111 §4.2.2).
    out['cache-control'] = 'private';
  } else {
    const list = Array.isArray(cacheControl) ? cacheControl.join(', ') : String(cacheControl);
    if (needsPrivate(list)) out['cache-control'] = list.trim() ? `private, ${list}` : 'private';
    else if (list !== cacheControl) out['cache-control'] = list;
  }
  return out;
}

/** A response head as writeHead takes it in one call: names and values in one flat list. */
export type HeadLines = (string | number | string[])[];

/**
 * The head for writeHead: `headers` (the upstream's, from downstreamResponseHeaders), then each of
 * coatcheck's own (lowercase names) that the upstream did not send. A flat list, because building
 * an object of twenty-odd names per answer costs more than the whole header policy.
 */
export function responseHead(
  headers: OutgoingHttpHeaders,
  own: ReadonlyArray<readonly [string, string]>,
): HeadLines {
  const lines: HeadLines = [];
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) lines.push(name, value);
  }
  for (const [name, value] of own) if (headers[name] === undefined) lines.push(name, value);
  return lines;
}
