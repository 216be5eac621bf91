// Where a coatcheck process spends its CPU: a V8 CPU profile (node --cpu-prof) summarised by owner.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const OWNERS = [
  ['metrics (prom-client)', /node_modules\/prom-client\//],
  ['logging (pino)', /node_modules\/(pino|sonic-boom|thread-stream|fast-redact)/],
  ['undici', /node_modules\/undici\//],
  ['express', /node_modules\/(express|router|body-parser|finalhandler|send|serve-static)\//],
  ['cookies and signatures', /node_modules\/(cookie|cookie-signature)\//],
  ['ioredis', /node_modules\/(ioredis|@ioredis|redis-parser|denque)\//],
  ['opentelemetry', /node_modules\/@opentelemetry\//],
  ['other dependencies', /node_modules\//],
  // Split out so the bench shows what metrics cost, and that tracing, when off, costs nothing.
  ['metrics (coatcheck)', /\/dist\/(lean-)?metrics\.js$/],
  ['tracing (coatcheck)', /\/dist\/tracing\//],
  ['coatcheck', /\/dist\//],
  ['Node.js internals', /^node:/],
];

function ownerOf(frame) {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'garbage collection';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8 and native (program)';
    return 'native code (I/O, parsers, V8 builtins)';
  }
  return OWNERS.find(([, re]) => re.test(url))?.[0] ?? 'other';
}

/**
 * Reads the one .cpuprofile in `dir` and returns self time by owner and the top functions, over
 * the profile's last `windowS` seconds (the measured load, not start-up), less the final half
 * second (shutdown); or, given `range`, from `fromS` to `toS` seconds after the profile began.
 */
export function summariseProfile(dir, windowS, top = 15, range) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const hits = new Map();
  const times = [];
  let t = 0;
  for (const d of profile.timeDeltas) times.push((t += d));
  const end = range ? range.toS * 1e6 : times.at(-1) - 500_000;
  const from = range ? range.fromS * 1e6 : end - windowS * 1e6;
  profile.samples.forEach((id, i) => {
    if (times[i] >= from && times[i] <= end) hits.set(id, (hits.get(id) ?? 0) + 1);
  });
  const owners = new Map();
  const functions = new Map();
  let busy = 0;
  for (const [id, n] of hits) {
    const node = byId.get(id);
    const owner = ownerOf(node.callFrame);
    if (owner === 'idle') continue;
    busy += n;
    owners.set(owner, (owners.get(owner) ?? 0) + n);
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + n);
  }
  const share = (m) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([name, n]) => ({ name, percent: (100 * n) / busy }));
  return { file, samples: busy, owners: share(owners), functions: share(functions).slice(0, top) };
}

/** Share of busy CPU of the owners whose name matches `re`; 0 when none was sampled. */
export function shareOf(p, re) {
  return p.owners.filter((o) => re.test(o.name)).reduce((sum, o) => sum + o.percent, 0);
}

export function profileMarkdown(p, what) {
  return `## Where the time goes: ${what}

A V8 CPU profile (\`node --cpu-prof\`) of coatcheck under the same wrk load, ${p.samples} busy samples; idle time left out.

- Metrics (prom-client and coatcheck's metrics module): ${shareOf(p, /^metrics/).toFixed(1)}% of busy CPU.
- Tracing, off in this run (OpenTelemetry and coatcheck's tracing modules): ${shareOf(p, /^(tracing|opentelemetry)/).toFixed(1)}% of busy CPU.

| owner | share of busy CPU |
|---|---:|
${p.owners.map((o) => `| ${o.name} | ${o.percent.toFixed(1)}% |`).join('\n')}

Top functions by self time:

| function | self |
|---|---:|
${p.functions.map((f) => `| \`${f.name}\` | ${f.percent.toFixed(1)}% |`).join('\n')}
`;
}
