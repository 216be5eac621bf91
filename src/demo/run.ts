import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError, loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { startCoatcheck } from '../start.js';
import { startDemoApi } from './api.js';
import { startIdp } from './idp.js';

export const DEMO_USER = {
  username: 'demo',
  password: 'demo',
  sub: 'demo-user-0001',
  claims: {
    name: 'Ada Lovelace',
    given_name: 'Ada',
    family_name: 'Lovelace',
    preferred_username: 'demo',
    email: 'ada@example.com',
    email_verified: true,
  },
};

const port = (def: number) => z.coerce.number().int().min(1).max(65535).default(def);
export const demoSchema = z.object({
  BFF_PORT: port(8080),
  BFF_HOST: z.string().min(1).default('127.0.0.1'),
  BFF_DEMO_IDP_PORT: port(8081),
  BFF_DEMO_API_PORT: port(8082),
  BFF_DEMO_TOKEN_TTL: z.coerce.number().int().min(2).max(3600).default(60),
});

/**
 * Demo mode: an embedded IdP (its own origin), an API that verifies tokens itself, and coatcheck
 * serving a small SPA in front of both. Everything else is production code with a generated config.
 */
export async function runDemo(env: Record<string, string | undefined>): Promise<{ stop(): Promise<void> }> {
  const parsed = demoSchema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`));
  }
  const d = parsed.data;
  // localhost for the app and 127.0.0.1 for the IdP: two sites, as in real life, so their cookies stay apart.
  const publicUrl = `http://localhost:${d.BFF_PORT}`;
  const audience = 'urn:coatcheck:demo-api';
  const clientSecret = randomBytes(24).toString('base64url');

  const idp = await startIdp({
    port: d.BFF_DEMO_IDP_PORT,
    users: [DEMO_USER],
    audience,
    accessTokenTtl: d.BFF_DEMO_TOKEN_TTL,
    showCredentials: true,
    clients: [
      {
        client_id: 'coatcheck-demo',
        client_secret: clientSecret,
        client_name: 'the coatcheck demo app',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${publicUrl}/bff/callback`],
        post_logout_redirect_uris: [`${publicUrl}/`],
        backchannel_logout_uri: `http://127.0.0.1:${d.BFF_PORT}/bff/backchannel-logout`,
        backchannel_logout_session_required: true,
      },
    ],
  });
  const api = await startDemoApi({ port: d.BFF_DEMO_API_PORT, issuer: idp.issuer, audience });

  const config = loadConfig({
    BFF_LOG_LEVEL: 'warn',
    ...env,
    BFF_PORT: String(d.BFF_PORT),
    BFF_HOST: d.BFF_HOST,
    BFF_PUBLIC_URL: publicUrl,
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: 'coatcheck-demo',
    BFF_CLIENT_SECRET: clientSecret,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_SESSION_STORE: env.BFF_REDIS_URL ? 'redis' : 'memory',
    BFF_ROUTES: JSON.stringify([{ path: '/api', target: api.url }]),
    BFF_STATIC_DIR: fileURLToPath(new URL('./spa/', import.meta.url)),
    BFF_SPA_DEV_SERVER: undefined,
  });
  const log = createLogger(config.logLevel);
  const coatcheck = await startCoatcheck(config, log);

  process.stdout.write(
    [
      '',
      '  coatcheck demo is running (demo mode: not for production)',
      '',
      `    open       ${publicUrl}`,
      '    sign in    demo / demo',
      '',
      `  identity provider ${idp.issuer}, API ${api.url}, sessions in ${config.store.kind === 'redis' ? 'Redis' : 'memory'}`,
      `  access tokens live ${d.BFF_DEMO_TOKEN_TTL}s, so refreshes happen while you watch. Ctrl-C stops.`,
      '',
      '',
    ].join('\n'),
  );

  return {
    async stop() {
      await coatcheck.stop();
      await Promise.all([api.close(), idp.close()]);
    },
  };
}
