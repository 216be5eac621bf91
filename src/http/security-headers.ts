import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
import type { Config } from '../config/load.js';

export function helmetOptions(config: Config): HelmetOptions {
  const plainHttp = config.publicUrl.startsWith('http:');
  return {
    // On a plain-http deployment (local development, the demo) these would break the app rather than protect it.
    contentSecurityPolicy: plainHttp ? { directives: { upgradeInsecureRequests: null } } : true,
    strictTransportSecurity: !plainHttp,
  };
}

/**
 * helmet's headers as a fixed list, computed once: they depend only on the config, so the proxy's
 * fast path sets them without running helmet's dozen middlewares per request.
 */
export function securityHeaders(config: Config): ReadonlyArray<readonly [string, string]> {
  const headers: [string, string][] = [];
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.push([name, String(value)]);
    },
    removeHeader() {},
  } as unknown as ServerResponse;
  helmet(helmetOptions(config))({} as IncomingMessage, res, () => undefined);
  return headers;
}

/**
 * The same headers with lowercase names, for a response whose head is written in one writeHead
 * (proxy/headers.ts responseHead): an upstream header of the same name replaces one of these, as it
 * would had these been set first. setHeader per header costs its own bookkeeping on top of the
 * validation writeHead does anyway, on the proxy's every answer.
 */
export function lowercaseSecurityHeaders(config: Config): ReadonlyArray<readonly [string, string]> {
  return securityHeaders(config).map(([n, v]) => [n.toLowerCase(), v] as const);
}
