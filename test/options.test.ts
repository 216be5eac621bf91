import { ConfigError, loadConfig } from '../src/config/load.js';
import { envSchema } from '../src/config/schema.js';
import { createBff, type BffOptions } from '../src/index.js';
import { configFromOptions, optionName, OPTION_NAMES, variableName } from '../src/options.js';

const SECRET = 'an-options-test-secret-that-is-32-chars-or-more';

const minimal: BffOptions = {
  publicUrl: 'http://localhost:3000',
  issuer: 'http://127.0.0.1:9000',
  clientId: 'app',
  clientSecret: 'client-secret',
  sessionSecret: SECRET,
  sessionStore: 'memory',
  routes: [{ path: '/api', target: 'http://127.0.0.1:5000/v1' }],
};

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('option names', () => {
  test('every variable of the schema has an option: its name in camelCase without BFF_', () => {
    expect(optionName('BFF_PUBLIC_URL')).toBe('publicUrl');
    expect(optionName('BFF_SESSION_IDLE_TIMEOUT')).toBe('sessionIdleTimeout');
    expect(optionName('BFF_REDIS_SENTINEL_CONNECTION_URLS')).toBe('redisSentinelConnectionUrls');
    for (const variable of Object.keys(envSchema.shape)) {
      expect(variableName(optionName(variable))).toBe(variable);
    }
    expect(OPTION_NAMES).toHaveLength(Object.keys(envSchema.shape).length);
  });

  test('options give the same Config as the same settings in the environment', () => {
    const options: BffOptions = {
      port: 0,
      host: '127.0.0.1',
      publicUrl: 'https://app.example.com/base/',
      issuer: 'https://idp.example.com',
      clientId: 'app',
      clientSecret: 'client-secret',
      clientAuthMethod: 'client_secret_post',
      scopes: ['openid', 'email', 'offline_access'],
      authParams: { prompt: 'consent', ui_locales: 'de' },
      userinfo: true,
      dpop: true,
      dpopAlg: 'EdDSA',
      par: 'auto',
      redisSentinelConnectionUrls: ['redis://10.0.0.1:26379', 'redis://10.0.0.2:26379'],
      redisSentinelMasterName: 'mymaster',
      redisUsername: 'bff',
      redisPassword: 'pw',
      redisKeyPrefix: 'app:',
      redisWaitTimeout: 0.5,
      sessionSecret: [SECRET, `${SECRET}-old`],
      routes: [
        { path: '/api', target: 'https://api.example.com/v1' },
        { path: '/', target: 'https://www.example.com' },
      ],
      trustProxy: 2,
      postLogoutRedirectUri: 'https://app.example.com/bye',
      sessionIdleTimeout: 600,
      sessionAbsoluteTimeout: 3600,
      sessionCacheTtl: 2.5,
      refreshSkew: 10,
      refreshLockTtl: 3,
      upstreamTimeout: 12,
      maxBodySize: 1024,
      headersTimeout: 8,
      logLevel: 'warn',
      metricsPort: 9100,
      metricsHost: '127.0.0.1',
      shutdownDelay: 0,
      shutdownTimeout: 7,
    };
    const env = {
      BFF_PORT: '0',
      BFF_HOST: '127.0.0.1',
      BFF_PUBLIC_URL: 'https://app.example.com/base/',
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'app',
      BFF_CLIENT_SECRET: 'client-secret',
      BFF_CLIENT_AUTH_METHOD: 'client_secret_post',
      BFF_SCOPES: 'openid email offline_access',
      BFF_AUTH_PARAMS: 'prompt=consent&ui_locales=de',
      BFF_USERINFO: 'true',
      BFF_DPOP: 'true',
      BFF_DPOP_ALG: 'EdDSA',
      BFF_PAR: 'auto',
      BFF_REDIS_SENTINEL_CONNECTION_URLS: 'redis://10.0.0.1:26379,redis://10.0.0.2:26379',
      BFF_REDIS_SENTINEL_MASTER_NAME: 'mymaster',
      BFF_REDIS_USERNAME: 'bff',
      BFF_REDIS_PASSWORD: 'pw',
      BFF_REDIS_KEY_PREFIX: 'app:',
      BFF_REDIS_WAIT_TIMEOUT: '0.5',
      BFF_SESSION_SECRET: `${SECRET},${SECRET}-old`,
      BFF_ROUTES: JSON.stringify([
        { path: '/api', target: 'https://api.example.com/v1' },
        { path: '/', target: 'https://www.example.com' },
      ]),
      BFF_TRUST_PROXY: '2',
      BFF_POST_LOGOUT_REDIRECT_URI: 'https://app.example.com/bye',
      BFF_SESSION_IDLE_TIMEOUT: '600',
      BFF_SESSION_ABSOLUTE_TIMEOUT: '3600',
      BFF_SESSION_CACHE_TTL: '2.5',
      BFF_REFRESH_SKEW: '10',
      BFF_REFRESH_LOCK_TTL: '3',
      BFF_UPSTREAM_TIMEOUT: '12',
      BFF_MAX_BODY_SIZE: '1024',
      BFF_HEADERS_TIMEOUT: '8',
      BFF_LOG_LEVEL: 'warn',
      BFF_METRICS_PORT: '9100',
      BFF_METRICS_HOST: '127.0.0.1',
      BFF_SHUTDOWN_DELAY: '0',
      BFF_SHUTDOWN_TIMEOUT: '7',
    };
    const fromOptions = configFromOptions(options);
    expect(fromOptions).toEqual(loadConfig(env));
    // Durations are seconds, as in the environment.
    expect(fromOptions.idleTimeoutMs).toBe(600_000);
    expect(fromOptions.sessionCacheTtlMs).toBe(2500);
    expect(fromOptions.basePath).toBe('/base');
    expect(fromOptions.sessionSecrets).toEqual([SECRET, `${SECRET}-old`]);
  });
});

describe('validation', () => {
  test('every problem at once, named as options', () => {
    const problems = problemsOf(() =>
      configFromOptions({
        publicUrl: 'not a url',
        issuer: 'ftp://idp.example.com',
        clientId: 'app',
        sessionSecret: 'short',
        routes: [{ path: 'api', target: 'http://127.0.0.1:5000' }],
        sessionIdleTimeout: -5,
        redisUrl: 'http://127.0.0.1:6379',
        logLevel: 'loud' as never,
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'publicUrl: must be an absolute http or https URL, such as https://example.com',
        'issuer: must be an http or https URL',
        expect.stringMatching(/^sessionSecret: must be a list of secrets, each at least 32 characters/),
        'routes: in route 1, "path" must start with "/" and contain only URL path characters',
        'sessionIdleTimeout: must be a number of seconds greater than 0',
        'redisUrl: must be a redis:// or rediss:// URL',
        expect.stringMatching(/^logLevel: must be fatal, error/),
        "clientSecret: is required with clientAuthMethod: 'client_secret_basic'",
      ]),
    );
    expect(problems).toHaveLength(8);
    for (const p of problems) expect(p).not.toMatch(/BFF_/);
  });

  test('the required options are named when missing, and a route list must not be empty', () => {
    const problems = problemsOf(() => configFromOptions({ routes: [] } as unknown as BffOptions));
    for (const name of ['publicUrl', 'issuer', 'clientId', 'sessionSecret']) {
      expect(problems).toContain(`${name}: is required`);
    }
    expect(problems).toContainEqual(
      expect.stringMatching(/^routes: must be an array of \{"path","target"\}/),
    );
  });

  test('an unknown option is a problem, with the closest name', () => {
    const problems = problemsOf(() =>
      configFromOptions({ ...minimal, sessionIdleTimout: 60 } as unknown as BffOptions),
    );
    expect(problems).toEqual([
      'sessionIdleTimout: is not a coatcheck option; did you mean sessionIdleTimeout?',
    ]);
  });

  test('cross-option rules name options too', () => {
    const problems = problemsOf(() =>
      configFromOptions({ ...minimal, sessionIdleTimeout: 7200, sessionAbsoluteTimeout: 3600 }),
    );
    expect(problems).toEqual(['sessionIdleTimeout: must not be longer than sessionAbsoluteTimeout (3600 s)']);
  });

  test('the environment adapter still names the variables', () => {
    const problems = problemsOf(() => loadConfig({ BFF_PUBLIC_URL: 'nope' }));
    expect(problems).toContain(
      'BFF_PUBLIC_URL: must be an absolute http or https URL, such as https://example.com',
    );
  });

  test('the result is validated once and frozen, nested objects included', () => {
    const config = configFromOptions(minimal);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.routes)).toBe(true);
    expect(Object.isFrozen(config.routes[0])).toBe(true);
    expect(Object.isFrozen(config.client.auth)).toBe(true);
    expect(() => {
      (config.routes[0] as { target: string }).target = 'http://evil.example.com';
    }).toThrow(TypeError);
    // The caller's object is read once: changing it afterwards changes nothing.
    const options = { ...minimal, routes: [{ path: '/api', target: 'http://127.0.0.1:5000/v1' }] };
    const before = configFromOptions(options);
    options.routes[0]!.target = 'http://evil.example.com';
    expect(before.routes[0]!.target).toBe('http://127.0.0.1:5000/v1');
  });

  test('createBff rejects bad options with the ConfigError before it opens anything', async () => {
    const err = await createBff({
      ...minimal,
      redisUrl: 'redis://127.0.0.1:1',
      sessionStore: 'redis',
      routes: [],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^routes: must be an array of/)]);
  });
});
