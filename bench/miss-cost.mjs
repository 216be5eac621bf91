// What a session-cache miss costs: coatcheck's CPU time per request (and Redis's) when every request
// hits the cache (one session) and when every request misses it (10,000 sessions, each request on the
// next), with a CPU profile of the miss path. Part of npm run bench; writes
// bench/results/miss-cost.{json,md}.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startIdp } from '../dist/demo/idp.js';
import { profileMarkdown, summariseProfile } from './profile.mjs';
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
  seedSessions,
  scrape,
} from './lib.mjs';

const MANY = Number(process.env.BENCH_MANY ?? 10_000);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_REPEAT ?? 3);

const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
};

async function main() {
  const ports = {};
  for (const k of ['redis', 'upstream', 'coatcheck', 'metrics']) ports[k] = await freePort();
  const tmp = mkdtempSync(join(tmpdir(), 'coatcheck-miss-'));
  tmpDirs.push(tmp);
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  const redisProcess = startBenchRedis(ports.redis);
  start(process.execPath, ['bench/upstream.mjs'], { PORT: String(ports.upstream) }, 'upstream');
  const url = `http://127.0.0.1:${ports.coatcheck}`;
  const idp = await startIdp(benchIdpOptions(url));
  await waitForPort(ports.redis, 'redis');
  const env = {
    ...benchCoatcheckEnv({
      port: ports.coatcheck,
      publicUrl: url,
      issuer: idp.issuer,
      redisUrl,
      upstreamPort: ports.upstream,
      logLevel: 'warn',
    }),
    // Short enough that wrk cannot come back to one of the many sessions while it is still cached
    // (that would take over 40,000 req/s), long enough that the one session is loaded once per
    // thousands of requests. Store operations per request, counted by coatcheck, show which it was.
    BFF_SESSION_CACHE_TTL: String(CACHE_TTL_S),
    BFF_METRICS_PORT: String(ports.metrics),
  };
  const coatcheck = start(process.execPath, ['dist/main.js'], env, 'coatcheck');
  await waitForPort(ports.coatcheck, 'coatcheck');

  const oneCookie = await login(url);
  const cookieFile = join(tmp, 'cookies.txt');
  await seedSessions(redisUrl, oneCookie, MANY, cookieFile);

  const target = `${url}/api/small`;
  const variants = [
    ['one session (cache hits)', { 'X-CSRF': '1', Cookie: oneCookie }, undefined],
    [`${MANY} sessions (cache misses)`, { 'X-CSRF': '1' }, { BENCH_COOKIES: cookieFile }],
  ];
  for (const [, headers, wenv] of variants) await wrk(target, headers, 2, undefined, wenv);
  const per = variants.map(() => ({ coatcheck: [], redis: [], rps: [], storeOps: [] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [j, [, headers, wenv]] of variants.entries()) {
      const c0 = cpuTicks(coatcheck.pid);
      const r0 = cpuTicks(redisProcess.pid);
      const ops0 = (await scrape([ports.metrics])).storeOps;
      const r = await wrk(target, headers, DURATION, undefined, wenv);
      per[j].storeOps.push(((await scrape([ports.metrics])).storeOps - ops0) / r.requests);
      // Ticks are 10 ms: per request in µs.
      per[j].coatcheck.push(((cpuTicks(coatcheck.pid) - c0) * 1e4) / r.requests);
      per[j].redis.push(((cpuTicks(redisProcess.pid) - r0) * 1e4) / r.requests);
      per[j].rps.push(r.rps);
    }
  }
  const results = variants.map(([name], j) => ({
    name,
    coatcheckUs: median(per[j].coatcheck),
    redisUs: median(per[j].redis),
    rps: median(per[j].rps),
    storeOpsPerRequest: median(per[j].storeOps),
    runs: per[j],
  }));
  for (const r of results)
    console.log(
      `${r.name.padEnd(30)} coatcheck ${r.coatcheckUs.toFixed(1)} µs/request, Redis ${r.redisUs.toFixed(1)} µs/request, ${r.rps.toFixed(0)} req/s, ${r.storeOpsPerRequest.toFixed(3)} store operations/request`,
    );

  // The profile comes from a second coatcheck under the misses' load alone: profiling slows the
  // process, so the figures above come from one that is not profiled.
  let profile;
  if (PROFILE) {
    coatcheck.stopping = true;
    coatcheck.kill('SIGTERM');
    await once(coatcheck, 'exit');
    const profDir = join(tmp, 'profile');
    const spawned = performance.now();
    const profiled = start(
      process.execPath,
      ['--cpu-prof', '--cpu-prof-dir', profDir, 'dist/main.js'],
      { ...env, BFF_SHUTDOWN_DELAY: '0' },
      'coatcheck (profiled)',
    );
    await waitForPort(ports.coatcheck, 'coatcheck (profiled)');
    const [, headers, wenv] = variants[1];
    await wrk(target, headers, 2, undefined, wenv);
    const fromS = (performance.now() - spawned) / 1000;
    await wrk(target, headers, DURATION, undefined, wenv);
    const toS = (performance.now() - spawned) / 1000;
    profiled.stopping = true;
    profiled.kill('SIGTERM');
    await once(profiled, 'exit');
    // The measured run alone, by its time since the process started (the profile's start, near enough).
    profile = summariseProfile(profDir, 0, 25, { fromS, toS });
  }
  await idp.close();
  return { results, profile };
}

const PROFILE = process.env.BENCH_PROFILE !== '0';
const CACHE_TTL_S = 0.25;

try {
  const { results, profile } = await main();
  const m = machine();
  writeFileSync(
    'bench/results/miss-cost.json',
    `${JSON.stringify({ machine: m, results, profile }, null, 2)}\n`,
  );
  const [hit, miss] = results;
  writeFileSync(
    'bench/results/miss-cost.md',
    `# What a session-cache miss costs

${m.date.slice(0, 10)} on ${m.cores} × ${m.cpu}, ${m.memoryGb} GB, Node ${m.node}. Reproduce: \`npm run build && node bench/miss-cost.mjs\`.

One coatcheck, wrk -c64, ${ROUNDS} interleaved runs of ${DURATION} s per row, with a session cache TTL of
${CACHE_TTL_S} s so that every request on the ${MANY} sessions misses (the last column, coatcheck's own count of
its store operations, shows it). CPU time is each process's own (user + system, from /proc) divided by the
requests answered: what decides throughput once the process is the bottleneck.

| requests | coatcheck CPU µs / request | Redis CPU µs / request | req/s | store operations / request |
|---|---:|---:|---:|---:|
| ${hit.name} | ${hit.coatcheckUs.toFixed(1)} | ${hit.redisUs.toFixed(1)} | ${hit.rps.toFixed(0)} | ${hit.storeOpsPerRequest.toFixed(3)} |
| ${miss.name} | ${miss.coatcheckUs.toFixed(1)} | ${miss.redisUs.toFixed(1)} | ${miss.rps.toFixed(0)} | ${miss.storeOpsPerRequest.toFixed(3)} |

A miss costs coatcheck ${(miss.coatcheckUs - hit.coatcheckUs).toFixed(0)} µs more than a hit (${(miss.coatcheckUs / hit.coatcheckUs).toFixed(2)} ×), and Redis ${(miss.redisUs - hit.redisUs).toFixed(0)} µs more, on the same cores.
${profile ? `\n${profileMarkdown(profile, `${MANY} sessions, every request a cache miss`)}` : ''}`,
  );
} finally {
  await stopAll();
}
process.exit(0);
