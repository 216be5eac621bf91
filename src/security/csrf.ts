import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { BffError } from '../errors.js';

/**
 * A custom header cannot be set by a cross-site form or a simple request, and a cross-origin fetch
 * that sets it needs a CORS preflight coatcheck never grants: so its presence proves same-origin.
 */
export function hasCsrfHeader(req: IncomingMessage): boolean {
  return req.headers['x-csrf'] === '1';
}

export function requireCsrfHeader(req: Request, _res: Response, next: NextFunction): void {
  next(hasCsrfHeader(req) ? undefined : new BffError('csrf_header_missing'));
}
