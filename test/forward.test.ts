import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { BffError } from '../src/errors.js';
import { DpopNonces } from '../src/oidc/dpop.js';
import { forward, type UpstreamRequest } from '../src/proxy/forward.js';

/**
 * forward() between a real client, a real front server and a real upstream, for what happens when
 * one side goes away or coatcheck answers in the upstream's place.
 */
let upstream: Server;
let front: Server;
let agent: Agent;
let origin: string;
let frontPort: number;
/** The upstream's handler, set by each test. */
let handle: (req: IncomingMessage, res: ServerResponse) => void;
/** What forward() is given for each front request, set by each test. */
let targetFor: (req: IncomingMessage) => Partial<UpstreamRequest> = () => ({});
/** Paths whose upstream request closed before its answer was complete. */
const abandoned: string[] = [];
/** Paths that reached the upstream. */
const arrived: string[] = [];
/** How each front request's forward() settled, by path. */
const settled = new Map<string, Promise<unknown>>();
/** A front request handler may wait on something before calling forward(). */
let beforeForward: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async () => {};

const STEP_UP = 'Bearer error="insufficient_user_authentication", acr_values="mfa"';

beforeAll(async () => {
  upstream = createServer((req, res) => {
    arrived.push(req.url ?? '');
    res.on('close', () => {
      if (!res.writableFinished) abandoned.push(req.url ?? '');
    });
    handle(req, res);
  });
  front = createServer((req, res) => {
    const path = req.url ?? '';
    const outcome = beforeForward(req, res).then(() =>
      forward(agent, req, res, {
        origin,
        path,
        headers: {},
        timeoutMs: 10_000,
        stepUp: (challenge) =>
          String(challenge).includes('insufficient_user_authentication')
            ? { error: 'step_up_required' }
            : undefined,
        ...targetFor(req),
      }),
    );
    // What the handler does with forward()'s error: a JSON answer when none has started.
    settled.set(
      path,
      outcome.then(
        () => 'resolved',
        (err: unknown) => {
          if (!res.headersSent && !res.destroyed) {
            res.writeHead(err instanceof BffError ? err.status : 500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: err instanceof BffError ? err.code : 'internal' }));
          }
          return err;
        },
      ),
    );
  });
  for (const server of [upstream, front]) {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  }
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  frontPort = (front.address() as AddressInfo).port;
  agent = new Agent({ keepAliveTimeout: 10_000 });
});
afterAll(async () => {
  await agent.close();
  for (const server of [upstream, front]) {
    server.closeAllConnections();
    server.close();
  }
});
beforeEach(() => {
  targetFor = () => ({});
  beforeForward = async () => {};
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The settled outcome of forward() for a front request to `path`, once it has one. */
async function outcomeOf(path: string): Promise<unknown> {
  await until(() => settled.has(path), `the front request to ${path}`);
  return settled.get(path);
}

/** A GET through the front server; the status, headers and whole body. */
async function get(path: string, headers: Record<string, string> = {}) {
  const req = request({ host: '127.0.0.1', port: frontPort, path, headers, agent: false });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() };
}

test('a whole answer reaches the client, with the upstream header winning over coatcheck’s own of the same name', async () => {
  const body = 'y'.repeat(300_000);
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-frame-options': 'SAMEORIGIN' });
    res.end(body);
  };
  targetFor = () => ({
    ownHeaders: [
      ['x-frame-options', 'DENY'],
      ['x-request-id', 'r-1'],
    ],
  });
  const answer = await get('/whole');
  expect(answer).toMatchObject({ status: 200, body });
  expect(answer.headers).toMatchObject({ 'x-frame-options': 'SAMEORIGIN', 'x-request-id': 'r-1' });
  expect(await outcomeOf('/whole')).toBe('resolved');
});

test('a client gone before the head aborts the upstream request', async () => {
  handle = () => {}; // and never answers
  const req = request({ host: '127.0.0.1', port: frontPort, path: '/held', agent: false });
  req.on('error', () => {});
  req.end();
  await until(() => arrived.includes('/held'), 'the request to reach the upstream');
  req.destroy();
  await until(() => abandoned.includes('/held'), 'the upstream to see its request abandoned');
  expect(await outcomeOf('/held')).toBe('resolved');
});

test('a client gone before forward() is called sends nothing upstream', async () => {
  handle = (_req, res) => res.end('late');
  // As when the client leaves while coatcheck reads its session.
  beforeForward = async (_req, res) => {
    if (!res.destroyed) await once(res, 'close');
  };
  const req = request({ host: '127.0.0.1', port: frontPort, path: '/gone', agent: false });
  req.on('error', () => {});
  req.end();
  await until(() => settled.has('/gone'), 'the front request');
  req.destroy();
  expect(await outcomeOf('/gone')).toBe('resolved');
  // Had it been sent, the upstream's immediate answer would have come back before forward() settled.
  expect(arrived).not.toContain('/gone');
});

test('an upstream reset mid-body of a DPoP nonce challenge is a 502, and throws nothing at the process', async () => {
  handle = (_req, res) => {
    res.writeHead(401, {
      'content-length': '100000',
      'www-authenticate': 'DPoP error="use_dpop_nonce"',
      'dpop-nonce': 'n-1',
    });
    res.write('x'.repeat(1000), () => res.socket?.destroy());
  };
  targetFor = () => ({ dpop: { nonces: new DpopNonces(), proof: () => 'a-proof' } });
  const answer = await get('/dpop-reset');
  expect(answer.status).toBe(502);
  expect(await outcomeOf('/dpop-reset')).toMatchObject({ code: 'upstream_unreachable' });
});

test('an upstream reset mid-body of a step-up challenge leaves coatcheck’s answer whole', async () => {
  handle = (_req, res) => {
    res.writeHead(401, { 'content-length': '100000', 'www-authenticate': STEP_UP });
    res.write('x'.repeat(1000), () => res.socket?.destroy());
  };
  const answer = await get('/step-up-reset');
  expect(answer).toMatchObject({ status: 401, body: '{"error":"step_up_required"}' });
  expect(await outcomeOf('/step-up-reset')).toBe('resolved');
});

test('once coatcheck answered a step-up challenge, an endless upstream body behind it is stopped', async () => {
  handle = (_req, res) => {
    res.writeHead(401, { 'content-type': 'text/event-stream', 'www-authenticate': STEP_UP });
    res.write('data: 1\n\n');
  };
  // An event stream has no body timeout: only the abort ends it.
  const answer = await get('/endless', { accept: 'text/event-stream' });
  expect(answer).toMatchObject({ status: 401, body: '{"error":"step_up_required"}' });
  await until(() => abandoned.includes('/endless'), 'the upstream to see its request abandoned');
  expect(await outcomeOf('/endless')).toBe('resolved');
});

test('a request body the upstream never took closes the client connection with the 502', async () => {
  handle = (req) => req.socket.destroy();
  const socket = connect(frontPort, '127.0.0.1');
  socket.write(
    'POST /unread HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n' +
      `Content-Length: 100000\r\n\r\n${'z'.repeat(1000)}`,
  );
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => (received += text));
  await once(socket, 'end');
  socket.destroy();
  expect(received).toMatch(/^HTTP\/1\.1 502 /);
  expect(received.toLowerCase()).toContain('connection: close');
});
