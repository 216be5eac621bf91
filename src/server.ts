import { createServer, type RequestListener, type Server } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Logger } from './log.js';

/**
 * While draining, a keep-alive connection is closed once it has been idle this long. A client reusing a
 * connection sends its next request within moments of the last response; closing it in that gap would
 * fail a request the client has already sent.
 */
const IDLE_SETTLE_MS = 250;

/** Per connection: requests in flight, and since when it has had none. */
interface ConnectionState {
  active: number;
  idleSince: number;
}
const connections = new WeakMap<Server, Map<Socket, ConnectionState>>();

/** How long a whole request, body included, may take to arrive; uploads slower than this are cut. */
const REQUEST_TIMEOUT_MS = 300_000;

/**
 * An HTTP server with coatcheck's timeouts, not yet listening. Node counts headersTimeout and
 * requestTimeout per request, from its first byte, so an idle keep-alive connection is governed by
 * keepAliveTimeout alone and a short headersTimeout does not race a load balancer's reuse of it.
 * Node only looks for expired requests every connectionsCheckingInterval, so that is a fraction of
 * headersTimeout (capped, since each check walks every open connection).
 */
export function createHttpServer(listener: RequestListener, headersTimeoutMs: number): Server {
  const server = createServer(
    {
      headersTimeout: headersTimeoutMs,
      requestTimeout: Math.max(REQUEST_TIMEOUT_MS, headersTimeoutMs),
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.round(headersTimeoutMs / 4))),
    },
    listener,
  );
  // Behind a load balancer with its own idle timeout, ours must be longer, or it races the LB's reuse.
  server.keepAliveTimeout = 65_000;
  const open = new Map<Socket, ConnectionState>();
  connections.set(server, open);
  server.on('connection', (socket: Socket) => {
    open.set(socket, { active: 0, idleSince: Date.now() });
    socket.once('close', () => open.delete(socket));
  });
  // An upgraded connection (WebSocket) is no longer HTTP; its owner closes it. Forgotten only once an
  // owner listens: Node hands Upgrade requests to any 'upgrade' listener, and with none that answers,
  // the connection would hang unanswered, out of reach of every timeout. Without one, Node serves
  // them as ordinary requests (RFC 9110 §7.8 lets a server ignore Upgrade).
  const forget = (req: { socket: Socket }): void => void open.delete(req.socket);
  let forgetting = false;
  server.on('newListener', (event: string | symbol) => {
    if (event !== 'upgrade' || forgetting) return;
    forgetting = true;
    server.prependListener('upgrade', forget);
  });
  server.prependListener('request', (req, res) => {
    const state = open.get(req.socket);
    if (!state) return;
    state.active++;
    res.once('close', () => {
      state.active--;
      state.idleSince = Date.now();
    });
  });
  return server;
}

/** Listens and resolves to the bound port (the one the OS chose, for port 0). */
export async function listenOn(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

/**
 * Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes the rest. Keep-alive
 * connections are closed as they go idle: a busy one after its current response, which says
 * `Connection: close`, an idle one once it has stayed idle a moment.
 */
export async function drain(server: Server, graceMs: number, log: Logger): Promise<void> {
  const open = connections.get(server);
  // http.Server#close would destroy every idle connection at once, racing clients that are reusing
  // one right now; the net close only stops accepting, and the sweep below closes idle ones safely.
  // A server that is already closed answers with an error here; it is drained all the same.
  const closed = new Promise<void>((resolve) =>
    open ? NetServer.prototype.close.call(server, () => resolve()) : server.close(() => resolve()),
  );
  // Ahead of the app, which may answer before a later listener runs.
  server.prependListener('request', (_req, res) => res.setHeader('Connection', 'close'));
  const sweepIdle = (): void => {
    if (!open) return void server.closeIdleConnections();
    const now = Date.now();
    for (const [socket, state] of open) {
      if (state.active === 0 && now - state.idleSince >= IDLE_SETTLE_MS) socket.destroy();
    }
  };
  sweepIdle();
  const sweep = setInterval(sweepIdle, 50);
  const timer = setTimeout(() => {
    log.warn('grace period over; closing remaining connections');
    server.closeAllConnections();
  }, graceMs);
  await closed;
  clearInterval(sweep);
  clearTimeout(timer);
}
