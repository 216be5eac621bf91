import { connect } from 'node:net';

/** How a raw exchange ended. */
export type RawEnd =
  /** A whole response arrived (by its Content-Length, its last chunk, or the server closing after it). */
  | 'complete'
  /** The server closed or reset the connection before a response head, or in the middle of a body. */
  | 'cut'
  /** Nothing more arrived within the time allowed. */
  | 'timeout';

export interface RawResult {
  /** The final status (1xx interim answers skipped), if a response head arrived. */
  readonly status: number | undefined;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  readonly end: RawEnd;
  /** The socket error seen, if any (EPIPE while still sending, ECONNRESET). */
  readonly error: string | undefined;
}

interface Head {
  status: number;
  headers: Record<string, string>;
  bodyStart: number;
}

function parseHead(buf: Buffer, from: number): Head | undefined {
  const endOfHead = buf.indexOf('\r\n\r\n', from, 'latin1');
  if (endOfHead < 0) return undefined;
  const lines = buf.toString('latin1', from, endOfHead).split('\r\n');
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number.isFinite(status) ? status : 0, headers, bodyStart: endOfHead + 4 };
}

/** Whether a chunked body starting at `start` is whole: every chunk and the last, empty one arrived. */
function chunkedComplete(buf: Buffer, start: number): { whole: boolean; body: Buffer } {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at, 'latin1');
    if (lineEnd < 0) return { whole: false, body: Buffer.concat(parts) };
    const size = parseInt(buf.toString('latin1', at, lineEnd).split(';')[0]!, 16);
    if (!Number.isFinite(size)) return { whole: false, body: Buffer.concat(parts) };
    if (size === 0) {
      const trailerEnd = buf.indexOf('\r\n', lineEnd + 2, 'latin1');
      return { whole: trailerEnd >= 0, body: Buffer.concat(parts) };
    }
    if (buf.length < lineEnd + 2 + size + 2) return { whole: false, body: Buffer.concat(parts) };
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/**
 * Sends bytes as they are over a fresh TCP connection and reads one response, framing it as a client
 * would (Content-Length, chunked, or until close). Node's own HTTP clients refuse to send malformed
 * requests, so hostile input needs this. `head` says the request was HEAD (a response without a body).
 * Never rejects: every outcome, a reset included, is a result.
 */
export function rawExchange(
  port: number,
  request: Buffer | readonly Buffer[],
  opts: { head?: boolean; timeoutMs?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let error: string | undefined;
    let headStart = 0;
    let head: Head | undefined;
    let settled = false;

    const finish = (end: RawEnd, body: Buffer = Buffer.alloc(0)): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: head?.status, headers: head?.headers ?? {}, body, end, error });
    };
    const timer = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 10_000);

    /** Decides, from what arrived so far, whether the response is whole; `closed`: nothing more will come. */
    const check = (closed: boolean): void => {
      while (!head) {
        head = parseHead(buf, headStart);
        if (!head) return closed ? finish('cut') : undefined;
        // 100 Continue and other interim answers come before the real one.
        if (head.status >= 100 && head.status < 200 && head.status !== 101) {
          headStart = head.bodyStart;
          head = undefined;
        }
      }
      const rest = buf.subarray(head.bodyStart);
      const noBody = opts.head || head.status === 204 || head.status === 304 || head.status === 101;
      if (noBody) return finish('complete');
      const length = head.headers['content-length'];
      if (/chunked/i.test(head.headers['transfer-encoding'] ?? '')) {
        const { whole, body } = chunkedComplete(buf, head.bodyStart);
        if (whole) return finish('complete', body);
        return closed ? finish('cut', body) : undefined;
      }
      if (length !== undefined) {
        if (rest.length >= Number(length)) return finish('complete', rest.subarray(0, Number(length)));
        return closed ? finish('cut', rest) : undefined;
      }
      // Neither: the body runs until the server closes.
      if (closed) finish(error === 'ECONNRESET' ? 'cut' : 'complete', rest);
    };

    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      check(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => check(true));
    socket.once('connect', () => {
      const parts = Buffer.isBuffer(request) ? [request] : request;
      // A server that answers early (413, 431) and closes makes the rest of the write fail; that is
      // an outcome to read, not an error of the test.
      for (const part of parts) if (!socket.destroyed) socket.write(part, () => undefined);
    });
  });
}
