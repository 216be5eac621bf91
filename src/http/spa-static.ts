import { extname } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';

/**
 * Build tools put a content hash in asset names (app.3f9a2b1c.js, index-B2xY3zQ1.css): those never
 * change. A hash is 8-20 letters and digits with a digit or mixed case in it, so words such as
 * apple-touch-icon.png or my-component.js are not mistaken for one.
 */
const HASH_PART = /[.-]([A-Za-z0-9_]{8,20})\.[a-z0-9]+$/;
function isHashed(path: string): boolean {
  const part = HASH_PART.exec(path)?.[1];
  return part !== undefined && (/\d/.test(part) || (/[a-z]/.test(part) && /[A-Z]/.test(part)));
}

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
      res.setHeader('Cache-Control', isHashed(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
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
