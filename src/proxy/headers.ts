import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { stripBffCookies } from '../security/cookies.js';

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

export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  authorization: string,
  forwarded: { readonly for: string | undefined; readonly proto: string; readonly host: string | undefined },
): Record<string, string | string[]> {
  const extra = connectionListed(incoming.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in incoming) {
    if (NOT_FORWARDED.has(name) || extra?.has(name)) continue;
    const value = incoming[name];
    if (value !== undefined) out[name] = value;
  }
  const cookie = stripBffCookies(incoming.cookie);
  if (cookie) out.cookie = cookie;
  out.authorization = authorization;
  const prior = incoming['x-forwarded-for'];
  if (forwarded.for) out['x-forwarded-for'] = prior ? `${String(prior)}, ${forwarded.for}` : forwarded.for;
  out['x-forwarded-proto'] = forwarded.proto;
  if (forwarded.host) out['x-forwarded-host'] = forwarded.host;
  return out;
}

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
  return out;
}
