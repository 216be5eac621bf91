import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { restoreWarnings } from './idp-runtime-notice.js';
import Provider, {
  errors,
  interactionPolicy,
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
  /**
   * More APIs (RFC 8707 resource indicators, each its own audience). A login that names no resource is
   * granted all of them, so a client can get a token for any later from its refresh token; a login
   * that names some is granted those alone.
   */
  readonly resources?: readonly string[];
  /** Show the first user's credentials on the login page (demo mode). */
  readonly showCredentials?: boolean;
  /** The signing key, a private JWK with a kid; a fresh RS256 key when not given. */
  readonly signingKey?: JWK;
  /** RFC 9126 pushed authorization requests: offered (the default), required of every client, or absent. */
  readonly par?: 'offered' | 'required' | 'absent';
  /** RFC 9449 DPoP nonces: the token endpoint then challenges every proof without its current nonce. */
  readonly dpopNonces?: boolean;
  /**
   * The acr values this IdP offers (discovery lists them), e.g. a password and a stronger login. A
   * login that asks for acr_values its session's acr is not among signs in again, as a step-up.
   */
  readonly acrValues?: readonly string[];
  /**
   * The acr a sign-in gets, given the acr_values the login asked for; by default the first asked-for
   * value this IdP offers, else the first it offers. Tests make it answer with a weaker one.
   */
  readonly loginAcr?: (requested: readonly string[]) => string | undefined;
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
 * oidc-provider treats acr_values as a wish and reuses a session whatever its acr. An IdP that offers
 * step-up signs the user in again instead: the login prompt gets one more check.
 */
function stepUpPolicy(): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(
    new interactionPolicy.Check('acr_values', 'the requested acr is not the session’s', (ctx) => {
      const requested = String(ctx.oidc.params?.acr_values ?? '')
        .split(' ')
        .filter(Boolean);
      // Once the user has signed in again, the IdP's answer is what it is: a weaker acr goes back to the client.
      if (requested.length === 0 || requested.includes(String(ctx.oidc.acr)) || ctx.oidc.result?.login) {
        return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }
      return interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );
  return policy;
}

function loginAcr(options: IdpOptions, acrValues: string): string | undefined {
  const offered = options.acrValues;
  if (!offered) return undefined;
  const requested = acrValues.split(' ').filter(Boolean);
  if (options.loginAcr) return options.loginAcr(requested);
  return requested.find((v) => offered.includes(v)) ?? offered[0];
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
  const resources = new Set([audience, ...(options.resources ?? [])]);
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
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      ...(options.acrValues ? { policy: stepUpPolicy() } : {}),
    },
    ...(options.acrValues
      ? {
          acrValues: [...options.acrValues],
          // An API that demands a stronger login (RFC 9470) reads the acr from its access token.
          extraTokenClaims: (ctx: KoaContextWithOIDC, token: { kind: string }) => {
            if (token.kind !== 'AccessToken') return undefined;
            const from = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
            return from?.acr ? { acr: from.acr } : undefined;
          },
        }
      : {}),
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
        // Without a resource: all at login, then the main API's token from a grant that has several.
        defaultResource: (_ctx, _client, oneOf) =>
          oneOf
            ? oneOf.includes(audience)
              ? audience
              : oneOf[0]!
            : resources.size > 1
              ? [...resources]
              : audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (!resources.has(resource)) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: resource,
            accessTokenTTL: accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: options.fapi2 ? 'PS256' : 'RS256' } },
          };
        },
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
      const acr = loginAcr(options, String(details.params.acr_values ?? ''));
      return provider.interactionFinished(
        req,
        res,
        { login: { accountId: user.sub, ...(acr ? { acr } : {}) } },
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
