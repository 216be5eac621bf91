import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify } from 'jose';

export interface AudienceUpstream {
  readonly url: string;
  readonly audience: string;
  /** Calls it served: the access token it verified, and what it read from it. */
  readonly served: { path: string; token: string; sub: unknown; aud: unknown }[];
  /** Calls it refused, with the reason. */
  readonly refused: string[];
  close(): Promise<void>;
}

/**
 * A resource server for one audience, as a real one checks a JWT access token: signature against the
 * IdP's JWKS, issuer, expiry, and `aud` its own. A token for another API is refused with 401. The
 * issuer is asked for at the first call, so the API can start before the IdP (whose clients need its URL).
 */
export async function startAudienceUpstream(
  audience: string,
  issuerOf: () => string,
): Promise<AudienceUpstream> {
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  const served: AudienceUpstream['served'] = [];
  const refused: string[] = [];
  const server: Server = createServer((req, res) => {
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      for await (const _ of req);
      const token = bearer(req.headers);
      if (!token) {
        refused.push('no bearer token');
        return answer(401, { error: 'invalid_token' });
      }
      try {
        const issuer = issuerOf();
        jwks ??= createRemoteJWKSet(new URL(`${issuer}/jwks`));
        const { payload } = await jwtVerify(token, jwks, { issuer, audience });
        served.push({ path: req.url ?? '/', token, sub: payload.sub, aud: payload.aud });
        answer(200, { audience, sub: payload.sub, method: req.method, path: req.url });
      } catch (err) {
        refused.push((err as Error).message);
        answer(401, { error: 'invalid_token', message: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    audience,
    served,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function bearer(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization ?? '';
  return auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
}
