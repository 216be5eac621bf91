import { createServer, type Server } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

export interface DemoApi {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The demo's API: it trusts nobody, coatcheck included, and verifies the bearer token itself
 * against the IdP's JWKS, as a real resource server would. It answers with what it verified.
 * Paths under a key of `audiences` are another API, which accepts only tokens for its own audience.
 */
export async function startDemoApi(opts: {
  port: number;
  issuer: string;
  audience: string;
  audiences?: Readonly<Record<string, string>>;
}): Promise<DemoApi> {
  const audienceFor = (url = '/'): string => {
    for (const [prefix, audience] of Object.entries(opts.audiences ?? {})) {
      if (url === prefix || url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`)) return audience;
    }
    return opts.audience;
  };
  const jwks = createRemoteJWKSet(new URL(`${opts.issuer}/jwks`));
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
      res.end(JSON.stringify(body));
    };
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) {
      return send(
        401,
        { error: 'invalid_token', message: 'No bearer token.' },
        { 'www-authenticate': 'Bearer' },
      );
    }
    jwtVerify(auth.slice(7), jwks, { issuer: opts.issuer, audience: audienceFor(req.url) }).then(
      ({ payload, protectedHeader }) => {
        const now = Math.floor(Date.now() / 1000);
        send(200, {
          message: 'Hello from the demo API. This token was verified against the IdP’s keys.',
          path: req.url,
          token: {
            subject: payload.sub,
            issuer: payload.iss,
            audience: payload.aud,
            clientId: payload.client_id,
            tokenId: payload.jti,
            algorithm: protectedHeader.alg,
            issuedAt: new Date(payload.iat! * 1000).toISOString(),
            expiresAt: new Date(payload.exp! * 1000).toISOString(),
            expiresIn: payload.exp! - now,
          },
        });
      },
      (err: Error) =>
        send(
          401,
          { error: 'invalid_token', message: err.message },
          { 'www-authenticate': 'Bearer error="invalid_token"' },
        ),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
