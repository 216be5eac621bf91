/**
 * returnTo with `bff_error=<code>` in its query: how a silent login that the IdP could not complete
 * hands the decision back to the SPA. The rest of returnTo is kept byte for byte; an earlier
 * bff_error (from a previous attempt) is replaced, so the SPA reads one answer.
 */
export function withBffError(returnTo: string, code: string): string {
  const hashAt = returnTo.indexOf('#');
  const beforeHash = hashAt === -1 ? returnTo : returnTo.slice(0, hashAt);
  const hash = hashAt === -1 ? '' : returnTo.slice(hashAt);
  const queryAt = beforeHash.indexOf('?');
  const path = queryAt === -1 ? beforeHash : beforeHash.slice(0, queryAt);
  const kept = queryAt === -1 ? [] : beforeHash.slice(queryAt + 1).split('&');
  const params = kept.filter((p) => p !== '' && p !== 'bff_error' && !p.startsWith('bff_error='));
  params.push(`bff_error=${encodeURIComponent(code)}`);
  return `${path}?${params.join('&')}${hash}`;
}
