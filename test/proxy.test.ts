import { connect } from 'node:net';
import { request } from 'undici';
import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

let stack: Stack;
let alice: Browser;

beforeAll(async () => {
  stack = await startStack({ env: { BFF_UPSTREAM_TIMEOUT: '0.5' } });
  alice = await loggedIn(stack.bff);
});
afterAll(async () => {
  await stack?.close();
});

function lastUpstream() {
  return stack.upstream.requests.at(-1)!;
}

/** Sends a request byte for byte, for paths and headers an HTTP client library would normalise. */
async function rawGet(
  path: string,
  cookie: string,
  extra = 'Connection: close',
): Promise<{ status: number; text: string }> {
  const { port } = new URL(stack.bff.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-CSRF: 1\r\nCookie: ${cookie}\r\n${extra}\r\n\r\n`,
      );
    });
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString()));
    socket.on('end', () =>
      resolve({ status: Number(data.split(' ')[1]), text: data.split('\r\n\r\n')[1] ?? '' }),
    );
    socket.on('error', reject);
  });
}

async function cookieHeader(b: Browser): Promise<string> {
  return b.jar.getCookieString(stack.bff.url);
}

describe('API routes: guards', () => {
  test('403 JSON without X-CSRF: 1, with or without a session', async () => {
    for (const b of [alice, new Browser()]) {
      const page = await b.go(`${stack.bff.url}/api/things`);
      expect(page.status).toBe(403);
      expect(JSON.parse(page.text)).toEqual({ error: 'csrf_header_missing', message: expect.any(String) });
    }
    const wrong = await alice.go(`${stack.bff.url}/api/things`, { headers: { 'x-csrf': 'true' } });
    expect(wrong.status).toBe(403);
  });

  test.each([
    ['garbage', 'coatcheck=%%%garbage%%%'],
    ['a forged signature', 'coatcheck=abc.def'],
    ['an oversized value', `coatcheck=${'a'.repeat(8000)}`],
    ['many cookies', Array.from({ length: 200 }, (_, i) => `c${i}=v`).join('; ')],
  ])('401 JSON for %s in the cookie, never a 5xx', async (_name, cookie) => {
    const res = await request(`${stack.bff.url}/api/things`, { headers: { ...csrf, cookie } });
    expect(res.statusCode).toBe(401);
    expect(((await res.body.json()) as { error: string }).error).toBe('unauthenticated');
  });

  test('a cookie header too large for HTTP gets a 4xx from the server, and it keeps serving', async () => {
    const res = await request(`${stack.bff.url}/api/things`, {
      headers: { ...csrf, cookie: `coatcheck=${'a'.repeat(20_000)}` },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(431);
    const health = await request(`${stack.bff.url}/healthz`);
    await health.body.dump();
    expect(health.statusCode).toBe(200);
  });
});

describe('API routes: forwarding', () => {
  test('attaches a bearer token the IdP considers valid, for this user', async () => {
    const page = await alice.go(`${stack.bff.url}/api/things?a=1&b=two`, { headers: csrf });
    expect(page.status).toBe(200);
    const got = lastUpstream();
    expect(got.url).toBe('/v1/things?a=1&b=two');
    const auth = String(got.headers.authorization);
    expect(auth).toMatch(/^Bearer /);
    const claims = await stack.verifyAccessToken(auth.slice(7));
    expect(claims.sub).toBe('alice-0001');
  });

  test('removes coatcheck cookies, keeps the others', async () => {
    await alice.jar.setCookie('theme=dark; Path=/', stack.bff.url);
    await alice.go(`${stack.bff.url}/api/things`, { headers: csrf });
    const cookie = String(lastUpstream().headers.cookie);
    expect(cookie).toContain('theme=dark');
    expect(cookie).not.toMatch(/(^|;\s*)(__Host-)?coatcheck/);
  });

  test('a request carrying only coatcheck cookies reaches the upstream with no Cookie header', async () => {
    const onlySession = (await alice.jar.getCookies(stack.bff.url)).find((c) => c.key === 'coatcheck')!;
    const res = await request(`${stack.bff.url}/api/x`, {
      headers: { ...csrf, cookie: `coatcheck=${onlySession.value}` },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(lastUpstream().headers.cookie).toBeUndefined();
  });

  test('drops hop-by-hop headers, including those named in Connection; keeps the rest', async () => {
    const res = await rawGet(
      '/api/things',
      await cookieHeader(alice),
      [
        'Connection: close, x-hop',
        'X-Hop: secret-hop',
        'TE: trailers',
        'Proxy-Authorization: Basic Zm9vOmJhcg==',
        'Authorization: Bearer spa-supplied-token',
        'X-Custom: kept',
        'Accept: application/json',
        'Forwarded: for=1.2.3.4;host=evil.example',
        'X-Forwarded-For: 1.2.3.4',
        'X-Forwarded-Host: evil.example',
        'X-Forwarded-Prefix: /evil',
        'X-Real-IP: 1.2.3.4',
        'X-Original-URL: /admin',
        'X-Rewrite-URL: /admin',
        'X-HTTP-Method-Override: DELETE',
        'X-HTTP-Method: DELETE',
        'X-Method-Override: DELETE',
      ].join('\r\n'),
    );
    expect(res.status).toBe(200);
    const got = lastUpstream().headers;
    expect(got['x-hop']).toBeUndefined();
    expect(got.te).toBeUndefined();
    expect(got['proxy-authorization']).toBeUndefined();
    expect(got.authorization).not.toBe('Bearer spa-supplied-token');
    expect(got['x-custom']).toBe('kept');
    expect(got.accept).toBe('application/json');
    expect(got['x-csrf']).toBe('1');
    expect(got['x-forwarded-proto']).toBe('http');
    // Forwarding headers come from coatcheck, never from the client.
    expect(got.forwarded).toBeUndefined();
    expect(got['x-real-ip']).toBeUndefined();
    expect(got['x-forwarded-prefix']).toBeUndefined();
    for (const name of [
      'x-original-url',
      'x-rewrite-url',
      'x-http-method-override',
      'x-http-method',
      'x-method-override',
    ])
      expect(got[name]).toBeUndefined();
    expect(got['x-forwarded-for']).toBe('127.0.0.1');
    expect(got['x-forwarded-host']).toBe(new URL(stack.bff.url).host);
  });

  test('identity and client-address claims from the browser never reach the upstream', async () => {
    const claims = [
      'X-Forwarded-User: admin',
      'X-Forwarded-Email: admin@example.com',
      'X-Forwarded-Groups: admins',
      'X-Forwarded-Proto: https',
      'Forwarded: for=1.2.3.4',
      'X-Real-IP: 1.2.3.4',
      'True-Client-IP: 1.2.3.4',
      'X-Client-IP: 1.2.3.4',
      'CF-Connecting-IP: 1.2.3.4',
      'X-Cluster-Client-IP: 1.2.3.4',
      'X-Original-URI: /admin',
      'X-Original-Method: DELETE',
      'X-Original-Host: admin.example',
      'X-Host: admin.example',
      'Remote-User: admin',
      'X-Remote-User: admin',
      'X-Auth-Request-User: admin',
      'X-Auth-Request-Email: admin@example.com',
      'X-Amzn-Oidc-Identity: admin',
      'X-Amzn-Oidc-Data: e30.e30.',
      'X-Envoy-Original-Path: /admin',
      'X-Envoy-Peer-Metadata: x',
    ];
    const res = await rawGet(
      '/api/things',
      await cookieHeader(alice),
      ['Connection: close', 'X-Forwardedness: kept', 'X-User-Agent-Hint: kept', ...claims].join('\r\n'),
    );
    expect(res.status).toBe(200);
    const got = lastUpstream().headers;
    for (const line of claims) {
      const name = line.slice(0, line.indexOf(':')).toLowerCase();
      if (name === 'x-forwarded-proto') continue;
      expect([name, got[name]]).toEqual([name, undefined]);
    }
    // What coatcheck vouches for, and nothing the client said.
    expect(got['x-forwarded-proto']).toBe('http');
    expect(got['x-forwarded-for']).toBe('127.0.0.1');
    expect(got['x-forwarded-host']).toBe(new URL(stack.bff.url).host);
    expect(
      Object.keys(got)
        .filter((n) => n.startsWith('x-forwarded-'))
        .sort(),
    ).toEqual(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
    // Names that merely look alike are the API's business.
    expect(got['x-forwardedness']).toBe('kept');
    expect(got['x-user-agent-hint']).toBe('kept');
  });

  test.each(['POST', 'PUT', 'PATCH', 'DELETE'])('%s keeps method, body and content type', async (method) => {
    const body = JSON.stringify({ hello: 'world', method });
    const page = await alice.go(`${stack.bff.url}/api/items/7?x=1`, {
      method,
      headers: { ...csrf, 'content-type': 'application/json' },
      body,
    });
    expect(page.status).toBe(200);
    const got = lastUpstream();
    expect(got.method).toBe(method);
    expect(got.url).toBe('/v1/items/7?x=1');
    expect(got.body).toBe(body);
    expect(got.headers['content-type']).toBe('application/json');
  });

  test('passes status, headers and body back unchanged, including an upstream 401', async () => {
    const page = await alice.go(`${stack.bff.url}/api/status/418`, { headers: csrf });
    expect(page.status).toBe(418);
    expect(JSON.parse(page.text)).toEqual({ status: 418 });
    const unauthorized = await alice.go(`${stack.bff.url}/api/status/401`, { headers: csrf });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['www-authenticate']).toBe('Bearer');
    const ok = await alice.go(`${stack.bff.url}/api/echo`, { headers: csrf });
    expect(ok.headers['x-upstream']).toBe('yes');
    // helmet's headers apply to proxied responses too.
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
  });

  test('an upstream cannot set coatcheck cookies, and per-user answers are marked private for shared caches', async () => {
    const page = await alice.go(`${stack.bff.url}/api/cookie-and-cache`, { headers: csrf });
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('private, max-age=60');
    expect(page.setCookies).toEqual(['theme=light; Path=/']);
    expect((await alice.go(`${stack.bff.url}/bff/user`, { headers: csrf })).status).toBe(200);
  });

  test.each([
    ['two Cache-Control lines', 'cache-lines', 'private, max-age=60, must-revalidate'],
    ['a qualified private', 'cache-qualified-private', 'private, max-age=60, private="Set-Cookie"'],
  ])('%s: the answer still leaves marked private for shared caches', async (_name, path, expected) => {
    const page = await alice.go(`${stack.bff.url}/api/${path}`, { headers: csrf });
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe(expected);
  });

  test('streams large bodies both ways', async () => {
    const size = 8 * 1024 * 1024;
    const down = await request(`${stack.bff.url}/api/big?bytes=${size}`, {
      headers: { ...csrf, cookie: await cookieHeader(alice) },
    });
    let received = 0;
    for await (const chunk of down.body) received += (chunk as Buffer).length;
    expect(down.statusCode).toBe(200);
    expect(received).toBe(size);

    const upload = Buffer.alloc(3 * 1024 * 1024, 97);
    const up = await request(`${stack.bff.url}/api/upload`, {
      method: 'POST',
      headers: { ...csrf, cookie: await cookieHeader(alice), 'content-type': 'application/octet-stream' },
      body: upload,
    });
    await up.body.dump();
    expect(up.statusCode).toBe(200);
    expect(lastUpstream().body.length).toBe(upload.length);
  });

  test('matches whole segments and the longest route: /apix is no route, /api/admin wins over /api', async () => {
    const apix = await alice.go(`${stack.bff.url}/apix/things`, { headers: csrf });
    expect(apix.status).toBe(404);
    expect(JSON.parse(apix.text).error).toBe('not_found');
    await alice.go(`${stack.bff.url}/api/admin/users`, { headers: csrf });
    expect(lastUpstream().url).toBe('/admin/users');
    await alice.go(`${stack.bff.url}/api`, { headers: csrf });
    expect(lastUpstream().url).toBe('/v1');
    await alice.go(`${stack.bff.url}/root`, { headers: csrf });
    expect(lastUpstream().url).toBe('/');
  });

  test.each([
    '/api/../admin/users',
    '/api/x/../../admin',
    '/api/%2e%2e/admin',
    '/api/%2E%2e/admin',
    '/api/.%2e/admin',
    '/api/..%2fadmin',
    '/api/..%5cadmin',
    '/api/..\\admin',
    '/api/./x',
    '/api/%zz',
    '/api/..;/admin',
    '/api/%2e%2e;/admin',
    '/api/..%3b/admin',
    '/api/a/b/..#',
    '/api/%252e%252e/admin',
    '/api/%25252e%25252e/admin',
    '/api/%2525252e%2525252e/admin',
    '/api/.%00./admin',
    '/api/%20../admin',
    '/api/..%09/admin',
    '/api/%ef%bc%8e%ef%bc%8e/admin',
    '/api/%EF%BC%8E./admin',
  ])('refuses %s with 400 before anything reaches the upstream', async (path) => {
    const before = stack.upstream.requests.length;
    const res = await rawGet(path, await cookieHeader(alice));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).error).toBe('invalid_path');
    expect(stack.upstream.requests.length).toBe(before);
  });

  test('dots inside a segment are fine', async () => {
    const page = await alice.go(`${stack.bff.url}/api/files/report..v2.pdf`, { headers: csrf });
    expect(page.status).toBe(200);
    expect(lastUpstream().url).toBe('/v1/files/report..v2.pdf');
  });
});

describe('API routes: upstream failures', () => {
  test('an upstream slower than BFF_UPSTREAM_TIMEOUT gets 504 JSON', async () => {
    const page = await alice.go(`${stack.bff.url}/api/slow?ms=3000`, { headers: csrf });
    expect(page.status).toBe(504);
    expect(JSON.parse(page.text).error).toBe('upstream_timeout');
  });

  test('an unreachable upstream gets 502 JSON', async () => {
    const closed = await startStack({
      env: { BFF_ROUTES: JSON.stringify([{ path: '/api', target: 'http://127.0.0.1:1/v1' }]) },
    });
    try {
      const b = await loggedIn(closed.bff);
      const page = await b.go(`${closed.bff.url}/api/things`, { headers: csrf });
      expect(page.status).toBe(502);
      expect(JSON.parse(page.text).error).toBe('upstream_unreachable');
    } finally {
      await closed.close();
    }
  });
});

describe('refresh before forwarding (single request)', () => {
  test('an access token within the skew of expiry is refreshed first, and the new token is valid', async () => {
    const b = await loggedIn(stack.bff);
    await b.go(`${stack.bff.url}/api/first`, { headers: csrf });
    const firstToken = String(lastUpstream().headers.authorization);
    const session = (await stack.sessionOf(b))!;
    const refreshesBefore = stack.idp.counters.refreshGrants;

    // Just before the refresh point nothing happens…
    stack.clock.advance(session.tokens.refreshAt - stack.clock.now() - 1000);
    await b.go(`${stack.bff.url}/api/second`, { headers: csrf });
    expect(String(lastUpstream().headers.authorization)).toBe(firstToken);
    expect(stack.idp.counters.refreshGrants).toBe(refreshesBefore);

    // …just after it, the token is refreshed once before forwarding.
    stack.clock.advance(2000);
    const page = await b.go(`${stack.bff.url}/api/third`, { headers: csrf });
    expect(page.status).toBe(200);
    const secondToken = String(lastUpstream().headers.authorization);
    expect(secondToken).not.toBe(firstToken);
    expect((await stack.verifyAccessToken(secondToken.slice(7))).sub).toBe('alice-0001');
    expect(stack.idp.counters.refreshGrants).toBe(refreshesBefore + 1);
    const after = (await stack.sessionOf(b))!;
    expect(after.tokens.refreshToken).not.toBe(session.tokens.refreshToken);
    expect(stack.idp.counters.refreshReuse).toBe(0);
  });
});
