import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createGzip } from 'node:zlib';
import { request } from 'undici';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

const EVENTS = 3;
const GAP_MS = 500;

/** Sends EVENTS events GAP_MS apart, recording when each was written; gzipped when the request allows it. */
function startEventSource(): Promise<{
  url: string;
  sentAt: number[];
  seen: IncomingHttpHeaders[];
  server: Server;
}> {
  const sentAt: number[] = [];
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    const gzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    });
    const out = gzip ? createGzip() : res;
    if (gzip) out.pipe(res);
    let i = 0;
    const send = (): void => {
      sentAt.push(performance.now());
      out.write(`id: ${i}\ndata: event ${i}\n\n`);
      if (++i < EVENTS) setTimeout(send, GAP_MS);
      else out.end();
    };
    send();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        sentAt,
        seen,
        server,
      }),
    ),
  );
}

let source: Awaited<ReturnType<typeof startEventSource>>;
let stack: Stack;

beforeAll(async () => {
  source = await startEventSource();
  stack = await startStack({
    env: {
      BFF_ROUTES: JSON.stringify([{ path: '/events', target: source.url }]),
      // Shorter than the gap between events: it bounds the wait for the answer's head, not the quiet in a stream.
      BFF_UPSTREAM_TIMEOUT: '0.3',
    },
  });
});
afterAll(async () => {
  await stack?.close();
  source?.server.closeAllConnections();
  await new Promise((resolve) => source?.server.close(resolve));
});

test('an event stream reaches the browser event by event, each before the next is sent, uncompressed', async () => {
  const alice = await loggedIn(stack.bff);
  const cookie = await alice.jar.getCookieString(stack.bff.url);
  const res = await request(`${stack.bff.url}/events/stream`, {
    headers: { ...csrf, cookie, accept: 'text/event-stream', 'accept-encoding': 'gzip, deflate, br' },
  });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/event-stream');
  expect(res.headers['content-encoding']).toBeUndefined();
  expect(res.headers['x-accel-buffering']).toBe('no');
  expect(source.seen.at(-1)!['accept-encoding']).toBeUndefined();

  const arrivedAt: number[] = [];
  const events: string[] = [];
  let buffered = '';
  for await (const chunk of res.body) {
    buffered += (chunk as Buffer).toString();
    let end: number;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      events.push(buffered.slice(0, end));
      arrivedAt.push(performance.now());
      buffered = buffered.slice(end + 2);
    }
  }
  expect(events).toEqual(['id: 0\ndata: event 0', 'id: 1\ndata: event 1', 'id: 2\ndata: event 2']);
  for (let i = 0; i < EVENTS - 1; i++) expect(arrivedAt[i]).toBeLessThan(source.sentAt[i + 1]!);
});
