import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { FrameBoundaries, closeFrame } from '../src/proxy/websocket-frames.js';
import { WebSocketTunnel } from '../src/proxy/websocket-tunnel.js';
import { waitFor } from './support/ports.js';

/** A frame as a server sends it (unmasked), or as a client does (masked with `key`). */
function frame(payload: Buffer, key?: Buffer): Buffer {
  const n = payload.length;
  const length =
    n < 126
      ? Buffer.from([n])
      : n < 65536
        ? Buffer.from([126, n >> 8, n & 0xff])
        : Buffer.concat([
            Buffer.from([127, 0, 0, 0, 0]),
            Buffer.from([n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]),
          ]);
  if (key) length[0] = length[0]! | 0x80;
  const body = key ? Buffer.from(payload.map((b, i) => b ^ key[i & 3]!)) : payload;
  return Buffer.concat([Buffer.from([0x82]), length, key ?? Buffer.alloc(0), body]);
}

test('frame boundaries are found across chunks, for 7-, 16- and 64-bit lengths, masked or not', () => {
  const stream = Buffer.concat([
    frame(Buffer.alloc(5, 1)),
    frame(Buffer.alloc(300, 2), Buffer.from([1, 2, 3, 4])),
    frame(Buffer.alloc(70_000, 3)),
  ]);
  // A byte at a time: every header is split across chunks.
  const frames = new FrameBoundaries();
  const boundaries: number[] = [];
  for (let i = 0; i < stream.length; i++) {
    frames.read(stream.subarray(i, i + 1));
    if (frames.atBoundary) boundaries.push(i + 1);
  }
  expect(boundaries).toEqual([7, 7 + 308, stream.length]);
  // All at once: read whole, and between frames at the end.
  const whole = new FrameBoundaries();
  expect(whole.read(stream)).toBe(stream.length);
  expect(whole.atBoundary).toBe(true);
});

test('reading up to a boundary stops at the end of the frame in progress, and reads nothing between frames', () => {
  const frames = new FrameBoundaries();
  const two = Buffer.concat([frame(Buffer.alloc(10, 1)), frame(Buffer.alloc(10, 2))]);
  expect(frames.read(two.subarray(0, 4))).toBe(4);
  expect(frames.read(two.subarray(4), true)).toBe(8);
  expect(frames.atBoundary).toBe(true);
  expect(frames.read(two.subarray(12), true)).toBe(0);
});

test('close frames: code and reason, masked towards the server only', () => {
  expect(closeFrame(4401, 'session ended', false)).toEqual(
    Buffer.concat([Buffer.from([0x88, 15, 0x11, 0x31]), Buffer.from('session ended')]),
  );
  const masked = closeFrame(4401, 'session ended', true);
  expect(masked[1]).toBe(0x80 | 15);
  const key = masked.subarray(2, 6);
  const payload = Buffer.from(masked.subarray(6).map((b, i) => b ^ key[i & 3]!));
  expect(payload.readUInt16BE(0)).toBe(4401);
  expect(payload.subarray(2).toString()).toBe('session ended');
  expect(() => closeFrame(4401, 'x'.repeat(124), false)).toThrow(RangeError);
});

/** Two connected TCP sockets: [the end the tunnel holds, the peer the test holds]. */
async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [mine] = await accepted;
  server.close();
  return [mine, peer];
}

function collect(socket: Socket): { bytes(): Buffer; ended: Promise<unknown> } {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return { bytes: () => Buffer.concat(chunks), ended: once(socket, 'end') };
}

test('a tunnel closed in the middle of a frame lets that frame finish, then sends its close frame', async () => {
  const [client, browser] = await socketPair();
  const [upstream, api] = await socketPair();
  let closed = false;
  const tunnel = new WebSocketTunnel(
    client,
    upstream,
    { client: Buffer.alloc(0), upstream: Buffer.alloc(0) },
    () => (closed = true),
  );
  const atBrowser = collect(browser);
  const atApi = collect(api);
  const message = frame(Buffer.alloc(1000, 7));

  api.write(message.subarray(0, 600));
  // The first part has crossed the tunnel before the close is asked for.
  await waitFor(() => atBrowser.bytes().length >= 600, 5000, 'the first part at the browser');
  tunnel.close(4401, 'session ended');
  api.write(message.subarray(600));
  await atBrowser.ended;
  expect(atBrowser.bytes()).toEqual(Buffer.concat([message, closeFrame(4401, 'session ended', false)]));
  // The API side was between frames: its close frame went at once, masked.
  await atApi.ended;
  const toApi = atApi.bytes();
  expect(toApi[0]).toBe(0x88);
  expect(toApi[1]).toBe(0x80 | 15);

  browser.end();
  api.end();
  await waitFor(() => closed, 5000, 'the tunnel to finish');
  expect(client.destroyed && upstream.destroyed).toBe(true);
});
