// What every bench script shares: processes, ports, wrk, a scripted login and Redis counters.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { createServer, connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { sign, unsign } from 'cookie-signature';
import { CookieJar } from 'tough-cookie';
import { request } from 'undici';

export const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 64);
export const SECRET = 'bench-session-secret-0123456789abcdef';
export const CLIENT = { id: 'coatcheck-bench', secret: 'bench-client-secret-0123456789' };
const run = promisify(execFile);
const children = [];
export const tmpDirs = [];

export function ensureTools() {
  const missing = ['wrk', 'nginx', 'redis-server'].filter((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (!missing.length) return;
  console.log(`installing ${missing.join(', ')} from Debian's packages…`);
  const pkgs = missing.map((t) => (t === 'redis-server' ? 'redis-server' : t));
  execFileSync(
    'sh',
    ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkgs.join(' ')}`],
    {
      stdio: 'inherit',
    },
  );
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => (c.destroy(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start on port ${port}`);
    await delay(50);
  }
}

export function start(cmd, args, env = {}, what = cmd) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
  child.on('exit', (code) => {
    if (code && !child.stopping) console.error(`${what} exited with ${code}:\n${err}`);
  });
  children.push(child);
  return child;
}

export function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A scripted user: follows redirects, signs in and consents on the IdP's pages. */
export async function login(bffUrl) {
  const jar = new CookieJar();
  let url = `${bffUrl}/bff/login`;
  let init = { method: 'GET' };
  for (let hop = 0; hop < 25; hop++) {
    const cookie = await jar.getCookieString(url);
    const res = await request(url, { ...init, headers: { ...init.headers, ...(cookie ? { cookie } : {}) } });
    const text = await res.body.text();
    for (const c of [].concat(res.headers['set-cookie'] ?? []))
      await jar.setCookie(c, url, { ignoreError: true });
    if (res.statusCode >= 300 && res.statusCode < 400) {
      url = new URL(res.headers.location, url).href;
      init = { method: 'GET' };
      continue;
    }
    const form = /<form[^>]*action="([^"]+\/(login|confirm))"/.exec(text);
    if (!form) break;
    url = new URL(form[1], url).href;
    const body = form[2] === 'login' ? 'username=bench&password=bench' : '';
    init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  const session = (await jar.getCookies(bffUrl)).find((c) => c.key === 'coatcheck');
  if (!session) throw new Error('login through coatcheck failed');
  return `coatcheck=${session.value}`;
}

export async function wrk(url, headers, seconds, connections = CONNECTIONS, env) {
  const script = env?.BENCH_COOKIES ? 'bench/wrk-many.lua' : 'bench/wrk.lua';
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '-s', script, '--timeout', '5s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const { stdout } = await run('wrk', [...args, url], {
    maxBuffer: 1 << 20,
    env: { ...process.env, ...env },
  });
  const line = stdout
    .trim()
    .split('\n')
    .findLast((l) => l.startsWith('{'));
  const r = JSON.parse(line);
  const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
  return {
    rps: r.requests / (r.duration_us / 1e6),
    p50: r.latency_us.p50 / 1000,
    p99: r.latency_us.p99 / 1000,
    p999: r.latency_us.p999 / 1000,
    errors,
    requests: r.requests,
  };
}

export async function totalCommands(redis) {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))[1]);
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Stops every process this script started and removes its temporary directories. */
export async function stopAll() {
  for (const c of children) {
    c.stopping = true;
    c.kill('SIGTERM');
  }
  await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
}

/** What every results file states about the machine it was measured on. */
export function machine() {
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** A throw-away redis-server on `port`: nothing saved, nothing appended. */
export function startBenchRedis(port) {
  return start(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {},
    'redis',
  );
}

const BENCH_USER = {
  username: 'bench',
  password: 'bench',
  sub: 'bench-user-0001',
  claims: { name: 'Bench User', email: 'bench@example.com', email_verified: true },
};

/** The options of the bench's IdP: one user, and the bench client returning to `publicUrl`. */
export function benchIdpOptions(publicUrl, accessTokenTtl = 3600) {
  return {
    users: [BENCH_USER],
    accessTokenTtl,
    clients: [
      {
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${publicUrl}/bff/callback`],
        post_logout_redirect_uris: [`${publicUrl}/`],
      },
    ],
  };
}

/** The environment of a benched coatcheck: production mode, the bench client and Redis, one route /api. */
export function benchCoatcheckEnv({ port, publicUrl, issuer, redisUrl, upstreamPort, logLevel = 'info' }) {
  return {
    NODE_ENV: 'production',
    BFF_PORT: String(port),
    BFF_HOST: '127.0.0.1',
    BFF_PUBLIC_URL: publicUrl,
    BFF_ISSUER: issuer,
    BFF_CLIENT_ID: CLIENT.id,
    BFF_CLIENT_SECRET: CLIENT.secret,
    BFF_REDIS_URL: redisUrl,
    BFF_SESSION_SECRET: SECRET,
    // oidc-provider issues a refresh token for offline_access only with prompt=consent (OIDC Core §11).
    BFF_AUTH_PARAMS: 'prompt=consent',
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: `http://127.0.0.1:${upstreamPort}/v1` }]),
    BFF_LOG_LEVEL: logLevel,
  };
}

/**
 * `count` sessions in Redis, each holding one real login's tokens sealed afresh under its own id, and
 * their cookies written one per line to `file` (for bench/wrk-many.lua). The records are as large and
 * as costly to open as real ones, without that many logins at the IdP. They are not due during a run,
 * and each has a refresh token of its own length but never valid: a shared real one would be replayed
 * by the first two sessions to refresh, and the IdP would revoke the grant.
 */
export async function seedSessions(redisUrl, cookie, count, file) {
  const { RedisSessionStore } = await import('../dist/session/redis-store.js');
  const { Sessions } = await import('../dist/session/sessions.js');
  const store = new RedisSessionStore(redisUrl);
  await store.ready();
  const sessions = new Sessions(store, { idleMs: 1800_000, absoluteMs: 28_800_000 });
  const real = await sessions.load(unsign(decodeURIComponent(cookie.split('=')[1]), SECRET), Date.now());
  const seeded = {
    ...real.tokens,
    expiresAt: Date.now() + 3600_000,
    refreshAt: Date.now() + 3600_000,
    refreshToken: real.tokens.refreshToken?.replace(/./g, 'x'),
  };
  const lines = [];
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () =>
        sessions.create(real.data(), seeded, Date.now()),
      ),
    );
    for (const s of batch) lines.push(`coatcheck=${encodeURIComponent(sign(s.id, SECRET))}`);
  }
  await store.close();
  writeFileSync(file, `${lines.join('\n')}\n`);
}

/** The sum of a Prometheus metric's samples in a /metrics page, optionally those with a label. */
export function metric(text, name, label) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue;
    if (label && !rest.includes(label)) continue;
    sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** Counters of coatcheck's /metrics, summed over the instances whose metrics ports are given. */
export async function scrape(ports) {
  const pages = await Promise.all(
    ports.map(async (p) => (await request(`http://127.0.0.1:${p}/metrics`)).body.text()),
  );
  const total = (name, label) => pages.reduce((n, t) => n + metric(t, name, label), 0);
  return {
    refreshSuccess: total('coatcheck_token_refresh_total', 'outcome="success"'),
    refreshAll: total('coatcheck_token_refresh_total'),
    lockWaits: total('coatcheck_refresh_lock_wait_seconds_count'),
    lockWaitSum: total('coatcheck_refresh_lock_wait_seconds_sum'),
    cacheHit: total('coatcheck_session_cache_requests_total', 'result="hit"'),
    cacheMiss: total('coatcheck_session_cache_requests_total', 'result="miss"'),
    storeOps: total('coatcheck_store_operation_duration_seconds_count'),
  };
}
