/// <reference lib="dom" />
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort, waitFor } from '../test/support/ports.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = '.e2e-artifacts';

let demo: ChildProcess;
let output = '';
let appUrl: string;
let browser: Browser;

beforeAll(async () => {
  // Fail loudly: a browser test that skips when the browser is missing proves nothing.
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}. Install it with: apt-get install -y chromium`);
  }
  const [app, idp, api] = [await freePort(), await freePort(), await freePort()];
  appUrl = `http://localhost:${app}`;
  // demo mode exactly as `npm start` runs it (built by `npm run test:e2e`), with short-lived tokens
  demo = spawn(process.execPath, ['dist/main.js'], {
    env: {
      PATH: process.env.PATH ?? '',
      BFF_PORT: String(app),
      BFF_DEMO_IDP_PORT: String(idp),
      BFF_DEMO_API_PORT: String(api),
      BFF_DEMO_TOKEN_TTL: '4',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  demo.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(() => (output.includes('coatcheck demo is running') ? true : undefined), 20_000, 'demo mode');
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
  if (demo && demo.exitCode === null) {
    const exited = once(demo, 'exit');
    demo.kill('SIGTERM');
    await exited;
  }
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
  expect((await context.cookies(appUrl)).find((c) => c.name === 'coatcheck')).toBeUndefined();
  const user = await page.evaluate(
    async () => (await fetch('/bff/user', { headers: { 'X-CSRF': '1' } })).status,
  );
  expect(user).toBe(401);
  expect(consoleErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
  await context.close();
});
