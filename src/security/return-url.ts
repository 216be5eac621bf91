/**
 * The login's returnTo must stay on this origin: one leading "/", not "//" or "/\" (both mean
 * "another host" to browsers), no control characters (browsers strip tabs and newlines, so "/\t/evil"
 * becomes "//evil"), and nothing that parses with another origin.
 */
export function safeReturnTo(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return undefined;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must be refused
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return undefined;
  const base = 'https://coatcheck.invalid';
  let parsed: URL;
  try {
    parsed = new URL(value, base);
  } catch {
    return undefined;
  }
  if (parsed.origin !== base) return undefined;
  // Re-serialised, so anything outside ASCII is percent-encoded and fits in a Location header.
  const result = parsed.pathname + parsed.search + parsed.hash;
  // Parsing drops dot segments, so "/.//evil" or "/%2e//evil" comes out as "//evil": check the
  // result, not just the input, or it goes out as a protocol-relative Location.
  if (result.startsWith('//') || result.startsWith('/\\')) return undefined;
  return result;
}
