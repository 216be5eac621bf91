import type { Response } from 'express';

/** A 302 with no body: Express's default body repeats the URL, which for logout carries the id_token_hint. */
export function redirect(res: Response, url: string): void {
  res.status(302).setHeader('Location', url);
  res.end();
}
