// node bench/dpop.mjs (after npm run build): what signing a DPoP proof costs the proxy path. With
// BFF_DPOP=true every proxied API call signs one proof, exactly as here: the session's cached signer,
// a fresh jti and iat, the access token's hash (ath) and the upstream's nonce. Prints a table and
// writes bench/results/dpop.{json,md}. Nothing here runs in npm test.
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { DPOP_ALGS, newDpopKey, signerFor } from '../dist/oidc/dpop.js';
import { machine, median } from './lib.mjs';

const ROUND_MS = Number(process.env.BENCH_DPOP_ROUND_MS ?? 1000);
const ROUNDS = Number(process.env.BENCH_DPOP_ROUNDS ?? 5);

// A JWT access token of a realistic size: the proof hashes it (ath) on every call.
const accessToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from('x'.repeat(600)).toString('base64url')}.${'s'.repeat(342)}`;
const htu = 'http://127.0.0.1:5000/v1/orders';

/**
 * Proofs per second of CPU time over one round, signing as the proxy path does. CPU time, not wall
 * time: on a shared machine the process waits for a core, and that wait is not the proof's cost.
 */
function round(jwk) {
  let n = 0;
  const end = performance.now() + ROUND_MS;
  const cpu = process.cpuUsage();
  while (performance.now() < end) {
    for (let i = 0; i < 50; i++) {
      signerFor(jwk).proof({ htm: 'GET', htu, accessToken, nonce: 'server-nonce-0123456789' });
    }
    n += 50;
  }
  const used = process.cpuUsage(cpu);
  return n / ((used.user + used.system) / 1e6);
}

const rows = [];
for (const alg of DPOP_ALGS) {
  const jwk = await newDpopKey(alg);
  round(jwk); // warm-up: key import, JIT
  const rates = Array.from({ length: ROUNDS }, () => round(jwk));
  const perSecond = median(rates);
  rows.push({ alg, proofsPerSecond: Math.round(perSecond), microsecondsPerProof: 1e6 / perSecond });
}

// Against the proxy's own cost per request: the latest full bench's coatcheck req/s at 1 KB.
let coatcheckRps;
try {
  const latest = JSON.parse(readFileSync('bench/results/latest.json', 'utf8'));
  coatcheckRps = latest.results.small.find((r) => r.name.startsWith('coatcheck'))?.rps;
} catch {
  coatcheckRps = undefined;
}

const result = {
  machine: { ...machine(), loadAverage: loadavg().map((l) => Number(l.toFixed(1))) },
  settings: { roundMs: ROUND_MS, rounds: ROUNDS, accessTokenBytes: accessToken.length },
  coatcheckRpsBearer: coatcheckRps,
  results: rows.map((r) => ({
    ...r,
    microsecondsPerProof: Number(r.microsecondsPerProof.toFixed(1)),
    // One core signing proofs at this rate would cap the proxy at this many req/s; the share is of the
    // per-request time at the bearer bench's throughput.
    shareOfBearerRequest: coatcheckRps
      ? Number((r.microsecondsPerProof / (1e6 / coatcheckRps)).toFixed(2))
      : undefined,
  })),
};

const md = [
  `# DPoP proof signing on the proxy path (${result.machine.date})`,
  '',
  `${result.machine.cpu}, ${result.machine.cores} cores, Node ${result.machine.node}, load average ${result.machine.loadAverage.join(' ')}; CPU time per proof, median of ${ROUNDS} rounds of ${ROUND_MS} ms.`,
  '',
  '| Key (`BFF_DPOP_ALG`) | Proofs/s per core | CPU µs per proxied request | × a bearer request’s time |',
  '| --- | --- | --- | --- |',
  ...result.results.map(
    (r) =>
      `| ${r.alg} | ${r.proofsPerSecond} | ${r.microsecondsPerProof} | ${r.shareOfBearerRequest ?? '—'} |`,
  ),
  '',
  coatcheckRps
    ? `The last column divides the proof's cost by the time one request takes at the bearer bench's ${Math.round(coatcheckRps)} req/s (bench/results/latest.json, its own machine and date).`
    : '',
  '',
].join('\n');

writeFileSync('bench/results/dpop.json', `${JSON.stringify(result, null, 2)}\n`);
writeFileSync('bench/results/dpop.md', md);
process.stdout.write(md);
