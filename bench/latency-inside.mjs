// Where coatcheck's added p99 at one connection goes: wrk's latency through coatcheck against
// coatcheck's own access-log duration of the same requests, and V8's collections (--trace-gc), in
// interleaved rounds beside direct and the bare Node proxy. Not part of npm run bench; writes
// bench/results/latency-inside.{json,md}.
//
//   npm run build && node bench/latency-inside.mjs          (ROUNDS=5, DUR=5 seconds per run)
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIdp } from '../dist/demo/idp.js';
import {
  benchCoatcheckEnv,
  benchIdpOptions,
  freePort,
  login,
  machine,
  median,
  start,
  startBenchRedis,
  stopAll,
  tmpDirs,
  waitForPort,
  wrk,
} from './lib.mjs';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const DUR = Number(process.env.DUR ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'coatcheck-latency-'));
tmpDirs.push(dir);
const ports = {};
for (const k of ['redis', 'upstream', 'bare', 'coatcheck']) ports[k] = await freePort();
startBenchRedis(ports.redis);
start(process.execPath, ['bench/upstream.mjs'], { PORT: String(ports.upstream) }, 'upstream');
const url = `http://127.0.0.1:${ports.coatcheck}`;
const idp = await startIdp(benchIdpOptions(url));
await waitForPort(ports.redis, 'redis');
const env = {
  ...process.env,
  ...benchCoatcheckEnv({
    port: ports.coatcheck,
    publicUrl: url,
    issuer: idp.issuer,
    redisUrl: `redis://127.0.0.1:${ports.redis}`,
    upstreamPort: ports.upstream,
  }),
  BFF_SHUTDOWN_DELAY: '0',
};
// coatcheck's stdout: its access log and --trace-gc's lines.
const logFile = join(dir, 'stdout.log');
const out = createWriteStream(logFile);
const cc = spawn(process.execPath, ['--trace-gc', 'dist/main.js'], {
  env,
  stdio: ['ignore', 'pipe', 'inherit'],
});
cc.stdout.pipe(out);
start(
  process.execPath,
  ['bench/bare-proxy.mjs'],
  { PORT: String(ports.bare), TARGET: `http://127.0.0.1:${ports.upstream}/v1` },
  'bare',
);
await waitForPort(ports.bare, 'bare');
await waitForPort(ports.coatcheck, 'coatcheck');
const cookie = await login(url);
const targets = [
  ['direct', `http://127.0.0.1:${ports.upstream}/v1/small`, {}],
  ['bare', `http://127.0.0.1:${ports.bare}/api/small`, {}],
  ['coatcheck', `${url}/api/small`, { 'x-csrf': '1', cookie }],
];
for (const [, u, h] of targets) await wrk(u, h, 3, 1);
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

/** coatcheck's access-log durations and --trace-gc pauses written since `from`. */
function readSince(from) {
  const ms = [];
  const gc = [];
  for (const line of readFileSync(logFile, 'utf8').slice(from).split('\n')) {
    const m = /"path":"\/api\/small","status":200,"ms":([\d.]+)/.exec(line);
    if (m) ms.push(Number(m[1]));
    const g = /(Scavenge|Mark-Compact|Mark-sweep)[^,]*, ([\d.]+) \/ [\d.]+ ms/.exec(line);
    if (g) gc.push({ kind: g[1], ms: Number(g[2]) });
  }
  return { ms, gc };
}

const rows = { direct: [], bare: [], coatcheck: [] };
const inside = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, u, h] of targets) {
    const from = statSync(logFile).size;
    const w = await wrk(u, h, DUR, 1);
    rows[name].push(w);
    if (name !== 'coatcheck') continue;
    // The access log is written asynchronously: wait for the lines of the requests wrk counted.
    const deadline = Date.now() + 10_000;
    let seen = readSince(from);
    while (seen.ms.length < w.requests && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
      seen = readSince(from);
    }
    const { ms, gc } = seen;
    const minor = gc.filter((g) => g.kind === 'Scavenge');
    inside.push({
      requests: ms.length,
      p50: pct(ms, 0.5),
      p99: pct(ms, 0.99),
      p999: pct(ms, 0.999),
      scavenges: minor.length,
      major: gc.length - minor.length,
      gcMs: gc.reduce((a, g) => a + g.ms, 0),
      gcMaxMs: Math.max(0, ...gc.map((g) => g.ms)),
    });
  }
}
cc.kill('SIGTERM');
await idp.close();
await stopAll();

const list = (xs, f = (x) => x.toFixed(2)) => xs.map(f).join(', ');
const added = (name) => rows[name].map((x, i) => x.p99 - rows.direct[i].p99);
const m = machine();
const report = { machine: m, settings: { ROUNDS, DUR }, rows, inside };
writeFileSync('bench/results/latency-inside.json', `${JSON.stringify(report, null, 2)}\n`);
const md = `# Where the added p99 at one connection goes

${m.date.slice(0, 10)} on ${m.cores} × ${m.cpu}, ${m.memoryGb} GB, Node ${m.node}. Reproduce: \`npm run build && node bench/latency-inside.mjs\`.

wrk -c1, ${ROUNDS} interleaved rounds of ${DUR} s per target, 1 KB JSON. coatcheck runs with \`--trace-gc\`; its
access log gives its own duration of each request, from its handler to the response's close, the upstream's
answer included (0.1 ms resolution).

| target | p50 ms by round | p99 ms by round | p99 over direct's, median |
|---|---|---|---:|
${Object.keys(rows)
  .map(
    (name) =>
      `| ${name} | ${list(
        rows[name].map((x) => x.p50),
        (x) => x.toFixed(3),
      )} | ${list(rows[name].map((x) => x.p99))} | ${name === 'direct' ? '' : `${median(added(name)).toFixed(2)} ms`} |`,
  )
  .join('\n')}

| round | requests | coatcheck's own p50 / p99 / p99.9 ms | wrk's p99 through coatcheck ms | young collections | major | pause total / longest ms |
|---:|---:|---|---:|---:|---:|---|
${inside
  .map(
    (x, i) =>
      `| ${i + 1} | ${x.requests} | ${x.p50} / ${x.p99} / ${x.p999} | ${rows.coatcheck[i].p99.toFixed(2)} | ${x.scavenges} | ${x.major} | ${x.gcMs.toFixed(0)} / ${x.gcMaxMs.toFixed(2)} |`,
  )
  .join('\n')}
`;
writeFileSync('bench/results/latency-inside.md', md);
console.log(md);
process.exit(0);
