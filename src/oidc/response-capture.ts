import { AsyncLocalStorage } from 'node:async_hooks';

/** What the IdP sent back to a token request, kept even when the library then refuses the response. */
export interface CapturedTokenResponse {
  /** The IdP answered 200 with tokens, so whatever it sent may have replaced the refresh token. */
  received?: boolean;
  refreshToken?: string;
}

const capture = new AsyncLocalStorage<CapturedTokenResponse>();

/**
 * Runs `fn` so that a successful token response it receives is noted in `into`. A refresh response
 * carries a rotated refresh token: if the library refuses the response (an ID token that fails
 * validation), coatcheck must still know that token to revoke it.
 */
export function captureTokenResponse<T>(into: CapturedTokenResponse, fn: () => Promise<T>): Promise<T> {
  return capture.run(into, fn);
}

/** The fetch openid-client uses; it reads the body only inside captureTokenResponse. */
export async function capturingFetch(url: string, options: RequestInit): Promise<Response> {
  const res = await fetch(url, options);
  const into = capture.getStore();
  if (!into || res.status !== 200) return res;
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { access_token?: unknown; id_token?: unknown; refresh_token?: unknown };
    into.received = typeof body.access_token === 'string' || typeof body.id_token === 'string';
    if (typeof body.refresh_token === 'string') into.refreshToken = body.refresh_token;
  } catch {
    // Not JSON, so not a token response (a proxy's error page, say): the library reports it.
  }
  return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
}
