import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { startIdp, type Idp, type IdpOptions } from '../../src/demo/idp.js';

/** What the IdP did, counted from oidc-provider's own events: the ground truth for refresh tests. */
export interface IdpCounters {
  refreshGrants: number;
  refreshReuse: number;
  grantsRevoked: number;
  grantErrors: string[];
  backchannelSuccess: number;
  backchannelErrors: string[];
}

/** The demo IdP with a test's instruments attached from outside: counters, induced failures, its key. */
export interface TestIdp extends Idp {
  readonly counters: IdpCounters;
  /** Makes the token endpoint answer with this status (tests of IdP failures); undefined restores it. */
  failTokenEndpoint(status: number | undefined): void;
  /** Signs a JWT with the IdP's own key, e.g. a logout token a test wants to send itself. */
  sign(payload: JWTPayload, typ?: string): Promise<string>;
}

/** The key id the IdP signs under; a test that forges a token under the same kid uses it. */
const KID = 'demo-1';

export async function startTestIdp(options: Omit<IdpOptions, 'signingKey'>): Promise<TestIdp> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: KID, alg: 'RS256', use: 'sig' };
  const idp = await startIdp({ ...options, signingKey });
  const { provider } = idp;

  const counters: IdpCounters = {
    refreshGrants: 0,
    refreshReuse: 0,
    grantsRevoked: 0,
    grantErrors: [],
    backchannelSuccess: 0,
    backchannelErrors: [],
  };
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    if (ctx.oidc.params?.grant_type === 'refresh_token') counters.refreshGrants++;
  });
  provider.on('grant.error', (_ctx: KoaContextWithOIDC, err: Error & { error_description?: string }) => {
    const text = err.error_description ?? err.message;
    counters.grantErrors.push(text);
    if (/already used/.test(text)) counters.refreshReuse++;
  });
  provider.on('grant.revoked', () => counters.grantsRevoked++);
  provider.on('backchannel.success', () => counters.backchannelSuccess++);
  provider.on('backchannel.error', (_ctx: unknown, err: Error) =>
    counters.backchannelErrors.push(err.message),
  );

  let tokenFailure: number | undefined;
  provider.use(async (ctx, next) => {
    if (tokenFailure && ctx.path === '/token') {
      ctx.status = tokenFailure;
      ctx.body = { error: 'server_error', error_description: 'induced failure' };
      return;
    }
    await next();
  });

  return Object.assign(idp, {
    counters,
    failTokenEndpoint(status: number | undefined) {
      tokenFailure = status;
    },
    sign(payload: JWTPayload, typ?: string) {
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid: KID, ...(typ ? { typ } : {}) })
        .sign(privateKey);
    },
  });
}
