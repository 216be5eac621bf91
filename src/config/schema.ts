import { z } from 'zod';

/** zod 4 runs refinements even after a failed .url(), so they must not assume the value parses. */
function urlOf(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}

const isHttp = (value: string): boolean => /^https?:$/.test(urlOf(value)?.protocol ?? '');

/** One API route: requests to `path` and below go to `target`, with the session's access token. */
const routeSchema = z
  .object({
    path: z
      .string()
      .regex(
        /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/,
        'must start with "/" and contain only URL path characters',
      )
      .refine((p) => p === '/' || !p.endsWith('/'), 'must not end with "/"')
      .refine(
        (p) => !p.split('/').some((s) => s === '.' || s === '..'),
        'must not contain "." or ".." segments',
      )
      .refine(
        (p) => p !== '/bff' && !p.startsWith('/bff/'),
        'must not overlap the /bff management endpoints',
      ),
    target: z
      .string()
      .url()
      .refine(isHttp, 'must be an http or https URL')
      .refine((t) => !urlOf(t)?.search && !urlOf(t)?.hash, 'must not have a query or fragment'),
  })
  .strict();

const boolFromEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const seconds = (def: number) =>
  z.coerce
    .number({ message: 'must be a number of seconds' })
    .positive('must be greater than 0')
    .default(def)
    .transform((s) => Math.round(s * 1000));

const httpUrl = z.string().url('must be an absolute URL').refine(isHttp, 'must be an http or https URL');

/**
 * The raw environment, variable by variable. Names are the public contract of the product, so they
 * are spelled out here rather than derived.
 */
export const envSchema = z.object({
  BFF_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  BFF_HOST: z.string().min(1).default('0.0.0.0'),
  BFF_PUBLIC_URL: httpUrl.refine((u) => {
    const url = urlOf(u);
    return !url || (!url.search && !url.hash && !url.username && !url.password);
  }, 'must be an origin with an optional base path, without query, fragment or credentials'),
  BFF_ISSUER: httpUrl,
  BFF_CLIENT_ID: z.string().min(1, 'must not be empty'),
  BFF_CLIENT_SECRET: z.string().min(1, 'must not be empty').optional(),
  BFF_CLIENT_AUTH_METHOD: z
    .enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt'])
    .default('client_secret_basic'),
  BFF_CLIENT_PRIVATE_KEY: z.string().min(1).optional(),
  BFF_SCOPES: z
    .string()
    .default('openid profile email offline_access')
    .transform((s) => s.split(/\s+/).filter(Boolean))
    .refine((s) => s.includes('openid'), 'must include "openid"'),
  BFF_AUTH_PARAMS: z.string().optional(),
  BFF_USERINFO: boolFromEnv.default(false),
  BFF_REDIS_URL: z
    .string()
    .refine((u) => /^rediss?:\/\//.test(u), 'must be a redis:// or rediss:// URL')
    .optional(),
  BFF_SESSION_STORE: z.enum(['redis', 'memory']).default('redis'),
  BFF_SESSION_SECRET: z
    .string()
    .transform((s) => s.split(',').map((p) => p.trim()))
    .refine(
      (list) => list.length > 0 && list.every((p) => p.length >= 32),
      'each secret must be at least 32 characters',
    ),
  BFF_ROUTES: z.string().transform((s, ctx) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON array of {"path","target"} objects' });
      return z.NEVER;
    }
    const result = z.array(routeSchema).safeParse(parsed);
    if (!result.success) {
      for (const issue of result.error.issues) {
        ctx.addIssue({ code: 'custom', message: `${issue.path.join('.') || '(root)'}: ${issue.message}` });
      }
      return z.NEVER;
    }
    const paths = result.data.map((r) => r.path);
    const dup = paths.find((p, i) => paths.indexOf(p) !== i);
    if (dup) {
      ctx.addIssue({ code: 'custom', message: `route path "${dup}" is listed twice` });
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
  BFF_SESSION_IDLE_TIMEOUT: seconds(1800),
  BFF_SESSION_ABSOLUTE_TIMEOUT: seconds(28800),
  BFF_REFRESH_SKEW: z.coerce
    .number({ message: 'must be a number of seconds' })
    .min(0, 'must not be negative')
    .default(30)
    .transform((s) => Math.round(s * 1000)),
  BFF_REFRESH_LOCK_TTL: seconds(5),
  BFF_SESSION_CACHE_TTL: z.coerce
    .number({ message: 'must be a number of seconds' })
    .min(0, 'must not be negative')
    .default(5)
    .transform((s) => Math.round(s * 1000)),
  BFF_UPSTREAM_TIMEOUT: seconds(30),
  BFF_MAX_BODY_SIZE: z.coerce
    .number({ message: 'must be a number of bytes' })
    .int('must be a whole number of bytes')
    .min(0, 'must not be negative (0 means no limit)')
    .default(10 * 1024 * 1024),
  BFF_HEADERS_TIMEOUT: seconds(20),
  BFF_STATIC_DIR: z.string().min(1).optional(),
  BFF_SPA_DEV_SERVER: httpUrl.optional(),
  BFF_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.input<typeof envSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
