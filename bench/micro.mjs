// The per-request work of one part of the proxy path, in process, in two builds side by side:
// ns per call, the fastest of several batches (the least disturbed by other load on the machine).
//   node bench/micro.mjs <dist-before> <dist-after>
import { EventEmitter } from 'node:events';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';

const [before, after] = process.argv.slice(2).map((d) => resolve(d));
const CALLS = 100_000;
const BATCHES = 15;

function time(fn) {
  let best = Infinity;
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CALLS; i++) fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / CALLS);
  }
  return best;
}

async function accessLine(dist) {
  const { createLogger, createAccessLogger } = await import(join(dist, 'log.js'));
  const { logRequest } = await import(join(dist, 'http/request-log.js'));
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const access = createAccessLogger(createLogger('info', sink));
  const req = { method: 'GET', url: '/api/small', headers: {} };
  return () => {
    const res = Object.assign(new EventEmitter(), {
      statusCode: 200,
      writableFinished: true,
      setHeader() {},
    });
    logRequest(access, req, res);
    res.emit('close');
  };
}

async function metrics(dist) {
  const { Metrics } = await import(join(dist, 'metrics.js'));
  const m = new Metrics();
  const route = m.route('/api');
  return (i) => {
    m.request('api', 200, 0.001 + (i % 7) / 1000);
    route.duration.observe(0.0008);
    m.cacheResults.hit.inc();
  };
}

for (const [name, make] of [
  ['access log line', accessLine],
  ['metrics of one request', metrics],
]) {
  const [a, b] = [await make(before), await make(after)];
  // Alternated, several times, so that neither build always runs on a cold JIT or a busy machine.
  let ta = Infinity;
  let tb = Infinity;
  for (let i = 0; i < 4; i++) {
    ta = Math.min(ta, time(a));
    tb = Math.min(tb, time(b));
  }
  console.log(
    `${name}: ${ta.toFixed(0)} ns before, ${tb.toFixed(0)} ns after (${(ta / tb).toFixed(1)}× less)`,
  );
}
