import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { BffError } from '../errors.js';
import type { Logger } from '../log.js';
import { errorPage } from './error-page.js';

function toBffError(err: unknown): BffError {
  if (err instanceof BffError) return err;
  const e = err as { type?: string; status?: number };
  if (e?.type === 'entity.too.large') return new BffError('payload_too_large', { cause: err });
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return new BffError('invalid_request', { cause: err });
  }
  return new BffError('internal_error', { cause: err });
}

/** Only names and messages of causes are logged: library errors can carry whole responses. */
function describeCause(cause: unknown): unknown {
  if (!(cause instanceof Error)) return undefined;
  return { name: cause.name, message: cause.message, code: (cause as { code?: unknown }).code };
}

/** Logs the error and answers it as JSON {error, message}; used by the Express handler and the proxy's fast path. */
export function sendJsonError(log: Logger, err: unknown, res: ServerResponse, requestId: unknown): void {
  const e = logError(log, err, requestId);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(e.toJSON());
  res.writeHead(e.status, {
    'Cache-Control': 'no-store',
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

function logError(log: Logger, err: unknown, requestId: unknown): BffError {
  const e = toBffError(err);
  const entry = { reqId: requestId, error: e.code, cause: describeCause(e.cause) };
  if (e.status >= 500) log.error(entry, e.message);
  else log.info(entry, e.message);
  return e;
}

/**
 * Registered last. API-style requests get JSON {error, message}; a browser navigating to a login,
 * callback or logout URL gets the same error as a small page rather than raw JSON.
 */
export function errorHandler(log: Logger, basePath = '') {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const action = req.method === 'GET' ? /\/bff\/(login|callback|logout)$/.exec(req.path)?.[1] : undefined;
    if (!action || res.headersSent || req.accepts(['json', 'html']) !== 'html') {
      sendJsonError(log, err, res, res.locals.requestId);
      return;
    }
    const e = logError(log, err, res.locals.requestId);
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(e.status)
      .type('html')
      .send(
        errorPage({
          error: e,
          action: action as 'login' | 'callback' | 'logout',
          basePath,
          requestId: res.locals.requestId,
        }),
      );
  };
}
