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

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig({ ...valid, ...env });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

test('shutdown timings default to a delay and a timeout that fit in the default grace period', () => {
  const c = loadConfig(valid);
  expect([c.shutdownDelayMs, c.shutdownTimeoutMs]).toEqual([5000, 20_000]);
});

test('shutdown timings are seconds; the delay may be 0, the timeout may not', () => {
  const c = loadConfig({ ...valid, BFF_SHUTDOWN_DELAY: '0', BFF_SHUTDOWN_TIMEOUT: '1.5' });
  expect([c.shutdownDelayMs, c.shutdownTimeoutMs]).toEqual([0, 1500]);
  expect(problems({ BFF_SHUTDOWN_DELAY: '-1' })).toEqual([
    'BFF_SHUTDOWN_DELAY: must be a number of seconds, 0 or more',
  ]);
  expect(problems({ BFF_SHUTDOWN_TIMEOUT: '0' })).toEqual([
    'BFF_SHUTDOWN_TIMEOUT: must be a number of seconds greater than 0',
  ]);
});
