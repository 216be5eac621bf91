import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { rawExchange, type RawResult } from './support/raw-http.js';
import { loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

/*
 * An upstream that resets its connections. Before the response head, the client gets 502 JSON.
 * After it, the status and headers are already on their way, so the only honest signal left is to
 * cut the client's response too: it arrives short of its Content-Length, or without its last chunk,
 * and never looks complete. Either way the upstream pool heals: the next calls succeed.
 */

const BODY = 100_000;
const PART = 10_000;

let api: Server;
let stack: Stack;
let cookie: string;
let port: number;

beforeAll(async () => {
  api = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url!.startsWith('/v1/reset-before-head')) return void req.socket.destroy();
      if (req.url!.startsWith('/v1/reset-mid-body')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY) });
        return void res.write(Buffer.alloc(PART, 120), () => req.socket.destroy());
      }
      if (req.url!.startsWith('/v1/reset-mid-chunked')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        return void res.write(Buffer.alloc(PART, 120), () => req.socket.destroy());
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  stack = await startStack({
    store: 'memory',
    env: { BFF_ROUTES: JSON.stringify([{ path: '/api', target: `${apiUrl}/v1` }]) },
  });
  port = Number(new URL(stack.bff.url).port);
  const alice = await loggedIn(stack.bff);
  cookie = await alice.jar.getCookieString(stack.bff.url);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  api?.closeAllConnections();
  await new Promise<void>((resolve) => (api ? api.close(() => resolve()) : resolve()));
});

function call(path: string): Promise<RawResult> {
  const head = [`GET /api${path} HTTP/1.1`, 'Host: 127.0.0.1', 'X-CSRF: 1', `Cookie: ${cookie}`, '', ''];
  return rawExchange(port, Buffer.from(head.join('\r\n')), { timeoutMs: 20_000 });
}

const KINDS = ['/reset-before-head', '/reset-mid-body', '/reset-mid-chunked', '/ok'] as const;
const ROUNDS = 30;
const IN_FLIGHT = 16;

test('resets before the head get 502, resets mid-body cut the response, and the pool heals', async () => {
  // Under load: every kind interleaved, IN_FLIGHT at a time, on the pool's keep-alive connections.
  const results: { kind: string; r: RawResult; ms: number }[] = [];
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < ROUNDS * KINDS.length; i = next++) {
        const kind = KINDS[i % KINDS.length]!;
        const t = Date.now();
        results.push({ kind, r: await call(`${kind}/${i}`), ms: Date.now() - t });
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  const byKind: Record<string, Record<string, number>> = {};
  for (const { kind, r } of results) {
    const key = `${r.status ?? 'none'} ${r.end}${r.end === 'cut' && r.status === 200 ? ` after ${r.body.length} B` : ''}`;
    byKind[kind] = byKind[kind] ?? {};
    byKind[kind][key] = (byKind[kind][key] ?? 0) + 1;
  }
  const of = (kind: string): RawResult[] => results.filter((x) => x.kind === kind).map((x) => x.r);

  // The pool heals: a run of calls right after, all whole 200s.
  const healed = await Promise.all(Array.from({ length: 20 }, (_, i) => call(`/ok/after/${i}`)));
  const health = await request(`${stack.bff.url}/healthz`);
  await health.body.dump();

  console.log(
    [
      `upstream resets: ${results.length} calls (${ROUNDS} of each kind, ${IN_FLIGHT} in flight) in ${seconds.toFixed(1)} s, slowest ${Math.max(...results.map((x) => x.ms))} ms`,
      ...Object.entries(byKind).map(([kind, counts]) => `${kind}: ${JSON.stringify(counts)}`),
      `after: ${healed.filter((r) => r.status === 200 && r.end === 'complete').length} of ${healed.length} calls 200 and whole`,
    ].join('\n'),
  );

  for (const r of of('/reset-before-head')) {
    expect(r.status).toBe(502);
    expect(r.end).toBe('complete');
    expect(JSON.parse(r.body.toString())).toEqual({
      error: 'upstream_unreachable',
      message: expect.any(String),
    });
  }
  for (const r of [...of('/reset-mid-body'), ...of('/reset-mid-chunked')]) {
    // Whatever arrived is never presented as a whole answer.
    expect(r.end === 'cut' || r.status === 502).toBe(true);
    if (r.end === 'cut') {
      expect(r.status).toBe(200);
      expect(r.body.length).toBeLessThan(BODY);
    }
  }
  for (const r of of('/ok')) expect([r.status, r.end]).toEqual([200, 'complete']);
  for (const r of healed) expect([r.status, r.end, r.body.toString()]).toEqual([200, 'complete', 'ok']);
  expect(health.statusCode).toBe(200);
}, 60_000);
