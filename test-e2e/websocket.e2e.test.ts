import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { freePort, waitFor } from '../test/support/ports.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = '.e2e-artifacts';

let demo: ChildProcess;
let appUrl: string;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}. Install it with: apt-get install -y chromium`);
  }
  const [app, idp, api] = [await freePort(), await freePort(), await freePort()];
  demo = spawn(process.execPath, ['dist/main.js'], {
    env: {
      PATH: process.env.PATH ?? '',
      BFF_PORT: String(app),
      BFF_DEMO_IDP_PORT: String(idp),
      BFF_DEMO_API_PORT: String(api),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  demo.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  demo.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await waitFor(() => (output.includes('coatcheck demo is running') ? true : undefined), 20_000, 'demo mode');
  appUrl = `http://localhost:${app}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
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

test('the live WebSocket opens when signed in and closes with 4401 when the user signs out in another tab', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));

  await page.goto(appUrl);
  await page.click('#login');
  await page.waitForURL((u) => u.port !== new URL(appUrl).port);
  await page.fill('#username', 'demo');
  await page.fill('#password', 'demo');
  await page.click('button[type=submit]');
  await page.click('#allow');
  await page.waitForURL(`${appUrl}/`);

  await page.locator('#live-status', { hasText: 'open' }).waitFor();
  await page.locator('#live-log li', { hasText: 'connected as demo-user-0001' }).waitFor();
  await page.click('#live-send');
  await page.locator('#live-log li', { hasText: 'echo: hello' }).waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/live-open.png` });

  // Another tab of the same browser signs out: this tab made no call, yet its socket closes.
  const other = await context.newPage();
  await other.goto(appUrl);
  // coatcheck ends the session at /bff/logout, before the IdP asks to confirm its own sign-out.
  await other.locator('#logout').click();
  await other.locator('#confirm-logout').waitFor();

  await page.locator('#live-ended', { hasText: '4401 session ended' }).waitFor();
  await page.locator('#session-ended').waitFor();
  await page.screenshot({ path: `${ARTIFACTS}/live-closed.png` });
  // The page's own /bff/user check answers 401 once the session is gone.
  expect(consoleErrors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
  await context.close();
});
