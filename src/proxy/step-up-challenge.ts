/** One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1): its scheme and auth-params. */
export interface Challenge {
  /** Lower-cased, as schemes are case-insensitive. */
  readonly scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  readonly params: Readonly<Record<string, string>>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * Every challenge in the header's values. A value is a comma-separated list in which a new challenge
 * begins at a token that is not followed by "=", so params and challenges must be told apart as they
 * are read. What does not parse ends the reading of that value: nothing guessed from it is trusted.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) parseValue(value, out);
  return out;
}

function parseValue(value: string, out: Challenge[]): void {
  let rest = value;
  let current: { scheme: string; params: Record<string, string> } | undefined;
  const skip = (re: RegExp) => {
    rest = rest.replace(re, '');
  };
  for (;;) {
    skip(/^[\s,]+/);
    if (rest === '') return;
    const token = TOKEN.exec(rest)?.[0];
    if (!token) return;
    const after = rest.slice(token.length);
    const isParam = current !== undefined && /^\s*=/.test(after) && !TOKEN68_ONLY.test(after);
    if (!isParam) {
      // A new challenge: the scheme, then a token68, a first param, or nothing.
      current = { scheme: token.toLowerCase(), params: {} };
      out.push(current);
      rest = after;
      const spaced = /^ +/.exec(rest);
      if (!spaced) continue;
      const next = rest.slice(spaced[0].length);
      const name = TOKEN.exec(next)?.[0];
      if (name && /^\s*=/.test(next.slice(name.length)) && !TOKEN68_ONLY.test(next.slice(name.length))) {
        rest = next;
        continue;
      }
      const t68 = TOKEN68.exec(next)?.[0];
      if (t68 && /^\s*(,|$)/.test(next.slice(t68.length))) rest = next.slice(t68.length);
      continue;
    }
    rest = after.replace(/^\s*=\s*/, '');
    let paramValue: string;
    if (rest.startsWith('"')) {
      const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(rest);
      if (!quoted) return;
      paramValue = quoted[1]!.replace(/\\(.)/g, '$1');
      rest = rest.slice(quoted[0].length);
    } else {
      const bare = TOKEN.exec(rest)?.[0];
      if (!bare) return;
      paramValue = bare;
      rest = rest.slice(bare.length);
    }
    const name = token.toLowerCase();
    // A repeated param is ambiguous (RFC 9110: each may occur only once): the first stays.
    if (!(name in current!.params)) current!.params[name] = paramValue;
    skip(/^\s*/);
    if (rest !== '' && !rest.startsWith(',')) return;
  }
}

/** After a name, "=" that is only token68 padding ("abc==") rather than a param's "=". */
const TOKEN68_ONLY = /^=+\s*(,|$)/;
