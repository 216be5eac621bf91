import { createServer, type RequestListener, type Server } from 'node:http';
import type { Logger } from './log.js';

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

/** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes the rest. */
export async function drain(server: Server, graceMs: number, log: Logger): Promise<void> {
  // A server that is already closed answers with an error here; it is drained all the same.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections become idle as their last response ends; close each as soon as it does.
  server.on('request', (_req, res) => res.setHeader('Connection', 'close'));
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  const timer = setTimeout(() => {
    log.warn('grace period over; closing remaining connections');
    server.closeAllConnections();
  }, graceMs);
  await closed;
  clearInterval(sweep);
  clearTimeout(timer);
}
