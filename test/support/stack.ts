import { Writable } from 'node:stream';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import type { App } from '../../src/app.js';
import type { IdpOptions } from '../../src/demo/idp.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import type { RefreshHooks } from '../../src/session/refresh.js';
import type { Session } from '../../src/session/sessions.js';
import { SESSION_COOKIE, unsignValue } from '../../src/security/cookies.js';
import { MemorySessionStore } from '../../src/session/memory-store.js';
import type { SessionStore } from '../../src/session/store.js';
import { startCoatcheck, type Coatcheck } from '../../src/start.js';
import type { TracingSettings } from '../../src/tracing/settings.js';
import { Browser } from './browser.js';
import { startTestIdp, type TestIdp } from './idp.js';
import { freePort, waitFor } from './ports.js';
import { startRedis, type TestRedis } from './redis.js';
import { startUpstream, type TestUpstream } from './upstream.js';

export const CLIENT_ID = 'coatcheck-test';
export const CLIENT_SECRET = 'test-client-secret-that-is-long-enough';
export const SESSION_SECRET = 'test-session-secret-0123456789abcdef';
export const AUDIENCE = 'urn:coatcheck:test-api';
export const ALICE = {
  username: 'alice',
  password: 'wonderland',
  sub: 'alice-0001',
  claims: { name: 'Alice Liddell', email: 'alice@example.com', email_verified: true },
};

export interface Bff {
  readonly url: string;
  /** The running instance, started by the same wiring as main.ts. */
  readonly coatcheck: Coatcheck;
  /** The request listener, with its context (sessions, refresher, cache), as tests reach it. */
  readonly app: App;
  readonly config: Config;
  readonly store: SessionStore;
  /** Every log line this instance wrote, for leak checks. */
  readonly logs: string[];
  /** Simulates the process dying: the listener and the store connection go away without a drain. */
  kill(): Promise<void>;
}

/** coatcheck's clock in tests: real time plus an offset, so expiry can be reached without waiting. */
export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export interface Stack {
  readonly clock: TestClock;
  readonly idp: TestIdp;
  readonly redis: TestRedis | undefined;
  readonly upstream: TestUpstream;
  readonly bffs: Bff[];
  readonly bff: Bff;
  browser(): Browser;
  /** The session behind a browser's cookie, read straight from the store (tests only). */
  sessionOf(browser: Browser, bff?: Bff): Promise<Session | undefined>;
  /** Verifies an access token as an API would: signature against the IdP's JWKS, issuer, audience, expiry. */
  verifyAccessToken(token: string): Promise<JWTPayload>;
  close(): Promise<void>;
}

export interface StackOptions {
  instances?: number;
  store?: 'redis' | 'memory';
  accessTokenTtl?: number;
  env?: Record<string, string>;
  refreshHooks?: (instance: number) => RefreshHooks | undefined;
  /** The env names a Redis topology the test started itself (Sentinel, Cluster): the stack starts no Redis. */
  externalRedis?: boolean;
  /** Overrides for the IdP's registration of the client (authentication method, keys). */
  client?: Partial<ClientMetadata>;
  /** Whether the IdP offers pushed authorization requests (it does by default). */
  par?: IdpOptions['par'];
  /** BFF_ROUTES, built around the stack's own upstream; the default has /api, /api/admin and /root. */
  routes?: (upstreamUrl: string) => readonly object[];
  /** More resource servers the IdP issues tokens for (RFC 8707), each its own audience. */
  resources?: IdpOptions['resources'];
  /** The IdP demands DPoP nonces at its token endpoint. */
  dpopNonces?: boolean;
  /** OpenTelemetry tracing for every instance, as main.ts derives it from the OTEL_* variables. */
  tracing?: TracingSettings;
  /** The IdP's acr values and the acr its sign-ins get (step-up tests). */
  idp?: Pick<IdpOptions, 'acrValues' | 'loginAcr'>;
  /** The IdP runs oidc-provider's FAPI 2.0 profile. */
  fapi2?: boolean;
  /** Runs once the IdP is up and before any instance starts (and so before their discovery). */
  beforeStart?: (idp: TestIdp) => void;
}

/**
 * The whole system, for real: Redis, the IdP, an upstream API and N coatcheck instances sharing
 * the store, each started as main.ts starts one. Their ports are picked before the IdP starts, so
 * their callback URLs can be registered with it.
 */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const instances = opts.instances ?? 1;
  const storeKind = opts.store ?? 'redis';
  const redis = storeKind === 'redis' && !opts.externalRedis ? await startRedis() : undefined;
  const upstream = await startUpstream();
  const listeners = await Promise.all(
    Array.from({ length: instances }, async () => {
      const port = await freePort();
      return { port, url: `http://127.0.0.1:${port}` };
    }),
  );
  const idp = await startTestIdp({
    users: [ALICE],
    audience: AUDIENCE,
    accessTokenTtl: opts.accessTokenTtl ?? 300,
    ...(opts.par ? { par: opts.par } : {}),
    ...(opts.dpopNonces ? { dpopNonces: true } : {}),
    ...(opts.resources ? { resources: opts.resources } : {}),
    ...opts.idp,
    ...(opts.fapi2 ? { fapi2: true } : {}),
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        client_name: 'coatcheck test app',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: listeners.map((l) => `${l.url}/bff/callback`),
        post_logout_redirect_uris: listeners.map((l) => `${l.url}/`),
        backchannel_logout_uri: `${listeners[0]!.url}/bff/backchannel-logout`,
        backchannel_logout_session_required: true,
        ...opts.client,
      },
    ],
  });

  opts.beforeStart?.(idp);
  let offset = 0;
  const clock: TestClock = {
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
  };
  const memoryStore = storeKind === 'memory' ? new MemorySessionStore(clock.now) : undefined;
  const bffs: Bff[] = [];
  for (const [i, { port, url }] of listeners.entries()) {
    const config = loadConfig({
      BFF_PORT: String(port),
      BFF_HOST: '127.0.0.1',
      BFF_PUBLIC_URL: url,
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: CLIENT_ID,
      BFF_CLIENT_SECRET: CLIENT_SECRET,
      BFF_SESSION_SECRET: SESSION_SECRET,
      BFF_SESSION_STORE: storeKind,
      BFF_REDIS_URL: redis?.url,
      BFF_ROUTES: JSON.stringify(
        opts.routes?.(upstream.url) ?? [
          { path: '/api', target: `${upstream.url}/v1` },
          { path: '/api/admin', target: `${upstream.url}/admin` },
          { path: '/root', target: upstream.url },
        ],
      ),
      BFF_LOG_LEVEL: 'debug',
      // oidc-provider issues a refresh token for offline_access only with prompt=consent (OIDC Core §11).
      BFF_AUTH_PARAMS: 'prompt=consent',
      ...opts.env,
    });
    const logs: string[] = [];
    const log = createLogger(
      config.logLevel,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          logs.push(chunk.toString());
          cb();
        },
      }),
    );
    const coatcheck = await startCoatcheck(config, {
      log,
      now: clock.now,
      refreshHooks: opts.refreshHooks?.(i),
      store: memoryStore,
      tracing: opts.tracing,
    });
    bffs.push({
      url,
      coatcheck,
      app: coatcheck.app,
      config,
      store: coatcheck.store,
      logs,
      async kill() {
        coatcheck.server.closeAllConnections();
        await new Promise<void>((resolve) => coatcheck.server.close(() => resolve()));
        await coatcheck.store.close();
      },
    });
  }

  const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
  return {
    clock,
    idp,
    redis,
    upstream,
    bffs,
    bff: bffs[0]!,
    browser: () => new Browser(),
    async sessionOf(browser, bff = bffs[0]!) {
      const cookies = await browser.jar.getCookies(bff.url);
      const raw = cookies.find((c) => c.key === SESSION_COOKIE)?.value;
      const signed = raw === undefined ? undefined : decodeURIComponent(raw);
      const id = unsignValue(signed, bff.config.sessionSecrets);
      return id ? bff.app.context.sessions.load(id, clock.now()) : undefined;
    },
    async verifyAccessToken(token) {
      const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience: AUDIENCE });
      return payload;
    },
    async close() {
      // No grace period: whatever a test left open is cut at once, so closing never waits.
      for (const b of bffs) await b.coatcheck.close(0);
      await memoryStore?.close();
      await idp.close();
      await upstream.close();
      await redis?.stop();
    },
  };
}

/**
 * The user signs out at the IdP itself, not through coatcheck, and the IdP posts its back-channel
 * logout token; resolves once the IdP counts the delivery as successful.
 */
export async function signOutAtIdp(stack: Stack, browser: Browser): Promise<void> {
  const delivered = stack.idp.counters.backchannelSuccess;
  const confirm = await browser.go(`${stack.idp.issuer}/session/end`);
  await browser.submitForm(confirm.url, confirm.text, /<form id="op.logoutForm"[\s\S]*?<\/form>/, {
    logout: 'yes',
  });
  await waitFor(
    () => (stack.idp.counters.backchannelSuccess > delivered ? true : undefined),
    5000,
    'back-channel logout delivery',
  );
}
