import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { WebSocketServer } from 'ws';

export interface DemoApi {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The demo's API: it trusts nobody, coatcheck included, and verifies the bearer token itself
 * against the IdP's JWKS, as a real resource server would. It answers with what it verified.
 */
export async function startDemoApi(opts: {
  port: number;
  issuer: string;
  audience: string;
}): Promise<DemoApi> {
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
    jwtVerify(auth.slice(7), jwks, { issuer: opts.issuer, audience: opts.audience }).then(
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
  const live = acceptLive(server, (token) =>
    jwtVerify(token, jwks, { issuer: opts.issuer, audience: opts.audience }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
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
  verify: (token: string) => Promise<{ payload: { sub?: string; exp?: number } }>,
): { close(): void } {
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const auth = req.headers.authorization ?? '';
    const refuse = (): void => {
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n');
    };
    if (!req.url?.startsWith('/live') || !auth.startsWith('Bearer ')) return refuse();
    verify(auth.slice(7)).then(({ payload }) => {
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
