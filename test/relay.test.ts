import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { Agent } from 'undici';
import { relay } from '../src/proxy/relay.js';

/** A real upstream whose handler each test sets; it records when a request's connection closes unanswered. */
let server: Server;
let origin: string;
let agent: Agent;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
const abandoned: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    res.on('close', () => {
      if (!res.writableFinished) abandoned.push(req.url ?? '');
    });
    handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ keepAliveTimeout: 10_000 });
});
afterAll(async () => {
  await agent.close();
  server.closeAllConnections();
  server.close();
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A stand-in for coatcheck's discard(): a plain Writable with no 'error' listener of its own. */
const discard = () =>
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });

test('a client gone before the head aborts the upstream request, and the relay rejects', async () => {
  let arrived = false;
  handle = () => {
    arrived = true; // and never answers
  };
  const downstream = new PassThrough();
  const relayed = relay(agent, { origin, path: '/held', method: 'GET' }, downstream, () => downstream);
  await until(() => arrived, 'the request to reach the upstream');
  downstream.destroy();
  await expect(relayed).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  await until(() => abandoned.includes('/held'), 'the upstream to see its request abandoned');
});

test('a client already gone sends nothing upstream', async () => {
  let arrived = 0;
  handle = (_req, res) => {
    arrived++;
    res.end('late');
  };
  const downstream = new PassThrough();
  downstream.destroy();
  await once(downstream, 'close');
  await expect(
    relay(agent, { origin, path: '/gone', method: 'GET' }, downstream, () => downstream),
  ).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  // The control request goes out on the same pool after the refused one would have.
  const control = new PassThrough();
  control.resume();
  await relay(agent, { origin, path: '/control', method: 'GET' }, control, () => control);
  expect(arrived).toBe(1);
});

test('an upstream reset mid-body into a stand-in sink rejects, and throws nothing at the process', async () => {
  handle = (_req, res) => {
    res.writeHead(401, {
      'content-length': '100000',
      'www-authenticate': 'Bearer error="insufficient_user_authentication"',
    });
    res.write('x'.repeat(1000), () => res.socket?.destroy());
  };
  const downstream = new PassThrough();
  let sink: Writable | undefined;
  const relayed = relay(
    agent,
    { origin, path: '/reset', method: 'GET' },
    downstream,
    () => (sink = discard()),
  );
  // The answer's head went to the stand-in and the client's response stays open, as for a DPoP nonce challenge.
  await expect(relayed).rejects.toBeInstanceOf(Error);
  expect(sink?.destroyed).toBe(true);
  expect(downstream.destroyed).toBe(false);
});

test("coatcheck's own answer complete, the upstream body going to a stand-in is stopped", async () => {
  handle = (_req, res) => {
    // An event stream that never ends, behind a step-up challenge.
    res.writeHead(401, { 'content-type': 'text/event-stream' });
    res.write('data: 1\n\n');
  };
  const downstream = new PassThrough();
  downstream.resume();
  const relayed = relay(
    agent,
    { origin, path: '/endless', method: 'GET', bodyTimeout: 0 },
    downstream,
    () => {
      // What answerInstead does: the client's answer is written and ended here, the body is dropped.
      downstream.end('{"error":"step_up_required"}');
      return discard();
    },
  );
  await relayed;
  await until(() => abandoned.includes('/endless'), 'the upstream to see its request abandoned');
});

test('a whole answer reaches the sink and the relay resolves', async () => {
  const body = 'y'.repeat(300_000);
  handle = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(body);
  };
  const downstream = new PassThrough();
  const chunks: Buffer[] = [];
  downstream.on('data', (c: Buffer) => chunks.push(c));
  await relay(agent, { origin, path: '/whole', method: 'GET' }, downstream, () => downstream);
  expect(Buffer.concat(chunks).toString()).toBe(body);
});
