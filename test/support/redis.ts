import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startCoatcheck } from '../../src/start.js';
import { freePort } from './ports.js';
import type { RedisTlsFiles } from './tls-certs.js';

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface RedisServerOptions {
  /** Serve TLS only, on the port (no plain port): the url is then rediss://. */
  tls?: RedisTlsFiles;
  /** Persist every write to an append-only file in this directory (fsync always), kept across restarts. */
  appendOnlyDir?: string;
}

/** The port arguments: plain, or TLS only with clients that need no certificate of their own. */
function portArgs(port: number, tls: RedisTlsFiles | undefined): string[] {
  if (!tls) return ['--port', String(port)];
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.certFile,
    '--tls-key-file',
    tls.keyFile,
    '--tls-ca-cert-file',
    tls.caFile,
    '--tls-auth-clients',
    'no',
  ];
}

async function spawnRedis(port: number, options: RedisServerOptions): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      ...portArgs(port, options.tls),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      ...(options.appendOnlyDir
        ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', options.appendOnlyDir]
        : ['--appendonly', 'no']),
      '--protected-mode',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run redis-server (is it installed?): ${err.message}`));
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

/** A real redis-server on a free port (never 6379), owned by the test: it can be stopped and restarted. */
export async function startRedis(options: RedisServerOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined = await spawnRedis(port, options);
  return {
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    async stop() {
      if (!child) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      child = undefined;
    },
    async start() {
      if (!child) child = await spawnRedis(port, options);
    },
  };
}

/** How a start-up against a Redis went: what startCoatcheck threw (or undefined), every log line, how long. */
export interface StartOutcome {
  readonly error: unknown;
  readonly logs: string;
  readonly ms: number;
}

/**
 * Starts coatcheck as main.ts does with `env` naming a Redis, and closes it again if it started. Its
 * IdP is unreachable: the store opens first, so a Redis problem shows before discovery would fail.
 */
export async function startAgainstRedis(env: Record<string, string>): Promise<StartOutcome> {
  const lines: string[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  );
  const config = loadConfig({
    BFF_PORT: '0',
    BFF_HOST: '127.0.0.1',
    BFF_PUBLIC_URL: 'http://127.0.0.1:3000',
    BFF_ISSUER: 'http://127.0.0.1:9',
    BFF_CLIENT_ID: 'client',
    BFF_CLIENT_SECRET: 'secret',
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:9' }]),
    ...env,
  });
  const started = Date.now();
  const error = await startCoatcheck(config, { log }).then(
    async (coatcheck) => {
      await coatcheck.close(0);
      return undefined;
    },
    (err: unknown) => err,
  );
  return { error, logs: lines.join(''), ms: Date.now() - started };
}
