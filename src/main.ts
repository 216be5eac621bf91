#!/usr/bin/env node
import { ConfigError } from './config/load.js';
import { demoModeProblems, unknownNameWarnings } from './config/names.js';
import { startCoatcheck } from './start.js';
import { loadConfigAndTracing } from './tracing/settings.js';

/**
 * The only reader of process.env: validate, wire up, listen, and stop cleanly on a signal.
 * Without BFF_ISSUER it runs demo mode, whose code is imported only then.
 */
async function main(): Promise<void> {
  const env = { ...process.env };
  let stop: () => Promise<void>;
  try {
    if (!env.BFF_ISSUER && env.NODE_ENV === 'production') {
      // Fail closed: a production deployment that lost its IdP setting must not start an embedded demo IdP.
      throw new ConfigError(
        ['BFF_ISSUER: is required (demo mode is disabled when NODE_ENV=production)'],
        unknownNameWarnings(env),
      );
    }
    if (!env.BFF_ISSUER && demoModeProblems(env).length) {
      throw new ConfigError(demoModeProblems(env), unknownNameWarnings(env));
    }
    if (!env.BFF_ISSUER) {
      const { runDemo } = await import('./demo/run.js').catch((err: unknown) => {
        // oidc-provider is an optional dependency: only demo mode needs it, and images omit it.
        if (
          (err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' &&
          String(err).includes('oidc-provider')
        ) {
          throw new ConfigError([
            'BFF_ISSUER: is not set, and demo mode needs the optional dependency oidc-provider, which is not installed (npm install without --omit=optional)',
          ]);
        }
        throw err;
      });
      stop = (await runDemo(env)).stop;
    } else {
      const { config, tracing } = loadConfigAndTracing(env);
      const coatcheck = await startCoatcheck(config, { tracing }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE') throw err;
        throw new ConfigError([
          `BFF_PORT: port ${config.port} on ${config.host} is already in use; stop what uses it, or set BFF_PORT to a free port`,
        ]);
      });
      stop = () => coatcheck.shutdown();
    }
  } catch (err) {
    // No logger exists yet, so the reason goes to stderr, as a plain list rather than a stack.
    if (err instanceof ConfigError) {
      process.stderr.write(`coatcheck: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`coatcheck: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`coatcheck: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
