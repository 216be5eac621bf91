// What one proxied request costs coatcheck, against the bare Node proxy, as a figure that other
// load on the machine does not move much: the proxy process's own CPU time (or, under valgrind,
// its instructions) for exactly N requests, divided by N. Throughput on a shared machine drifts
// with whatever else runs; a process's CPU time per request drifts far less, and its instruction
// count hardly at all.
//
//   npm run build && node bench/cost.mjs              CPU µs per request, interleaved rounds
//   COST_TOOL=callgrind node bench/cost.mjs           instructions per request (valgrind --tool=callgrind)
//   COST_TOOL=profile node bench/cost.mjs             and a CPU profile of coatcheck (node --cpu-prof)
//   COST_TOOL=strace node bench/cost.mjs              and write/writev system calls, start-up included
//
// COST_N requests (default 20000; 3000 under callgrind) over COST_CONNECTIONS keep-alive
// connections (32), COST_ROUNDS interleaved rounds (5; 1 under callgrind), COST_PATH small|large,
// after COST_WARMUP requests per target (3000; 500 under callgrind).
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startIdp } from '../dist/demo/idp.js';
import { once } from 'node:events';
import { profileMarkdown, summariseProfile } from './profile.mjs';
import {
  freePort,
  login,
  machine,
  median,
  start,
  stopAll,
  tmpDirs,
  waitForPort,
  startBenchRedis,
  benchIdpOptions,
  benchCoatcheckEnv,
} from './lib.mjs';

const TOOL = process.env.COST_TOOL ?? 'cpu';
const CALLGRIND = TOOL === 'callgrind';
const N = Number(process.env.COST_N ?? (CALLGRIND ? 3000 : 20000));
const CONNECTIONS = Number(process.env.COST_CONNECTIONS ?? 32);
const ROUNDS = Number(process.env.COST_ROUNDS ?? (CALLGRIND ? 1 : 5));
const PATHS = (process.env.COST_PATH ?? 'small,large').split(',');
// Requests before the first measured round, so that the JIT has compiled the hot path.
const WARMUP = Number(process.env.COST_WARMUP ?? (CALLGRIND ? 500 : 3000));
// Which process to profile: coatcheck, or the bare proxy to compare with.
const PROFILED = process.env.COST_PROFILE === 'bare' ? 'bench/bare-proxy.mjs' : 'dist/main.js';
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

/** utime + stime of a process, in µs. */
function cpuUs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

/** Exactly n requests, `connections` at a time; every answer must be 200. */
async function load(pool, path, headers, n, strict = true) {
  let next = 0;
  const failed = [];
  const worker = async () => {
    while (next < n) {
      next++;
      const { statusCode, body } = await pool.request({ method: 'GET', path, headers });
      await body.dump({ limit: Infinity });
      if (statusCode !== 200) failed.push(statusCode);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  if (failed.length && strict)
    throw new Error(`${failed.length} of ${n} requests to ${path} answered ${[...new Set(failed)]}`);
}

/** Instructions since the last zeroing, from a fresh callgrind dump of the process. */
function callgrindDump(pid, dir) {
  const before = new Set(readdirSync(dir));
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });
  const file = readdirSync(dir).find((f) => !before.has(f) && f.startsWith(`callgrind.out.${pid}`));
  const text = readFileSync(join(dir, file), 'utf8');
  return Number(/^(?:summary|totals): (\d+)/m.exec(text)[1]);
}

async function main() {
  const ports = {};
  for (const k of ['redis', 'upstream', 'bare', 'coatcheck']) ports[k] = await freePort();
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  startBenchRedis(ports.redis);
  start(process.execPath, ['bench/upstream.mjs'], { PORT: String(ports.upstream) }, 'upstream');
  const coatcheckUrl = `http://127.0.0.1:${ports.coatcheck}`;
  const idp = await startIdp(benchIdpOptions(coatcheckUrl));
  await waitForPort(ports.redis, 'redis');
  const outDir = mkdtempSync(join(tmpdir(), 'coatcheck-cost-'));
  tmpDirs.push(outDir);
  // Instrumentation off until the measured requests: start-up and warm-up run at near native speed.
  const wrap = (args) =>
    TOOL === 'profile' && args[0] === PROFILED
      ? [process.execPath, ['--cpu-prof', '--cpu-prof-dir', outDir, ...args]]
      : CALLGRIND
        ? [
            'valgrind',
            [
              '--tool=callgrind',
              '--instr-atstart=no',
              `--callgrind-out-file=${outDir}/callgrind.out.%p`,
              process.execPath,
              ...args,
            ],
          ]
        : TOOL === 'strace'
          ? [
              'strace',
              [
                '-f',
                '-c',
                '-e',
                'trace=write,writev',
                '-o',
                `${outDir}/strace.${args[0].replace(/\W/g, '_')}`,
                process.execPath,
                ...args,
              ],
            ]
          : [process.execPath, args];
  // The access log goes to stdout as in production; the bench discards it.
  const coatcheckEnv = {
    ...benchCoatcheckEnv({
      port: ports.coatcheck,
      publicUrl: coatcheckUrl,
      issuer: idp.issuer,
      redisUrl,
      upstreamPort: ports.upstream,
    }),
    // Profiles and system-call counts are written at exit, which need not wait for a load balancer.
    BFF_SHUTDOWN_DELAY: '0',
  };
  const coatcheck = start(...wrap(['dist/main.js']), coatcheckEnv, 'coatcheck');
  // Other builds of coatcheck beside it (COST_COMPARE=name=path/to/dist,...), against the same
  // Redis session, so that each change is measured against the builds before it in the same rounds.
  const builds = [];
  for (const entry of (process.env.COST_COMPARE ?? '').split(',').filter(Boolean)) {
    const [name, dist] = entry.split('=');
    const port = await freePort();
    const child = start(...wrap([join(dist, 'main.js')]), { ...coatcheckEnv, BFF_PORT: String(port) }, name);
    builds.push({ name, port, child });
  }
  const bare = start(
    ...wrap(['bench/bare-proxy.mjs']),
    { PORT: String(ports.bare), TARGET: `http://127.0.0.1:${ports.upstream}/v1` },
    'bare Node proxy',
  );
  const wait = CALLGRIND ? 900_000 : 60_000;
  for (const [port, what] of [
    [ports.upstream, 'upstream'],
    [ports.bare, 'bare'],
    [ports.coatcheck, 'coatcheck'],
  ])
    await waitForPort(port, what, wait);
  for (const b of builds) await waitForPort(b.port, b.name, wait);
  const cookie = await login(coatcheckUrl);
  const headers = { 'x-csrf': '1', cookie };
  const targets = [
    ['bare Node proxy', bare, new Pool(`http://127.0.0.1:${ports.bare}`, { connections: CONNECTIONS })],
    ['coatcheck', coatcheck, new Pool(coatcheckUrl, { connections: CONNECTIONS })],
  ];
  for (const b of builds)
    targets.push([b.name, b.child, new Pool(`http://127.0.0.1:${b.port}`, { connections: CONNECTIONS })]);
  const results = {};
  let measuredMs = 0;
  for (const path of PATHS) {
    const url = `/api/${path}`;
    // Under valgrind a warm-up request can outlast a Redis command timeout while new code is
    // translated; only the measured requests must all succeed.
    for (const [, , pool] of targets) await load(pool, url, headers, WARMUP, !CALLGRIND);
    const per = Object.fromEntries(targets.map(([name]) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, child, pool] of targets) {
        if (CALLGRIND) {
          execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
          execFileSync('callgrind_control', ['-z', String(child.pid)], { stdio: 'ignore' });
          await load(pool, url, headers, N);
          per[name].push(callgrindDump(child.pid, outDir) / N);
          execFileSync('callgrind_control', ['-i', 'off', String(child.pid)], { stdio: 'ignore' });
        } else {
          const before = cpuUs(child.pid);
          const t0 = performance.now();
          await load(pool, url, headers, N);
          if (child.spawnargs.includes(PROFILED)) measuredMs += performance.now() - t0;
          per[name].push((cpuUs(child.pid) - before) / N);
        }
      }
    }
    const unit = CALLGRIND ? 'instructions' : 'CPU µs';
    const fmt = (v) => (CALLGRIND ? Math.round(v).toLocaleString('en') : v.toFixed(1));
    const ratios = per['bare Node proxy'].map((b, i) => b / per.coatcheck[i]);
    results[path] = { per, ratios };
    console.log(`\n/api/${path}: ${unit} per request, ${N} requests per round, ${CONNECTIONS} connections`);
    for (const name of Object.keys(per))
      console.log(
        `  ${name.padEnd(16)} median ${fmt(median(per[name]))}  (${per[name].map(fmt).join(', ')})`,
      );
    for (const b of builds) {
      const old = per['bare Node proxy'].map((x, i) => x / per[b.name][i]);
      console.log(
        `  bare ÷ ${b.name}: median ${median(old).toFixed(3)} (${old.map((r) => r.toFixed(3)).join(', ')})`,
      );
    }
    console.log(
      `  bare ÷ coatcheck: median ${median(ratios).toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(', ')}); above 1 means coatcheck costs less`,
    );
  }
  for (const [, , pool] of targets) await pool.close();
  await idp.close();
  if (TOOL === 'strace') {
    // strace writes its counts when the process exits.
    for (const [name, child] of targets) {
      child.stopping = true;
      child.kill('SIGTERM');
      await once(child, 'exit');
      const file = readdirSync(outDir).find(
        (f) => f.startsWith('strace.') && f.includes(child.spawnargs.at(-1).replace(/\W/g, '_')),
      );
      const calls = {};
      for (const m of readFileSync(join(outDir, file), 'utf8').matchAll(
        /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(write|writev)$/gm,
      ))
        calls[m[2]] = Number(m[1]);
      const requests = N * ROUNDS * PATHS.length;
      console.log(
        `${name}: ${JSON.stringify(calls)} over ${requests} measured requests (and the warm-up, login and start-up): ${((calls.write ?? 0) + (calls.writev ?? 0)) / requests} per request`,
      );
    }
  }
  if (TOOL === 'profile') {
    // Only coatcheck's measured requests: the bare proxy's rounds in between leave it idle, and
    // idle samples are not counted.
    const profiled = PROFILED === 'dist/main.js' ? coatcheck : bare;
    profiled.stopping = true;
    profiled.kill('SIGTERM');
    await once(profiled, 'exit');
    const window = (measuredMs * 2) / 1000;
    if (process.env.COST_PROFILE_OUT) {
      const file = readdirSync(outDir).find((f) => f.endsWith('.cpuprofile'));
      copyFileSync(join(outDir, file), process.env.COST_PROFILE_OUT);
    }
    console.log(profileMarkdown(summariseProfile(outDir, window, 30), `${PATHS.join(' and ')} through /api`));
  }
  return results;
}

/** With COST_COMPARE, the other builds' figures in the same rounds, each as bare ÷ build. */
function compared(results) {
  const names = Object.keys(Object.values(results)[0].per).filter((n) => n !== 'bare Node proxy');
  if (names.length < 2) return '';
  const lines = [];
  for (const [path, { per }] of Object.entries(results))
    for (const name of names) {
      const ratios = per['bare Node proxy'].map((b, i) => b / per[name][i]);
      // Paired with coatcheck's figure of the same round, which the machine's drift moves alike.
      const paired = per[name].map((x, i) => x / per.coatcheck[i]);
      const cheaper = paired.filter((r) => r > 1).length;
      lines.push(
        `| ${path === 'small' ? '1 KB' : '100 KB'} | ${name} | ${median(per[name]).toFixed(1)} | ${median(ratios).toFixed(2)} × | ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} | ${name === 'coatcheck' ? '— | —' : `${median(paired).toFixed(2)} × | ${cheaper} of ${paired.length}`} |`,
      );
    }
  return `
Other builds in the same rounds (\`COST_COMPARE=name=path/to/dist,...\`). The last two columns pair each
round's figure with coatcheck's in the same round: the build's CPU per request over coatcheck's, and in how many
rounds coatcheck cost less.

| body | build | µs/request | bare ÷ build (median of rounds) | spread | build ÷ coatcheck (median of rounds) | rounds coatcheck cheaper |
|---|---|---:|---:|---:|---:|---:|
${lines.join('\n')}
`;
}

/** The default run (CPU time) is part of npm run bench: its figures go to bench/results/cost.{json,md}. */
function writeResults({ machine: m, settings, results }) {
  const rows = Object.entries(results).map(([path, { per, ratios }]) => {
    const bare = median(per['bare Node proxy']);
    const ours = median(per.coatcheck);
    return `| ${path === 'small' ? '1 KB' : '100 KB'} | ${bare.toFixed(1)} | ${ours.toFixed(1)} | ${median(ratios).toFixed(2)} × | ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} |`;
  });
  writeFileSync(
    'bench/results/cost.md',
    `# CPU time per proxied request

${m.date.slice(0, 10)} on ${m.cores} × ${m.cpu}, ${m.memoryGb} GB, Node ${m.node}. Reproduce: \`npm run build && ${reproduce(settings)}node bench/cost.mjs\`.

Each process's own CPU time (user + system, from /proc) for exactly ${settings.N} requests over ${settings.CONNECTIONS} keep-alive
connections, divided by ${settings.N}; ${settings.ROUNDS} rounds, the two proxies' rounds interleaved. Unlike throughput on a shared machine, a
process's CPU time per request moves little with what else runs: it is the cost that decides throughput once the
proxy is the bottleneck. The ratio is bare ÷ coatcheck per round: above 1, coatcheck spends less CPU per request
than the bare Node proxy.

| body | bare Node proxy µs/request | coatcheck µs/request | bare ÷ coatcheck (median of rounds) | spread |
|---|---:|---:|---:|---:|
${rows.join('\n')}
${compared(results)}`,
  );
}

/** The settings that differ from the defaults, as they would be typed before the command. */
function reproduce(settings) {
  const set = [];
  if (settings.N !== 20000) set.push(`COST_N=${settings.N}`);
  if (settings.CONNECTIONS !== 32) set.push(`COST_CONNECTIONS=${settings.CONNECTIONS}`);
  if (settings.ROUNDS !== 5) set.push(`COST_ROUNDS=${settings.ROUNDS}`);
  if (settings.compare?.length) set.push(`COST_COMPARE=${settings.compare.map((n) => `'${n}=…'`).join(',')}`);
  return set.map((s) => `${s} `).join('');
}

// COST_RENDER=bench/results/cost.json writes cost.md again from a run's saved figures.
if (process.env.COST_RENDER) {
  writeResults(JSON.parse(readFileSync(process.env.COST_RENDER, 'utf8')));
  process.exit(0);
}
try {
  const results = await main();
  if (TOOL === 'cpu' && process.env.COST_WRITE !== '0') {
    const compare = Object.keys(Object.values(results)[0].per).filter(
      (n) => n !== 'bare Node proxy' && n !== 'coatcheck',
    );
    const run = { machine: machine(), settings: { N, CONNECTIONS, ROUNDS, compare }, results };
    writeFileSync('bench/results/cost.json', `${JSON.stringify(run, null, 2)}\n`);
    writeResults(run);
  }
} finally {
  await stopAll();
}
process.exit(0);
