// The package as a user gets it: `npm pack`, install the tarball into an empty directory, run
// `npx coatcheck` (demo mode) there, import it from plain ESM, and type-check a TypeScript consumer
// against its published types with this repository's tsc. One line on success; non-zero on failure.
// Run from .ci/run (it installs packages, so it is not part of npm test): node tools/pack-check.mjs
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'coatcheck-pack-'));
const consumer = join(work, 'consumer');
let demo;

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? err.message}`, {
      cause: err,
    });
  }
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Polls until `check` returns a value; the demo has no event to wait on from outside its process. */
async function waitFor(check, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (demo?.exitCode !== null && demo?.exitCode !== undefined) {
      throw new Error(`npx coatcheck exited (${demo.exitCode}) before ${what}:\n${demo.output}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${demo?.output ?? ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function checkDemo() {
  const [port, idpPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  // Demo mode as a user starts it: none of this shell's BFF_* settings, and not in production.
  const inherited = Object.entries(process.env).filter(
    ([name]) => !name.startsWith('BFF_') && name !== 'NODE_ENV',
  );
  const env = {
    ...Object.fromEntries(inherited),
    BFF_PORT: String(port),
    BFF_DEMO_IDP_PORT: String(idpPort),
    BFF_DEMO_API_PORT: String(apiPort),
  };
  // Its own process group, so the stop below reaches node behind npx.
  const child = spawn('npx', ['--no-install', 'coatcheck'], { cwd: consumer, env, detached: true });
  demo = { child, output: '', exitCode: null };
  child.stdout.on('data', (d) => (demo.output += d));
  child.stderr.on('data', (d) => (demo.output += d));
  const exited = new Promise((ok) =>
    child.once('exit', (code, signal) => ok((demo.exitCode = code ?? signal))),
  );
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => ((await fetch(`${base}/healthz`)).status === 200 ? true : undefined),
      '/healthz',
    );
    const page = await fetch(`${base}/`);
    const html = await page.text();
    if (page.status !== 200 || !html.includes('<title>coatcheck demo</title>')) {
      throw new Error(`the demo page answered ${page.status}: ${html.slice(0, 200)}`);
    }
  } finally {
    process.kill(-child.pid, 'SIGTERM');
    await exited;
  }
}

const ESM_CHECK = `
import assert from 'node:assert/strict';
import { createBff, ConfigError, BffError, UnknownResourceError } from 'coatcheck';
assert.equal(typeof createBff, 'function');
assert.equal(typeof BffError, 'function');
assert.equal(typeof UnknownResourceError, 'function');
const err = await createBff({ publicUrl: 'nope', routes: [] }).then(() => undefined, (e) => e);
assert.ok(err instanceof ConfigError, 'createBff rejects bad options with a ConfigError');
for (const name of ['publicUrl', 'issuer', 'clientId', 'sessionSecret', 'routes']) {
  assert.ok(err.problems.some((p) => p.startsWith(name + ':')), 'names ' + name + ': ' + err.message);
}
`;

const TS_CONSUMER = `
import express from 'express';
import { createBff, BffError, type Bff, type BffOptions } from 'coatcheck';

const options: BffOptions = {
  publicUrl: 'http://localhost:3000',
  issuer: 'https://idp.example.com',
  clientId: 'my-app',
  clientSecret: 'secret',
  sessionSecret: 'a secret of at least thirty-two characters',
  redisUrl: 'redis://127.0.0.1:6379',
  routes: [{ path: '/api', target: 'https://api.example.com/v1' }],
  sessionIdleTimeout: 1800,
  trustProxy: 1,
};
// @ts-expect-error durations are numbers of seconds, not strings
const wrong: BffOptions = { ...options, sessionIdleTimeout: '1800' };
void wrong;

export async function build(): Promise<{ app: express.Express; bff: Bff }> {
  const bff = await createBff(options);
  const app = express();
  app.use(bff.middleware);
  app.get('/me', bff.requireSession(), (req, res) => {
    const claims: Readonly<Record<string, unknown>> | undefined = req.bff?.claims;
    res.json({ claims });
  });
  app.get('/orders', bff.requireSession({ csrf: false }), async (req, res, next) => {
    try {
      const token: string = await bff.getAccessToken(req, { resource: '/api' });
      const upstream = await fetch('https://api.example.com/v1/orders', {
        headers: { authorization: \`Bearer \${token}\` },
      });
      res.json(await upstream.json());
    } catch (err) {
      if (err instanceof BffError) res.status(err.status).json(err.toJSON());
      else next(err);
    }
  });
  return { app, bff };
}
`;

try {
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], repo))[0];
  const tarball = join(work, packed.filename);
  mkdirSync(consumer);
  writeFileSync(
    join(consumer, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      tarball,
      'express@^5',
      '@types/express@^5',
      '@types/node@^20',
    ],
    consumer,
  );

  await checkDemo();

  writeFileSync(join(consumer, 'check.mjs'), ESM_CHECK);
  run(process.execPath, ['check.mjs'], consumer);

  writeFileSync(join(consumer, 'app.ts'), TS_CONSUMER);
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['app.ts'],
    }),
  );
  run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', consumer], consumer);

  console.log(
    `pack check: ${packed.filename} (${packed.entryCount} files, ${Math.round(packed.size / 1024)} kB) installs; ` +
      'npx coatcheck answers /healthz and the demo page; ESM import and the TypeScript consumer check out',
  );
} catch (err) {
  console.error(`pack check FAILED: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
