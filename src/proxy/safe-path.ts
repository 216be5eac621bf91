const MAX_DECODES = 3;

/** What some upstreams drop from a segment before reading it: controls (C0, DEL, C1), format characters such as zero-width ones, and every kind of space. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Z}]/gu;
/** Anything outside printable ASCII; Node's parser refuses such bytes raw, so only decoding produces them. */
const NOT_PLAIN = /[^\x21-\x7e]/;

function hasDotSegment(text: string): boolean {
  if (!text.includes('.')) return false;
  // A decoded "?" or "#" ends the path for an upstream that parses the decoded text again.
  for (const part of text.split(/[/\\?#]/)) {
    const bare = part.split(';', 1)[0];
    if (bare === '.' || bare === '..') return true;
  }
  return false;
}

/**
 * The text as an upstream that cleans up Unicode would read it: NFKC applied, which folds
 * look-alikes into ASCII ("．" U+FF0E and "․" U+2024 into ".", "‥" into "..", "／" into "/", "％"
 * into "%"), then invisible characters removed, including the spaces NFKC makes. Removing them
 * first would change nothing: NFKC maps each character on its own, and nothing composes into ASCII.
 */
function folded(text: string): string {
  if (!NOT_PLAIN.test(text)) return text;
  return text.normalize('NFKC').replace(INVISIBLE, '');
}

/**
 * True when no segment of the path can mean "." or ".." to any upstream: written plainly,
 * percent-encoded up to three times ("%2e%2e", "%252e%252e", …), hidden behind an encoded separator
 * ("..%2f") or a backslash, followed by matrix parameters ("..;/", which Java servers strip
 * before normalising), padded with encoded controls or spaces (".%00.", "%20.."), or written with
 * Unicode look-alikes ("%ef%bc%8e%ef%bc%8e", full-width dots). A "#" is refused outright: a WHATWG
 * URL parser upstream would cut the path there. The raw path is forwarded as is, so the upstream
 * sees exactly what was checked. Malformed percent-encoding is refused too, since upstreams
 * disagree on it.
 *
 * Plain paths (no ".", "%" or "\") return at once; a path with dots but no "%" costs one split.
 */
export function isSafePath(pathAndQuery: string): boolean {
  const q = pathAndQuery.indexOf('?');
  const path = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
  if (path.includes('#')) return false;
  if (!path.includes('.') && !path.includes('%') && !path.includes('\\')) return true;
  // Each view is the path as some upstream may read it: plainly decoded (strict), or folded at
  // some point. Every layer is checked, since some upstreams decode more than once. A view still
  // encoded after MAX_DECODES decodes is refused rather than passed on unchecked: no real client
  // nests that deep. Malformed encoding is refused in a strict view; a folded one that does not
  // decode cannot be decoded upstream either, so it is dropped.
  let views: { text: string; strict: boolean }[] = [{ text: path, strict: true }];
  for (let layer = 0; ; layer++) {
    const encoded: { text: string; strict: boolean }[] = [];
    for (const view of views) {
      if (hasDotSegment(view.text)) return false;
      if (view.text.includes('%')) encoded.push(view);
      const fold = folded(view.text);
      if (fold === view.text) continue;
      if (hasDotSegment(fold)) return false;
      if (fold.includes('%')) encoded.push({ text: fold, strict: false });
    }
    if (encoded.length === 0) return true;
    if (layer === MAX_DECODES) return false;
    views = [];
    for (const { text, strict } of encoded) {
      try {
        views.push({ text: decodeURIComponent(text), strict });
      } catch {
        if (strict) return false;
      }
    }
  }
}
