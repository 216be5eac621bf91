import type { IncomingMessage } from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import WebSocket from 'ws';
import { startDpopUpstream, type DpopUpstream } from './support/dpop-upstream.js';
import { loggedIn } from './support/session.js';
import { AUDIENCE, startStack, type Stack } from './support/stack.js';

const BILLING = 'urn:coatcheck:test-billing';
let stack: Stack;
let api: DpopUpstream;
/** The aud of every token the API accepted, in order. */
const audiences: unknown[] = [];

beforeAll(async () => {
  // A proof-checking API that demands nonces. It answers the handshake as any request (it has no
  // WebSocket), so what comes back to the browser is its verdict on the proof.
  // The same API behind two routes: the login's token, and a route's own token for another audience.
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  api = await startDpopUpstream(
    async (token) => {
      jwks ??= createRemoteJWKSet(new URL(`${stack.idp.issuer}/jwks`));
      const { payload } = await jwtVerify(token, jwks, {
        issuer: stack.idp.issuer,
        audience: [AUDIENCE, BILLING],
      });
      audiences.push(payload.aud);
      return payload;
    },
    { nonces: true },
  );
  stack = await startStack({
    client: { dpop_bound_access_tokens: true },
    resources: [BILLING],
    env: {
      BFF_DPOP: 'true',
      BFF_SCOPES: 'openid profile email offline_access api',
      BFF_ROUTES: JSON.stringify([
        { path: '/api', target: `${api.url}/v1` },
        { path: '/billing', target: `${api.url}/billing`, resource: BILLING, scope: 'api' },
      ]),
    },
  });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await api?.close();
});

test('with BFF_DPOP the handshake carries DPoP <token> and a proof for GET on the route’s URL, sent again with the API’s nonce', async () => {
  const alice = await loggedIn(stack.bff);
  const cookie = await alice.jar.getCookieString(stack.bff.url);
  const challenges = api.log.challenges;
  const ws = new WebSocket(`${stack.bff.url.replace(/^http/, 'ws')}/api/live?x=1`, {
    headers: { cookie },
    origin: stack.bff.url,
  });
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    ws.on('open', () => reject(new Error('this API cannot upgrade')));
    ws.on('error', () => undefined);
  });
  ws.terminate();
  expect(api.log.refused.filter((r) => r !== 'nonce')).toEqual([]);
  expect(answer).toEqual({
    status: 200,
    body: JSON.stringify({ ok: true, sub: 'alice-0001', method: 'GET' }),
  });
  expect(api.log.served.at(-1)).toMatchObject({ method: 'GET', path: '/v1/live', sub: 'alice-0001' });
  expect(api.log.challenges).toBe(challenges + 1);
});

test('on a route with its own token, the handshake carries that token, and the proof’s ath is for it', async () => {
  const alice = await loggedIn(stack.bff);
  const cookie = await alice.jar.getCookieString(stack.bff.url);
  const ws = new WebSocket(`${stack.bff.url.replace(/^http/, 'ws')}/billing/live`, {
    headers: { cookie },
    origin: stack.bff.url,
  });
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    ws.on('open', () => reject(new Error('this API cannot upgrade')));
    ws.on('error', () => undefined);
  });
  ws.terminate();
  expect(api.log.refused.filter((r) => r !== 'nonce')).toEqual([]);
  expect(answer).toEqual({
    status: 200,
    body: JSON.stringify({ ok: true, sub: 'alice-0001', method: 'GET' }),
  });
  expect(api.log.served.at(-1)).toMatchObject({ method: 'GET', path: '/billing/live' });
  expect(audiences.at(-1)).toBe(BILLING);
});
