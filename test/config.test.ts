import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { demoModeProblems } from '../src/config/names.js';
import { configProblems as problems, validEnv as valid } from './support/config-env.js';

test('applies the documented defaults', () => {
  const c = loadConfig(valid);
  expect(c.port).toBe(8080);
  expect(c.host).toBe('0.0.0.0');
  expect(c.redirectUri).toBe('https://app.example.com/bff/callback');
  expect(c.postLogoutRedirectUri).toBe('https://app.example.com/');
  expect(c.client.auth).toEqual({
    kind: 'secret',
    method: 'client_secret_basic',
    secret: valid.BFF_CLIENT_SECRET,
  });
  expect(c.scopes).toEqual(['openid', 'profile', 'email', 'offline_access']);
  // No prompt by default, offline_access or not: prompt=consent makes some IdPs ask at every login.
  expect(c.authParams).toEqual({});
  expect(c.sessionCacheTtlMs).toBe(5000);
  expect(c.warnings).toEqual([]);
  expect(c.store).toEqual({
    kind: 'redis',
    topology: 'standalone',
    url: 'redis://127.0.0.1:6380',
    username: undefined,
    password: undefined,
    caFile: undefined,
    keyPrefix: 'coatcheck:',
    waitTimeoutMs: 100,
  });
  expect(c.trustProxy).toBe(false);
  expect(c.idleTimeoutMs).toBe(1_800_000);
  expect(c.absoluteTimeoutMs).toBe(28_800_000);
  expect(c.refreshSkewMs).toBe(30_000);
  expect(c.upstreamTimeoutMs).toBe(30_000);
  expect(c.logLevel).toBe('info');
  expect(c.allowInsecureIssuer).toBe(false);
  expect(Object.isFrozen(c) && Object.isFrozen(c.routes) && Object.isFrozen(c.routes[0])).toBe(true);
});

test('reports every missing variable at once', () => {
  const list = problems({});
  for (const name of [
    'BFF_PUBLIC_URL',
    'BFF_ISSUER',
    'BFF_CLIENT_ID',
    'BFF_SESSION_SECRET',
    'BFF_ROUTES',
    'BFF_CLIENT_SECRET',
    'BFF_REDIS_URL',
  ]) {
    expect(list.some((p) => p.startsWith(`${name}:`))).toBe(true);
  }
});

test('reports every malformed variable at once, naming what is wrong and never echoing a value', () => {
  const list = problems({
    ...valid,
    BFF_PORT: 'eighty',
    BFF_PUBLIC_URL: 'app.example.com',
    BFF_SESSION_SECRET: 'short-secret-value',
    BFF_ROUTES: '[{"path":"api","target":"ftp://x"}]',
    BFF_SESSION_STORE: 'postgres',
    BFF_CLIENT_AUTH_METHOD: 'magic',
    BFF_REFRESH_SKEW: '-1',
    BFF_LOG_LEVEL: 'loud',
  });
  const text = list.join('\n');
  for (const name of [
    'BFF_PORT',
    'BFF_PUBLIC_URL',
    'BFF_SESSION_SECRET',
    'BFF_ROUTES',
    'BFF_SESSION_STORE',
    'BFF_CLIENT_AUTH_METHOD',
    'BFF_REFRESH_SKEW',
    'BFF_LOG_LEVEL',
  ]) {
    expect(text).toContain(`${name}:`);
  }
  expect(text).not.toContain('short-secret-value');
  expect(text).not.toContain(valid.BFF_CLIENT_SECRET);
});

test('validates routes: JSON, paths, targets, duplicates, and no overlap with /bff', () => {
  expect(problems({ ...valid, BFF_ROUTES: 'not json' })[0]).toMatch(/BFF_ROUTES: is not valid JSON/);
  expect(problems({ ...valid, BFF_ROUTES: '[{"path":"/api/","target":"http://x"}]' }).join()).toMatch(
    /end with/,
  );
  expect(problems({ ...valid, BFF_ROUTES: '[{"path":"/bff/x","target":"http://x"}]' }).join()).toMatch(
    /\/bff/,
  );
  expect(problems({ ...valid, BFF_ROUTES: '[{"path":"/a/../b","target":"http://x"}]' }).join()).toMatch(
    /\.\./,
  );
  expect(
    problems({
      ...valid,
      BFF_ROUTES: '[{"path":"/a","target":"http://x"},{"path":"/a","target":"http://y"}]',
    }).join(),
  ).toMatch(/twice/);
  expect(problems({ ...valid, BFF_ROUTES: '[{"path":"/a","target":"http://x?q=1"}]' }).join()).toMatch(
    /query/,
  );
});

test('client authentication: secret methods need a secret, private_key_jwt needs a usable key', () => {
  expect(problems({ ...valid, BFF_CLIENT_SECRET: undefined }).join()).toMatch(
    /BFF_CLIENT_SECRET: is required/,
  );
  expect(
    problems({ ...valid, BFF_CLIENT_SECRET: undefined, BFF_CLIENT_AUTH_METHOD: 'private_key_jwt' }).join(),
  ).toMatch(/BFF_CLIENT_PRIVATE_KEY: is required/);
  expect(
    problems({
      ...valid,
      BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
      BFF_CLIENT_PRIVATE_KEY: 'not a key',
    }).join(),
  ).toMatch(/BFF_CLIENT_PRIVATE_KEY: must be a PEM private key or a private JWK/);
});

describe('BFF_CLIENT_PRIVATE_KEY is parsed once, at start-up, by one rule', () => {
  const withKey = (key: string) => ({
    ...valid,
    BFF_CLIENT_SECRET: undefined,
    BFF_CLIENT_AUTH_METHOD: 'private_key_jwt',
    BFF_CLIENT_PRIVATE_KEY: key,
  });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  test('a PEM key is stored as PKCS#8 with the algorithm its type implies', () => {
    const pem = privateKey.export({ format: 'pem', type: 'sec1' }).toString();
    const c = loadConfig(withKey(pem));
    expect(c.client.auth).toMatchObject({ kind: 'private_key_jwt', alg: 'ES256', key: { format: 'pem' } });
    const auth = c.client.auth as { key: { pem: string } };
    expect(auth.key.pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  test('a JWK keeps its own alg and kid', () => {
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' };
    expect(loadConfig(withKey(JSON.stringify(jwk))).client.auth).toMatchObject({
      kind: 'private_key_jwt',
      alg: 'ES256',
      key: { format: 'jwk', jwk: { kid: 'k1' } },
    });
  });

  test.each([
    ['a PEM header around no key', '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----'],
    ['a JWK with "kty" and "d" that is no key', '{"kty":"RSA","d":"x"}'],
  ])('%s stops start-up instead of failing every login', (_what, key) => {
    expect(problems(withKey(key)).join()).toMatch(/BFF_CLIENT_PRIVATE_KEY: must be a/);
  });
});

test('memory store needs no Redis URL; empty variables count as unset', () => {
  const c = loadConfig({ ...valid, BFF_REDIS_URL: '', BFF_SESSION_STORE: 'memory', BFF_PORT: '' });
  expect(c.store).toEqual({ kind: 'memory' });
  expect(c.port).toBe(8080);
});

test('rotating session secrets: a comma-separated list, each long enough', () => {
  const c = loadConfig({ ...valid, BFF_SESSION_SECRET: `${'a'.repeat(32)}, ${'b'.repeat(40)}` });
  expect(c.sessionSecrets).toEqual(['a'.repeat(32), 'b'.repeat(40)]);
});

test('public URL with a base path; plain-http issuers only on loopback', () => {
  const c = loadConfig({
    ...valid,
    BFF_PUBLIC_URL: 'https://example.com/app/',
    BFF_ISSUER: 'http://127.0.0.1:9000',
  });
  expect(c.basePath).toBe('/app');
  expect(c.redirectUri).toBe('https://example.com/app/bff/callback');
  expect(c.allowInsecureIssuer).toBe(true);
  expect(loadConfig({ ...valid, BFF_ISSUER: 'http://idp.internal' }).allowInsecureIssuer).toBe(false);
});

test('BFF_AUTH_PARAMS sets the extra parameters, but cannot override the protocol ones', () => {
  expect(loadConfig({ ...valid, BFF_AUTH_PARAMS: 'prompt=consent' }).authParams).toEqual({
    prompt: 'consent',
  });
  expect(loadConfig({ ...valid, BFF_AUTH_PARAMS: 'audience=https://api' }).authParams).toEqual({
    audience: 'https://api',
  });
  expect(loadConfig({ ...valid, BFF_AUTH_PARAMS: '' }).authParams).toEqual({});
  expect(problems({ ...valid, BFF_AUTH_PARAMS: 'state=x&code_challenge_method=plain' })).toHaveLength(2);
});

test('the idle timeout cannot exceed the absolute one', () => {
  expect(
    problems({ ...valid, BFF_SESSION_IDLE_TIMEOUT: '100', BFF_SESSION_ABSOLUTE_TIMEOUT: '50' })[0],
  ).toMatch(/BFF_SESSION_IDLE_TIMEOUT/);
});

test('trust proxy accepts true, false, hop counts and subnet lists', () => {
  expect(loadConfig({ ...valid, BFF_TRUST_PROXY: 'true' }).trustProxy).toBe(true);
  expect(loadConfig({ ...valid, BFF_TRUST_PROXY: '2' }).trustProxy).toBe(2);
  expect(loadConfig({ ...valid, BFF_TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy).toBe(
    'loopback, 10.0.0.0/8',
  );
});

test('a SPA dev server is refused when NODE_ENV=production, and allowed otherwise', () => {
  const dev = { ...valid, BFF_SPA_DEV_SERVER: 'http://localhost:5173' };
  expect(problems({ ...dev, NODE_ENV: 'production' })).toEqual([
    'BFF_SPA_DEV_SERVER: is for development and is refused when NODE_ENV=production',
  ]);
  expect(loadConfig({ ...dev, NODE_ENV: 'development' }).spaDevServer).toBe('http://localhost:5173');
});

test('the session cache TTL: default 5 s, 0 turns it off, and it must be shorter than the idle timeout', () => {
  expect(loadConfig(valid).sessionCacheTtlMs).toBe(5000);
  expect(loadConfig({ ...valid, BFF_SESSION_CACHE_TTL: '0' }).sessionCacheTtlMs).toBe(0);
  expect(problems({ ...valid, BFF_SESSION_CACHE_TTL: '-1' })).toEqual([
    'BFF_SESSION_CACHE_TTL: must be a number of seconds, 0 (off) or more',
  ]);
  expect(
    problems({
      ...valid,
      BFF_SESSION_IDLE_TIMEOUT: '60',
      BFF_SESSION_CACHE_TTL: '60',
      BFF_SESSION_ABSOLUTE_TIMEOUT: '30',
    }),
  ).toEqual([
    'BFF_SESSION_IDLE_TIMEOUT: must not be longer than BFF_SESSION_ABSOLUTE_TIMEOUT (30 s)',
    'BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT (60 s)',
  ]);
});

describe('defaults adapt to the settings they depend on; only an explicit value can conflict', () => {
  const timing = (env: Record<string, string>) => {
    const c = loadConfig({ ...valid, ...env });
    return { idle: c.idleTimeoutMs, absolute: c.absoluteTimeoutMs, cache: c.sessionCacheTtlMs };
  };

  test.each([
    [{}, { idle: 1_800_000, absolute: 28_800_000, cache: 5000 }],
    // The cache TTL follows a short idle timeout: half of it, so a load still slides the idle timeout.
    [{ BFF_SESSION_IDLE_TIMEOUT: '3' }, { idle: 3000, absolute: 28_800_000, cache: 1500 }],
    [{ BFF_SESSION_IDLE_TIMEOUT: '10' }, { idle: 10_000, absolute: 28_800_000, cache: 5000 }],
    [{ BFF_SESSION_IDLE_TIMEOUT: '9' }, { idle: 9000, absolute: 28_800_000, cache: 4500 }],
    [{ BFF_SESSION_IDLE_TIMEOUT: '0.001' }, { idle: 1, absolute: 28_800_000, cache: 0 }],
    // The idle timeout follows a short absolute timeout, and the cache TTL follows it in turn.
    [{ BFF_SESSION_ABSOLUTE_TIMEOUT: '600' }, { idle: 600_000, absolute: 600_000, cache: 5000 }],
    [{ BFF_SESSION_ABSOLUTE_TIMEOUT: '4' }, { idle: 4000, absolute: 4000, cache: 2000 }],
    [{ BFF_SESSION_ABSOLUTE_TIMEOUT: '1800' }, { idle: 1_800_000, absolute: 1_800_000, cache: 5000 }],
    // Explicit values at the edge of what is allowed.
    [
      { BFF_SESSION_IDLE_TIMEOUT: '60', BFF_SESSION_ABSOLUTE_TIMEOUT: '60' },
      { idle: 60_000, absolute: 60_000, cache: 5000 },
    ],
    [
      { BFF_SESSION_IDLE_TIMEOUT: '3', BFF_SESSION_CACHE_TTL: '2.999' },
      { idle: 3000, absolute: 28_800_000, cache: 2999 },
    ],
    [
      { BFF_SESSION_ABSOLUTE_TIMEOUT: '4', BFF_SESSION_CACHE_TTL: '0' },
      { idle: 4000, absolute: 4000, cache: 0 },
    ],
  ])('%j starts with %j', (env, expected) => {
    expect(timing(env)).toEqual(expected);
  });

  test.each([
    [
      { BFF_SESSION_IDLE_TIMEOUT: '60.001', BFF_SESSION_ABSOLUTE_TIMEOUT: '60' },
      ['BFF_SESSION_IDLE_TIMEOUT: must not be longer than BFF_SESSION_ABSOLUTE_TIMEOUT (60 s)'],
    ],
    [
      { BFF_SESSION_IDLE_TIMEOUT: '3', BFF_SESSION_CACHE_TTL: '3' },
      ['BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT (3 s)'],
    ],
    [
      { BFF_SESSION_ABSOLUTE_TIMEOUT: '4', BFF_SESSION_CACHE_TTL: '5' },
      [
        'BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT (4 s, from BFF_SESSION_ABSOLUTE_TIMEOUT)',
      ],
    ],
    [
      { BFF_SESSION_CACHE_TTL: '1800' },
      ['BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT (1800 s)'],
    ],
  ])('%j is refused, naming the explicit value', (env, expected) => {
    expect(problems({ ...valid, ...env })).toEqual(expected);
  });

  test('the refresh skew, lock TTL, upstream and headers timeouts are independent of each other', () => {
    // The refresh time rule (skew before expiry, never in the first half) makes any skew safe; the lock is
    // renewed while a refresh runs; waiters give up after the upstream timeout whatever the lock TTL.
    const c = loadConfig({
      ...valid,
      BFF_REFRESH_SKEW: '100000',
      BFF_REFRESH_LOCK_TTL: '600',
      BFF_UPSTREAM_TIMEOUT: '0.5',
      BFF_HEADERS_TIMEOUT: '0.5',
    });
    expect([c.refreshSkewMs, c.refreshLockTtlMs, c.upstreamTimeoutMs, c.headersTimeoutMs]).toEqual([
      100_000_000, 600_000, 500, 500,
    ]);
  });
});

describe('every configuration error names the variable and says what is expected', () => {
  // zod's own wording, which used to leak through for numbers, enums, URLs and nested routes.
  const zodWording =
    /Invalid (input|option|URL|string)|expected \w+, received|Too (big|small)|Unrecognized key|\(root\)/;

  test.each([
    ['BFF_PORT', 'eighty', 'BFF_PORT: must be a port number from 0 to 65535'],
    ['BFF_PORT', '70000', 'BFF_PORT: must be a port number from 0 to 65535'],
    ['BFF_PORT', '80.5', 'BFF_PORT: must be a port number from 0 to 65535'],
    ['BFF_PUBLIC_URL', 'app.example.com', 'BFF_PUBLIC_URL: must be an absolute http or https URL'],
    ['BFF_PUBLIC_URL', 'ftp://app.example.com', 'BFF_PUBLIC_URL: must be an http or https URL'],
    [
      'BFF_PUBLIC_URL',
      'https://app.example.com/?x=1',
      'BFF_PUBLIC_URL: must be an origin with an optional base path',
    ],
    ['BFF_ISSUER', 'idp', 'BFF_ISSUER: must be an absolute http or https URL'],
    [
      'BFF_CLIENT_AUTH_METHOD',
      'magic',
      'BFF_CLIENT_AUTH_METHOD: must be client_secret_basic, client_secret_post or private_key_jwt',
    ],
    [
      'BFF_SCOPES',
      'profile email',
      'BFF_SCOPES: must be a space-separated list of scopes that includes openid',
    ],
    ['BFF_USERINFO', 'maybe', 'BFF_USERINFO: must be true or false'],
    ['BFF_REDIS_URL', 'http://redis', 'BFF_REDIS_URL: must be a redis:// or rediss:// URL'],
    ['BFF_SESSION_STORE', 'postgres', 'BFF_SESSION_STORE: must be redis or memory'],
    [
      'BFF_SESSION_SECRET',
      'short',
      'BFF_SESSION_SECRET: must be a comma-separated list of secrets, each at least 32',
    ],
    [
      'BFF_POST_LOGOUT_REDIRECT_URI',
      '/after',
      'BFF_POST_LOGOUT_REDIRECT_URI: must be an absolute http or https URL',
    ],
    ['BFF_SESSION_IDLE_TIMEOUT', 'half an hour', 'BFF_SESSION_IDLE_TIMEOUT: must be a number of seconds'],
    ['BFF_SESSION_IDLE_TIMEOUT', '0', 'BFF_SESSION_IDLE_TIMEOUT: must be a number of seconds greater than 0'],
    [
      'BFF_SESSION_ABSOLUTE_TIMEOUT',
      '-5',
      'BFF_SESSION_ABSOLUTE_TIMEOUT: must be a number of seconds greater than 0',
    ],
    ['BFF_REFRESH_SKEW', '-1', 'BFF_REFRESH_SKEW: must be a number of seconds, 0 or more'],
    ['BFF_REFRESH_SKEW', 'soon', 'BFF_REFRESH_SKEW: must be a number of seconds'],
    ['BFF_REFRESH_LOCK_TTL', '0', 'BFF_REFRESH_LOCK_TTL: must be a number of seconds greater than 0'],
    ['BFF_SESSION_CACHE_TTL', 'x', 'BFF_SESSION_CACHE_TTL: must be a number of seconds'],
    ['BFF_UPSTREAM_TIMEOUT', 'Infinity', 'BFF_UPSTREAM_TIMEOUT: must be a number of seconds'],
    ['BFF_HEADERS_TIMEOUT', '-1', 'BFF_HEADERS_TIMEOUT: must be a number of seconds greater than 0'],
    ['BFF_MAX_BODY_SIZE', '10MB', 'BFF_MAX_BODY_SIZE: must be a number of bytes'],
    ['BFF_MAX_BODY_SIZE', '1.5', 'BFF_MAX_BODY_SIZE: must be a whole number of bytes'],
    ['BFF_MAX_BODY_SIZE', '-1', 'BFF_MAX_BODY_SIZE: must be a number of bytes, 0 (no limit) or more'],
    ['BFF_SPA_DEV_SERVER', 'localhost:5173', 'BFF_SPA_DEV_SERVER: must be an http or https URL'],
    ['BFF_LOG_LEVEL', 'loud', 'BFF_LOG_LEVEL: must be fatal, error, warn, info, debug, trace or silent'],
    [
      'BFF_ROUTES',
      'not json',
      'BFF_ROUTES: is not valid JSON; it must be a JSON array of {"path","target"} objects',
    ],
    [
      'BFF_ROUTES',
      '{"path":"/api"}',
      'BFF_ROUTES: must be a JSON array of {"path","target"} objects, such as [{"path":"/api"',
    ],
    ['BFF_ROUTES', '[]', 'BFF_ROUTES: must be a JSON array of {"path","target"} objects'],
    ['BFF_ROUTES', '["/api"]', 'BFF_ROUTES: route 1 must be an object {"path","target"}'],
    ['BFF_ROUTES', '[{"path":"/api"}]', 'BFF_ROUTES: in route 1, "target" is required, an http or https URL'],
    [
      'BFF_ROUTES',
      '[{"target":"http://x"}]',
      'BFF_ROUTES: in route 1, "path" is required, a string such as "/api"',
    ],
    [
      'BFF_ROUTES',
      '[{"path":"/a","target":"x"}]',
      'BFF_ROUTES: in route 1, "target" must be an absolute http or https URL',
    ],
    [
      'BFF_ROUTES',
      '[{"path":"/a","target":"http://x"},{"path":"/b","target":"http://x","timeout":1}]',
      'BFF_ROUTES: in route 2, a route may have only "path", "target", "resource", "scope", "tokenParams", "token" and "methods"',
    ],
    [
      'BFF_ROUTES',
      '[{"path":"api","target":"http://x"}]',
      'BFF_ROUTES: in route 1, "path" must start with "/"',
    ],
    [
      'BFF_ROUTES',
      '[{"path":"/a","target":"http://x"},{"path":"/a","target":"http://y"}]',
      'BFF_ROUTES: has the route path "/a" twice',
    ],
  ])('%s=%s', (name, value, expected) => {
    const list = problems({ ...valid, [name]: value });
    expect(list).toHaveLength(1);
    expect(list[0]!.startsWith(expected)).toBe(true);
    expect(list[0]).not.toMatch(zodWording);
  });
});

describe('unknown BFF_* names', () => {
  test('are warnings that name the variable and the closest known name', () => {
    const c = loadConfig({
      ...valid,
      BFF_SESION_SECRET: 'x',
      BFF_SESSION_IDLE_TIMOUT: '60',
      BFF_DEMO_PORT: '1',
    });
    expect(c.warnings).toEqual([
      'BFF_DEMO_PORT: is not a coatcheck variable and is ignored; did you mean BFF_DEMO_DPOP?',
      'BFF_SESION_SECRET: is not a coatcheck variable and is ignored; did you mean BFF_SESSION_SECRET?',
      'BFF_SESSION_IDLE_TIMOUT: is not a coatcheck variable and is ignored; did you mean BFF_SESSION_IDLE_TIMEOUT?',
    ]);
  });

  test('travel with a configuration error, since the process exits before a logger exists', () => {
    try {
      loadConfig({ ...valid, BFF_ISSUR: 'https://idp.example.com', BFF_ISSUER: undefined });
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.problems).toEqual(['BFF_ISSUER: is required']);
      expect(e.warnings).toEqual([
        'BFF_ISSUR: is not a coatcheck variable and is ignored; did you mean BFF_ISSUER?',
      ]);
      expect(e.message).toContain('warnings:\n  - BFF_ISSUR:');
    }
  });
});

describe('demo mode only by intent', () => {
  test('a production variable without BFF_ISSUER is refused, listing what was set and how to run the demo', () => {
    const list = demoModeProblems({
      BFF_ISSUR: 'https://idp.example.com',
      BFF_CLIENT_ID: 'spa',
      BFF_ROUTES: '[]',
      BFF_PUBLIC_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 'x'.repeat(32),
      BFF_PORT: '9000',
    });
    expect(list).toHaveLength(1);
    expect(list[0]).toMatch(
      /^BFF_ISSUER: is required, because production variables are set \(BFF_CLIENT_ID, BFF_PUBLIC_URL, BFF_ROUTES, BFF_SESSION_SECRET\); without BFF_ISSUER coatcheck would start demo mode/,
    );
    expect(list[0]).toContain('To run the demo instead');
    expect(list[0]).not.toContain('x'.repeat(32));
  });

  test.each([
    [{}],
    [{ BFF_PORT: '9000', BFF_HOST: '127.0.0.1', BFF_DEMO_IDP_PORT: '9001', BFF_DEMO_TOKEN_TTL: '5' }],
    [{ BFF_REDIS_URL: 'redis://127.0.0.1:6379', BFF_LOG_LEVEL: 'debug', BFF_SESSION_IDLE_TIMEOUT: '60' }],
    [{ BFF_CLIENT_ID: '', BFF_ROUTES: '' }],
    [{ BFF_ISSUR: 'https://idp.example.com' }],
  ])('the demo settings alone run the demo: %j', (env) => {
    expect(demoModeProblems(env)).toEqual([]);
  });
});

describe('placeholders from config/ are refused', () => {
  const files = readdirSync('config').filter((f) => f.endsWith('.env'));

  /** The file as an operator loads it: sourced by a shell with `set -a`. */
  function sourced(file: string): Record<string, string> {
    const out = execFileSync('bash', ['-c', `set -a; . "config/${file}"; env -0`], {
      env: { PATH: process.env.PATH ?? '' },
    }).toString();
    return Object.fromEntries(
      out
        .split('\0')
        .filter((l) => l.startsWith('BFF_'))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }

  test.each(files)('%s: every placeholder is named, and the file is valid once they are replaced', (file) => {
    const env = sourced(file);
    const placeholders = Object.keys(env).filter((k) =>
      /change-me-|([0-9a-f])\1{7}-\1{4}-\1{4}-\1{4}-\1{12}/.test(env[k]!),
    );
    expect(placeholders.length).toBeGreaterThan(0);
    expect(problems(env)).toEqual(
      placeholders.map(
        (k) => `${k}: still has the placeholder from the example configuration; set your own value`,
      ),
    );
    const filled = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [
        k,
        v
          .replace(/change-me-[\w-]*/g, 'a-real-value-'.repeat(3))
          .replace(/([0-9a-f])\1{7}(-\1{4}){3}-\1{12}/g, randomUUID()),
      ]),
    );
    expect(problems(filled)).toEqual([]);
    expect(loadConfig(filled).warnings).toEqual([]);
  });

  test('a placeholder is refused inside a list of session secrets too', () => {
    expect(
      problems({
        ...valid,
        BFF_SESSION_SECRET: `${'a'.repeat(32)},change-me-session-secret-at-least-32-characters`,
      }),
    ).toEqual([
      'BFF_SESSION_SECRET: still has the placeholder from the example configuration; set your own value',
    ]);
  });
});
