// The Node ceiling: what any Node proxy hop costs. node:http with a keep-alive agent, a static
// bearer token, no session and no checks. coatcheck is measured against it.
import { Agent, createServer, request } from 'node:http';

const target = new URL(process.env.TARGET);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((req, res) => {
  const headers = { ...req.headers, authorization: 'Bearer static-token' };
  delete headers.cookie;
  delete headers.connection;
  headers.host = target.host;
  const path = target.pathname.replace(/\/$/, '') + req.url.replace(/^\/api/, '');
  const upstream = request(
    { hostname: target.hostname, port: target.port, path, method: req.method, headers, agent },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
// A normal exit, so that node --cpu-prof (bench/cost.mjs) writes its profile.
process.on('SIGTERM', () => server.close(() => process.exit(0)).closeAllConnections());
