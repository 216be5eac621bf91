/// <reference lib="dom" />
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, waitFor } from '../test/support/ports.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = '.e2e-artifacts';

let demo: ChildProcess;
let appUrl: string;
let browser: Browser;

/** Demo mode exactly as `npm start` runs it (built by `npm run test:e2e`), on free ports. */
async function startDemo(env: Record<string, string>): Promise<{ demo: ChildProcess; url: string }> {
  const [app, idp, api] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: {
      PATH: process.env.PATH ?? '',
      BFF_PORT: String(app),
      BFF_DEMO_IDP_PORT: String(idp),
      BFF_DEMO_API_PORT: String(api),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(() => (output.includes('coatcheck demo is running') ? true : undefined), 20_000, 'demo mode');
  return { demo: child, url: `http://localhost:${app}` };
}

async function stopDemo(child: ChildProcess | undefined): Promise<void> {
  if (child && child.exitCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}

beforeAll(async () => {
  // Fail loudly: a browser test that skips when the browser is missing proves nothing.
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}. Install it with: apt-get install -y chromium`);
  }
  // short-lived tokens, so a refresh happens while the test watches
  ({ demo, url: appUrl } = await startDemo({ BFF_DEMO_TOKEN_TTL: '4' }));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await stopDemo(demo);
});

async function tokenLeaks(page: Page, tokenId: string): Promise<string[]> {
  const found: string[] = [];
  const storage = await page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
  }));
  for (const [where, text] of Object.entries(storage)) {
    if (/eyJ[A-Za-z0-9_-]{10,}/.test(text) || text.includes(tokenId) || text.includes('coatcheck'))
      found.push(where);
  }
  if (/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(await page.content())) found.push('page');
  return found;
}

test('a person signs in, calls the API across a token refresh, and signs out', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));

  await page.goto(appUrl);
  await page.locator('#signed-out').waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/signed-out.png` });
  await page.click('#login');

  // The IdP is another origin, with its own login form showing the demo credentials.
  await page.waitForURL((u) => u.port !== new URL(appUrl).port);
  expect(await page.textContent('body')).toContain('Demo credentials');
  await page.screenshot({ path: `${ARTIFACTS}/idp-login.png` });
  await page.fill('#username', 'demo');
  await page.fill('#password', 'demo');
  await page.click('button[type=submit]');
  await page.click('#allow');

  await page.waitForURL(`${appUrl}/`);
  await page.locator('#user-name', { hasText: 'Ada Lovelace' }).waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/signed-in.png` });
  const endsAtSignIn = await page.getAttribute('#session-expires', 'data-at');
  expect(endsAtSignIn).toBeTruthy();

  await page.click('#call-api');
  await page.locator('#api-subject', { hasText: 'demo-user-0001' }).waitFor();
  const firstToken = (await page.textContent('#token-id'))!;
  expect(firstToken.length).toBeGreaterThan(10);
  await page.screenshot({ path: `${ARTIFACTS}/api-answer.png` });

  // Wait for the page's own countdown to reach expiry (4 s tokens), then call again: coatcheck refreshes.
  await page.waitForFunction(
    () => document.getElementById('token-expires-in')?.textContent?.startsWith('expired'),
    {
      timeout: 20_000,
    },
  );
  await page.click('#call-api');
  await page.locator('#token-fresh').waitFor();
  const secondToken = (await page.textContent('#token-id'))!;
  expect(secondToken).not.toBe(firstToken);
  expect(await page.textContent('#api-subject')).toBe('demo-user-0001');
  await page.screenshot({ path: `${ARTIFACTS}/refreshed.png` });

  // Each call slid the idle timeout, seconds after sign-in: "Session ends" shows the new end.
  await page.waitForFunction(
    (before) => Date.parse(document.getElementById('session-expires')!.dataset.at!) > Date.parse(before),
    endsAtSignIn!,
  );

  // Nothing readable by scripts holds a token; the session cookie is HttpOnly and SameSite=Strict.
  expect(await tokenLeaks(page, secondToken)).toEqual([]);
  const cookies = await context.cookies(appUrl);
  const session = cookies.find((c) => c.name === 'coatcheck')!;
  expect(session.httpOnly).toBe(true);
  expect(session.sameSite).toBe('Strict');

  // Sign out: coatcheck ends the session, the IdP asks to confirm, and the app shows the signed-out state.
  await page.click('#logout');
  await page.locator('#confirm-logout').click();
  await page.waitForURL(`${appUrl}/`);
  await page.locator('#signed-out').waitFor();
  await page.locator('#signed-out-note', { hasText: 'You have signed out' }).waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/signed-out-confirmed.png` });
  expect((await context.cookies(appUrl)).find((c) => c.name === 'coatcheck')).toBeUndefined();
  const user = await page.evaluate(
    async () => (await fetch('/bff/user', { headers: { 'X-CSRF': '1' } })).status,
  );
  expect(user).toBe(401);
  expect(consoleErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
  await context.close();
});

/** Signs in from the app's landing page (or its "Sign in again"), through the IdP's forms. */
async function signIn(page: Page, button = '#login'): Promise<void> {
  const app = new URL(page.url()).origin;
  await page.click(button);
  await page.waitForURL((u) => u.origin !== app);
  if (await page.locator('#username').count()) {
    await page.fill('#username', 'demo');
    await page.fill('#password', 'demo');
    await page.click('button[type=submit]');
  }
  await page.click('#allow');
  await page.waitForURL(`${app}/`);
  await page.locator('#user-name', { hasText: 'Ada Lovelace' }).waitFor();
}

/** Signs out in a second tab of the same browser, as a person with two tabs open would. */
async function signOutInAnotherTab(page: Page): Promise<void> {
  const other = await page.context().newPage();
  await other.goto(appUrl);
  await other.locator('#user-name', { hasText: 'Ada Lovelace' }).waitFor();
  await other.click('#logout');
  await other.locator('#confirm-logout').click();
  await other.locator('#signed-out-note', { hasText: 'You have signed out' }).waitFor();
  await other.close();
}

test('a session ended elsewhere: the page says so when the tab is back in focus, and on the next call', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  // Without the demo's live WebSocket, which would tell the page at once (test-e2e/websocket.e2e.test.ts):
  // this test is about a page that has only focus events and its own calls to learn from.
  await context.addInitScript(() => Object.defineProperty(window, 'WebSocket', { value: undefined }));
  const page = await context.newPage();
  await page.goto(appUrl);
  await page.locator('#signed-out').waitFor();
  await signIn(page);
  await page.click('#call-api');
  await page.locator('#api-subject', { hasText: 'demo-user-0001' }).waitFor();

  // Signed out in another tab: coming back to this one shows the truth, without a click. Playwright
  // keeps every page focused unless told otherwise, so switching tabs would fire no focus event.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
  await signOutInAnotherTab(page);
  await page.bringToFront();
  await page.locator('#session-ended', { hasText: 'Your session ended' }).waitFor();
  expect(await page.isVisible('#signed-in')).toBe(false);
  expect(await page.isVisible('#logout')).toBe(false);
  await page.screenshot({ path: `${ARTIFACTS}/session-ended.png` });

  // "Sign in again" starts a new login; the IdP session ended too, so it asks for the password.
  await signIn(page, '#login-again');
  await page.locator('#signed-in').waitFor();

  // Signed out elsewhere again, with focus events off, so the page can learn it only from the call's 401.
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: true });
  await signOutInAnotherTab(page);
  expect(await page.isVisible('#signed-in')).toBe(true);
  const bffUserChecks: string[] = [];
  page.on('request', (r) => r.url().endsWith('/bff/user') && bffUserChecks.push(r.url()));
  await page.click('#call-api');
  await page.locator('#session-ended', { hasText: 'Your session ended' }).waitFor();
  expect(await page.textContent('#token-expires-in')).not.toMatch(/\d+ s/);
  expect(bffUserChecks.length).toBeGreaterThan(0);
  await context.close();
});

test('when coatcheck cannot be reached, the page says so and lists the call that failed', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  await page.goto(appUrl);
  await page.locator('#signed-out').waitFor();
  await signIn(page);

  // The network drops every call to coatcheck, as when it stopped or the laptop went offline.
  await page.route(`${appUrl}/**`, (route) => route.abort('connectionrefused'));
  await page.click('#call-api');
  const problem = page.locator('#problem');
  await problem.waitFor();
  expect(await problem.textContent()).toContain('coatcheck could not be reached');
  expect(await page.textContent('#problem-calls')).toContain('GET /api/whoami');
  expect(await page.textContent('body')).not.toMatch(/TypeError|Failed to fetch/);
  await page.screenshot({ path: `${ARTIFACTS}/unreachable.png` });

  // Back online: the next call works and the notice goes away.
  await page.unroute(`${appUrl}/**`);
  await page.click('#call-api');
  await page.locator('#api-subject', { hasText: 'demo-user-0001' }).waitFor();
  await problem.waitFor({ state: 'hidden' });
  await context.close();
});

test('a refused sign-in shows a readable coatcheck page with a way back in', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  await page.goto(appUrl);
  await page.click('#login');
  await page.waitForURL((u) => u.port !== new URL(appUrl).port);
  await page.fill('#username', 'demo');
  await page.fill('#password', 'demo');
  await page.click('button[type=submit]');
  await page.click('button.secondary'); // Deny
  await page.waitForURL((u) => u.href.startsWith(`${appUrl}/bff/callback`));
  await page.locator('h1', { hasText: 'Sign-in did not complete' }).waitFor();
  const text = (await page.textContent('body'))!;
  expect(text).toContain('The sign-in was cancelled or refused at the identity provider.');
  expect(text).toMatch(/Error code: login_failed access_denied/);
  await page.screenshot({ path: `${ARTIFACTS}/sign-in-refused.png` });
  await page.click('text=Try signing in again');
  await page.waitForURL((u) => u.port !== new URL(appUrl).port);
  await context.close();
});

test('the demo has a favicon', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(appUrl);
  const href = await page.getAttribute('link[rel=icon]', 'href');
  const res = await context.request.get(new URL(href!, appUrl).href);
  expect(res.status()).toBe(200);
  expect(res.headers()['content-type']).toMatch(/^image\/svg\+xml/);
  await context.close();
});

describe('with a short idle timeout', () => {
  let idle: { demo: ChildProcess; url: string } | undefined;
  beforeAll(async () => {
    idle = await startDemo({ BFF_SESSION_IDLE_TIMEOUT: '3', BFF_SESSION_CACHE_TTL: '1' });
  }, 30_000);
  afterAll(async () => {
    await stopDemo(idle?.demo);
  });

  test('a session that times out while the page sits idle: the page notices by itself', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
    const page = await context.newPage();
    await page.goto(idle!.url);
    await page.locator('#signed-out').waitFor();
    await signIn(page);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(new URL(r.url()).pathname));
    // No click, no focus change: the page asks once the end it was told about has passed.
    await page.locator('#session-ended', { hasText: 'Your session ended' }).waitFor({ timeout: 15_000 });
    expect(requests).toEqual(['/bff/user']);
    await context.close();
  });
});
