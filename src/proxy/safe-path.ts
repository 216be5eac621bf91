/**
 * True when no segment of the path can mean "." or ".." to any upstream: written plainly,
 * percent-encoded once or twice ("%2e%2e", "%252e%252e"), hidden behind an encoded separator
 * ("..%2f") or a backslash, or followed by matrix parameters ("..;/", which Java servers strip
 * before normalising). A "#" is refused outright: a WHATWG URL parser upstream would cut the path
 * there. The raw path is forwarded as is, so the upstream sees exactly what was checked.
 * Malformed percent-encoding is refused too, since upstreams disagree on it.
 */
export function isSafePath(pathAndQuery: string): boolean {
  const q = pathAndQuery.indexOf('?');
  const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
  if (path.includes('#')) return false;
  if (!path.includes('.') && !path.includes('%') && !path.includes('\\')) return true;
  for (const segment of path.split('/')) {
    let decoded = segment;
    // Decode until stable (bounded), checking every layer: some upstreams decode twice.
    for (let layer = 0; layer < 3; layer++) {
      for (const part of decoded.split(/[/\\]/)) {
        const bare = part.split(';', 1)[0];
        if (bare === '.' || bare === '..') return false;
      }
      if (!decoded.includes('%')) break;
      try {
        decoded = decodeURIComponent(decoded);
      } catch {
        return false;
      }
    }
  }
  return true;
}
