import { envSchema } from './schema.js';

/** Read by demo mode only (src/demo/run.ts). */
export const DEMO_ONLY_NAMES = [
  'BFF_DEMO_IDP_PORT',
  'BFF_DEMO_API_PORT',
  'BFF_DEMO_TOKEN_TTL',
  'BFF_DEMO_DPOP',
] as const;

/**
 * The production variables demo mode reads too: where it listens, where it keeps sessions, how it logs,
 * and the tuning that applies as in production. Every other production variable describes a real
 * deployment, which demo mode would silently replace with its own.
 */
const SHARED_WITH_DEMO: readonly string[] = [
  'BFF_PORT',
  'BFF_HOST',
  'BFF_REDIS_URL',
  'BFF_LOG_LEVEL',
  'BFF_SESSION_IDLE_TIMEOUT',
  'BFF_SESSION_ABSOLUTE_TIMEOUT',
  'BFF_REFRESH_SKEW',
  'BFF_REFRESH_LOCK_TTL',
  'BFF_SESSION_CACHE_TTL',
  'BFF_UPSTREAM_TIMEOUT',
  'BFF_MAX_BODY_SIZE',
  'BFF_HEADERS_TIMEOUT',
];

export const PRODUCTION_NAMES: readonly string[] = Object.keys(envSchema.shape);
export const KNOWN_NAMES: readonly string[] = [...PRODUCTION_NAMES, ...DEMO_ONLY_NAMES];
export const DEMO_NAMES: readonly string[] = [...SHARED_WITH_DEMO, ...DEMO_ONLY_NAMES];

/** The BFF_* variables that are set: an empty value counts as unset, as everywhere in the config. */
export function setNames(env: Record<string, string | undefined>): string[] {
  return Object.keys(env)
    .filter((k) => k.startsWith('BFF_') && env[k] !== undefined && env[k] !== '')
    .sort();
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

export function closestName(name: string): string {
  let best = KNOWN_NAMES[0]!;
  let bestDistance = Infinity;
  for (const known of KNOWN_NAMES) {
    const d = editDistance(name, known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best;
}

/** One warning per BFF_* name coatcheck does not know: most often a typo that would otherwise go unnoticed. */
export function unknownNameWarnings(env: Record<string, string | undefined>): string[] {
  return setNames(env)
    .filter((name) => !KNOWN_NAMES.includes(name))
    .map((name) => `${name}: is not a coatcheck variable and is ignored; did you mean ${closestName(name)}?`);
}

/**
 * Without BFF_ISSUER coatcheck runs demo mode, which replaces the deployment's IdP, client, secrets and
 * routes with its own. A production variable beside a missing issuer means a typo or an env file
 * sourced without `set -a`, never a wish for the demo.
 */
export function demoModeProblems(env: Record<string, string | undefined>): string[] {
  const production = setNames(env).filter((n) => KNOWN_NAMES.includes(n) && !DEMO_NAMES.includes(n));
  if (production.length === 0) return [];
  return [
    `BFF_ISSUER: is required, because production variables are set (${production.join(', ')}); ` +
      'without BFF_ISSUER coatcheck would start demo mode and ignore them. ' +
      `To run the demo instead, unset those and run npm start with at most ${DEMO_NAMES.join(', ')}.`,
  ];
}
