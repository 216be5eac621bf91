import { ConfigError, loadConfig } from '../src/config/load.js';

const valid = {
  BFF_PUBLIC_URL: 'https://app.example.com',
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'spa',
  BFF_CLIENT_SECRET: 'super-secret-client-credential',
  BFF_REDIS_URL: 'redis://127.0.0.1:6380',
  BFF_SESSION_SECRET: 'x'.repeat(32),
  BFF_ROUTES: '[{"path":"/api","target":"http://127.0.0.1:5000/v1"}]',
};

function problems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

test('applies the documented defaults', () => {
  const c = loadConfig(valid);
  expect(c.port).toBe(8080);
  expect(c.host).toBe('0.0.0.0');
  expect(c.redirectUri).toBe('https://app.example.com/bff/callback');
  expect(c.postLogoutRedirectUri).toBe('https://app.example.com/');
  expect(c.client.authMethod).toBe('client_secret_basic');
  expect(c.scopes).toEqual(['openid', 'profile', 'email', 'offline_access']);
  expect(c.authParams).toEqual({ prompt: 'consent' });
  expect(c.store).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6380' });
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
  expect(problems({ ...valid, BFF_ROUTES: 'not json' })[0]).toMatch(/BFF_ROUTES: must be a JSON array/);
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

test('BFF_AUTH_PARAMS replaces the default extra parameters, but cannot override the protocol ones', () => {
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
    'BFF_SESSION_CACHE_TTL: must not be negative',
  ]);
  expect(
    problems({
      ...valid,
      BFF_SESSION_IDLE_TIMEOUT: '60',
      BFF_SESSION_CACHE_TTL: '60',
      BFF_SESSION_ABSOLUTE_TIMEOUT: '30',
    }),
  ).toEqual([
    'BFF_SESSION_IDLE_TIMEOUT: must not be longer than BFF_SESSION_ABSOLUTE_TIMEOUT',
    'BFF_SESSION_CACHE_TTL: must be shorter than BFF_SESSION_IDLE_TIMEOUT',
  ]);
});
