import { rawExchange } from './support/raw-http.js';
import { startStack, type Stack } from './support/stack.js';

/* Bugs the HTTP fuzz run (fuzz.test.ts) found, each pinned by the request that showed it. */

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ store: 'memory' });
});
afterAll(async () => {
  await stack?.close();
});

const port = (): number => Number(new URL(stack.bff.url).port);

describe('an Upgrade request without a dev server (nothing handles WebSockets)', () => {
  test.each([
    ['an API route', '/api/x'],
    ['a management endpoint', '/bff/user'],
    ['any other path', '/app'],
  ])('to %s is answered as an ordinary request, not held open unanswered', async (_what, path) => {
    const request = [
      `GET ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      '',
      '',
    ].join('\r\n');
    // Before the fix the connection stayed open with no answer and no timeout: an unbounded hold.
    const res = await rawExchange(port(), Buffer.from(request), { timeoutMs: 3000 });
    expect(res.end).toBe('complete');
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect(res.status).toBeLessThan(500);
    expect(res.status).not.toBe(101);
  });
});
