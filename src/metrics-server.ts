import { createServer } from 'node:http';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { listenOn } from './server.js';

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Prometheus' scrape endpoint, on its own listener: the public port never serves it, so metrics
 * stay reachable only where the operator exposes this port. Anything but GET /metrics is a 404.
 */
export async function startMetricsServer(
  metrics: Metrics,
  where: { readonly port: number; readonly host: string },
  log: Logger,
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.error({ err: { message: (err as Error).message } }, 'metrics collection failed');
        res
          .writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' })
          .end('metrics collection failed\n');
      },
    );
  });
  const port = await listenOn(server, where.port, where.host);
  log.info({ port, host: where.host }, 'metrics listening at /metrics');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
