import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { pino, type DestinationStream } from 'pino';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { NOOP_TRACER, type Tracer } from '../tracing/tracer.js';
import { MANAGEMENT_BASE_PATH, MANAGEMENT_PATHS } from './management-paths.js';
import { underPrefix } from './path-prefix.js';

/** Called once per request as it ends, with its status and its duration in seconds. */
export type RequestRecorder = (status: number, seconds: number) => void;

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

const INFO = 30;

interface AccessLine {
  (id: string, method: string | undefined, path: string, status: number, ms: number, aborted: boolean): void;
}

/**
 * Writes the access line as pino writes it (same fields, order and stream), but built directly:
 * pino's general path (child bindings, hooks, a JSON.stringify per value) was a visible share of
 * the proxy's CPU in a profile of the bench, and this line's fields are fixed. The id is SAFE_ID
 * or a UUID and the method a token Node's parser accepted, so only the path needs escaping.
 */
function accessLine(log: Logger): AccessLine {
  const stream = (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;
  const prefix = `{"level":${INFO},"time":"`;
  const service = `","service":${JSON.stringify((log.bindings() as { service?: string }).service ?? 'coatcheck')},"reqId":"`;
  let second = -1;
  let secondIso = '';
  return (id, method, path, status, ms, aborted) => {
    if (!log.isLevelEnabled('info')) return;
    const now = Date.now();
    // toISOString is the costly part of the line; the second's prefix is reused.
    if (Math.floor(now / 1000) !== second) {
      second = Math.floor(now / 1000);
      secondIso = new Date(second * 1000).toISOString().slice(0, 20);
    }
    const millis = String(now % 1000).padStart(3, '0');
    stream.write(
      `${prefix}${secondIso}${millis}Z${service}${id}","method":"${method}","path":${JSON.stringify(path)},"status":${status},"ms":${ms}${aborted ? ',"aborted":true' : ''},"msg":"request"}\n`,
    );
  };
}

const lines = new WeakMap<Logger, AccessLine>();

/** Each response's request id, for what reads it after the head is written (tracing's span). */
const ids = new WeakMap<ServerResponse, string>();

export function requestIdOfResponse(res: ServerResponse): string | undefined {
  return ids.get(res);
}

/** The ingress's X-Request-Id when it is sane, else a fresh UUID. */
export function requestIdOf(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * Logs one JSON line when the request ends. Only method, path and status are logged: never
 * headers, and never the query, which carries codes, states and logout ids. The caller sends the
 * id as X-Request-Id (logRequest does; the API fast path puts it in its one writeHead).
 */
export function logWhenDone(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  record?: RequestRecorder,
): void {
  ids.set(res, id);
  let line = lines.get(log);
  if (!line) lines.set(log, (line = accessLine(log)));
  const write = line;
  const started = performance.now();
  // 'close' is emitted once; on() spares the wrapper once() makes.
  res.on('close', () => {
    const ms = performance.now() - started;
    record?.(res.statusCode, ms / 1000);
    const url = (req as Partial<Request>).originalUrl ?? req.url ?? '';
    const q = url.indexOf('?');
    write(
      id,
      req.method,
      q === -1 ? url : url.slice(0, q),
      res.statusCode,
      Math.round(ms * 10) / 10,
      !res.writableFinished,
    );
  });
}

/** Gives the request an id (requestIdOf), sends it as X-Request-Id, and logs the request when it ends. */
export function logRequest(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  record?: RequestRecorder,
): string {
  const id = requestIdOf(req);
  res.setHeader('X-Request-Id', id);
  logWhenDone(log, req, res, id, record);
  return id;
}

/**
 * Everything Express serves: coatcheck's own endpoints and probes are kind bff, the rest (the SPA,
 * and 404s outside /bff) static. API routes never come here: the fast path records them as api.
 */
export function requestLog(log: Logger, metrics: Metrics, basePath: string, tracer: Tracer = NOOP_TRACER) {
  const bff: RequestRecorder = (status, seconds) => metrics.request('bff', status, seconds);
  const spa: RequestRecorder = (status, seconds) => metrics.request('static', status, seconds);
  const probes = new Set([`${basePath}/healthz`, `${basePath}/readyz`]);
  const management = `${basePath}${MANAGEMENT_BASE_PATH}`;
  // A request's span is named after the endpoint only for coatcheck's own, known paths.
  const endpoints = new Set(Object.values(MANAGEMENT_PATHS).map((p) => `${basePath}${p}`));
  return (req: Request, res: Response, next: NextFunction): void => {
    const q = req.url.indexOf('?');
    const path = q === -1 ? req.url : req.url.slice(0, q);
    const own = probes.has(path) || underPrefix(path, management);
    if (endpoints.has(path)) tracer.route(path);
    res.locals.requestId = logRequest(log, req, res, own ? bff : spa);
    next();
  };
}
