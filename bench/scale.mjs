// npm run bench (second part): coatcheck as the work grows. 10,000 sessions, a refresh storm of
// 1,000 sessions over two instances, and (BENCH_SOAK_REFRESH=seconds) a soak with refreshes.
// Writes bench/results/scale.{json,md} and the storm's latency chart.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { startIdp } from '../dist/demo/idp.js';
import {
  CLIENT,
  SECRET,
  ensureTools,
  freePort,
  login,
  machine,
  median,
  rssMb,
  start,
  stopAll,
  tmpDirs,
  totalCommands,
  waitForPort,
  wrk,
  startBenchRedis,
  benchIdpOptions,
  seedSessions,
  scrape,
} from './lib.mjs';
import { barChart, scatterChart } from './svg.mjs';

const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const MANY = Number(process.env.BENCH_SESSIONS ?? 10_000);
const STORM = Number(process.env.BENCH_STORM_SESSIONS ?? 1000);
const STORM_FANOUT = 10;
const TOKEN_TTL = Number(process.env.BENCH_TOKEN_TTL ?? 60);
const SKEW = 5;
const SOAK = Number(process.env.BENCH_SOAK_REFRESH ?? 0);
const SOAK_SESSIONS = 100;

/** Sums one metric's samples (optionally of one label value) from a Prometheus text page. */
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Logs in `n` times through coatcheck, a few at a time, and returns the session cookies. */
async function loginMany(url, n, parallel = 6) {
  const cookies = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        cookies.push(await login(url));
      }
    }),
  );
  return cookies;
}

async function main() {
  ensureTools();
  const ports = {};
  for (const k of ['redis', 'upstream', 'a', 'b', 'nocache', 'ma', 'mb', 'mn']) ports[k] = await freePort();
  const tmp = mkdtempSync(join(tmpdir(), 'coatcheck-scale-'));
  tmpDirs.push(tmp);
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  const publicUrl = `http://127.0.0.1:${ports.a}`;
  startBenchRedis(ports.redis);
  start(process.execPath, ['bench/upstream.mjs'], { PORT: String(ports.upstream) }, 'upstream');
  const idp = await startIdp(benchIdpOptions(publicUrl, TOKEN_TTL));
  const idpCounts = { refreshGrants: 0, reuse: 0, grantErrors: 0 };
  idp.provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') idpCounts.refreshGrants++;
  });
  idp.provider.on('grant.error', (_ctx, err) => {
    idpCounts.grantErrors++;
    if (/already used/.test(err.error_description ?? err.message)) idpCounts.reuse++;
  });
  await waitForPort(ports.redis, 'redis');
  const env = (port, metricsPort, extra = {}) => ({
    NODE_ENV: 'production',
    BFF_PORT: String(port),
    BFF_HOST: '127.0.0.1',
    BFF_PUBLIC_URL: publicUrl,
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: CLIENT.id,
    BFF_CLIENT_SECRET: CLIENT.secret,
    BFF_REDIS_URL: redisUrl,
    BFF_SESSION_SECRET: SECRET,
    BFF_AUTH_PARAMS: 'prompt=consent',
    BFF_REFRESH_SKEW: String(SKEW),
    BFF_METRICS_PORT: String(metricsPort),
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: `http://127.0.0.1:${ports.upstream}/v1` }]),
    BFF_LOG_LEVEL: 'warn',
    ...extra,
  });
  const a = start(process.execPath, ['dist/main.js'], env(ports.a, ports.ma), 'coatcheck A');
  const b = start(process.execPath, ['dist/main.js'], env(ports.b, ports.mb), 'coatcheck B');
  start(
    process.execPath,
    ['dist/main.js'],
    env(ports.nocache, ports.mn, { BFF_SESSION_CACHE_TTL: '0' }),
    'coatcheck without cache',
  );
  await Promise.all(
    [
      [ports.upstream, 'upstream'],
      [ports.a, 'coatcheck A'],
      [ports.b, 'coatcheck B'],
      [ports.nocache, 'coatcheck without cache'],
    ].map(([p, w]) => waitForPort(p, w)),
  );
  const redis = new Redis(redisUrl);
  const auth = { 'X-CSRF': '1' };

  // --- Many sessions: MANY sessions in Redis, each request of wrk's using the next one. ---
  const oneCookie = await login(publicUrl);
  const cookieFile = join(tmp, 'cookies.txt');
  await seedSessions(redisUrl, oneCookie, MANY, cookieFile);
  console.log(`${MANY} sessions seeded`);
  const manyEnv = { BENCH_COOKIES: cookieFile };
  const cached = `http://127.0.0.1:${ports.a}/api/small`;
  const uncached = `http://127.0.0.1:${ports.nocache}/api/small`;
  // The one session on B, whose cache holds nothing else, so that the baseline does not depend on
  // what else is cached; the last variant measures the same session beside the many, on A.
  const single = `http://127.0.0.1:${ports.b}/api/small`;
  const variants = [
    ['one session', single, { ...auth, Cookie: oneCookie }, undefined, ports.mb],
    [`${MANY} sessions, cache on`, cached, auth, manyEnv, ports.ma],
    [`${MANY} sessions, cache off`, uncached, auth, manyEnv, ports.mn],
    [
      'one session, on the instance caching the many',
      cached,
      { ...auth, Cookie: oneCookie },
      undefined,
      ports.ma,
    ],
  ];
  for (const [, url, headers, wenv] of variants) await wrk(url, headers, 2, undefined, wenv);
  const runs = variants.map(() => []);
  const commands = variants.map(() => []);
  const trips = variants.map(() => []);
  for (let i = 0; i < REPEAT; i++) {
    for (const [j, [, url, headers, wenv, metricsPort]] of variants.entries()) {
      const before = await totalCommands(redis);
      const opsBefore = (await scrape([metricsPort])).storeOps;
      const r = await wrk(url, headers, DURATION, undefined, wenv);
      commands[j].push(((await totalCommands(redis)) - before - 1) / r.requests);
      trips[j].push(((await scrape([metricsPort])).storeOps - opsBefore) / r.requests);
      runs[j].push(r);
    }
  }
  const many = variants.map(([name], j) => ({
    name,
    rps: median(runs[j].map((r) => r.rps)),
    rpsMin: Math.min(...runs[j].map((r) => r.rps)),
    rpsMax: Math.max(...runs[j].map((r) => r.rps)),
    p50: median(runs[j].map((r) => r.p50)),
    p99: median(runs[j].map((r) => r.p99)),
    errors: runs[j].reduce((n, r) => n + r.errors, 0),
    redisCommandsPerRequest: median(commands[j]),
    storeRoundTripsPerRequest: median(trips[j]),
    ratioToOne: median(runs[j].map((r, i) => r.rps / runs[0][i].rps)),
    runs: runs[j].map((r) => Math.round(r.rps)),
  }));
  const rssFullCache = rssMb(a.pid);
  const cache = await scrape([ports.ma]);
  for (const m of many)
    console.log(
      `${m.name.padEnd(28)} ${m.rps.toFixed(0)} req/s (${m.ratioToOne.toFixed(2)}× one session), ${m.storeRoundTripsPerRequest.toFixed(3)} store round trips and ${m.redisCommandsPerRequest.toFixed(3)} Redis commands per request, errors ${m.errors}`,
    );
  console.log(`RSS of coatcheck A with a full session cache: ${rssFullCache.toFixed(0)} MB`);

  // --- Refresh storm: STORM sessions fall due together, each called STORM_FANOUT times at once. ---
  const loginStarted = Date.now();
  const stormCookies = await loginMany(publicUrl, STORM);
  const loginSeconds = (Date.now() - loginStarted) / 1000;
  console.log(`${STORM} logins in ${loginSeconds.toFixed(0)} s`);
  // The last token was issued when the last login ended; every one is due SKEW s before it expires.
  const dueAt = Date.now() + (TOKEN_TTL - SKEW) * 1000 + 1000;
  await new Promise((r) => setTimeout(r, dueAt - Date.now()));
  const before = {
    idp: { ...idpCounts },
    metrics: await scrape([ports.ma, ports.mb]),
    redis: await totalCommands(redis),
  };
  const client = new Agent({ connections: 128, pipelining: 1 });
  const stormStart = performance.now();
  const calls = [];
  for (const cookie of stormCookies)
    for (let i = 0; i < STORM_FANOUT; i++) {
      const port = i % 2 ? ports.b : ports.a;
      calls.push(
        (async () => {
          const t0 = performance.now();
          try {
            const res = await request(`http://127.0.0.1:${port}/api/small`, {
              headers: { ...auth, cookie },
              dispatcher: client,
            });
            await res.body.dump();
            return { status: res.statusCode, start: t0 - stormStart, ms: performance.now() - t0 };
          } catch (err) {
            return { status: 0, start: t0 - stormStart, ms: performance.now() - t0, error: err.code };
          }
        })(),
      );
    }
  const results = await Promise.all(calls);
  const stormSeconds = (performance.now() - stormStart) / 1000;
  const after = { metrics: await scrape([ports.ma, ports.mb]), redis: await totalCommands(redis) };
  const refreshes = idpCounts.refreshGrants - before.idp.refreshGrants;
  const lat = results.map((r) => r.ms);
  const storm = {
    sessions: STORM,
    calls: results.length,
    ok: results.filter((r) => r.status === 200).length,
    statuses: Object.fromEntries(
      [...new Set(results.map((r) => r.status))].map((s) => [
        s,
        results.filter((r) => r.status === s).length,
      ]),
    ),
    refreshGrants: refreshes,
    reuseDetections: idpCounts.reuse - before.idp.reuse,
    grantErrors: idpCounts.grantErrors - before.idp.grantErrors,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: Math.max(...lat),
    seconds: stormSeconds,
    redisCommandsPerRefresh: (after.redis - before.redis) / Math.max(1, refreshes),
    redisCommandsPerCall: (after.redis - before.redis) / results.length,
    lockWaits: after.metrics.lockWaits - before.metrics.lockWaits,
    lockWaitSeconds: after.metrics.lockWaitSum - before.metrics.lockWaitSum,
    loginSeconds,
  };
  console.log(
    `storm: ${storm.ok}/${storm.calls} answered 200, ${storm.refreshGrants} refresh grants, ${storm.reuseDetections} reuse detections, p50 ${storm.p50.toFixed(0)} ms, p99 ${storm.p99.toFixed(0)} ms, ${storm.redisCommandsPerRefresh.toFixed(1)} Redis commands per refresh, ${storm.lockWaits} lock waits`,
  );
  mkdirSync('bench/results', { recursive: true });
  writeFileSync(
    'bench/results/storm-latency.svg',
    scatterChart({
      title: `Refresh storm: ${storm.calls} calls over ${STORM} due sessions, two instances`,
      xLabel: 'call started (ms after the storm began)',
      yLabel: 'latency (ms)',
      points: results.map((r) => [r.start, r.ms, r.status === 200]),
    }),
  );

  // --- Soak with refreshes: SOAK_SESSIONS sessions, two instances, tokens that expire every TOKEN_TTL s. ---
  let soak;
  if (SOAK > 0) {
    const soakCookies = stormCookies.slice(0, SOAK_SESSIONS);
    const grantsBefore = idpCounts.refreshGrants;
    const samples = [];
    let okCount = 0;
    let errors = 0;
    const started = Date.now();
    const sample = () =>
      samples.push({ t: Math.round((Date.now() - started) / 1000), a: rssMb(a.pid), b: rssMb(b.pid) });
    sample();
    const sampler = setInterval(sample, 30_000);
    const soakClient = new Agent({ connections: 16 });
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        let i = w;
        while (Date.now() - started < SOAK * 1000) {
          const cookie = soakCookies[i % soakCookies.length];
          const port = i % 2 ? ports.b : ports.a;
          i += 16;
          try {
            const res = await request(`http://127.0.0.1:${port}/api/small`, {
              headers: { ...auth, cookie },
              dispatcher: soakClient,
            });
            await res.body.dump();
            if (res.statusCode === 200) okCount++;
            else errors++;
          } catch {
            errors++;
          }
        }
      }),
    );
    clearInterval(sampler);
    sample();
    const refreshed = idpCounts.refreshGrants - grantsBefore;
    // Each session's token is replaced once per (TTL - SKEW) s while it is in use.
    const predicted = SOAK_SESSIONS * (SOAK / (TOKEN_TTL - SKEW));
    soak = { seconds: SOAK, sessions: SOAK_SESSIONS, ok: okCount, errors, refreshed, predicted, samples };
    console.log(
      `soak: ${okCount} calls 200, ${errors} errors, ${refreshed} refreshes (predicted about ${predicted.toFixed(0)}), RSS A ${samples.map((s) => s.a.toFixed(0)).join(' → ')} MB`,
    );
  }

  const report = {
    machine: machine(),
    settings: { DURATION, REPEAT, MANY, STORM, TOKEN_TTL, SKEW },
    many,
    rssFullCache,
    cache,
    storm,
    soak,
  };
  writeFileSync('bench/results/scale.json', `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync('bench/results/scale.md', markdown(report));
  writeFileSync(
    'bench/results/many-sessions.svg',
    barChart({
      title: `Throughput, 1 KB, one session against ${MANY} sessions (req/s, median)`,
      bars: many.map((m) => [m.name, m.rps]),
    }),
  );
  console.log(`\n${markdown(report)}`);
  redis.disconnect();
  await idp.close();
}

function markdown(r) {
  const s = r.storm;
  const pass = (ok) => (ok ? 'met' : '**missed**');
  const manyOn = r.many[1];
  const manyOff = r.many[2];
  return `# coatcheck at scale

${r.machine.date.slice(0, 10)} on ${r.machine.cores} × ${r.machine.cpu}, ${r.machine.memoryGb} GB, Node ${r.machine.node}. Everything shares the same cores. Reproduce: \`npm run bench\` (this part alone: \`npm run build && node bench/scale.mjs\`).

## ${r.settings.MANY} sessions

wrk -c64, ${r.settings.REPEAT} interleaved runs of ${r.settings.DURATION} s; each of wrk's requests uses the next of ${r.settings.MANY} sessions.

| variant | req/s (median) | spread | × one session | p50 ms | p99 ms | store round trips / request | Redis commands / request | errors |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${r.many.map((m) => `| ${m.name} | ${m.rps.toFixed(0)} | ${m.rpsMin.toFixed(0)}–${m.rpsMax.toFixed(0)} | ${m.ratioToOne.toFixed(2)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${m.storeRoundTripsPerRequest.toFixed(3)} | ${m.redisCommandsPerRequest.toFixed(3)} | ${m.errors} |`).join('\n')}

Store round trips are coatcheck's own count of its store operations; Redis counts a script as itself plus each command it runs.
The one-session baseline runs on an instance whose cache holds only that session; the last row is the same
session on the instance whose cache the many sessions fill, for comparison. Requests per second in each run:
${r.many.map((m) => `${m.name} ${m.runs?.join(', ')}`).join('; ')}.

coatcheck's RSS with a full session cache: ${r.rssFullCache.toFixed(0)} MB. Cache on that instance: ${r.cache.cacheHit} hits, ${r.cache.cacheMiss} misses.

| target | measured | |
|---|---|---|
| ${r.settings.MANY} sessions ≥ 0.6 × one session (cache on) | ${manyOn.ratioToOne.toFixed(2)} × | ${pass(manyOn.ratioToOne >= 0.6)} |
| ${r.settings.MANY} sessions ≥ 0.6 × one session (every request misses the cache) | ${manyOff.ratioToOne.toFixed(2)} × | ${pass(manyOff.ratioToOne >= 0.6)} |

## Refresh storm

${s.sessions} sessions logged in for real (in ${s.loginSeconds.toFixed(0)} s), access tokens of ${r.settings.TOKEN_TTL} s, refresh skew ${r.settings.SKEW} s; once all were due, each was called ${s.calls / s.sessions} times at once, alternately on two instances sharing Redis.

| | measured | target | |
|---|---:|---:|---|
| refresh grants at the IdP | ${s.refreshGrants} | ${s.sessions} | ${pass(s.refreshGrants === s.sessions)} |
| reuse detections | ${s.reuseDetections} | 0 | ${pass(s.reuseDetections === 0)} |
| calls answered 200 | ${s.ok} of ${s.calls} | all | ${pass(s.ok === s.calls)} |
| latency p50 / p99 / max | ${s.p50.toFixed(0)} / ${s.p99.toFixed(0)} / ${s.max.toFixed(0)} ms | | |
| Redis commands per refresh (all commands during the storm ÷ refreshes) | ${s.redisCommandsPerRefresh.toFixed(1)} | | |
| lock waits (both instances) | ${s.lockWaits} (${s.lockWaitSeconds.toFixed(1)} s in all) | | |

Statuses: ${JSON.stringify(s.statuses)}. The whole storm took ${s.seconds.toFixed(1)} s.

![storm latency](storm-latency.svg)
${
  r.soak
    ? `
## Soak with refreshes

${r.soak.seconds} s, ${r.soak.sessions} sessions, ${r.settings.TOKEN_TTL} s access tokens, two instances: ${r.soak.ok} calls answered 200, ${r.soak.errors} errors; ${r.soak.refreshed} refreshes against about ${r.soak.predicted.toFixed(0)} predicted by the token lifetimes.

| t (s) | ${r.soak.samples.map((x) => x.t).join(' | ')} |
|---|${r.soak.samples.map(() => '---:').join('|')}|
| RSS A (MB) | ${r.soak.samples.map((x) => x.a.toFixed(0)).join(' | ')} |
| RSS B (MB) | ${r.soak.samples.map((x) => x.b.toFixed(0)).join(' | ')} |
`
    : ''
}`;
}

try {
  await main();
} finally {
  await stopAll();
}
process.exit(0);
