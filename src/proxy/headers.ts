import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { isBffCookie, stripBffCookies } from '../security/cookies.js';

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
  // Set by coatcheck from what it knows; a client's own values would let it lie to the upstream.
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
  // Some frameworks take the path or method from these, which would route around an upstream's
  // own rules for what the browser actually asked.
  'x-original-url',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);

const HOP_BY_HOP_RESPONSE = new Set([
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
  const listed = (Array.isArray(value) ? value.join(',') : value)
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s && s !== 'close' && s !== 'keep-alive');
  return listed.length ? new Set(listed) : undefined;
}

/** The end-to-end request headers, minus hop-by-hop ones, coatcheck's cookies and client-supplied forwarding headers. */
export function forwardableHeaders(incoming: IncomingHttpHeaders): Record<string, string | string[]> {
  const extra = connectionListed(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (NOT_FORWARDED.has(name) || extra?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  const cookie = stripBffCookies(incoming.cookie);
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

export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  authorization: string,
  forwarded: ForwardedFor,
): Record<string, string | string[]> {
  const out = forwardableHeaders(incoming);
  out.authorization = authorization;
  if (forwarded.for) out['x-forwarded-for'] = forwarded.for;
  out['x-forwarded-proto'] = forwarded.proto;
  out['x-forwarded-host'] = forwarded.host;
  return out;
}

/**
 * Whether a Set-Cookie line from an upstream could plant or overwrite one of coatcheck's cookies.
 * The name is parsed the way browsers do (trimmed, RFC 6265 §5.2), not matched as a prefix, so
 * "__Host-coatcheck =x" cannot slip past. A line without "=" sets a nameless cookie whose value
 * reads as a name on the way back, so it is dropped too.
 */
function setsBffCookie(line: string): boolean {
  const end = line.indexOf(';');
  const pair = end === -1 ? line : line.slice(0, end);
  const eq = pair.indexOf('=');
  return eq === -1 || isBffCookie(pair.slice(0, eq).trim());
}

/**
 * The upstream's response headers for the browser: unchanged, except hop-by-hop headers, any
 * Set-Cookie that would overwrite coatcheck's own cookies, and caching. The browser's request
 * carried a cookie, not the Authorization header the upstream saw, so a shared cache in front of
 * coatcheck would not know the answer is per user: anything cacheable that is not explicitly
 * public or private is marked private.
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
  if (typeof cacheControl === 'string' && !/\b(public|private|no-store|s-maxage)\b/i.test(cacheControl)) {
    out['cache-control'] = `private, ${cacheControl}`;
  }
  return out;
}
