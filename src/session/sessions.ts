import { randomBytes } from 'node:crypto';
import { LOGOUT_TOKEN_REPLAY_WINDOW_MS, type LogoutTokenClaims } from '../oidc/logout.js';
import type { TokenSet } from '../oidc/token-set.js';
import { newSessionId, openRecord, sealRecord, storageId } from './crypto.js';
import { replayMarker } from './login-transaction.js';
import type { RefreshLock, ReplayGuard, SessionRecords, SessionStore, StoreHealth } from './store.js';

export interface SessionData {
  readonly sub: string;
  /** The IdP's session id (OIDC `sid` claim), used by back-channel logout. */
  readonly sid?: string;
  /** Random, per session: the value the logout URL must carry, so a cross-site page cannot log a user out. */
  readonly logoutId: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface Session {
  readonly id: string;
  /** Where the store keeps the session: a hash of the id (crypto.ts), so the store never sees the id. */
  readonly key: string;
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  /** The earlier of the idle and absolute expiry, as of this request. */
  readonly expiresAt: number;
  readonly version: number;
  readonly tokens: TokenSet;
  data(): SessionData;
}

export interface VersionedTokens {
  readonly tokens: TokenSet;
  readonly version: number;
}

/**
 * The latest a session's tokens let it last: its refresh token's stated end, or, with no refresh
 * token, its access token's expiry. The store keeps the configured absolute end, which is where the
 * record's TTL comes from; this caps it as of each load, because a refresh may bring a refresh token
 * that lives longer than the one before (an IdP's sliding sessions) and the cap must follow it.
 */
function tokenBoundEnd(tokens: TokenSet): number {
  if (!tokens.refreshToken) return tokens.expiresAt;
  return tokens.refreshExpiresAt ?? Infinity;
}

export function newLogoutId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Sessions on top of a store: ids, sealing, the session lifetimes, and the once-only uses of logins
 * and logout tokens. Callers speak in sessions; the store's keys, sealed values and markers stay here.
 */
export class Sessions {
  private readonly records: SessionRecords;
  private readonly replay: ReplayGuard;
  private readonly health: StoreHealth;
  /** For the refresher (refresh.ts), which coordinates refreshes on it, addressed by `Session.key`. */
  readonly refreshLock: RefreshLock;

  constructor(
    store: SessionStore,
    private readonly lifetimes: { readonly idleMs: number; readonly absoluteMs: number },
  ) {
    this.records = store;
    this.replay = store;
    this.health = store;
    this.refreshLock = store;
  }

  /** Rejects (store_unavailable) while the store does not answer: no session can be made or found. */
  checkStore(): Promise<void> {
    return this.health.ping();
  }

  /** The key of the session with this id, without loading it: what a login records as the session it replaces. */
  keyOf(id: string): string {
    return storageId(id);
  }

  async create(
    data: SessionData,
    tokens: TokenSet,
    now: number,
    /** Given when the id comes from elsewhere: derived from the host's session (sealing-key.ts). */
    id = newSessionId(),
  ): Promise<{ id: string; expiresAt: number; absoluteExpiresAt: number }> {
    const absoluteExpiresAt = now + this.lifetimes.absoluteMs;
    await this.records.create(storageId(id), {
      createdAt: now,
      absoluteExpiresAt,
      idleMs: this.lifetimes.idleMs,
      data: sealRecord(id, 'data', data),
      tokens: sealRecord(id, 'tokens', tokens),
      sub: data.sub,
      sid: data.sid,
    });
    return { id, absoluteExpiresAt, expiresAt: Math.min(now + this.lifetimes.idleMs, absoluteExpiresAt) };
  }

  async load(id: string, now: number): Promise<Session | undefined> {
    const key = storageId(id);
    const record = await this.records.load(key, now);
    if (!record) return undefined;
    const tokens = openRecord(id, 'tokens', record.tokens) as TokenSet | undefined;
    // A record that does not open with this id was not made for it: treat as no session.
    if (tokens === undefined) return undefined;
    const tokensEnd = tokenBoundEnd(tokens);
    // A refresh token past its end cannot be used: the session has reached its absolute end.
    if (tokens.refreshToken && tokensEnd <= now) {
      await this.records.destroy(key);
      return undefined;
    }
    let data: SessionData | undefined;
    return {
      id,
      key,
      createdAt: record.createdAt,
      absoluteExpiresAt: Math.min(record.absoluteExpiresAt, tokensEnd),
      expiresAt: Math.min(record.expiresAt, tokensEnd),
      version: record.version,
      tokens,
      data: () => (data ??= (openRecord(id, 'data', record.data) ?? null) as SessionData),
    };
  }

  async readTokens(session: Pick<Session, 'id' | 'key'>): Promise<VersionedTokens | undefined> {
    const record = await this.records.readTokens(session.key);
    if (!record) return undefined;
    const tokens = openRecord(session.id, 'tokens', record.tokens) as TokenSet | undefined;
    return tokens === undefined ? undefined : { tokens, version: record.version };
  }

  writeTokens(
    session: Pick<Session, 'id' | 'key'>,
    expectedVersion: number,
    tokens: TokenSet,
  ): Promise<boolean> {
    return this.records.writeTokens(session.key, expectedVersion, sealRecord(session.id, 'tokens', tokens));
  }

  destroy(session: Pick<Session, 'key'>): Promise<boolean> {
    return this.records.destroy(session.key);
  }

  /**
   * Runs `complete` (the code redemption) at most once per login: the login is marked used before it
   * runs, so a second callback for the same login gets undefined. When `complete` fails the mark is
   * taken back, so a failed login leaves nothing behind.
   */
  async completeLoginOnce<T extends object>(
    loginId: string,
    ttlMs: number,
    complete: () => Promise<T>,
  ): Promise<T | undefined> {
    const marker = replayMarker(loginId);
    if (!(await this.replay.firstSeen(marker, ttlMs))) return undefined;
    try {
      return await complete();
    } catch (err) {
      await this.replay.forget(marker).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Ends the sessions a verified logout token names, once per token: undefined when this token was
   * already used, else how many sessions ended. With a sid only that IdP session ends; with a sub
   * alone, every session of the user does. When ending fails the token stays unused, because the IdP
   * retries a failed delivery with the same token.
   */
  async endByLogoutToken(
    claims: Pick<LogoutTokenClaims, 'iss' | 'jti' | 'sid' | 'sub'>,
  ): Promise<number | undefined> {
    const marker = `jti:${claims.iss}:${claims.jti}`;
    if (!(await this.replay.firstSeen(marker, LOGOUT_TOKEN_REPLAY_WINDOW_MS))) return undefined;
    try {
      const { kind, value } = logoutTokenTarget(claims);
      return await this.records.destroyIndexed(kind, value);
    } catch (err) {
      await this.replay.forget(marker).catch(() => undefined);
      throw err;
    }
  }
}

/** What a logout token names: one IdP session by its sid, or, without one, every session of the sub. */
export function logoutTokenTarget(claims: Pick<LogoutTokenClaims, 'sid' | 'sub'>): {
  kind: 'sid' | 'sub';
  value: string;
} {
  return claims.sid ? { kind: 'sid', value: claims.sid } : { kind: 'sub', value: claims.sub! };
}
