import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log.js';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Gives the request an id (the ingress's X-Request-Id when it is sane) and logs one JSON line when
 * it ends. Only method, path and status are logged: never headers, and never the query, which
 * carries codes, states and logout ids.
 */
export function logRequest(log: Logger, req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', id);
  const started = performance.now();
  res.once('close', () => {
    const url = (req as Partial<Request>).originalUrl ?? req.url ?? '';
    const q = url.indexOf('?');
    log.info(
      {
        reqId: id,
        method: req.method,
        path: q === -1 ? url : url.slice(0, q),
        status: res.statusCode,
        ms: Math.round((performance.now() - started) * 10) / 10,
        aborted: !res.writableFinished || undefined,
      },
      'request',
    );
  });
  return id;
}

export function requestLog(log: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.locals.requestId = logRequest(log, req, res);
    next();
  };
}
