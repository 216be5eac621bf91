import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { WebSocketServer } from 'ws';
import { createDpopVerifier } from './dpop-verifier.js';

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
  /** Accept only DPoP-bound tokens with a valid proof (RFC 9449 §7), never a bearer token. */
  dpop?: boolean;
}): Promise<DemoApi> {
  const audienceFor = (url = '/'): string => {
    for (const [prefix, audience] of Object.entries(opts.audiences ?? {})) {
      if (url === prefix || url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`)) return audience;
    }
    return opts.audience;
  };
  const jwks = createRemoteJWKSet(new URL(`${opts.issuer}/jwks`));
  const verifyAccessToken = async (token: string, url?: string): Promise<JWTPayload> =>
    (await jwtVerify(token, jwks, { issuer: opts.issuer, audience: audienceFor(url) })).payload;
  // One verifier, so jti replay is tracked across paths; the path's own audience is checked after it.
  const anyAudience = [opts.audience, ...Object.values(opts.audiences ?? {})];
  const verifyDpop = createDpopVerifier({
    verifyAccessToken: async (token) =>
      (await jwtVerify(token, jwks, { issuer: opts.issuer, audience: anyAudience })).payload,
  });
  const forPath = (payload: JWTPayload, url?: string): boolean =>
    [payload.aud].flat().includes(audienceFor(url));
  let origin = '';
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown, extra: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra });
      res.end(JSON.stringify(body));
    };
    const answer = (token: string, payload: JWTPayload, boundTo?: string): void => {
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
          algorithm: decodeProtectedHeader(token).alg,
          issuedAt: new Date(payload.iat! * 1000).toISOString(),
          expiresAt: new Date(payload.exp! * 1000).toISOString(),
          expiresIn: payload.exp! - now,
          ...(boundTo ? { dpopKeyThumbprint: boundTo } : {}),
        },
      });
    };
    const auth = req.headers.authorization ?? '';
    if (opts.dpop) {
      const path = (req.url ?? '/').split('?')[0]!;
      void verifyDpop({
        method: req.method ?? 'GET',
        htu: `${origin}${path}`,
        authorization: req.headers.authorization,
        proof: req.headers.dpop,
      }).then((verdict) =>
        verdict.ok && !forPath(verdict.accessToken, req.url)
          ? send(
              401,
              { error: 'invalid_token', message: 'The token is for another audience.' },
              { 'www-authenticate': 'DPoP error="invalid_token"' },
            )
          : verdict.ok
            ? answer(auth.slice(5), verdict.accessToken, verdict.jkt)
            : send(
                401,
                { error: 'invalid_token', message: `DPoP refused: ${verdict.reason}` },
                { 'www-authenticate': verdict.challenge ?? 'DPoP error="invalid_token"' },
              ),
      );
      return;
    }
    if (!auth.startsWith('Bearer ')) {
      return send(
        401,
        { error: 'invalid_token', message: 'No bearer token.' },
        { 'www-authenticate': 'Bearer' },
      );
    }
    verifyAccessToken(auth.slice(7), req.url).then(
      (payload) => answer(auth.slice(7), payload),
      (err: Error) =>
        send(
          401,
          { error: 'invalid_token', message: err.message },
          { 'www-authenticate': 'Bearer error="invalid_token"' },
        ),
    );
  });
  // The handshake's token is checked as every other call's is: DPoP with its proof, or bearer.
  const live = acceptLive(server, async (req) => {
    const auth = req.headers.authorization ?? '';
    if (opts.dpop) {
      const verdict = await verifyDpop({
        method: req.method ?? 'GET',
        htu: `${origin}${(req.url ?? '/').split('?')[0]!}`,
        authorization: auth,
        proof: req.headers.dpop,
      });
      if (!verdict.ok || !forPath(verdict.accessToken, req.url)) throw new Error('DPoP refused');
      return { payload: verdict.accessToken };
    }
    if (!auth.startsWith('Bearer ')) throw new Error('no bearer token');
    return { payload: await verifyAccessToken(auth.slice(7), req.url) };
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  origin = `http://127.0.0.1:${port}`;
  return {
    url: origin,
    close: () =>
      new Promise<void>((resolve) => {
        live.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** How often the live socket says it is still there. */
const TICK_MS = 5000;

/**
 * GET /live as a WebSocket: the token is checked at the handshake, as any resource server would
 * (401 without a valid one), then the socket greets with what it verified, ticks, and echoes.
 * coatcheck closes it (4401) when the session ends; the API itself never sees a logout.
 */
function acceptLive(
  server: Server,
  verify: (req: IncomingMessage) => Promise<{ payload: { sub?: string; exp?: number } }>,
): { close(): void } {
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (): void => {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n');
    };
    if (!req.url?.startsWith('/live')) return refuse();
    verify(req).then(({ payload }) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        const send = (message: object): void =>
          ws.send(JSON.stringify({ ...message, at: new Date().toISOString() }));
        send({
          type: 'hello',
          subject: payload.sub,
          tokenExpiresAt: payload.exp ? new Date(payload.exp * 1000).toISOString() : undefined,
        });
        const ticking = setInterval(() => send({ type: 'tick' }), TICK_MS);
        ws.on('message', (data) => send({ type: 'echo', text: String(data).slice(0, 200) }));
        ws.on('close', () => clearInterval(ticking));
        ws.on('error', () => ws.terminate());
      });
    }, refuse);
  });
  return {
    close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
