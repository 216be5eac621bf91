import express from 'express';
import supertest from 'supertest';
import { BffError } from '../src/errors.js';
import { errorHandler } from '../src/http/error-handler.js';
import { createLogger } from '../src/log.js';
import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';

const HTML = { accept: 'text/html,application/xhtml+xml' };

describe('a browser navigation that fails gets a readable coatcheck page', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** Starts a real login and returns the callback URL the IdP would redirect to, carrying error=. */
  async function deniedCallback(b: Browser, error: string): Promise<string> {
    const start = await b.go(`${stack.bff.url}/bff/login`, { follow: false });
    const state = new URL(String(start.headers.location)).searchParams.get('state')!;
    const url = new URL(`${stack.bff.url}/bff/callback`);
    url.search = new URLSearchParams({ error, state, iss: stack.idp.issuer }).toString();
    return url.href;
  }

  test('the user denies consent at the IdP: a plain sentence, the codes as detail, a way back in', async () => {
    const b = new Browser();
    const start = await b.go(`${stack.bff.url}/bff/login`, { follow: false, headers: HTML });
    let page = await b.go(String(start.headers.location), { headers: HTML });
    page = await b.signIn(page);
    // Deny, then follow the redirects as a browser navigation would, up to coatcheck's callback.
    const form = /<form[^>]*\/abort"[\s\S]*?<\/form>/.exec(page.text)!;
    let hop = await b.go(new URL(/action="([^"]+)"/.exec(form[0])![1]!, page.url).href, {
      method: 'POST',
      follow: false,
      headers: HTML,
    });
    while (hop.status >= 300 && hop.status < 400) {
      hop = await b.go(new URL(String(hop.headers.location), hop.url).href, { follow: false, headers: HTML });
    }
    const callback = hop;
    expect(callback.url).toContain('/bff/callback');
    expect(callback.status).toBe(400);
    expect(callback.headers['content-type']).toMatch(/text\/html/);
    const html = callback.text;
    expect(html).toContain('<h1>Sign-in did not complete</h1>');
    expect(html).toContain('The sign-in was cancelled or refused at the identity provider.');
    expect(html).toMatch(/Error code: <code>login_failed<\/code> <code>access_denied<\/code>/);
    expect(html).toContain(`<a class="button primary" href="/bff/login">Try signing in again</a>`);
    // self-contained: inline style, no script, no demo wording
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script|demo/i);
  });

  test('the inline style is allowed by the page’s own CSP, and scripts are not', async () => {
    const b = new Browser();
    const page = await b.go(`${stack.bff.url}/bff/callback?state=nope`, { headers: HTML });
    expect(page.status).toBe(400);
    const csp = String(page.headers['content-security-policy']);
    const styleSrc = /(?:^|;)\s*style-src ([^;]*)/.exec(csp)?.[1] ?? '';
    expect(styleSrc).toContain(`'unsafe-inline'`);
    expect(/(?:^|;)\s*script-src ([^;]*)/.exec(csp)?.[1]).not.toContain('unsafe-inline');
    expect(page.text).toContain('This sign-in link was already used');
    expect(page.text).toContain('<code>login_state_invalid</code>');
  });

  test('an error= the IdP (or anyone) put in the callback URL is shown escaped', async () => {
    const b = new Browser();
    const page = await b.go(await deniedCallback(b, '<img src=x onerror=alert(1)>'), { headers: HTML });
    expect(page.status).toBe(400);
    expect(page.text).toContain(
      '<code>login_failed</code> <code>&#60;img src=x onerror=alert(1)&#62;</code>',
    );
    expect(page.text).not.toContain('<img');
    expect(page.text).toContain('The identity provider did not sign you in.');
  });

  test('a fetch of the same URL still gets JSON', async () => {
    const b = new Browser();
    const page = await b.go(await deniedCallback(b, 'access_denied'), {
      headers: { accept: 'application/json' },
    });
    expect(page.status).toBe(400);
    expect(JSON.parse(page.text)).toMatchObject({ error: 'login_failed' });
  });
});

describe('the error page escapes what it shows and honours the base path', () => {
  const app = express();
  app.get('/app/bff/login', () => {
    throw new BffError('invalid_request', { message: 'returnTo <b>"x"</b> & more' });
  });
  app.get('/app/bff/logout', () => {
    throw new BffError('logout_sid_mismatch');
  });
  app.use(errorHandler(createLogger('silent'), '/app'));

  test('a message with markup is text, and the sign-in link carries the base path', async () => {
    const res = await supertest(app).get('/app/bff/login').set(HTML);
    expect(res.status).toBe(400);
    expect(res.text).toContain('returnTo &#60;b&#62;&#34;x&#34;&#60;/b&#62; &#38; more');
    expect(res.text).not.toContain('<b>');
    expect(res.text).toContain('href="/app/bff/login">Try signing in again');
    expect(res.text).toContain('<code>invalid_request</code>');
  });

  test('a failed sign-out says the user is still signed in and offers the way back', async () => {
    const res = await supertest(app).get('/app/bff/logout').set(HTML);
    expect(res.status).toBe(400);
    expect(res.text).toContain('<h1>Sign-out did not complete</h1>');
    expect(res.text).toContain('you are still signed in');
    expect(res.text).toContain('href="/app/">Back to the app');
    expect(res.text).not.toContain('Try signing in again');
  });
});
