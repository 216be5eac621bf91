// The API behind every target: 1 KB and 100 KB JSON bodies, and a streamed body of any size.
import { createServer } from 'node:http';

const small = Buffer.from(
  JSON.stringify({
    items: Array.from({ length: 14 }, (_, i) => ({ id: i, name: `item-${i}`, ok: true, n: 1000 + i })),
  }).padEnd(1024, ' '),
);
const large = Buffer.from(JSON.stringify({ data: 'x'.repeat(100 * 1024 - 12) }));
const block = Buffer.alloc(64 * 1024, 120);

const server = createServer((req, res) => {
  if (req.url.includes('/huge')) {
    let left = Number(new URL(req.url, 'http://x').searchParams.get('bytes') ?? 1e8);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, block.length);
        left -= n;
        if (!res.write(n === block.length ? block : block.subarray(0, n)))
          return void res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  const body = req.url.includes('/large') ? large : small;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
