import { Browser } from './browser.js';
import type { Session } from '../../src/session/sessions.js';
import type { Stack } from './stack.js';

/** The header every API and /bff/user call needs (coatcheck's default X-CSRF: 1). */
export const csrf: Readonly<Record<string, string>> = Object.freeze({ 'x-csrf': '1' });

/** A fresh browser that has completed a real login against `bff` (anything with a url, or the url itself). */
export async function loggedIn(
  bff: { readonly url: string } | string,
  opts: ConstructorParameters<typeof Browser>[0] = {},
): Promise<Browser> {
  const b = new Browser(opts);
  await b.login(typeof bff === 'string' ? bff : bff.url);
  return b;
}

/**
 * Moves the stack's clock just past the point where the browser's session is due for refresh, so the
 * next request refreshes. Returns the session as it was before the move.
 */
export async function advanceToRefresh(
  stack: Pick<Stack, 'clock' | 'sessionOf' | 'bff'>,
  browser: Browser,
  bff = stack.bff,
): Promise<Session> {
  const session = await stack.sessionOf(browser, bff);
  if (!session) throw new Error('the browser has no session to refresh');
  stack.clock.advance(session.tokens.refreshAt - stack.clock.now() + 1000);
  return session;
}
