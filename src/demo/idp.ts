import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { restoreWarnings } from './idp-runtime-notice.js';
import Provider, {
  errors,
  type ClientMetadata,
  type Configuration,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import { unboundedMemoryAdapter } from './idp-storage.js';
import { consentPage, escapeHtml, loggedOutPage, loginPage, logoutPage, page } from './pages.js';

restoreWarnings();

export interface DemoUser {
  readonly username: string;
  readonly password: string;
  readonly sub: string;
  readonly claims: Record<string, unknown>;
}

export interface IdpOptions {
  readonly port?: number;
  readonly host?: string;
  readonly clients: ClientMetadata[];
  readonly users: DemoUser[];
  /** Access-token lifetime in seconds. */
  readonly accessTokenTtl?: number;
  /** Audience of the JWT access tokens this IdP issues for the API. */
  readonly audience?: string;
  /** Show the first user's credentials on the login page (demo mode). */
  readonly showCredentials?: boolean;
  /** The signing key, a private JWK with a kid; a fresh RS256 key when not given. */
  readonly signingKey?: JWK;
  /** RFC 9126 pushed authorization requests: offered (the default), required of every client, or absent. */
  readonly par?: 'offered' | 'required' | 'absent';
  /** RFC 9449 DPoP nonces: the token endpoint then challenges every proof without its current nonce. */
  readonly dpopNonces?: boolean;
  /** oidc-provider's FAPI 2.0 profile, with PS256 and ES256 keys beside the signing key; access tokens PS256. */
  readonly fapi2?: boolean;
}

export interface Idp {
  readonly issuer: string;
  readonly port: number;
  /**
   * The oidc-provider instance: a caller observes it through its events (`provider.on`) and may add
   * Koa middleware (`provider.use`) at any time, before or after requests have been served.
   */
  readonly provider: Provider;
  /** Stops answering (the port is closed); `start()` brings it back on the same port with its state intact. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function newSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: 'demo-1', alg: 'RS256', use: 'sig' };
}

/** Keys for the algorithms FAPI 2.0 allows, so a client can be registered for either. */
async function fapi2Keys(): Promise<JWK[]> {
  return Promise.all(
    (['PS256', 'ES256'] as const).map(async (alg) => {
      const { privateKey } = await generateKeyPair(alg, { extractable: true });
      return { ...(await exportJWK(privateKey)), kid: `demo-${alg}`, alg, use: 'sig' };
    }),
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

/**
 * A real OpenID Provider (panva's oidc-provider) for tests and demo mode: PKCE required, rotating
 * refresh tokens with reuse detection, revocation, RP-initiated and back-channel logout, JWT access
 * tokens for one API audience, and login/consent pages of our own.
 */
export async function startIdp(options: IdpOptions): Promise<Idp> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const port = (server.address() as { port: number }).port;
  const issuer = `http://${host}:${port}`;
  const audience = options.audience ?? 'urn:coatcheck:api';
  const accessTokenTtl = options.accessTokenTtl ?? 300;

  const jwk = options.signingKey ?? (await newSigningKey());

  const users = new Map(options.users.map((u) => [u.sub, u]));
  const configuration: Configuration = {
    adapter: unboundedMemoryAdapter(),
    clients: options.clients,
    jwks: { keys: options.fapi2 ? [jwk, ...(await fapi2Keys())] : [jwk] },
    cookies: { keys: ['coatcheck-demo-idp-cookie-key-0001'] },
    pkce: { required: () => true },
    enabledJWA: { dPoPSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'] },
    rotateRefreshToken: true,
    conformIdTokenClaims: false,
    // oidc-provider refuses outgoing calls to special-use addresses (SSRF protection); this IdP's only
    // peer, the back-channel logout receiver, is on loopback by design, so its calls go out unfiltered.
    fetch: (url, options) => {
      const { dispatcher: _ssrfGuard, ...rest } = (options ?? {}) as RequestInit & { dispatcher?: unknown };
      return globalThis.fetch(url, rest);
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    findAccount: async (_ctx, sub) => {
      const user = users.get(sub);
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: accessTokenTtl,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 24 * 3600,
      Interaction: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      // The library's default policy, stated so it does not announce itself: a client revokes only its own tokens.
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId !== client.clientId) {
            throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
          }
          return true;
        },
      },
      backchannelLogout: { enabled: true },
      fapi: { enabled: Boolean(options.fapi2), profile: '2.0' },
      dPoP: {
        enabled: true,
        ...(options.dpopNonces ? { nonceSecret: randomBytes(32), requireNonce: () => true } : {}),
      },
      pushedAuthorizationRequests: {
        enabled: options.par !== 'absent',
        requirePushedAuthorizationRequests: options.par === 'required',
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: KoaContextWithOIDC, form: string) => {
          ctx.body = logoutPage(form);
        },
        postLogoutSuccessSource: async (ctx: KoaContextWithOIDC) => {
          ctx.body = loggedOutPage();
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'api',
          audience,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: options.fapi2 ? 'PS256' : 'RS256' } },
        }),
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page(
        'Error',
        `<h1>Something went wrong</h1><p>${escapeHtml(String(out.error))}: ${escapeHtml(String(out.error_description ?? ''))}</p>`,
      );
    },
  };

  const provider = new Provider(issuer, configuration);
  // Koa composes its middleware when the handler is made: remake it when a caller adds one later.
  let composed = provider.middleware.length;
  let handler = provider.callback();
  const oidcHandler = (req: IncomingMessage, res: ServerResponse) => {
    if (provider.middleware.length !== composed) {
      composed = provider.middleware.length;
      handler = provider.callback();
    }
    return handler(req, res);
  };
  const demoUser = options.showCredentials ? options.users[0] : undefined;

  async function interaction(
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    action: string | undefined,
  ) {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, 400, page('Error', '<h1>This sign-in page has expired.</h1>'));
    const client = await provider.Client.find(String(details.params.client_id));
    const clientName = client?.clientName ?? String(details.params.client_id);

    if (req.method === 'GET' && !action) {
      if (details.prompt.name === 'login') return send(res, 200, loginPage(uid, clientName, demoUser));
      const scopes = String(details.params.scope ?? '')
        .split(' ')
        .filter(Boolean);
      return send(res, 200, consentPage(uid, clientName, scopes));
    }
    if (req.method !== 'POST') return send(res, 405, page('Error', '<h1>Method not allowed</h1>'));

    if (action === 'login') {
      const form = await readForm(req);
      const user = options.users.find(
        (u) => u.username === form.get('username') && u.password === form.get('password'),
      );
      if (!user) return send(res, 200, loginPage(uid, clientName, demoUser, 'Wrong username or password.'));
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.sub } },
        { mergeWithLastSubmission: false },
      );
    }
    if (action === 'confirm') {
      const { prompt, params, session } = details;
      const grant = details.grantId
        ? (await provider.Grant.find(details.grantId))!
        : new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
      const missing = prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(
        req,
        res,
        { consent: details.grantId ? {} : { grantId } },
        { mergeWithLastSubmission: true },
      );
    }
    if (action === 'abort') {
      return provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'The user denied access.' },
        { mergeWithLastSubmission: false },
      );
    }
    return send(res, 404, page('Error', '<h1>Not found</h1>'));
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec((req.url ?? '').split('?')[0]!);
    if (!m) return oidcHandler(req, res);
    interaction(req, res, m[1]!, m[2]).catch((err: Error) => {
      if (!res.headersSent) send(res, 400, page('Error', `<h1>${escapeHtml(err.message)}</h1>`));
    });
  });

  let listening = true;
  const idp: Idp = {
    issuer,
    port,
    provider,
    async stop() {
      if (!listening) return;
      listening = false;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    async start() {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      listening = true;
    },
    close() {
      return idp.stop();
    },
  };
  return idp;
}
