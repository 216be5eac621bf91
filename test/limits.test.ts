import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { loadConfig } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startCoatcheck, type Coatcheck } from '../src/start.js';
import { Browser } from './support/browser.js';
import { waitFor } from './support/ports.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

const LIMIT = 1024;

/** A raw connection that collects what the server sends and how the connection ended. */
function open(url: string): Promise<{
  socket: Socket;
  received: () => string;
  ended: Promise<{ error?: string; at: number }>;
}> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    const ended = new Promise<{ error?: string; at: number }>((done) => {
      let error: string | undefined;
      socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
      socket.on('close', () => done({ error, at: Date.now() }));
    });
    socket.once('connect', () => resolve({ socket, received: () => data, ended }));
    socket.once('error', reject);
  });
}

const chunk = (body: string): string => `${body.length.toString(16)}\r\n${body}\r\n`;

describe('BFF_MAX_BODY_SIZE on API routes', () => {
  let stack: Stack;
  let alice: Browser;
  let cookie: string;

  beforeAll(async () => {
    stack = await startStack({ store: 'memory', env: { BFF_MAX_BODY_SIZE: String(LIMIT) } });
    alice = await loggedIn(stack.bff);
    cookie = await alice.jar.getCookieString(stack.bff.url);
  });
  afterAll(async () => {
    await stack?.close();
  });

  function chunkedHead(path: string): string {
    return [
      `POST ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      'X-CSRF: 1',
      `Cookie: ${cookie}`,
      'Content-Type: application/octet-stream',
      'Transfer-Encoding: chunked',
      '',
      '',
    ].join('\r\n');
  }

  test('a Content-Length over the limit gets 413 JSON, and nothing reaches the upstream', async () => {
    const started = stack.upstream.counts.started;
    const res = await request(`${stack.bff.url}/api/upload`, {
      method: 'POST',
      headers: { ...csrf, cookie, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(LIMIT + 1, 97),
    });
    expect(res.statusCode).toBe(413);
    expect(res.headers.connection).toBe('close');
    expect(await res.body.json()).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    expect(stack.upstream.counts.started).toBe(started);
  });

  test('a Content-Length at the limit is forwarded whole', async () => {
    const res = await request(`${stack.bff.url}/api/upload`, {
      method: 'POST',
      headers: { ...csrf, cookie, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(LIMIT, 98),
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(stack.upstream.requests.at(-1)!.body).toBe('b'.repeat(LIMIT));
  });

  test('a chunked body at the limit is forwarded whole', async () => {
    const c = await open(stack.bff.url);
    c.socket.write(
      chunkedHead('/api/upload') + chunk('c'.repeat(LIMIT / 2)) + chunk('c'.repeat(LIMIT / 2)) + '0\r\n\r\n',
    );
    await c.ended;
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(stack.upstream.requests.at(-1)!.body).toBe('c'.repeat(LIMIT));
  });

  test('a chunked body that passes the limit before the upstream answers gets 413 JSON, and the upstream request is aborted', async () => {
    const { requests, counts } = stack.upstream;
    const [completed, started, aborted] = [requests.length, counts.started, counts.aborted];
    const c = await open(stack.bff.url);
    c.socket.write(chunkedHead('/api/upload') + chunk('d'.repeat(LIMIT / 2)));
    c.socket.write(chunk('d'.repeat(LIMIT / 2 + 1)) + '0\r\n\r\n');
    await c.ended;
    const [head, body] = c.received().split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toMatch(/\r\nConnection: close/i);
    expect(JSON.parse(body!)).toEqual({ error: 'payload_too_large', message: expect.any(String) });
    // Whatever reached the upstream was cut off there: every request it saw start, it saw aborted.
    await waitFor(
      () => counts.started - started === counts.aborted - aborted,
      5000,
      'the upstream to see its request aborted',
    );
    expect(requests.length).toBe(completed);
  });

  test('a chunked body that passes the limit after the upstream answered aborts the upstream request and resets the connection', async () => {
    const { counts } = stack.upstream;
    const aborted = counts.aborted;
    const c = await open(stack.bff.url);
    c.socket.write(chunkedHead('/api/early') + chunk('e'.repeat(LIMIT / 2)));
    await waitFor(() => c.received().includes('started'), 5000, 'the upstream answer to start');
    c.socket.write(chunk('e'.repeat(LIMIT)));
    const end = await c.ended;
    expect(end.error).toBe('ECONNRESET');
    // The answer never completes: no final chunk.
    expect(c.received()).not.toMatch(/\r\n0\r\n\r\n$/);
    await waitFor(() => counts.aborted > aborted, 5000, 'the upstream to see the request aborted');
  });
});

describe('BFF_MAX_BODY_SIZE=0', () => {
  test('forwards any body', async () => {
    const stack = await startStack({ store: 'memory', env: { BFF_MAX_BODY_SIZE: '0' } });
    try {
      const b = await loggedIn(stack.bff);
      const size = 11 * 1024 * 1024;
      const res = await request(`${stack.bff.url}/api/upload`, {
        method: 'POST',
        headers: { ...csrf, cookie: await b.jar.getCookieString(stack.bff.url) },
        body: Buffer.alloc(size, 102),
      });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(stack.upstream.requests.at(-1)!.body.length).toBe(size);
    } finally {
      await stack.close();
    }
  });
});

describe('BFF_HEADERS_TIMEOUT', () => {
  const TIMEOUT_MS = 1000;
  let coatcheck: Coatcheck;
  let url: string;

  beforeAll(async () => {
    const config = loadConfig({
      BFF_PORT: '0',
      BFF_HOST: '127.0.0.1',
      BFF_PUBLIC_URL: 'http://127.0.0.1:3000',
      // Nothing listens there: discovery fails and is retried on demand, which these tests never need.
      BFF_ISSUER: 'http://127.0.0.1:9',
      BFF_CLIENT_ID: 'client',
      BFF_CLIENT_SECRET: 'secret',
      BFF_SESSION_SECRET: 'x'.repeat(32),
      BFF_SESSION_STORE: 'memory',
      BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:9' }]),
      BFF_HEADERS_TIMEOUT: String(TIMEOUT_MS / 1000),
    });
    const log = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
    coatcheck = await startCoatcheck(config, { log });
    url = `http://127.0.0.1:${coatcheck.port}`;
  });
  afterAll(async () => {
    await coatcheck?.close();
  });

  test('a client trickling its request head gets 408 and the connection closes, soon after the timeout', async () => {
    const keepAlive = await open(url);
    keepAlive.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => keepAlive.received().includes('{"status":"ok"}'), 5000, 'the first answer');

    const slow = await open(url);
    const startedAt = Date.now();
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    let n = 0;
    const trickle = setInterval(() => {
      if (!slow.socket.destroyed) slow.socket.write(`X-Slow-${n++}: still coming\r\n`);
    }, TIMEOUT_MS / 10);
    try {
      const end = await slow.ended;
      expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
      // Well before Node's defaults (about a minute) would have cut it.
      expect(end.at - startedAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(end.at - startedAt).toBeLessThan(TIMEOUT_MS * 3);
    } finally {
      clearInterval(trickle);
    }

    // The keep-alive connection has now been idle for longer than the headers timeout: that is
    // keepAliveTimeout's business, so its next request is answered.
    const before = keepAlive.received().length;
    keepAlive.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await keepAlive.ended;
    expect(keepAlive.received().slice(before)).toMatch(/^HTTP\/1\.1 200 /);
  }, 10_000);
});
