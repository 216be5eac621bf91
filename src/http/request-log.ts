import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../log.js';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * One JSON line per request, with a request id (the ingress's X-Request-Id when it is sane). Only
 * method, path and status are logged: never headers, and never the query, which carries codes,
 * states and logout ids.
 */
export function requestLog(log: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    const started = performance.now();
    res.once('close', () => {
      const url = req.originalUrl;
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
    next();
  };
}
