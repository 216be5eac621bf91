import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import {
  HostSessionIndex,
  memoryIndexBackend,
  redisIndexBackend,
  type HostSessionEntry,
} from './host-session-index.js';
import { RedisSessionStore } from './redis-store.js';
import type { SessionStore } from './store.js';
import { hostRecordIds } from './sealing-key.js';

/**
 * What coatcheck uses of express-session, typed here rather than imported, so that coatcheck's own
 * types do not depend on express-session's.
 */
interface ExpressSession {
  regenerate(callback: (err?: unknown) => void): void;
  destroy(callback: (err?: unknown) => void): void;
  cookie?: HostCookie;
  [field: string]: unknown;
}

/** The host's express-session store (`req.sessionStore`, or the store the host passed to express-session). */
export interface HostStore {
  destroy(id: string, callback?: (err?: unknown) => void): void;
}

interface HostRequest extends IncomingMessage {
  session?: ExpressSession;
  sessionID?: string;
  sessionStore?: HostStore;
}

/** The host session cookie's settings, as express-session's Cookie holds them for a request. */
export interface HostCookie {
  readonly httpOnly?: boolean;
  readonly sameSite?: boolean | string;
  readonly secure?: boolean | 'auto';
}

/**
 * The only thing coatcheck writes into req.session: a marker, so a host session without a login costs
 * no store round trip, and so express-session saves (and sends the cookie for) a session created by a
 * login. Tokens never go there: express-session writes the whole session back after requests, and
 * an old refresh token written back would be used twice (see docs/refresh.md).
 */
export const SESSION_MARKER = 'coatcheck';

/** express-session's default cookie name, and so the default of createBff's `sessionCookieName`. */
export const DEFAULT_HOST_COOKIE = 'connect.sid';

/** RFC 6265 §4.1.1 cookie-name: an RFC 9110 token. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Problems with createBff's middleware-mode options, worded as the other options' problems are. */
export function hostSessionOptionProblems(options: {
  readonly session: unknown;
  readonly sessionCookieName: unknown;
  readonly hostSessionStore: unknown;
  readonly hostSessionCookie?: unknown;
}): string[] {
  const problems: string[] = [];
  const hostMode = options.session === 'express-session';
  if (options.hostSessionCookie !== undefined) {
    if (!hostMode) {
      problems.push("hostSessionCookie: only applies with session: 'express-session'");
    } else if (typeof options.hostSessionCookie !== 'object' || options.hostSessionCookie === null) {
      problems.push(
        "hostSessionCookie: must be the `cookie` object given to express-session, such as { sameSite: 'lax' }",
      );
    }
  }
  if (options.sessionCookieName !== undefined) {
    if (!hostMode) {
      problems.push("sessionCookieName: only applies with session: 'express-session'");
    } else if (
      typeof options.sessionCookieName !== 'string' ||
      !COOKIE_NAME.test(options.sessionCookieName)
    ) {
      problems.push(
        "sessionCookieName: must be a cookie name (express-session's `name` option), such as 'connect.sid'",
      );
    }
  }
  if (options.hostSessionStore !== undefined) {
    if (!hostMode) {
      problems.push("hostSessionStore: only applies with session: 'express-session'");
    } else if (
      typeof options.hostSessionStore !== 'object' ||
      options.hostSessionStore === null ||
      typeof (options.hostSessionStore as { destroy?: unknown }).destroy !== 'function'
    ) {
      problems.push(
        "hostSessionStore: must be express-session's store (an object with destroy(id, callback))",
      );
    }
  }
  return problems;
}

/** Where a request's coatcheck session would be, when its host session carries a login. */
export interface HostLocation {
  /** The session cache's key: the host session id. */
  readonly cacheKey: string;
  /** The record ids to try, the current secret's first (sealing-key.ts). */
  readonly ids: string[];
}

/** Warnings for a host session cookie weaker than coatcheck's own (HttpOnly, SameSite, Secure over https). */
export function hostCookieWarnings(cookie: HostCookie, https: boolean): string[] {
  const warnings: string[] = [];
  if (cookie.httpOnly === false) {
    warnings.push('the host session cookie is not HttpOnly: page scripts can read the session id');
  }
  if (!cookie.sameSite || cookie.sameSite === 'none') {
    warnings.push(
      'the host session cookie has no SameSite: other sites can send it; set sameSite: "lax" (login returns from the IdP by a cross-site redirect)',
    );
  }
  if (https && cookie.secure !== true && cookie.secure !== 'auto') {
    warnings.push('the host session cookie is not Secure although BFF_PUBLIC_URL is https');
  }
  return warnings;
}

function call(run: (callback: (err?: unknown) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((err) => (err ? reject(err as Error) : resolve())));
}

/**
 * Session identity from the host app's express-session (`session: 'express-session'`): the browser's
 * session is req.sessionID, in whatever store the host chose. coatcheck's records stay in its own
 * store under ids derived from the host id and BFF_SESSION_SECRET; this object maps one to the other,
 * regenerates the host session at login, destroys it at logout, and finds it for back-channel logout.
 */
export class HostSession {
  /**
   * Names of the host's session cookie, which never goes upstream: the configured one from the start,
   * plus, if it differs, the name the first request carrying the host cookie shows (warned about).
   */
  readonly cookieNames: Set<string>;
  private checked = false;
  /** Whether a request has shown the host cookie's name yet: learning stops there, so the set stays small. */
  private learned = false;
  /**
   * A back-channel logout may arrive on a path express-session does not cover, or at a replica that has
   * served no request yet: the store given as an option, else the first request's.
   */
  private store: HostStore | undefined;

  constructor(
    private readonly options: {
      readonly secrets: readonly string[];
      readonly index: HostSessionIndex;
      readonly log: Logger;
      /** BFF_PUBLIC_URL is https: the host cookie should be Secure. */
      readonly https: boolean;
      /** express-session's `name`; its default when not given. */
      readonly cookieName?: string;
      /** express-session's store, when the host gives it; otherwise learned from the first request. */
      readonly store?: HostStore;
      /** express-session's `cookie` settings, when the host gives them: checked now, at start-up. */
      readonly cookie?: HostCookie;
    },
  ) {
    this.cookieNames = new Set([options.cookieName ?? DEFAULT_HOST_COOKIE]);
    this.store = options.store;
    if (options.cookie) {
      this.checked = true;
      for (const warning of hostCookieWarnings(options.cookie, options.https)) options.log.warn(warning);
    }
  }

  /** Undefined when the request's host session carries no login (or there is none). */
  locate(incoming: IncomingMessage): HostLocation | undefined {
    const req = this.hostRequest(incoming);
    const id = req.sessionID!;
    if (req.session![SESSION_MARKER] === undefined) return undefined;
    return { cacheKey: id, ids: hostRecordIds(this.options.secrets, id) };
  }

  /**
   * Every request through the middleware, before anything else: learns the host's store and, once,
   * the name its session cookie really has. Never throws: a request without express-session is
   * refused where the session is needed (hostRequest).
   */
  observe(incoming: IncomingMessage): void {
    const req = incoming as HostRequest;
    this.store ??= req.sessionStore;
    if (this.learned || typeof req.sessionID !== 'string' || !req.headers.cookie) return;
    const names = hostCookiesIn(req.headers.cookie, req.sessionID);
    if (!names.length) return;
    this.learned = true;
    const configured = this.options.cookieName ?? DEFAULT_HOST_COOKIE;
    if (names.includes(configured)) return;
    for (const name of names) this.cookieNames.add(name);
    this.options.log.warn(
      { configured, seen: names },
      "the host session cookie's name is not sessionCookieName: set sessionCookieName to express-session's `name`. Until then coatcheck keeps it from the APIs by its value",
    );
  }

  /**
   * The host's session cookie in a Cookie header about to go upstream: by name, and whatever its name
   * by value, the signed form of this request's session id. In this mode that cookie is the user's
   * whole session, so a misnamed option, a route without a token or a logged-out user must not let it out.
   */
  upstreamCookieFilter(incoming: IncomingMessage): (name: string, value: string) => boolean {
    const id = (incoming as HostRequest).sessionID;
    const names = this.cookieNames;
    if (typeof id !== 'string' || id === '') return (name) => names.has(name);
    return (name, value) => names.has(name) || isSignedSessionId(value, id);
  }

  /** A login completed: a new host session (no fixation), marked; returns the record id to create. */
  async begin(incoming: IncomingMessage, now: number): Promise<string> {
    const req = this.hostRequest(incoming);
    await call((cb) => req.session!.regenerate(cb));
    req.session![SESSION_MARKER] = { since: now };
    return hostRecordIds(this.options.secrets, req.sessionID!)[0]!;
  }

  /** Indexes the new host session for back-channel logout, until its absolute expiry. */
  remember(
    incoming: IncomingMessage,
    claims: { sub: string; sid?: string },
    expiresAt: number,
  ): Promise<void> {
    const req = this.hostRequest(incoming);
    return this.options.index.add({ hostId: req.sessionID!, sub: claims.sub, sid: claims.sid }, expiresAt);
  }

  /** Logout: the whole host session ends, not only its login. */
  async end(incoming: IncomingMessage, claims: { sub: string; sid?: string }): Promise<void> {
    const req = this.hostRequest(incoming);
    const entry: HostSessionEntry = { hostId: req.sessionID!, sub: claims.sub, sid: claims.sid };
    await call((cb) => req.session!.destroy(cb));
    // An entry left behind names a destroyed session: a later back-channel logout destroys nothing with it.
    await this.options.index.remove(entry).catch((err: unknown) => {
      this.options.log.warn(
        { err: { message: (err as Error).message } },
        'host-session index not updated at logout',
      );
    });
  }

  /** Back-channel logout: destroys the indexed host sessions in the host's store; returns how many. */
  async endIndexed(incoming: IncomingMessage, kind: 'sid' | 'sub', value: string): Promise<number> {
    const store = (incoming as HostRequest).sessionStore ?? this.store;
    if (!store) {
      throw new Error(
        "the host's session store is not known yet (this replica has served no request through express-session): pass it to createBff as hostSessionStore",
      );
    }
    const found = await this.options.index.find(kind, value);
    await Promise.all(found.ids.map((id) => call((cb) => store.destroy(id, cb))));
    await found.forget();
    return found.ids.length;
  }

  private hostRequest(incoming: IncomingMessage): HostRequest {
    const req = incoming as HostRequest;
    if (!req.session || typeof req.sessionID !== 'string') throw this.notMounted();
    this.observe(req);
    if (!this.checked) {
      this.checked = true;
      for (const warning of hostCookieWarnings(req.session.cookie ?? {}, this.options.https)) {
        this.options.log.warn(warning);
      }
    }
    return req;
  }

  private notMounted(): Error {
    return new Error(
      "session: 'express-session' needs express-session mounted before coatcheck's middleware; this request has no req.session",
    );
  }
}

/** express-session's cookie value for a session id: `s:<id>.<signature>`, percent-encoded or not. */
function isSignedSessionId(value: string, id: string): boolean {
  // cookie-octets may come quoted (RFC 6265 §4.1.1); express-session reads them unquoted.
  const v = value.trim().replace(/^"(.*)"$/, '$1');
  if (v.startsWith(`s:${id}.`)) return true;
  if (!v.includes('%')) return false;
  try {
    return decodeURIComponent(v).startsWith(`s:${id}.`);
  } catch {
    return false;
  }
}

/** The names of the cookies in a header whose value is the signed form of this session id. */
function hostCookiesIn(header: string, id: string): string[] {
  const names: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (isSignedSessionId(part.slice(eq + 1), id)) names.push(part.slice(0, eq).trim());
  }
  return names;
}

/**
 * The host-session identity for a config and the store it opened: the index beside the sessions, on
 * the same Redis connection and prefix, or in memory with the memory store.
 */
export function hostSessionFor(
  config: Config,
  store: SessionStore,
  log: Logger,
  now: () => number,
  host: { readonly cookieName?: string; readonly store?: HostStore; readonly cookie?: HostCookie } = {},
): HostSession {
  const backend =
    store instanceof RedisSessionStore && config.store.kind === 'redis'
      ? redisIndexBackend(store.redis, config.store.keyPrefix)
      : memoryIndexBackend(now);
  return new HostSession({
    secrets: config.sessionSecrets,
    index: new HostSessionIndex(backend, config.sessionSecrets),
    log,
    https: config.publicUrl.startsWith('https:'),
    cookieName: host.cookieName,
    store: host.store,
    cookie: host.cookie,
  });
}
