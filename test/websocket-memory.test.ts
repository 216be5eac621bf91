import WebSocket from 'ws';
import { signOutAtIdp, startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';
import { startWsUpstream, type WsUpstream } from './support/ws-upstream.js';
import type { Browser } from './support/browser.js';

// One process with the memory store, as in demo mode, beside a dev server that has WebSockets of its own.
let api: WsUpstream;
let devServer: WsUpstream;
let stack: Stack;

beforeAll(async () => {
  api = await startWsUpstream();
  devServer = await startWsUpstream();
  stack = await startStack({
    store: 'memory',
    env: {
      BFF_ROUTES: JSON.stringify([{ path: '/api', target: api.url }]),
      BFF_SPA_DEV_SERVER: devServer.url,
    },
  });
});
afterAll(async () => {
  await stack?.close();
  await api?.close();
  await devServer?.close();
});

async function open(browser: Browser | undefined, path: string) {
  const cookie = browser ? await browser.jar.getCookieString(stack.bff.url) : '';
  const ws = new WebSocket(`${stack.bff.url.replace(/^http/, 'ws')}${path}`, {
    headers: cookie ? { cookie } : {},
    origin: stack.bff.url,
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise((resolve, reject) => ws.on('open', resolve).on('error', reject));
  return { ws, closed };
}

test('with the memory store, a logout closes the session’s sockets with 4401', async () => {
  const alice = await loggedIn(stack.bff);
  const { closed } = await open(alice, '/api/chat');
  const user = JSON.parse((await alice.go(`${stack.bff.url}/bff/user`, { headers: csrf })).text) as {
    logoutUrl: string;
  };
  await alice.go(`${stack.bff.url}${user.logoutUrl}`, { follow: false });
  expect(await closed).toEqual({ code: 4401, reason: 'session ended' });
});

test('with the memory store, a back-channel logout closes the session’s sockets with 4401', async () => {
  const alice = await loggedIn(stack.bff);
  const { closed } = await open(alice, '/api/chat');
  await signOutAtIdp(stack, alice);
  expect(await closed).toEqual({ code: 4401, reason: 'session ended' });
});

test('the dev server’s WebSockets still reach it, without a token, beside the API’s', async () => {
  const alice = await loggedIn(stack.bff);
  const taken = devServer.nextSocket();
  const hmr = await open(alice, '/@vite/client-socket');
  const seen = await taken;
  expect(seen.headers.authorization).toBeUndefined();
  expect(seen.headers.cookie ?? '').not.toMatch(/(^|; )coatcheck=/);
  hmr.ws.close();
  await hmr.closed;

  const apiTaken = api.nextSocket();
  const call = await open(alice, '/api/chat');
  expect((await apiTaken).headers.authorization).toMatch(/^Bearer /);
  call.ws.close();
  await call.closed;
});
