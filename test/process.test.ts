import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { Client, request } from 'undici';
import { startIdp, type Idp } from '../src/demo/idp.js';
import { Browser } from './support/browser.js';
import { freePort, waitFor } from './support/ports.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ALICE, AUDIENCE, CLIENT_ID, CLIENT_SECRET, SESSION_SECRET } from './support/stack.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';
import { csrf, loggedIn } from './support/session.js';

/** The real entry point, as `npm start` runs it: compiled, in its own process, configured by environment. */
beforeAll(() => {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}, 60_000);

function run(env: Record<string, string>): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return { child, out: () => out, err: () => err };
}

test('a misconfiguration stops start-up with every problem listed and no secret printed', async () => {
  const p = run({
    BFF_ISSUER: 'https://idp.example.com',
    BFF_CLIENT_SECRET: 'a-client-secret-that-must-not-be-printed',
    BFF_SESSION_SECRET: 'too-short-secret-value',
    BFF_PORT: 'not-a-port',
    BFF_DEMO_PORT: '1',
  });
  const [code] = (await once(p.child, 'exit')) as [number];
  expect(code).toBe(1);
  const err = p.err();
  for (const name of [
    'BFF_PUBLIC_URL',
    'BFF_CLIENT_ID',
    'BFF_SESSION_SECRET',
    'BFF_ROUTES',
    'BFF_REDIS_URL',
    'BFF_PORT',
  ]) {
    expect(err).toContain(name);
  }
  expect(err).not.toContain('a-client-secret-that-must-not-be-printed');
  expect(err).not.toContain('too-short-secret-value');
  expect(p.out()).not.toContain('listening');
});

test('without BFF_ISSUER and with NODE_ENV=production it refuses to start rather than run demo mode', async () => {
  const p = run({ NODE_ENV: 'production', BFF_ISSUR: 'https://idp.example.com' });
  const [code] = (await once(p.child, 'exit')) as [number];
  expect(code).toBe(1);
  expect(p.err()).toContain('BFF_ISSUER: is required (demo mode is disabled when NODE_ENV=production)');
  expect(p.err()).toContain(
    'BFF_ISSUR: is not a coatcheck variable and is ignored; did you mean BFF_ISSUER?',
  );
});

/** Exit code, or undefined if the process got as far as printing `readyText` (it is then killed). */
async function outcome(p: ReturnType<typeof run>, readyText: string): Promise<number | undefined> {
  const exited = once(p.child, 'exit').then(([code]) => code as number);
  const result = await new Promise<number | undefined>((resolve) => {
    const onData = (): void => {
      if (p.out().includes(readyText)) resolve(undefined);
    };
    p.child.stdout!.on('data', onData);
    void exited.then((code) => {
      p.child.stdout!.off('data', onData);
      resolve(code);
    });
  });
  if (p.child.exitCode === null) {
    p.child.kill('SIGKILL');
    await exited;
  }
  return result;
}

test('production variables without BFF_ISSUER are refused instead of starting a demo', async () => {
  const [app, idp, api] = await Promise.all([freePort(), freePort(), freePort()]);
  const p = run({
    BFF_ISSUR: 'https://idp.example.com',
    BFF_CLIENT_ID: 'spa',
    BFF_ROUTES: '[{"path":"/api","target":"http://127.0.0.1:5000"}]',
    BFF_PUBLIC_URL: 'https://app.example.com',
    BFF_SESSION_SECRET: 'a-session-secret-that-must-never-be-printed',
    BFF_PORT: String(app),
    BFF_DEMO_IDP_PORT: String(idp),
    BFF_DEMO_API_PORT: String(api),
  });
  expect(await outcome(p, 'demo is running')).toBe(1);
  const err = p.err();
  expect(err).toContain(
    'coatcheck: invalid configuration:\n  - BFF_ISSUER: is required, because production variables are set (BFF_CLIENT_ID, BFF_PUBLIC_URL, BFF_ROUTES, BFF_SESSION_SECRET)',
  );
  expect(err).toContain('To run the demo instead');
  expect(err).toContain('BFF_ISSUR: is not a coatcheck variable and is ignored; did you mean BFF_ISSUER?');
  expect(err).not.toContain('a-session-secret-that-must-never-be-printed');
  expect(p.out()).not.toContain('demo');
});

describe('a port already in use in demo mode names the server and the variable that moves it', () => {
  let blocker: Server;
  afterEach(async () => {
    await new Promise((resolve) => blocker.close(resolve));
  });

  test.each([
    ['BFF_PORT', 'the app (coatcheck)'],
    ['BFF_DEMO_IDP_PORT', 'the demo IdP'],
    ['BFF_DEMO_API_PORT', 'the demo API'],
  ])('%s', async (variable, server) => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as { port: number }).port;
    const ports: Record<string, string> = {
      BFF_PORT: String(await freePort()),
      BFF_DEMO_IDP_PORT: String(await freePort()),
      BFF_DEMO_API_PORT: String(await freePort()),
      [variable]: String(taken),
    };
    const p = run(ports);
    expect(await outcome(p, 'demo is running')).toBe(1);
    expect(p.err()).toContain(
      `${variable}: port ${taken} on 127.0.0.1 is already in use, so ${server} cannot start; stop what uses it, or set ${variable} to a free port`,
    );
    expect(p.err()).not.toMatch(/^\s+at /m);
  });
});

test('a port already in use in production is one line naming BFF_PORT, not a stack', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const taken = (blocker.address() as { port: number }).port;
  try {
    const p = run({
      BFF_PORT: String(taken),
      BFF_HOST: '127.0.0.1',
      BFF_PUBLIC_URL: 'http://localhost:8080',
      // Discovery failing at boot is retried on demand, so start-up gets as far as listening.
      BFF_ISSUER: `http://127.0.0.1:${await freePort()}`,
      BFF_CLIENT_ID: CLIENT_ID,
      BFF_CLIENT_SECRET: CLIENT_SECRET,
      BFF_SESSION_STORE: 'memory',
      BFF_SESSION_SECRET: SESSION_SECRET,
      BFF_ROUTES: '[{"path":"/api","target":"http://127.0.0.1:5000"}]',
    });
    expect(await outcome(p, 'coatcheck listening')).toBe(1);
    expect(p.err()).toContain(
      `BFF_PORT: port ${taken} on 127.0.0.1 is already in use; stop what uses it, or set BFF_PORT to a free port`,
    );
    expect(p.err()).not.toMatch(/^\s+at /m);
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});

/** A real coatcheck process on a free port, with its own Redis, IdP and upstream; `env` adds to its configuration. */
async function startConfiguredProcess(env: Record<string, string>): Promise<{
  url: string;
  idp: Idp;
  redis: TestRedis;
  upstream: TestUpstream;
  proc: ReturnType<typeof run>;
}> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const [redis, upstream] = await Promise.all([startRedis(), startUpstream()]);
  const idp = await startIdp({
    users: [ALICE],
    audience: AUDIENCE,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${url}/bff/callback`],
        post_logout_redirect_uris: [`${url}/`],
      },
    ],
  });
  const proc = run({
    BFF_PORT: String(port),
    BFF_HOST: '127.0.0.1',
    BFF_PUBLIC_URL: url,
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: CLIENT_ID,
    BFF_CLIENT_SECRET: CLIENT_SECRET,
    BFF_REDIS_URL: redis.url,
    BFF_SESSION_SECRET: SESSION_SECRET,
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: `${upstream.url}/v1` }]),
    ...env,
  });
  return { url, idp, redis, upstream, proc };
}

describe('a configured process', () => {
  let idp: Idp;
  let redis: TestRedis;
  let upstream: TestUpstream;
  let proc: ReturnType<typeof run>;
  let url: string;

  beforeAll(async () => {
    ({ url, idp, redis, upstream, proc } = await startConfiguredProcess({
      BFF_UPSTREAM_TIMOUT: '5',
      BFF_SHUTDOWN_DELAY: '0.5',
    }));
    await waitFor(
      () => (proc.out().includes('coatcheck listening') ? true : undefined),
      15_000,
      'the process to listen',
    );
  }, 30_000);

  afterAll(async () => {
    if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await Promise.all([idp?.close(), redis?.stop(), upstream?.close()]);
  });

  const logLines = (): Record<string, unknown>[] =>
    proc
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test('logs its effective configuration once at start-up, without a secret', () => {
    const lines = logLines().filter((l) => l.msg === 'effective configuration');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      config: {
        issuer: idp.issuer,
        publicUrl: url,
        store: `redis at ${redis.url}`,
        routes: [`/api -> ${upstream.url}/v1`],
        timeoutsSeconds: {
          sessionIdle: 1800,
          sessionAbsolute: 28800,
          sessionCache: 5,
          upstream: 30,
          headers: 20,
        },
      },
    });
    const text = JSON.stringify(lines[0]);
    expect(text).not.toContain(CLIENT_SECRET);
    expect(text).not.toContain(SESSION_SECRET);
  });

  test('warns through the logger about an unknown BFF_* name, with the closest known one', () => {
    expect(logLines()).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: 'BFF_UPSTREAM_TIMOUT: is not a coatcheck variable and is ignored; did you mean BFF_UPSTREAM_TIMEOUT?',
      }),
    );
  });

  test('serves a real login and proxies with the token', async () => {
    const b = new Browser();
    const landed = await b.login(url);
    expect(landed.history).toContain(`${url}/`);
    const api = await b.go(`${url}/api/hello`, { headers: csrf });
    expect(api.status).toBe(200);
    expect(String(upstream.requests.at(-1)!.headers.authorization)).toMatch(/^Bearer ey/);
    // Logs are JSON lines with request ids.
    const logged = await waitFor(
      () =>
        proc
          .out()
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.msg === 'request' && l.path === '/api/hello'),
      5000,
      'the request log line',
    );
    expect(logged).toMatchObject({
      reqId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: 200,
      method: 'GET',
    });
  });

  test('SIGTERM stops accepting, lets the in-flight request finish, closes Redis and exits 0', async () => {
    const b = await loggedIn(url);
    const cookie = await b.jar.getCookieString(url);
    const inflight = request(`${url}/api/gate/slow`, { headers: { ...csrf, cookie } });
    await waitFor(
      () => (upstream.requests.some((r) => r.url.includes('/gate/slow')) ? true : undefined),
      5000,
      'upstream',
    );
    const exited = once(proc.child, 'exit');
    proc.child.kill('SIGTERM');
    // The upstream answers only once the drain has begun, so the request is still in flight then.
    await waitFor(
      () => (proc.out().includes('shutting down: draining in-flight requests') ? true : undefined),
      5000,
      'the drain',
    );
    upstream.openGate('slow');
    const res = await inflight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow');
    const [code] = (await exited) as [number];
    expect(code).toBe(0);
    expect(proc.out()).toContain('"msg":"stopped"');
    await expect(request(`${url}/healthz`)).rejects.toThrow();
  });
});

describe('SIGTERM under a steady concurrent load', () => {
  const DELAY_MS = 1000;
  const TIMEOUT_MS = 5000;
  let idp: Idp;
  let redis: TestRedis;
  let upstream: TestUpstream;
  let proc: ReturnType<typeof run>;
  let url: string;

  beforeAll(async () => {
    ({ url, idp, redis, upstream, proc } = await startConfiguredProcess({
      BFF_LOG_LEVEL: 'warn',
      BFF_SHUTDOWN_DELAY: String(DELAY_MS / 1000),
      BFF_SHUTDOWN_TIMEOUT: String(TIMEOUT_MS / 1000),
    }));
    await waitFor(
      async () => {
        const res = await request(`${url}/readyz`).catch(() => undefined);
        await res?.body.dump();
        return res?.statusCode === 200 ? true : undefined;
      },
      15_000,
      'the process to be ready',
    );
  }, 30_000);

  afterAll(async () => {
    if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    await Promise.all([idp?.close(), redis?.stop(), upstream?.close()]);
  });

  /**
   * A fresh connection: its status, 'refused', or 'raced' when it reached the kernel's queue just as
   * the listener closed (the kernel then resets it: it was never accepted).
   */
  async function fresh(path: string): Promise<number | 'refused' | 'raced'> {
    try {
      const res = await request(`${url}${path}`, { reset: true });
      await res.body.dump();
      return res.statusCode;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') return 'refused';
      if (code === 'ECONNRESET') return 'raced';
      throw new Error(`fresh ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  test('readiness flips at once, nothing sent fails, new connections are refused after the delay, the download completes, exit 0', async () => {
    const b = new Browser();
    await b.login(url);
    const cookie = await b.jar.getCookieString(url);

    // Eight keep-alive clients, half on /healthz, half on an API call through the real upstream.
    const failures: string[] = [];
    const successAt: number[] = [];
    let refusedAt: number | undefined;
    let flippedAt: number | undefined;
    const loops = Array.from({ length: 8 }, async (_, i) => {
      const client = new Client(url, { pipelining: 1 });
      const api = i % 2 === 1;
      try {
        for (let n = 0; n < 20_000; n++) {
          let res;
          try {
            res = await client.request({
              method: 'GET',
              path: api ? '/api/hello' : '/healthz',
              headers: api ? { 'x-csrf': '1', cookie } : {},
            });
          } catch (err) {
            // Only a connection that was never accepted is a request never sent.
            if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') return n;
            failures.push(`client ${i} request ${n}: ${(err as Error).message}`);
            return n;
          }
          try {
            const body = (await res.body.json()) as Record<string, unknown>;
            if (res.statusCode !== 200) failures.push(`client ${i}: status ${res.statusCode}`);
            else if (api ? body.url !== '/v1/hello' : body.status !== 'ok')
              failures.push(`client ${i}: body ${JSON.stringify(body)}`);
            else successAt.push(Date.now());
          } catch (err) {
            failures.push(`client ${i} response ${n}: ${(err as Error).message}`);
            return n;
          }
        }
        failures.push(`client ${i}: never refused`);
        return -1;
      } finally {
        await client.destroy();
      }
    });
    await waitFor(() => (successAt.length >= 80 ? true : undefined), 10_000, 'steady load');

    // A long download, read only after the listener has closed, so it is in flight through the whole drain.
    const BYTES = 32 * 1024 * 1024;
    const downloader = new Client(url);
    const download = await downloader.request({
      method: 'GET',
      path: `/api/big?bytes=${BYTES}`,
      headers: { 'x-csrf': '1', cookie },
    });
    expect(download.statusCode).toBe(200);

    const exited = once(proc.child, 'exit');
    const signalledAt = Date.now();
    proc.child.kill('SIGTERM');

    await waitFor(
      async () => {
        const status = await fresh('/readyz');
        if (status === 503) flippedAt = Date.now();
        return flippedAt;
      },
      DELAY_MS,
      '/readyz to answer 503',
    );
    const servedAfterFlip = successAt.length;
    await waitFor(
      async () => {
        if ((await fresh('/healthz')) === 'refused') refusedAt = Date.now();
        return refusedAt;
      },
      DELAY_MS + 2000,
      'new connections to be refused',
    );
    // Still served while load balancers notice, and only refused once the delay is over.
    expect(successAt.length).toBeGreaterThan(servedAfterFlip);
    expect(refusedAt! - signalledAt).toBeGreaterThanOrEqual(DELAY_MS);

    let received = 0;
    try {
      for await (const chunk of download.body) received += (chunk as Buffer).length;
    } catch (err) {
      throw new Error(
        `download after ${received} bytes: ${(err as Error).message}; log: ${proc.out()} ${proc.err()}`,
        { cause: err },
      );
    }
    expect(received).toBe(BYTES);
    await downloader.close();

    const ends = await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(ends.every((n) => n > 0)).toBe(true);

    const [code] = (await exited) as [number];
    expect(code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(DELAY_MS + TIMEOUT_MS);
    expect(proc.err()).toBe('');
  }, 30_000);
});
