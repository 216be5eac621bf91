// npm run bench: starts everything on loopback, measures four targets side by side with wrk, and
// writes bench/results/latest.{json,md}. Nothing is started by hand; nothing here runs in npm test.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unsign } from 'cookie-signature';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { startIdp } from '../dist/demo/idp.js';
import { RedisSessionStore } from '../dist/session/redis-store.js';
import { Sessions } from '../dist/session/sessions.js';
import {
  CONNECTIONS,
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
  benchCoatcheckEnv,
} from './lib.mjs';
import { profileMarkdown, summariseProfile } from './profile.mjs';
import { barChart } from './svg.mjs';

const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 5);
const DOWNLOAD_MB = Number(process.env.BENCH_DOWNLOAD_MB ?? 100);
const SOAK = Number(process.env.BENCH_SOAK ?? 0);

/**
 * Runs every target REPEAT times, interleaved (a, b, c, d, a, b, c, d, ...) rather than one
 * target's runs back to back: on a shared VM, throughput drifts over minutes and earlier targets
 * leave the machine in another state, and interleaving spreads both over all targets alike.
 */
async function measureAll(list) {
  for (const [, url, headers] of list) await wrk(url, headers, WARMUP);
  const runs = list.map(() => []);
  for (let i = 0; i < REPEAT; i++) {
    for (const [j, [, url, headers]] of list.entries()) runs[j].push(await wrk(url, headers, DURATION));
  }
  return list.map(([name], j) => {
    const mine = runs[j];
    const pick = (k) => median(mine.map((r) => r[k]));
    const result = {
      name,
      rps: pick('rps'),
      rpsMin: Math.min(...mine.map((r) => r.rps)),
      rpsMax: Math.max(...mine.map((r) => r.rps)),
      p50: pick('p50'),
      p99: pick('p99'),
      p999: pick('p999'),
      errors: mine.reduce((a, r) => a + r.errors, 0),
      requests: mine.reduce((a, r) => a + r.requests, 0),
      runs: mine,
    };
    console.log(
      `${name.padEnd(22)} ${result.rps.toFixed(0).padStart(7)} req/s (${result.rpsMin.toFixed(0)}–${result.rpsMax.toFixed(0)})  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  p99.9 ${result.p999.toFixed(2)} ms  errors ${result.errors}`,
    );
    return result;
  });
}

function nginxConfig(dir, port, upstreamPort) {
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream api { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location /api/ {
      proxy_pass http://api/v1/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer static-token";
    }
  }
}`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return join(dir, 'nginx.conf');
}

async function main() {
  ensureTools();
  const ports = {};
  for (const k of ['redis', 'upstream', 'nginx', 'bare', 'naive', 'coatcheck']) ports[k] = await freePort();
  const tmp = mkdtempSync(join(tmpdir(), 'coatcheck-bench-'));
  tmpDirs.push(tmp);
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;

  startBenchRedis(ports.redis);
  start(process.execPath, ['bench/upstream.mjs'], { PORT: String(ports.upstream) }, 'upstream');
  start('nginx', ['-c', nginxConfig(tmp, ports.nginx, ports.upstream), '-p', tmp], {}, 'nginx');
  const coatcheckUrl = `http://127.0.0.1:${ports.coatcheck}`;
  const idp = await startIdp(benchIdpOptions(coatcheckUrl));
  await waitForPort(ports.redis, 'redis');
  const coatcheckEnv = benchCoatcheckEnv({
    port: ports.coatcheck,
    publicUrl: coatcheckUrl,
    issuer: idp.issuer,
    redisUrl,
    upstreamPort: ports.upstream,
    logLevel: process.env.BENCH_LOG_LEVEL ?? 'info',
  });
  const coatcheck = start(
    process.execPath,
    [...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), 'dist/main.js'],
    coatcheckEnv,
    'coatcheck',
  );
  start(
    process.execPath,
    ['bench/bare-proxy.mjs'],
    { PORT: String(ports.bare), TARGET: `http://127.0.0.1:${ports.upstream}/v1` },
    'bare Node proxy',
  );
  start(
    process.execPath,
    ['bench/naive-bff.mjs'],
    {
      PORT: String(ports.naive),
      REDIS_URL: redisUrl,
      SESSION_SECRET: SECRET,
      TARGET: `http://127.0.0.1:${ports.upstream}/v1`,
    },
    'naive BFF',
  );
  await Promise.all([
    waitForPort(ports.upstream, 'upstream'),
    waitForPort(ports.nginx, 'nginx'),
    waitForPort(ports.bare, 'bare Node proxy'),
    waitForPort(ports.naive, 'naive BFF'),
    waitForPort(ports.coatcheck, 'coatcheck'),
  ]);

  // Real sessions: coatcheck's through a real login; the naive BFF's holds the same real access token.
  const coatcheckCookie = await login(coatcheckUrl);
  const store = new RedisSessionStore(redisUrl);
  await store.ready();
  const sessionId = unsign(decodeURIComponent(coatcheckCookie.split('=')[1]), SECRET);
  const session = await new Sessions(store, { idleMs: 1800_000, absoluteMs: 28_800_000 }).load(
    sessionId,
    Date.now(),
  );
  const seeded = await request(`http://127.0.0.1:${ports.naive}/seed`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessToken: session.tokens.accessToken }),
  });
  await seeded.body.dump();
  const naiveCookie = [].concat(seeded.headers['set-cookie'])[0].split(';')[0];

  const redis = new Redis(redisUrl);
  const sessionKeys = await redis.keys('coatcheck:*');
  const sessionBytes = await redis.memory('USAGE', `coatcheck:s:${session.key}`, 'SAMPLES', 0);
  let perSessionBytes = 0;
  const keyBytes = {};
  for (const k of sessionKeys) {
    const bytes = (await redis.memory('USAGE', k, 'SAMPLES', 0)) ?? 0;
    keyBytes[k.replace(/:[A-Za-z0-9_-]{16,}$/, ':…')] = bytes;
    perSessionBytes += bytes;
  }
  // The breakdown of the session hash: each field's value length (names in src/session/redis-store.ts).
  const sessionFields = {};
  for (const f of await redis.hkeys(`coatcheck:s:${session.key}`))
    sessionFields[f] = await redis.hstrlen(`coatcheck:s:${session.key}`, f);
  const tokenSizes = {
    accessToken: session.tokens.accessToken.length,
    idToken: session.tokens.idToken?.length ?? 0,
    refreshToken: session.tokens.refreshToken?.length ?? 0,
  };

  const auth = { 'X-CSRF': '1' };
  const download = async (mb) => {
    const res = await request(`${coatcheckUrl}/api/huge?bytes=${mb * 1024 * 1024}`, {
      headers: { ...auth, cookie: coatcheckCookie },
    });
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    if (bytes !== mb * 1024 * 1024) throw new Error(`download through coatcheck got ${bytes} bytes`);
    return bytes;
  };
  const only = process.env.BENCH_ONLY?.split(',');
  const targets = (path) =>
    [
      ['direct (ceiling)', `http://127.0.0.1:${ports.upstream}/v1/${path}`, {}],
      ['nginx', `http://127.0.0.1:${ports.nginx}/api/${path}`, {}],
      ['bare Node proxy', `http://127.0.0.1:${ports.bare}/api/${path}`, { ...auth, Cookie: coatcheckCookie }],
      ['naive BFF', `http://127.0.0.1:${ports.naive}/api/${path}`, { ...auth, Cookie: naiveCookie }],
      ['coatcheck', `http://127.0.0.1:${ports.coatcheck}/api/${path}`, { ...auth, Cookie: coatcheckCookie }],
    ].filter(([name]) => !only || only.includes(name) || name === 'coatcheck');

  // Every target must answer 200 before it is measured.
  for (const [name, url, headers] of [...targets('small'), ...targets('large')]) {
    const res = await request(url, { headers });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${name} answered ${res.statusCode} for ${url}`);
  }

  // "Idle" is a coatcheck that has served a little: a cold process grows on its first traffic of
  // any kind (JIT code, heap and allocator growth), which says nothing about streaming.
  const rssCold = rssMb(coatcheck.pid);
  const [, warmUrl, warmHeaders] = targets('small').find(([name]) => name === 'coatcheck');
  await wrk(warmUrl, warmHeaders, 1);
  await download(10);
  const rssIdle = rssMb(coatcheck.pid);

  // A 100 MB download through coatcheck before the load, whose heap churn would blur it: peak RSS
  // above idle shows whether bodies are streamed.
  const rssBeforeDownload = rssMb(coatcheck.pid);
  let rssPeak = rssBeforeDownload;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMb(coatcheck.pid))), 20);
  const downloaded = await download(DOWNLOAD_MB);
  clearInterval(sampler);
  console.log(
    `\nRSS ${rssCold.toFixed(1)} MB cold, ${rssIdle.toFixed(1)} MB idle after 1 s of API calls and a 10 MB download`,
  );
  console.log(
    `${DOWNLOAD_MB} MB download: RSS ${rssBeforeDownload.toFixed(1)} MB idle, peak ${rssPeak.toFixed(1)} MB (+${(rssPeak - rssBeforeDownload).toFixed(1)} MB)`,
  );

  const results = { small: [], large: [] };
  console.log(
    `\n1 KB responses, ${CONNECTIONS} connections, ${REPEAT} × ${DURATION}s after a ${WARMUP}s warm-up`,
  );
  results.small = await measureAll(targets('small'));
  console.log(`\n100 KB responses`);
  results.large = await measureAll(targets('large'));
  const rssAfter = rssMb(coatcheck.pid);

  // One connection: latency is the service time of each hop, not queueing behind 63 other requests
  // on two saturated cores, so this is the cost a user's click pays when the BFF is not overloaded.
  // Interleaved rounds like the loaded runs: at one connection the p99 is a few dozen requests out
  // of thousands, and one stall of the shared machine in one run would otherwise be the figure.
  const unloaded = [];
  console.log(`\n1 KB responses, 1 connection, ${REPEAT} × ${DURATION}s interleaved`);
  const single = targets('small');
  for (const [, url, headers] of single) await wrk(url, headers, 1, 1);
  const singleRuns = single.map(() => []);
  for (let i = 0; i < REPEAT; i++)
    for (const [j, [, url, headers]] of single.entries())
      singleRuns[j].push(await wrk(url, headers, DURATION, 1));
  for (const [j, [name]] of single.entries()) {
    const mine = singleRuns[j];
    const r = {
      name,
      rps: median(mine.map((x) => x.rps)),
      p50: median(mine.map((x) => x.p50)),
      p99: median(mine.map((x) => x.p99)),
      p99Min: Math.min(...mine.map((x) => x.p99)),
      p99Max: Math.max(...mine.map((x) => x.p99)),
      errors: mine.reduce((a, x) => a + x.errors, 0),
      runs: mine,
    };
    unloaded.push(r);
    console.log(
      `${name.padEnd(22)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms (${r.p99Min.toFixed(3)}–${r.p99Max.toFixed(3)})  errors ${r.errors}`,
    );
  }

  // Redis commands per proxied request in the steady state, counted by Redis itself.
  const [, steadyUrl, steadyHeaders] = targets('small').find(([name]) => name === 'coatcheck');
  const commandsBefore = await totalCommands(redis);
  const steady = await wrk(steadyUrl, steadyHeaders, Math.min(DURATION, 5));
  const redisCommandsPerRequest = ((await totalCommands(redis)) - commandsBefore - 1) / steady.requests;
  console.log(`\nRedis commands per proxied request: ${redisCommandsPerRequest.toFixed(5)}`);

  // A CPU profile of the proxy path, from a second coatcheck under the same load: profiling slows
  // the process, so the figures above come from one that is not profiled.
  let profile;
  if (process.env.BENCH_PROFILE !== '0') {
    const profDir = mkdtempSync(join(tmpdir(), 'coatcheck-prof-'));
    tmpDirs.push(profDir);
    const profPort = await freePort();
    const profiled = start(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-dir', profDir, 'dist/main.js'],
      { ...coatcheckEnv, BFF_PORT: String(profPort), BFF_SHUTDOWN_DELAY: '0' },
      'coatcheck (profiled)',
    );
    await waitForPort(profPort, 'coatcheck (profiled)');
    const url = `http://127.0.0.1:${profPort}/api/small`;
    await wrk(url, steadyHeaders, 2);
    await wrk(url, steadyHeaders, DURATION);
    profiled.stopping = true;
    profiled.kill('SIGTERM');
    await once(profiled, 'exit');
    profile = summariseProfile(profDir, DURATION - 1);
    console.log(profileMarkdown(profile, '1 KB JSON at 64 connections'));
  }

  let soak;
  if (SOAK > 0) {
    console.log(`\nsoak: ${SOAK}s at ${CONNECTIONS} connections through coatcheck`);
    const samples = [{ t: 0, rss: rssMb(coatcheck.pid) }];
    const started = Date.now();
    const sampling = setInterval(
      () => samples.push({ t: Math.round((Date.now() - started) / 1000), rss: rssMb(coatcheck.pid) }),
      10_000,
    );
    const [, soakUrl, soakHeaders] = targets('small').find(([name]) => name === 'coatcheck');
    const r = await wrk(soakUrl, soakHeaders, SOAK);
    clearInterval(sampling);
    samples.push({ t: SOAK, rss: rssMb(coatcheck.pid) });
    soak = { seconds: SOAK, rps: r.rps, errors: r.errors, p99: r.p99, samples };
    console.log(
      `soak: ${r.rps.toFixed(0)} req/s, errors ${r.errors}, RSS ${samples.map((s) => s.rss.toFixed(0)).join(' → ')} MB`,
    );
  }

  // Per round, since the rounds are interleaved: coatcheck's run i against the bare proxy's run i.
  const perRound = (list) => {
    const c = list.find((r) => r.name === 'coatcheck');
    const b = list.find((r) => r.name === 'bare Node proxy');
    if (!c || !b) return { median: NaN, min: NaN, max: NaN, rounds: [] };
    const rounds = c.runs.map((r, i) => r.rps / b.runs[i].rps);
    return { median: median(rounds), min: Math.min(...rounds), max: Math.max(...rounds), rounds };
  };
  // A target's latency over direct's in the same round, as a median over the rounds with its spread.
  const addedPerRound = (list, name, key) => {
    const t = list.find((r) => r.name === name);
    const d = list.find((r) => r.name === 'direct (ceiling)');
    if (!t || !d) return { median: NaN, min: NaN, max: NaN };
    const rounds = t.runs.map((r, i) => r[key] - d.runs[i][key]);
    return { median: median(rounds), min: Math.min(...rounds), max: Math.max(...rounds) };
  };
  const get = (list, name) => list.find((r) => r.name === name) ?? { rps: NaN, p50: NaN, p99: NaN };
  const s = results.small;
  const ratios = {
    coatcheckOverNginx: get(s, 'coatcheck').rps / get(s, 'nginx').rps,
    coatcheckOverNaive: get(s, 'coatcheck').rps / get(s, 'naive BFF').rps,
    addedP50Ms: get(s, 'coatcheck').p50 - get(s, 'direct (ceiling)').p50,
    addedP99Ms: get(s, 'coatcheck').p99 - get(s, 'direct (ceiling)').p99,
    largeCoatcheckOverNginx: get(results.large, 'coatcheck').rps / get(results.large, 'nginx').rps,
    unloadedAddedP50Ms: addedPerRound(unloaded, 'coatcheck', 'p50').median,
    unloadedAddedP99Ms: addedPerRound(unloaded, 'coatcheck', 'p99').median,
    unloadedAddedP99: addedPerRound(unloaded, 'coatcheck', 'p99'),
    bareUnloadedAddedP99: addedPerRound(unloaded, 'bare Node proxy', 'p99'),
    redisCommandsPerRequest,
    overBare: perRound(results.small),
    largeOverBare: perRound(results.large),
  };
  const machineInfo = {
    ...machine(),
    nginx:
      execFileSync('nginx', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() ||
      readNginxVersion(),
  };
  const report = {
    machine: machineInfo,
    settings: {
      durationS: DURATION,
      warmupS: WARMUP,
      repeat: REPEAT,
      connections: CONNECTIONS,
      coatcheckLogLevel: process.env.BENCH_LOG_LEVEL ?? 'info',
    },
    results: { ...results, unloaded },
    ratios,
    memory: {
      rssColdMb: rssCold,
      rssIdleMb: rssIdle,
      rssAfterLoadMb: rssAfter,
      download: {
        bytes: downloaded,
        rssBeforeMb: rssBeforeDownload,
        rssPeakMb: rssPeak,
        growthMb: rssPeak - rssBeforeDownload,
      },
      redisBytesSessionHash: sessionBytes,
      redisBytesAllKeysOfOneSession: perSessionBytes,
      redisKeysOfOneSession: sessionKeys.length,
      redisBytesByKey: keyBytes,
      redisSessionFieldBytes: sessionFields,
      tokenSizes,
    },
    soak,
    profile,
  };

  mkdirSync('bench/results', { recursive: true });
  const md = markdown(report);
  // A partial run (one target, or a soak) must not replace the side-by-side table.
  const out = process.env.BENCH_OUT ?? (process.env.BENCH_ONLY || SOAK ? 'partial' : 'latest');
  writeFileSync(`bench/results/${out}.json`, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(`bench/results/${out}.md`, md);
  if (out === 'latest')
    for (const [size, list] of [
      ['1 KB', results.small],
      ['100 KB', results.large],
    ])
      writeFileSync(
        `bench/results/throughput-${size.replace(' ', '').toLowerCase()}.svg`,
        barChart({
          title: `Throughput, ${size} JSON, ${CONNECTIONS} connections (req/s, median of ${REPEAT} runs)`,
          bars: list.map((x) => [x.name, x.rps]),
        }),
      );
  console.log(`\n${md}`);

  redis.disconnect();
  await store.close();
  await idp.close();
}

function readNginxVersion() {
  try {
    return execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim();
  } catch {
    return 'nginx';
  }
}

function markdown(r) {
  const row = (x) =>
    `| ${x.name} | ${x.rps.toFixed(0)} | ${x.rpsMin.toFixed(0)}–${x.rpsMax.toFixed(0)} | ${x.p50.toFixed(2)} | ${x.p99.toFixed(2)} | ${x.p999.toFixed(2)} | ${x.errors} |`;
  const table = (list) =>
    [
      '| target | req/s (median) | spread | p50 ms | p99 ms | p99.9 ms | errors |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...list.map(row),
    ].join('\n');
  const m = r.memory;
  // A partial run has no comparator to divide by: say so instead of printing NaN as a miss.
  const pass = (ok, value) => (Number.isNaN(value) ? 'n/a' : ok ? 'met' : '**missed**');
  const num = (v, digits) => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
  return `# coatcheck benchmark

${r.machine.date.slice(0, 10)} on ${r.machine.cores} × ${r.machine.cpu}, ${r.machine.memoryGb} GB, Node ${r.machine.node}, ${r.machine.nginx}.
Everything (wrk, upstream, Redis, the proxies) shares the same cores. wrk -t1 -c${r.settings.connections}, ${r.settings.repeat} runs of ${r.settings.durationS} s per target after a ${r.settings.warmupS} s warm-up, the targets' runs interleaved; median shown with the spread of the runs. nginx runs one worker (coatcheck is one Node process); coatcheck logs at \`${r.settings.coatcheckLogLevel}\`; nginx's access log is off.

## 1 KB JSON
${table(r.results.small)}

## 100 KB JSON
${table(r.results.large)}

## 1 KB JSON, 1 connection (no queueing)
${r.settings.repeat} interleaved runs of ${r.settings.durationS} s per target; medians, and the spread of the runs' p99.

| target | req/s | p50 ms | p99 ms | p99 spread ms | errors |
|---|---:|---:|---:|---:|---:|
${r.results.unloaded.map((x) => `| ${x.name} | ${x.rps.toFixed(0)} | ${x.p50.toFixed(3)} | ${x.p99.toFixed(3)} | ${x.p99Min?.toFixed(3)}–${x.p99Max?.toFixed(3)} | ${x.errors} |`).join('\n')}

## Against the targets
| target | measured | |
|---|---|---|
| throughput ≥ 1.0 × bare Node proxy, 1 KB (median of per-round ratios, spread) | ${num(r.ratios.overBare.median, 2)} × (${num(r.ratios.overBare.min, 2)}–${num(r.ratios.overBare.max, 2)}) | ${pass(r.ratios.overBare.median >= 1, r.ratios.overBare.median)} |
| throughput ≥ 1.0 × bare Node proxy, 100 KB | ${num(r.ratios.largeOverBare.median, 2)} × (${num(r.ratios.largeOverBare.min, 2)}–${num(r.ratios.largeOverBare.max, 2)}) | ${pass(r.ratios.largeOverBare.median >= 1, r.ratios.largeOverBare.median)} |
| added p99 at 1 connection over direct ≤ 0.5 ms (median of per-round differences, spread; the bare Node proxy's for comparison) | ${num(r.ratios.unloadedAddedP99Ms, 3)} ms (${num(r.ratios.unloadedAddedP99?.min, 3)}–${num(r.ratios.unloadedAddedP99?.max, 3)}); bare Node proxy ${num(r.ratios.bareUnloadedAddedP99?.median, 3)} ms | ${pass(r.ratios.unloadedAddedP99Ms <= 0.5, r.ratios.unloadedAddedP99Ms)} |
| throughput ≥ 0.8 × nginx | ${num(r.ratios.coatcheckOverNginx, 2)} × | ${pass(r.ratios.coatcheckOverNginx >= 0.8, r.ratios.coatcheckOverNginx)} |
| throughput ≥ 2 × naive BFF | ${num(r.ratios.coatcheckOverNaive, 2)} × | ${pass(r.ratios.coatcheckOverNaive >= 2, r.ratios.coatcheckOverNaive)} |
| added p50 over direct ≤ 0.5 ms | ${num(r.ratios.addedP50Ms, 2)} ms | ${pass(r.ratios.addedP50Ms <= 0.5, r.ratios.addedP50Ms)} |
| added p99 over direct ≤ 2 ms | ${num(r.ratios.addedP99Ms, 2)} ms | ${pass(r.ratios.addedP99Ms <= 2, r.ratios.addedP99Ms)} |
| (the same at 1 connection, for reference) | p50 +${num(r.ratios.unloadedAddedP50Ms, 3)} ms, p99 +${num(r.ratios.unloadedAddedP99Ms, 3)} ms | |
| at most one Redis round trip per proxied request | ${r.ratios.redisCommandsPerRequest.toFixed(4)} Redis commands per request | ${pass(r.ratios.redisCommandsPerRequest <= 1, r.ratios.redisCommandsPerRequest)} |
| 100 MB download: RSS within 20 MB of idle | +${m.download.growthMb.toFixed(1)} MB (peak ${m.download.rssPeakMb.toFixed(0)} MB) | ${pass(m.download.growthMb <= 20, m.download.growthMb)} |
| Redis bytes per session ≤ 2.5 KB | ${m.redisBytesAllKeysOfOneSession} B in ${m.redisKeysOfOneSession} keys (${Object.entries(
    m.redisBytesByKey,
  )
    .map(([k, b]) => `${k} ${b} B`)
    .join(', ')}; session fields ${Object.entries(m.redisSessionFieldBytes)
    .map(([f, b]) => `${f} ${b} B`)
    .join(
      ', ',
    )}; AT ${m.tokenSizes.accessToken} B, ID token ${m.tokenSizes.idToken} B, RT ${m.tokenSizes.refreshToken} B) | ${pass(m.redisBytesAllKeysOfOneSession <= 2560, m.redisBytesAllKeysOfOneSession)} |

coatcheck RSS: ${m.rssColdMb.toFixed(1)} MB cold, ${m.rssIdleMb.toFixed(1)} MB idle (after 1 s of API calls and a 10 MB download), ${m.rssAfterLoadMb.toFixed(1)} MB after the load.
${r.soak ? `\nSoak: ${r.soak.seconds} s, ${r.soak.rps.toFixed(0)} req/s, ${r.soak.errors} errors, RSS ${r.soak.samples.map((s) => s.rss.toFixed(0)).join(' → ')} MB.\n` : ''}
${r.profile ? `\n${profileMarkdown(r.profile, '1 KB JSON at 64 connections')}` : ''}`;
}

try {
  await main();
} finally {
  await stopAll();
}
process.exit(0);
