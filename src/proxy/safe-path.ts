/**
 * True when no segment of the path is "." or "..", whether written plainly, percent-encoded
 * ("%2e%2e"), hidden behind an encoded separator ("..%2f") or a backslash. The raw path is then
 * forwarded as is, so the upstream sees exactly what was checked and cannot be walked out of the
 * route's base path. Malformed percent-encoding is refused too, since upstreams disagree on it.
 */
export function isSafePath(pathAndQuery: string): boolean {
  const q = pathAndQuery.indexOf('?');
  const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
  if (!path.includes('.') && !path.includes('%') && !path.includes('\\')) return true;
  for (const segment of path.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return false;
    }
    for (const part of decoded.split(/[/\\]/)) {
      if (part === '.' || part === '..') return false;
    }
  }
  return true;
}
