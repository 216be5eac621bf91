import { ConfigError, configFromVariables, type Config, type ParMode } from './config/load.js';
import { closestName } from './config/names.js';
import { envSchema } from './config/schema.js';
import type { DpopAlg } from './oidc/dpop-algs.js';
import type { HostCookie, HostStore } from './session/host-session.js';

/** One API route: requests to `path` and below go to `target`, with the session's access token. */
export interface RouteOption {
  /** Such as "/api"; must not end with "/" or overlap /bff. */
  readonly path: string;
  /** An absolute http or https URL without query or fragment, such as "http://127.0.0.1:5000/v1". */
  readonly target: string;
  /** RFC 8707 resource indicator: this route gets an access token for that resource. */
  readonly resource?: string;
  /** Scopes for this route's token (default: the login's), space-separated. */
  readonly scope?: string;
  /** Extra token-request parameters, e.g. `{ audience: '…' }`, for IdPs without RFC 8707. */
  readonly tokenParams?: Readonly<Record<string, string>>;
  /** user (default): a session is required; optional: attached when there is one; none: never attached. */
  readonly token?: 'user' | 'optional' | 'none';
  /** Allowed methods; anything else is 405. */
  readonly methods?: readonly string[];
}

/**
 * coatcheck's settings as a typed object. Each name is its environment variable's, in camelCase
 * without `BFF_` (BFF_PUBLIC_URL is `publicUrl`), and each value means what the variable means:
 * durations in seconds, sizes in bytes. The README's variable table documents them.
 */
export interface BffOptions {
  // Required
  readonly publicUrl: string;
  readonly issuer: string;
  readonly clientId: string;
  /** One secret, or several for rotation (the first seals, all open); each at least 32 characters. */
  readonly sessionSecret: string | readonly string[];
  readonly routes: readonly RouteOption[];

  // The IdP and the client
  readonly clientSecret?: string;
  readonly clientAuthMethod?: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** A PEM private key, or a private JWK (as an object or its JSON). */
  readonly clientPrivateKey?: string | Readonly<Record<string, unknown>>;
  /** Space-separated, or a list; must include openid. */
  readonly scopes?: string | readonly string[];
  /** Extra authorization request parameters: a query string or an object. */
  readonly authParams?: string | Readonly<Record<string, string>>;
  readonly userinfo?: boolean;
  readonly dpop?: boolean;
  readonly dpopAlg?: DpopAlg;
  readonly par?: ParMode;
  readonly postLogoutRedirectUri?: string;

  // The session store
  readonly sessionStore?: 'redis' | 'memory';
  readonly redisUrl?: string;
  readonly redisSentinelConnectionUrls?: string | readonly string[];
  readonly redisSentinelMasterName?: string;
  readonly redisClusterConnectionUrls?: string | readonly string[];
  readonly redisUsername?: string;
  readonly redisPassword?: string;
  readonly redisCaFile?: string;
  readonly redisKeyPrefix?: string;
  /** Seconds. */
  readonly redisWaitTimeout?: number;

  // Sessions and tokens, in seconds
  readonly sessionIdleTimeout?: number;
  readonly sessionAbsoluteTimeout?: number;
  readonly sessionCacheTtl?: number;
  readonly refreshSkew?: number;
  readonly refreshLockTtl?: number;
  /** Ask for every configured route's resource in the login's authorization request too. */
  readonly loginResources?: boolean;
  /** The acr_values a login (step-up) may ask for; any other is refused with 400. */
  readonly allowedAcrValues?: string | readonly string[];
  /** 'fapi2': enforce the FAPI 2.0 Security Profile's client requirements (see the README). */
  readonly profile?: 'fapi2';

  // HTTP
  readonly trustProxy?: boolean | number | string;
  /** Seconds. */
  readonly upstreamTimeout?: number;
  /** Bytes; 0 means no limit. */
  readonly maxBodySize?: number;
  /** Seconds. */
  readonly headersTimeout?: number;
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

  // The standalone server only: the listener, the SPA it serves, metrics and shutdown
  readonly port?: number;
  readonly host?: string;
  readonly staticDir?: string;
  readonly spaDevServer?: string;
  readonly metricsPort?: number;
  readonly metricsHost?: string;
  /** Seconds. */
  readonly shutdownDelay?: number;
  /** Seconds. */
  readonly shutdownTimeout?: number;

  // Middleware mode only; no environment variable, as the standalone server has no host session
  /**
   * 'express-session': the browser's session is the host app's express-session (mounted before
   * coatcheck's middleware), not coatcheck's own cookie. Tokens still stay in coatcheck's store.
   */
  readonly session?: 'express-session';
  /**
   * With session: 'express-session', the name of the host's session cookie (express-session's `name`),
   * default 'connect.sid'. coatcheck never forwards it to an API.
   */
  readonly sessionCookieName?: string;
  /**
   * With session: 'express-session', the store given to express-session: back-channel logout destroys the
   * host's sessions in it, even at a replica that has served no request yet.
   */
  readonly hostSessionStore?: HostStore;
  /**
   * With session: 'express-session', the `cookie` settings given to express-session: checked at start-up,
   * with a warning for each that is weaker than coatcheck's own. Without it, the first request's cookie is checked.
   */
  readonly hostSessionCookie?: HostCookie;
}

type Words<S extends string> = S extends `${infer H}_${infer T}`
  ? `${Capitalize<Lowercase<H>>}${Words<T>}`
  : Capitalize<Lowercase<S>>;
/** BFF_SESSION_IDLE_TIMEOUT → sessionIdleTimeout, at the type level. */
type OptionNameOf<V extends string> = V extends `BFF_${infer R}` ? Uncapitalize<Words<R>> : never;
type Variable = keyof typeof envSchema.shape & string;
type Missing = Exclude<OptionNameOf<Variable>, keyof BffOptions>;
// Does not compile while a variable of the schema has no option above.
const everyVariableHasAnOption: [Missing] extends [never] ? true : Missing = true;
void everyVariableHasAnOption;

/** BFF_SESSION_IDLE_TIMEOUT → sessionIdleTimeout. */
export function optionName(variable: string): string {
  return variable
    .replace(/^BFF_/, '')
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** sessionIdleTimeout → BFF_SESSION_IDLE_TIMEOUT. */
export function variableName(option: string): string {
  return `BFF_${option.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

const VARIABLES: readonly string[] = Object.keys(envSchema.shape);
export const OPTION_NAMES: readonly string[] = VARIABLES.map(optionName);

/** Lists join as the variable does: scopes with spaces, URL and secret lists with commas. */
function asVariableText(variable: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (variable === 'BFF_ROUTES') return JSON.stringify(value);
  if (Array.isArray(value)) return value.map(String).join(variable === 'BFF_SCOPES' ? ' ' : ',');
  if (variable === 'BFF_AUTH_PARAMS' && typeof value === 'object') {
    return new URLSearchParams(value as Record<string, string>).toString();
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A problem as the validation words it, in option names: `BFF_SESSION_STORE=memory` reads `sessionStore: 'memory'`. */
function inOptionNames(problem: string): string {
  return problem
    .replace(/\bBFF_([A-Z0-9_]+)=([\w-]+)/g, (_, rest: string, v: string) => `${optionName(rest)}: '${v}'`)
    .replace(/\bBFF_[A-Z0-9_]+\b/g, (name) => (VARIABLES.includes(name) ? optionName(name) : name))
    .replace('must be a JSON array of', 'must be an array of')
    .replace('must be a comma-separated list of', 'must be a list of')
    .replace(/; it must be an array of .*/, '');
}

/**
 * Validates options once, with the same rules and the same "every problem at once" ConfigError as
 * the environment, naming the options; the Config it returns is frozen.
 */
export function configFromOptions(
  options: BffOptions,
  context: { readonly nodeEnv?: string | undefined } = {},
): Config {
  const problems: string[] = [];
  const variables: Record<string, string> = {};
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(['options: must be an object such as { publicUrl, issuer, clientId, ... }']);
  }
  for (const [key, value] of Object.entries(options)) {
    const variable = variableName(key);
    if (!OPTION_NAMES.includes(key) || optionName(variable) !== key) {
      problems.push(
        `${key}: is not a coatcheck option; did you mean ${optionName(closestName(variableName(key)))}?`,
      );
      continue;
    }
    let text: string | undefined;
    try {
      text = asVariableText(variable, value);
    } catch {
      problems.push(`${key}: cannot be read (a circular or otherwise unserialisable value)`);
      continue;
    }
    // As in the environment, an empty value means "use the default".
    if (text === undefined || (text === '' && variable !== 'BFF_AUTH_PARAMS')) continue;
    variables[variable] = text;
  }
  try {
    const config = configFromVariables(variables, { warnings: [], nodeEnv: context.nodeEnv });
    if (problems.length) throw new ConfigError(problems);
    return config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const all = [...problems, ...err.problems.filter((p) => !problems.includes(p))];
    throw new ConfigError([...new Set(all.map(inOptionNames))], err.warnings.map(inOptionNames));
  }
}
