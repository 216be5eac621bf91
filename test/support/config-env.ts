import { ConfigError, loadConfig } from '../../src/config/load.js';

/** A complete, valid production environment for config tests; each test overrides what it examines. */
export const validEnv: Readonly<Record<string, string>> = {
  BFF_PUBLIC_URL: 'https://app.example.com',
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'spa',
  BFF_CLIENT_SECRET: 'super-secret-client-credential',
  BFF_REDIS_URL: 'redis://127.0.0.1:6380',
  BFF_SESSION_SECRET: 'x'.repeat(32),
  BFF_ROUTES: '[{"path":"/api","target":"http://127.0.0.1:5000/v1"}]',
};

/** The problems loadConfig lists for an environment; none when it loads. */
export function configProblems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}
