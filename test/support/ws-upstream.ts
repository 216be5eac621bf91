import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/** One WebSocket the upstream accepted, with the handshake it saw and how it ended. */
export interface UpstreamSocket {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly socket: WebSocket;
  /** Resolves when the connection has closed, with the close code and reason the upstream received. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

export interface WsUpstream {
  readonly url: string;
  /** Every upgrade request that reached it, accepted or not. */
  readonly handshakes: { url: string; headers: IncomingHttpHeaders }[];
  /** Resolves with the next socket the upstream accepts after this call. */
  nextSocket(): Promise<UpstreamSocket>;
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * A real WebSocket API (the `ws` library). Paths:
 *  .../hang     never answers the handshake (to provoke the head timeout);
 *  .../refuse   answers 403 with a JSON body and a cookie that would overwrite coatcheck's;
 *  anything else is accepted: each text message comes back as `echo:<message>`.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const handshakes: { url: string; headers: IncomingHttpHeaders }[] = [];
  const waiting: ((s: UpstreamSocket) => void)[] = [];
  const held = new Set<Duplex>();
  const wss = new WebSocketServer({ noServer: true });
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('WebSocket only');
  });
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    const url = req.url ?? '/';
    handshakes.push({ url, headers: req.headers });
    if (url.endsWith('/hang')) {
      held.add(socket);
      return;
    }
    if (url.endsWith('/refuse')) {
      const body = JSON.stringify({ error: 'forbidden' });
      socket.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n` +
          `set-cookie: coatcheck=forged; Path=/\r\nset-cookie: theme=dark; Path=/\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      // A protocol error closes the socket (1002 and the like), which `closed` reports.
      ws.on('error', () => undefined);
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`));
      const s = { url, headers: req.headers, socket: ws, closed };
      waiting.shift()?.(s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    handshakes,
    server,
    nextSocket() {
      return new Promise((resolve) => waiting.push(resolve));
    },
    async close() {
      for (const s of held) s.destroy();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
