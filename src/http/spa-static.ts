import { extname } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';

/** Build tools put a content hash in asset names (app.3f9a2b1c.js, index-B2xY3zQ1.css): those never change. */
const HASHED = /[.-][A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

/**
 * Serves a built SPA. Hashed assets are cached for a year; everything else, index.html above all,
 * is revalidated on every load so a deploy shows at once. GETs for unknown paths without a file
 * extension that accept HTML get index.html, so client-side routes survive a reload.
 */
export function spaStatic(dir: string) {
  const files = express.static(dir, {
    index: 'index.html',
    redirect: false,
    fallthrough: true,
    setHeaders(res, path) {
      res.setHeader('Cache-Control', HASHED.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const index = (req: Request, res: Response, next: NextFunction): void => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || extname(req.path) !== '' || !req.accepts('html')) {
      return next();
    }
    res.sendFile('index.html', { root: dir, headers: { 'Cache-Control': 'no-cache' } }, (err) => {
      if (err) next(err);
    });
  };
  return [files, index];
}
