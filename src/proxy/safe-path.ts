const MAX_DECODES = 3;

/**
 * True when no segment of the path can mean "." or ".." to any upstream: written plainly,
 * percent-encoded up to three times ("%2e%2e", "%252e%252e", …), hidden behind an encoded separator
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
    // Check every layer, since some upstreams decode more than once. A segment still encoded after
    // MAX_DECODES decodes is refused rather than passed on unchecked: no real client nests that deep.
    for (let layer = 0; ; layer++) {
      for (const part of decoded.split(/[/\\]/)) {
        const bare = part.split(';', 1)[0];
        if (bare === '.' || bare === '..') return false;
      }
      if (!decoded.includes('%')) break;
      if (layer === MAX_DECODES) return false;
      try {
        decoded = decodeURIComponent(decoded);
      } catch {
        return false;
      }
    }
  }
  return true;
}
