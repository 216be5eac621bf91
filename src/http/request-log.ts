import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { NOOP_TRACER, type Tracer } from '../tracing/tracer.js';
import { MANAGEMENT_BASE_PATH, MANAGEMENT_PATHS } from './management-paths.js';
import { underPrefix } from './path-prefix.js';

/** Called once per request as it ends, with its status and its duration in seconds. */
export type RequestRecorder = (status: number, seconds: number) => void;

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Gives the request an id (the ingress's X-Request-Id when it is sane) and logs one JSON line when
 * it ends. Only method, path and status are logged: never headers, and never the query, which
 * carries codes, states and logout ids.
 */
export function logRequest(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  record?: RequestRecorder,
): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', id);
  const started = performance.now();
  res.once('close', () => {
    const ms = performance.now() - started;
    record?.(res.statusCode, ms / 1000);
    const url = (req as Partial<Request>).originalUrl ?? req.url ?? '';
    const q = url.indexOf('?');
    log.info(
      {
        reqId: id,
        method: req.method,
        path: q === -1 ? url : url.slice(0, q),
        status: res.statusCode,
        ms: Math.round(ms * 10) / 10,
        aborted: !res.writableFinished || undefined,
      },
      'request',
    );
  });
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
