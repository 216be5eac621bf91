import { createServer, type Server } from 'node:http';
import type { App } from './app.js';
import type { Logger } from './log.js';

export interface RunningServer {
  readonly server: Server;
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes the rest. */
  stop(graceMs?: number): Promise<void>;
}

export async function listen(app: App, port: number, host: string, log: Logger): Promise<RunningServer> {
  const server = createServer(app);
  // Behind a load balancer with its own idle timeout, ours must be longer, or it races the LB's reuse.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  return {
    server,
    port: actualPort,
    async stop(graceMs = 10_000) {
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
      await app.context.upstream.close();
    },
  };
}
