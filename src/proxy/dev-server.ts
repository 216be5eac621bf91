import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config/load.js';
import type { AppContext } from '../context.js';
import { isManagementPath } from '../http/management-paths.js';
import { pathBelowBase } from '../http/request-facts.js';
import type { Logger } from '../log.js';
import { stripBffCookies } from '../security/cookies.js';
import { forward } from './forward.js';
import { forwardableHeaders } from './headers.js';
import { compileRoutes } from './routes.js';

/**
 * Development only: GETs that no route or endpoint claims go to a dev server (Vite, webpack), with
 * coatcheck's cookies stripped and no token attached, so the SPA and its API share one origin.
 */
export function devServerProxy(ctx: AppContext, target: string) {
  const origin = new URL(target).origin;
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    // Dev servers inject inline scripts (HMR clients, React refresh) that the production CSP forbids.
    res.removeHeader('Content-Security-Policy');
    await forward(ctx.upstream, req, res, {
      origin,
      path: req.originalUrl,
      headers: forwardableHeaders(req.headers),
      timeoutMs: ctx.config.upstreamTimeoutMs,
    });
  };
}

/**
 * Hot-reload WebSockets: an upgrade that is not for an API route or /bff is piped, bytes as they
 * are, to the dev server, with coatcheck's cookies removed from the handshake. Returns a closer for
 * shutdown, since upgraded sockets are no longer the HTTP server's to close.
 */
export function attachDevServerUpgrades(server: Server, config: Config, log: Logger): { close(): void } {
  const target = new URL(config.spaDevServer!);
  const match = compileRoutes(config.routes);
  const open = new Set<Duplex>();
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    const raw = req.url ?? '/';
    // A URL outside the base path (undefined) is checked as it came.
    const below = pathBelowBase(config.basePath, raw);
    const path = below ?? raw;
    // An API route's upgrade is src/proxy/websocket.ts's.
    if (below !== undefined && match(below)) return;
    if (!path.startsWith('/') || isManagementPath(path) || match(path)) {
      socket.destroy();
      return;
    }
    const upstream: Socket = connect(Number(target.port || 80), target.hostname, () => {
      const lines = [`${req.method} ${raw} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i]!;
        const lower = name.toLowerCase();
        if (lower === 'host') lines.push(`Host: ${target.host}`);
        else if (lower === 'cookie') {
          const kept = stripBffCookies(req.rawHeaders[i + 1]);
          if (kept) lines.push(`Cookie: ${kept}`);
        } else lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    open.add(socket);
    open.add(upstream);
    const close = (err?: Error): void => {
      if (err) log.debug({ err: { message: err.message } }, 'dev server upgrade closed');
      upstream.destroy();
      socket.destroy();
      open.delete(socket);
      open.delete(upstream);
    };
    upstream.on('error', close).on('close', () => close());
    socket.on('error', close).on('close', () => close());
  });
  return {
    close() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
