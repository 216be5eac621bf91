import { BffError } from '../errors.js';
import type { LoginRequest } from '../oidc/login.js';

/** Long enough for several acr URIs; short enough that the login cookie that keeps them stays small. */
const MAX_ACR_VALUES_LENGTH = 200;

const invalid = (message: string): BffError => new BffError('invalid_request', { message });

/** One value of a query parameter: a repeated parameter is ambiguous, so it is refused, not guessed at. */
function single(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${name} must be given once.`);
  return value;
}

/**
 * What /bff/login's query asks of the IdP beyond a sign-in: acr_values (only values the operator
 * allows, so a page cannot make users face an authentication the deployment never meant to offer),
 * max_age, and prompt=none for a silent login. Anything else is refused with invalid_request.
 */
export function parseLoginRequest(
  query: Record<string, unknown>,
  allowedAcrValues: readonly string[],
): LoginRequest {
  const acrValues = single(query.acr_values, 'acr_values');
  const maxAge = single(query.max_age, 'max_age');
  const prompt = single(query.prompt, 'prompt');
  const request: { acrValues?: string; maxAge?: number; prompt?: 'none' } = {};
  if (acrValues !== undefined) {
    const values = acrValues.split(' ').filter(Boolean);
    if (
      values.length === 0 ||
      acrValues.length > MAX_ACR_VALUES_LENGTH ||
      !values.every((v) => allowedAcrValues.includes(v))
    ) {
      throw invalid('acr_values may only name acr values this service allows.');
    }
    request.acrValues = values.join(' ');
  }
  if (maxAge !== undefined) {
    if (!/^\d{1,9}$/.test(maxAge)) throw invalid('max_age must be a whole number of seconds.');
    request.maxAge = Number(maxAge);
  }
  if (prompt !== undefined) {
    if (prompt !== 'none') throw invalid('prompt may only be none.');
    request.prompt = 'none';
  }
  return request;
}
