import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, waitFor } from './ports.js';

/**
 * coatcheck in its own process, as `npm start` runs it, started with --expose-gc and a probe that
 * answers an IPC message with its heap after a full collection. In its own process a crash is a
 * crash (an exit, seen here), and the heap measured is coatcheck's alone.
 */
export interface Instance {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr. */
  output(): string;
  /** How it exited, if it has. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** heapUsed in bytes after forced collections, measured inside the instance. */
  heapAfterGc(): Promise<number>;
  stop(): Promise<void>;
}

const PROBE = `
process.on('message', (m) => {
  if (m !== 'heap') return;
  // Twice: a first pass can leave garbage that only its finalizers released.
  globalThis.gc();
  globalThis.gc();
  process.send({ heapUsed: process.memoryUsage().heapUsed });
});
`;

/**
 * Compiles src once into a fresh directory: not dist/, which another suite may be writing, and under
 * node_modules/.cache so that the compiled files resolve the project's packages.
 */
export function compileOnce(): { dir: string; remove(): void } {
  const cache = join('node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = resolve(mkdtempSync(join(cache, 'coatcheck-fuzz-')));
  execFileSync(
    process.execPath,
    ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', dir, '--sourceMap', 'false'],
    { stdio: 'inherit' },
  );
  // Below node_modules no package.json of the project applies: say the compiled files are ESM.
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(dir, 'heap-probe.mjs'), PROBE);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startInstance(
  dir: string,
  env: Record<string, string>,
  port?: number,
): Promise<Instance> {
  const listenPort = port ?? (await freePort());
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', pathToFileURL(join(dir, 'heap-probe.mjs')).href, join(dir, 'main.js')],
    {
      env: { PATH: process.env.PATH ?? '', BFF_PORT: String(listenPort), BFF_HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  let out = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  child.on('exit', (code, signal) => (exit = { code, signal }));
  const url = `http://127.0.0.1:${listenPort}`;
  await waitFor(
    async () => {
      if (exit) throw new Error(`coatcheck exited at start-up (${JSON.stringify(exit)}):\n${out}`);
      const res = await fetch(`${url}/healthz`).catch(() => undefined);
      return res?.ok ? true : undefined;
    },
    30_000,
    'the coatcheck process to answer /healthz',
  );
  return {
    url,
    port: listenPort,
    child,
    output: () => out,
    exited: () => exit,
    async heapAfterGc() {
      const answer = once(child, 'message') as Promise<[{ heapUsed: number }]>;
      child.send('heap');
      const [{ heapUsed }] = await answer;
      return heapUsed;
    },
    async stop() {
      if (exit) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    },
  };
}
