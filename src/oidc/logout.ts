import * as client from 'openid-client';
import type { OidcClient } from './client.js';

/** OIDC RP-Initiated Logout; undefined when the IdP has no end_session_endpoint. */
export async function endSessionUrl(
  oidc: OidcClient,
  idTokenHint: string | undefined,
): Promise<URL | undefined> {
  const configuration = await oidc.configuration();
  if (!configuration.serverMetadata().end_session_endpoint) return undefined;
  const params: Record<string, string> = {
    post_logout_redirect_uri: oidc.settings.postLogoutRedirectUri,
    client_id: oidc.settings.client.id,
  };
  if (idTokenHint) params.id_token_hint = idTokenHint;
  return client.buildEndSessionUrl(configuration, params);
}
