import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { request } from 'undici';
import { loadConfig } from '../src/config/load.js';
import { CLIENT_SECRET, startStack, type Stack } from './support/stack.js';

describe('BFF_STATIC_DIR serves a built SPA', () => {
  let stack: Stack;
  const dir = mkdtempSync(join(tmpdir(), 'coatcheck-spa-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>spa</title><div id=app></div>');
  writeFileSync(join(dir, 'app.3f9a2b1c.js'), 'console.log(1)');
  writeFileSync(join(dir, 'favicon.ico'), 'icon');
  writeFileSync(join(dir, 'apple-touch-icon.png'), 'icon');
  writeFileSync(join(dir, 'index-BdXkqZpa.css'), 'body{}');

  beforeAll(async () => {
    stack = await startStack({ env: { BFF_STATIC_DIR: dir } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${stack.bff.url}${path}`, { headers });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  test('index.html at / with no-cache', async () => {
    const res = await get('/', { accept: 'text/html' });
    expect(res.status).toBe(200);
    expect(res.text).toContain('<div id=app>');
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  test('client-side routes fall back to index.html', async () => {
    const res = await get('/orders/42', { accept: 'text/html,application/xhtml+xml' });
    expect(res.status).toBe(200);
    expect(res.text).toContain('<div id=app>');
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  test('hashed assets are immutable for a year; unhashed ones revalidate', async () => {
    const hashed = await get('/app.3f9a2b1c.js');
    expect(hashed.status).toBe(200);
    expect(hashed.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await get('/index-BdXkqZpa.css')).headers['cache-control']).toBe(
      'public, max-age=31536000, immutable',
    );
    const plain = await get('/favicon.ico');
    expect(plain.headers['cache-control']).toBe('no-cache');
    expect((await get('/apple-touch-icon.png')).headers['cache-control']).toBe('no-cache');
    expect(plain.headers.etag).toBeDefined();
  });

  test('a missing asset is a 404, not index.html', async () => {
    const res = await get('/missing.js');
    expect(res.status).toBe(404);
  });

  test('API routes and /bff endpoints still win', async () => {
    expect((await get('/api/x', { accept: 'text/html' })).status).toBe(403);
    expect((await get('/bff/user', { accept: 'text/html' })).status).toBe(403);
    expect((await get('/bff/nope', { accept: 'text/html' })).status).toBe(404);
  });

  test('a directory without index.html is a configuration error', () => {
    expect(() => loadConfig({ ...envOf(stack), BFF_STATIC_DIR: `${tmpdir()}/does-not-exist` })).toThrow(
      /BFF_STATIC_DIR: must be a directory containing index.html/,
    );
  });
});

function envOf(stack: Stack): Record<string, string> {
  const c = stack.bff.config;
  return {
    BFF_PUBLIC_URL: c.publicUrl,
    BFF_ISSUER: c.issuer,
    BFF_CLIENT_ID: c.client.id,
    BFF_CLIENT_SECRET: CLIENT_SECRET,
    BFF_SESSION_SECRET: c.sessionSecrets[0]!,
    BFF_SESSION_STORE: 'memory',
    BFF_ROUTES: '[]',
  };
}

describe('BFF_SPA_DEV_SERVER proxies unmatched GETs and WebSocket upgrades to a dev server', () => {
  let stack: Stack;
  let dev: Server;
  const devSockets = new Set<Duplex>();
  const seen: { url: string; cookie?: string; authorization?: string }[] = [];

  beforeAll(async () => {
    dev = createServer((req, res) => {
      seen.push({ url: req.url!, cookie: req.headers.cookie, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<p>dev server: ${req.url}</p>`);
    });
    dev.on('upgrade', (req, socket) => {
      devSockets.add(socket);
      seen.push({ url: req.url!, cookie: req.headers.cookie });
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((resolve) => dev.listen(0, '127.0.0.1', resolve));
    const port = (dev.address() as { port: number }).port;
    stack = await startStack({ env: { BFF_SPA_DEV_SERVER: `http://127.0.0.1:${port}` } });
  });
  afterAll(async () => {
    for (const s of devSockets) s.destroy();
    await stack?.close();
    dev.closeAllConnections();
    await new Promise((r) => dev.close(r));
  });

  test('pages and assets come from the dev server, without coatcheck cookies or a token', async () => {
    const res = await request(`${stack.bff.url}/src/main.tsx?t=1`, {
      headers: { cookie: 'coatcheck=abc.def; theme=dark' },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('<p>dev server: /src/main.tsx?t=1</p>');
    expect(seen.at(-1)).toEqual({ url: '/src/main.tsx?t=1', cookie: 'theme=dark', authorization: undefined });
    expect(res.headers['content-security-policy']).toBeUndefined();
  });

  test('an HMR WebSocket upgrade is piped through', async () => {
    const { port } = new URL(stack.bff.url);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'GET /__vite_hmr HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: coatcheck=s; a=b\r\n\r\n',
        );
      });
      let data = '';
      socket.on('data', (d: Buffer) => {
        data += d.toString();
        if (data.includes('\r\n\r\n') && !data.includes('echo:')) socket.write('ping');
        if (data.includes('echo:ping')) {
          socket.destroy();
          resolve(data);
        }
      });
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1.1 101/);
    expect(seen.at(-1)).toEqual({ url: '/__vite_hmr', cookie: 'a=b' });
  });
});

describe('the demo SPA as coatcheck serves it', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ env: { BFF_STATIC_DIR: join(process.cwd(), 'src/demo/spa') } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('has a favicon: an SVG file, linked from index.html', async () => {
    const index = await request(`${stack.bff.url}/`, { headers: { accept: 'text/html' } });
    expect(await index.body.text()).toMatch(/<link rel="icon" href="\/favicon.svg" type="image\/svg\+xml"/);
    const icon = await request(`${stack.bff.url}/favicon.svg`);
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toMatch(/^image\/svg\+xml/);
    expect(await icon.body.text()).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });
});

test('production code never imports the demo: only main.ts, behind the demo-mode branch', () => {
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'demo') walk(path);
      } else if (path.endsWith('.ts') && /from '\.{1,2}\/(\.\.\/)*demo\//.test(readFileSync(path, 'utf8'))) {
        offenders.push(path);
      }
    }
  };
  walk('src');
  expect(offenders).toEqual([]);
  expect(readFileSync('src/main.ts', 'utf8')).toMatch(/await import\('\.\/demo\/run\.js'\)/);
});
