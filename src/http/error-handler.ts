import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { BffError } from '../errors.js';
import type { Logger } from '../log.js';

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

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

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
 * callback or logout URL gets the same message as a small page rather than raw JSON.
 */
export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const navigation = req.method === 'GET' && /\/bff\/(login|callback|logout)$/.test(req.path);
    if (!navigation || res.headersSent || req.accepts(['json', 'html']) !== 'html') {
      sendJsonError(log, err, res, res.locals.requestId);
      return;
    }
    const e = logError(log, err, res.locals.requestId);
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(e.status)
      .type('html')
      .send(
        `<!doctype html><meta charset="utf-8"><title>Sign-in problem</title>` +
          `<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">` +
          `<h1 style="font-size:1.25rem">${escapeHtml(e.message)}</h1>` +
          `<p><code>${e.code}</code></p><p><a href="/">Back to the app</a></p></body>`,
      );
  };
}
