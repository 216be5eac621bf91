import { loadConfig } from '../src/config/load.js';
import { configProblems, validEnv as valid } from './support/config-env.js';

const problems = (env: Record<string, string>): string[] => configProblems({ ...valid, ...env });

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
