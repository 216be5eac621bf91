import { ERRORS } from '../errors.js';
import { MANAGEMENT_PATHS } from '../http/management-paths.js';
import { parseChallenges } from './step-up-challenge.js';

/**
 * RFC 9470: an API that wants a stronger or more recent sign-in answers 401 with a Bearer challenge
 * carrying error="insufficient_user_authentication", and acr_values and/or max_age. The SPA cannot
 * read that header usefully (it holds no token and cannot start a login at the IdP), so the answer
 * it gets says what to do: navigate to loginUrl, with its own returnTo appended. Every other 401
 * passes through as the API sent it.
 *
 * A DPoP-bound token is challenged under the DPoP scheme with the same error codes (RFC 9449 §7.1),
 * so that scheme counts too.
 */
export interface StepUpAnswer {
  readonly error: 'step_up_required';
  readonly message: string;
  readonly acr_values?: string;
  readonly max_age?: number;
  readonly loginUrl: string;
}

const SCHEMES = new Set(['bearer', 'dpop']);

/** The JSON body for the SPA, or undefined when the 401 is not a step-up challenge. */
export function stepUpAnswer(
  wwwAuthenticate: string | string[] | undefined,
  basePath: string,
): StepUpAnswer | undefined {
  const challenge = parseChallenges(wwwAuthenticate).find(
    (c) => SCHEMES.has(c.scheme) && c.params.error === 'insufficient_user_authentication',
  );
  if (!challenge) return undefined;
  const query = new URLSearchParams();
  const acr = challenge.params.acr_values?.split(' ').filter(Boolean).join(' ');
  const maxAgeText = challenge.params.max_age;
  const maxAge = maxAgeText !== undefined && /^\d{1,9}$/.test(maxAgeText) ? Number(maxAgeText) : undefined;
  if (acr) query.set('acr_values', acr);
  if (maxAge !== undefined) query.set('max_age', String(maxAge));
  return {
    error: 'step_up_required',
    message: ERRORS.step_up_required.message,
    ...(acr ? { acr_values: acr } : {}),
    ...(maxAge !== undefined ? { max_age: maxAge } : {}),
    // Always with "?", so the SPA appends "&returnTo=…" the same way whatever the challenge held.
    loginUrl: `${basePath}${MANAGEMENT_PATHS.login}?${query.toString()}`,
  };
}
