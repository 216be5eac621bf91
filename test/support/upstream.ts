import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

export interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface TestUpstream {
  readonly url: string;
  /** Requests whose body arrived whole. */
  readonly requests: Recorded[];
  /** Every request whose head arrived, whole or not; and those whose client went away mid-body. */
  readonly counts: { started: number; aborted: number };
  readonly server: Server;
  /** Lets the requests held at `/gate/<id>` answer (and any that arrive later), with `id` as the body. */
  openGate(id: string): void;
  close(): Promise<void>;
}

/**
 * A real HTTP API that records what it receives. Paths:
 *  /slow?ms=N  answers after N ms (the upstream's own behaviour, used to provoke 504s);
 *  /gate/<id>  holds its answer until the test calls openGate(id), so "still in flight" needs no timing;
 *  /big?bytes=N  streams N bytes; /status/N  answers with status N;
 *  /cache-lines  sends Cache-Control as two lines; /cache-qualified-private  a qualified `private`;
 *  /early  starts its answer at once, before reading the body; anything else echoes JSON.
 */
export async function startUpstream(opts: { maxHeaderSize?: number } = {}): Promise<TestUpstream> {
  const requests: Recorded[] = [];
  const counts = { started: 0, aborted: 0 };
  const gates = new Map<string, { opened: Promise<void>; open: () => void }>();
  const gate = (id: string) => {
    let g = gates.get(id);
    if (!g) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      g = { opened, open };
      gates.set(id, g);
    }
    return g;
  };
  const server = createServer({ maxHeaderSize: opts.maxHeaderSize }, (req, res) => {
    counts.started++;
    req.on('close', () => {
      if (!req.complete) counts.aborted++;
    });
    if (req.url?.endsWith('/early')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started\n');
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      // Prefixed, not resolved against a base: a path such as //x would otherwise read as a host.
      const url = new URL(`http://upstream${req.url ?? '/'}`);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (url.pathname.endsWith('/slow')) {
        setTimeout(() => res.end('slow'), Number(url.searchParams.get('ms') ?? 1000));
        return;
      }
      const gated = /\/gate\/([^/]+)$/.exec(url.pathname);
      if (gated) {
        const id = gated[1]!;
        void gate(id).opened.then(() => res.end(id));
        return;
      }
      const status = /\/status\/(\d{3})$/.exec(url.pathname);
      if (status) {
        res.writeHead(Number(status[1]), {
          'content-type': 'application/json',
          'www-authenticate': 'Bearer',
        });
        res.end(JSON.stringify({ status: Number(status[1]) }));
        return;
      }
      if (url.pathname.endsWith('/early')) {
        res.end('early');
        return;
      }
      if (url.pathname.endsWith('/cache-lines')) {
        // Two header lines, not one list: setHeader sends an array as repeated lines.
        res.setHeader('cache-control', ['max-age=60', 'must-revalidate']);
        res.writeHead(200);
        res.end('ok');
        return;
      }
      if (url.pathname.endsWith('/cache-qualified-private')) {
        res.writeHead(200, { 'cache-control': 'max-age=60, private="Set-Cookie"' });
        res.end('ok');
        return;
      }
      if (url.pathname.endsWith('/cookie-and-cache')) {
        res.writeHead(200, {
          'cache-control': 'max-age=60',
          'set-cookie': [
            'coatcheck=forged-by-upstream; Path=/',
            '__Host-coatcheck=forged; Path=/; Secure',
            // Browsers trim the name (RFC 6265 §5.2) and match the __Host- prefix in any case.
            '__Host-coatcheck =forged-with-space; Path=/; Secure',
            ' coatcheck\t=forged-with-tab; Path=/',
            '__HOST-coatcheck=forged-upper-prefix; Path=/; Secure',
            'coatcheck-login-abc =forged-login; Path=/',
            'nameless-value-without-equals',
            // An empty name: browsers send the value back bare, which reads as "coatcheck=…".
            '=coatcheck=forged-nameless; Path=/',
            ' =coatcheck-login-abc=forged-nameless-login; Path=/',
            'theme=light; Path=/',
          ],
        });
        res.end('ok');
        return;
      }
      if (url.pathname.endsWith('/big')) {
        let left = Number(url.searchParams.get('bytes') ?? 1024);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
        const block = Buffer.alloc(64 * 1024, 120);
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, block.length);
            left -= n;
            if (!res.write(n === block.length ? block : block.subarray(0, n)))
              return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'yes',
        'set-cookie': 'upstream_cookie=1; Path=/',
      });
      res.end(JSON.stringify({ method: req.method, url: req.url, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    counts,
    server,
    openGate(id) {
      gate(id).open();
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
