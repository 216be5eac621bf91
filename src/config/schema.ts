import { z } from 'zod';
import { MANAGEMENT_BASE_PATH, isManagementPath } from '../http/management-paths.js';
import { DPOP_ALGS } from '../oidc/dpop-algs.js';
import { PROFILES } from '../oidc/fapi.js';

/** zod 4 runs refinements even after a failed .url(), so they must not assume the value parses. */
function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

const isHttp = (value: string): boolean => /^https?:$/.test(urlOf(value)?.protocol ?? '');

/**
 * The methods a SPA's fetch can usefully send, and every route's default. TRACE above all stays out: an
 * upstream that answers it echoes the request, Authorization header and access token included.
 */
export const API_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** RFC 6749 §3.3: scope tokens separated by single spaces. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*$/;

/** Token-request parameters coatcheck sets itself, or that would change which grant or client it is. */
const RESERVED_TOKEN_PARAMS = new Set([
  'grant_type',
  'refresh_token',
  'client_id',
  'client_secret',
  'client_assertion',
  'client_assertion_type',
  'code',
  'code_verifier',
  'redirect_uri',
  'scope',
  'resource',
]);

const TOKEN_PARAMS_EXPECTED =
  '"tokenParams" must be an object of string values, such as {"audience":"https://api.example.com"}';

const ROUTE_FIELDS = '"path", "target", "resource", "scope", "tokenParams", "token" and "methods"';

/**
 * One API route: requests to `path` and below go to `target`. By default with the login's access
 * token; `resource`, `scope` and `tokenParams` give the route a token of its own, and `token` says
 * whether one is needed at all.
 */
const routeSchema = z
  .strictObject(
    {
      path: z
        .string({ message: '"path" is required, a string such as "/api"' })
        .regex(
          /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/,
          '"path" must start with "/" and contain only URL path characters',
        )
        .refine((p) => p === '/' || !p.endsWith('/'), '"path" must not end with "/"')
        .refine(
          (p) => !p.split('/').some((s) => s === '.' || s === '..'),
          '"path" must not contain "." or ".." segments',
        )
        .refine(
          (p) => !isManagementPath(p),
          `"path" must not overlap the ${MANAGEMENT_BASE_PATH} management endpoints`,
        ),
      target: z
        .string({
          message: '"target" is required, an http or https URL such as "http://127.0.0.1:5000/v1"',
        })
        .url('"target" must be an absolute http or https URL')
        .refine((v) => !urlOf(v) || isHttp(v), '"target" must be an http or https URL')
        .refine((t) => !urlOf(t)?.search && !urlOf(t)?.hash, '"target" must not have a query or fragment'),
      // RFC 8707 §2: an absolute URI without a fragment.
      resource: z
        .string({ message: '"resource" must be a string, an absolute URI such as "https://api.example.com"' })
        .refine(
          (r) => /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(r) && urlOf(r) !== undefined && !r.includes('#'),
          '"resource" must be an absolute URI without a fragment, such as "https://api.example.com"',
        )
        .optional(),
      scope: z
        .string({ message: '"scope" must be a string of space-separated scopes, such as "orders:read"' })
        .regex(SCOPE, '"scope" must be space-separated scopes, such as "orders:read orders:write"')
        .optional(),
      tokenParams: z
        .record(z.string(), z.string({ message: TOKEN_PARAMS_EXPECTED }), { message: TOKEN_PARAMS_EXPECTED })
        .refine(
          (p) => Object.keys(p).every((k) => k !== '' && !RESERVED_TOKEN_PARAMS.has(k)),
          `"tokenParams" must not set ${[...RESERVED_TOKEN_PARAMS].join(', ')}; use "scope" and "resource" for those`,
        )
        .optional(),
      token: z
        .enum(['user', 'optional', 'none'], { message: '"token" must be "user", "optional" or "none"' })
        .default('user'),
      methods: z
        .array(z.enum(API_METHODS, { message: `"methods" may list only ${API_METHODS.join(', ')}` }), {
          message: `"methods" must be an array such as ["GET","POST"], from ${API_METHODS.join(', ')}`,
        })
        .min(1, '"methods" must list at least one method')
        .default([...API_METHODS]),
    },
    {
      error: (iss) =>
        iss.code === 'unrecognized_keys' ? `a route may have only ${ROUTE_FIELDS}` : undefined,
    },
  )
  .superRefine((r, ctx) => {
    if (r.token === 'none' && (r.resource || r.scope || r.tokenParams)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'a route with "token": "none" gets no token, so it cannot have "resource", "scope" or "tokenParams"',
      });
    }
  });

const ROUTES_EXPECTED =
  'must be a JSON array of {"path","target"} objects, such as [{"path":"/api","target":"http://127.0.0.1:5000/v1"}]';

const boolFromEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const secondsNumber = () => z.coerce.number({ message: 'must be a number of seconds, such as 30 or 1.5' });

const seconds = (def: number) =>
  secondsNumber()
    .positive('must be a number of seconds greater than 0')
    .default(def)
    .transform((s) => Math.round(s * 1000));

/** No default here: load.ts derives it from the settings it depends on, so it can never conflict with them. */
const derivedSeconds = (min: 'positive' | 'zero') =>
  (min === 'positive'
    ? secondsNumber().positive('must be a number of seconds greater than 0')
    : secondsNumber().min(0, 'must be a number of seconds, 0 (off) or more')
  )
    .optional()
    .transform((s) => (s === undefined ? undefined : Math.round(s * 1000)));

const isRedisUrl = (u: string): boolean => /^rediss?:\/\/[^/]/.test(u) && urlOf(u) !== undefined;

/** Comma-separated redis:// or rediss:// URLs, one scheme for all: a topology is TLS or it is not. */
const redisUrlList = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((u) => u.trim())
      .filter(Boolean),
  )
  .refine(
    (list) => list.length > 0 && list.every(isRedisUrl),
    'must be a comma-separated list of redis:// or rediss:// URLs, such as redis://10.0.0.1:26379,redis://10.0.0.2:26379',
  )
  .refine(
    (list) => new Set(list.map((u) => urlOf(u)?.protocol)).size <= 1,
    'must use one scheme for every URL: all redis:// or all rediss://',
  );

const httpUrl = z
  .string()
  .url('must be an absolute http or https URL, such as https://example.com')
  .refine((v) => !urlOf(v) || isHttp(v), 'must be an http or https URL');

/**
 * The raw environment, variable by variable. Names are the public contract of the product, so they
 * are spelled out here rather than derived.
 */
export const envSchema = z.object({
  BFF_PORT: z.coerce
    .number({ message: 'must be a port number from 0 to 65535' })
    .int('must be a port number from 0 to 65535')
    .min(0, 'must be a port number from 0 to 65535')
    .max(65535, 'must be a port number from 0 to 65535')
    .default(8080),
  BFF_HOST: z.string().default('0.0.0.0'),
  BFF_PUBLIC_URL: httpUrl.refine((u) => {
    const url = urlOf(u);
    return !url || (!url.search && !url.hash && !url.username && !url.password);
  }, 'must be an origin with an optional base path, without query, fragment or credentials'),
  BFF_ISSUER: httpUrl,
  BFF_CLIENT_ID: z.string().min(1, 'must not be empty'),
  BFF_CLIENT_SECRET: z.string().min(1, 'must not be empty').optional(),
  BFF_CLIENT_AUTH_METHOD: z
    .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'], {
      message: 'must be client_secret_basic, client_secret_post or private_key_jwt',
    })
    .default('client_secret_basic'),
  BFF_CLIENT_PRIVATE_KEY: z.string().optional(),
  BFF_SCOPES: z
    .string()
    .default('openid profile email offline_access')
    .transform((s) => s.split(/\s+/).filter(Boolean))
    .refine((s) => s.includes('openid'), 'must be a space-separated list of scopes that includes openid'),
  BFF_AUTH_PARAMS: z.string().optional(),
  BFF_ALLOWED_ACR_VALUES: z
    .string()
    .transform((s) =>
      s
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean),
    )
    .refine(
      (list) => list.every((v) => /^[\x21-\x7e]+$/.test(v)),
      'must be a comma-separated list of acr values without spaces, such as urn:example:mfa,phr',
    )
    .default([]),
  BFF_USERINFO: boolFromEnv.default(false),
  BFF_DPOP: boolFromEnv.default(false),
  BFF_DPOP_ALG: z.enum(DPOP_ALGS, { message: `must be one of ${DPOP_ALGS.join(', ')}` }).default('ES256'),
  BFF_LOGIN_RESOURCES: boolFromEnv.default(false),
  BFF_PAR: z.enum(['off', 'auto', 'required'], { message: 'must be off, auto or required' }).default('off'),
  BFF_PROFILE: z.enum(PROFILES, { message: `must be ${PROFILES.join(', ')}, or unset for none` }).optional(),
  BFF_REDIS_URL: z
    .string()
    .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL')
    .optional(),
  BFF_REDIS_SENTINEL_CONNECTION_URLS: redisUrlList.optional(),
  BFF_REDIS_SENTINEL_MASTER_NAME: z.string().min(1, 'must not be empty').optional(),
  BFF_REDIS_CLUSTER_CONNECTION_URLS: redisUrlList.optional(),
  BFF_REDIS_USERNAME: z.string().optional(),
  BFF_REDIS_PASSWORD: z.string().optional(),
  BFF_REDIS_CA_FILE: z.string().optional(),
  BFF_REDIS_KEY_PREFIX: z
    .string()
    .refine((p) => !/[{}]/.test(p), 'must not contain "{" or "}": coatcheck puts its own hash tags in keys')
    .default('coatcheck:'),
  BFF_REDIS_WAIT_TIMEOUT: secondsNumber()
    .min(0, 'must be a number of seconds from 0 (off) to 10, such as 0.1')
    .max(10, 'must be a number of seconds from 0 (off) to 10, such as 0.1 (it is seconds, not milliseconds)')
    .default(0.1)
    .transform((s) => Math.round(s * 1000)),
  BFF_SESSION_STORE: z.enum(['redis', 'memory'], { message: 'must be redis or memory' }).default('redis'),
  BFF_SESSION_SECRET: z
    .string()
    .transform((s) => s.split(',').map((p) => p.trim()))
    .refine(
      (list) => list.length > 0 && list.every((p) => p.length >= 32),
      'must be a comma-separated list of secrets, each at least 32 characters (generate one with: openssl rand -base64 48)',
    ),
  BFF_ROUTES: z.string().transform((s, ctx) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: `is not valid JSON; it ${ROUTES_EXPECTED}` });
      return z.NEVER;
    }
    const result = z
      .array(z.unknown(), { message: ROUTES_EXPECTED })
      .min(1, ROUTES_EXPECTED)
      .pipe(z.array(routeSchema))
      .safeParse(parsed);
    if (!result.success) {
      for (const issue of result.error.issues) {
        // zod's own wording would otherwise leak through for a route that is not an object at all.
        const index = issue.path[0];
        const route: unknown = typeof index === 'number' ? (parsed as unknown[])[index] : undefined;
        const isObject = typeof route === 'object' && route !== null && !Array.isArray(route);
        const message =
          typeof index !== 'number'
            ? issue.message
            : isObject
              ? `in route ${index + 1}, ${issue.message}`
              : `route ${index + 1} must be an object {"path","target"}`;
        ctx.addIssue({ code: 'custom', message });
      }
      return z.NEVER;
    }
    const paths = result.data.map((r) => r.path);
    const dup = paths.find((p, i) => paths.indexOf(p) !== i);
    if (dup) {
      ctx.addIssue({
        code: 'custom',
        message: `has the route path "${dup}" twice; each path may appear once`,
      });
      return z.NEVER;
    }
    return result.data;
  }),
  BFF_TRUST_PROXY: z
    .string()
    .default('false')
    .transform((v): boolean | number | string => {
      if (v === 'true') return true;
      if (v === 'false') return false;
      if (/^\d+$/.test(v)) return Number(v);
      return v;
    }),
  BFF_POST_LOGOUT_REDIRECT_URI: httpUrl.optional(),
  BFF_SESSION_IDLE_TIMEOUT: derivedSeconds('positive'),
  BFF_SESSION_ABSOLUTE_TIMEOUT: seconds(28800),
  BFF_REFRESH_SKEW: z.coerce
    .number({ message: 'must be a number of seconds, such as 30 or 1.5' })
    .min(0, 'must be a number of seconds, 0 or more')
    .default(30)
    .transform((s) => Math.round(s * 1000)),
  BFF_REFRESH_LOCK_TTL: seconds(5),
  BFF_SESSION_CACHE_TTL: derivedSeconds('zero'),
  BFF_UPSTREAM_TIMEOUT: seconds(30),
  BFF_MAX_BODY_SIZE: z.coerce
    .number({ message: 'must be a number of bytes, such as 10485760 (0 means no limit)' })
    .int('must be a whole number of bytes (0 means no limit)')
    .min(0, 'must be a number of bytes, 0 (no limit) or more')
    .default(10 * 1024 * 1024),
  BFF_HEADERS_TIMEOUT: seconds(20),
  BFF_STATIC_DIR: z.string().optional(),
  BFF_SPA_DEV_SERVER: httpUrl.optional(),
  BFF_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be fatal, error, warn, info, debug, trace or silent',
    })
    .default('info'),
  // Unset turns metrics off; they never share the public listener.
  BFF_METRICS_PORT: z.coerce
    .number({ message: 'must be a port number from 0 to 65535' })
    .int('must be a port number from 0 to 65535')
    .min(0, 'must be a port number from 0 to 65535')
    .max(65535, 'must be a port number from 0 to 65535')
    .optional(),
  BFF_METRICS_HOST: z.string().optional(),
  // 0 is allowed: with nothing in front to take the instance out of rotation, there is nothing to wait for.
  BFF_SHUTDOWN_DELAY: secondsNumber()
    .min(0, 'must be a number of seconds, 0 or more')
    .default(5)
    .transform((s) => Math.round(s * 1000)),
  BFF_SHUTDOWN_TIMEOUT: seconds(20),
});

export type RouteConfig = z.output<typeof routeSchema>;
/** A route as written, before defaults: what tests and the demo build by hand. */
export type RouteInput = z.input<typeof routeSchema>;
