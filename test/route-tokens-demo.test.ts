import { request } from 'undici';
import { runDemo } from '../src/demo/run.js';
import { Browser } from './support/browser.js';
import { freePort } from './support/ports.js';
import { csrf } from './support/session.js';

let demo: { stop(): Promise<void> } | undefined;
let url = '';

beforeAll(async () => {
  const [app, idp, api] = [await freePort(), await freePort(), await freePort()];
  url = `http://localhost:${app}`;
  demo = await runDemo({
    BFF_PORT: String(app),
    BFF_DEMO_IDP_PORT: String(idp),
    BFF_DEMO_API_PORT: String(api),
    BFF_LOG_LEVEL: 'silent',
  });
}, 60_000);
afterAll(() => demo?.stop());

async function get(b: Browser, path: string) {
  const res = await request(`${url}${path}`, {
    headers: { ...csrf, cookie: await b.jar.getCookieString(url) },
  });
  return {
    status: res.statusCode,
    body: (await res.body.json()) as { token?: { audience: unknown; tokenId: string } },
  };
}

test('the demo shows a second API with its own audience and token, behind a read-only route', async () => {
  const b = new Browser();
  await b.login(url, { username: 'demo', password: 'demo' });
  const main = await get(b, '/api/whoami');
  const reports = await get(b, '/reports/summary');
  expect(main.status).toBe(200);
  expect(reports.status).toBe(200);
  expect(main.body.token!.audience).toBe('urn:coatcheck:demo-api');
  expect(reports.body.token!.audience).toBe('urn:coatcheck:demo-reports');
  expect(reports.body.token!.tokenId).not.toBe(main.body.token!.tokenId);
  // The reports route is read-only.
  const post = await request(`${url}/reports/summary`, {
    method: 'POST',
    headers: { ...csrf, cookie: await b.jar.getCookieString(url) },
  });
  expect(post.statusCode).toBe(405);
  await post.body.dump();
});
