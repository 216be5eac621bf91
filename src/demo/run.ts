import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError, loadConfig } from '../config/load.js';
import { MANAGEMENT_PATHS } from '../http/management-paths.js';
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

const PORT_EXPECTED = 'must be a port number from 1 to 65535';
const port = (def: number) =>
  z.coerce
    .number({ message: PORT_EXPECTED })
    .int(PORT_EXPECTED)
    .min(1, PORT_EXPECTED)
    .max(65535, PORT_EXPECTED)
    .default(def);
const TTL_EXPECTED = 'must be a whole number of seconds from 2 to 3600';
export const demoSchema = z.object({
  BFF_PORT: port(8080),
  BFF_HOST: z.string().default('127.0.0.1'),
  BFF_DEMO_IDP_PORT: port(8081),
  BFF_DEMO_API_PORT: port(8082),
  BFF_DEMO_TOKEN_TTL: z.coerce
    .number({ message: TTL_EXPECTED })
    .int(TTL_EXPECTED)
    .min(2, TTL_EXPECTED)
    .max(3600, TTL_EXPECTED)
    .default(60),
  BFF_DEMO_DPOP: z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes'),
});

interface DemoServer {
  readonly name: string;
  readonly variable: string;
  readonly port: number;
  readonly host: string;
}

function inUse(s: DemoServer, code: string | undefined): string {
  const why = code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${code ?? 'unknown error'})`;
  return `${s.variable}: port ${s.port} on ${s.host} ${why}, so ${s.name} cannot start; stop what uses it, or set ${s.variable} to a free port`;
}

/** Resolves to a problem, or undefined when the port can be bound right now. */
function probe(s: DemoServer): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(inUse(s, err.code)));
    server.listen(s.port, s.host, () => server.close(() => resolve(undefined)));
  });
}

/**
 * Three servers start in turn, and the IdP's listen error would surface as an uncaught stack trace:
 * checking every port first names the server and the variable that moves it, all at once.
 */
async function checkPorts(servers: DemoServer[]): Promise<void> {
  const problems: string[] = [];
  servers.forEach((s, i) => {
    const other = servers.slice(0, i).find((o) => o.port === s.port);
    if (other) problems.push(`${s.variable}: must differ from ${other.variable} (both are ${s.port})`);
  });
  if (problems.length === 0) {
    for (const p of await Promise.all(servers.map(probe))) if (p) problems.push(p);
  }
  if (problems.length) throw new ConfigError(problems);
}

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
  const app: DemoServer = {
    name: 'the app (coatcheck)',
    variable: 'BFF_PORT',
    port: d.BFF_PORT,
    host: d.BFF_HOST,
  };
  await checkPorts([
    app,
    { name: 'the demo IdP', variable: 'BFF_DEMO_IDP_PORT', port: d.BFF_DEMO_IDP_PORT, host: '127.0.0.1' },
    { name: 'the demo API', variable: 'BFF_DEMO_API_PORT', port: d.BFF_DEMO_API_PORT, host: '127.0.0.1' },
  ]);
  // localhost for the app and 127.0.0.1 for the IdP: two sites, as in real life, so their cookies stay apart.
  const publicUrl = `http://localhost:${d.BFF_PORT}`;
  const audience = 'urn:coatcheck:demo-api';
  // A second API with its own audience, behind a route with its own token (RFC 8707).
  const reportsAudience = 'urn:coatcheck:demo-reports';
  const clientSecret = randomBytes(24).toString('base64url');

  const idp = await startIdp({
    port: d.BFF_DEMO_IDP_PORT,
    users: [DEMO_USER],
    audience,
    resources: [reportsAudience],
    accessTokenTtl: d.BFF_DEMO_TOKEN_TTL,
    showCredentials: true,
    clients: [
      {
        client_id: 'coatcheck-demo',
        client_secret: clientSecret,
        client_name: 'the coatcheck demo app',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${publicUrl}${MANAGEMENT_PATHS.callback}`],
        post_logout_redirect_uris: [`${publicUrl}/`],
        backchannel_logout_uri: `http://127.0.0.1:${d.BFF_PORT}${MANAGEMENT_PATHS.backchannelLogout}`,
        backchannel_logout_session_required: true,
        ...(d.BFF_DEMO_DPOP ? { dpop_bound_access_tokens: true } : {}),
      },
    ],
  });
  const api = await startDemoApi({
    port: d.BFF_DEMO_API_PORT,
    issuer: idp.issuer,
    audience,
    audiences: { '/reports': reportsAudience },
    dpop: d.BFF_DEMO_DPOP,
  });

  const config = loadConfig({
    BFF_LOG_LEVEL: 'warn',
    ...env,
    BFF_PORT: String(d.BFF_PORT),
    BFF_HOST: d.BFF_HOST,
    BFF_PUBLIC_URL: publicUrl,
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: 'coatcheck-demo',
    BFF_CLIENT_SECRET: clientSecret,
    // oidc-provider follows OIDC Core §11: without prompt=consent it drops offline_access, and no refresh token.
    BFF_AUTH_PARAMS: 'prompt=consent',
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_SESSION_STORE: env.BFF_REDIS_URL ? 'redis' : 'memory',
    BFF_ROUTES: JSON.stringify([
      { path: '/api', target: api.url },
      { path: '/reports', target: `${api.url}/reports`, resource: reportsAudience, methods: ['GET'] },
    ]),
    BFF_STATIC_DIR: fileURLToPath(new URL('./spa/', import.meta.url)),
    BFF_SPA_DEV_SERVER: undefined,
    BFF_DPOP: d.BFF_DEMO_DPOP ? 'true' : undefined,
  });
  const coatcheck = await startCoatcheck(config).catch(async (err: NodeJS.ErrnoException) => {
    await Promise.all([api.close(), idp.close()]);
    // Taken between the check and now: still say which server and which variable.
    throw err.code === 'EADDRINUSE' ? new ConfigError([inUse(app, err.code)]) : err;
  });

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
      ...(d.BFF_DEMO_DPOP
        ? ['  DPoP is on: tokens are bound to a per-session key, and the API checks every proof.']
        : []),
      '',
      '',
    ].join('\n'),
  );

  return {
    async stop() {
      // No pre-stop delay: no load balancer sits in front of a demo, and Ctrl-C should stop it at once.
      await coatcheck.close();
      await Promise.all([api.close(), idp.close()]);
    },
  };
}
