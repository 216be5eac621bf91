import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { BffError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Session, Sessions, TokenSet } from './sessions.js';

export interface RefreshHooks {
  /** Runs under the lock, just before the IdP call. Tests use it to stall or crash a lock holder. */
  beforeRefresh?: (session: Session) => Promise<void>;
}

export interface RefresherOptions {
  readonly sessions: Sessions;
  /** Calls the IdP. Throws BffError: session_expired for invalid_grant, idp_unavailable otherwise. */
  readonly refresh: (tokens: TokenSet) => Promise<TokenSet>;
  readonly lockTtlMs: number;
  /** No request waits longer than this for someone else's refresh. */
  readonly waitTimeoutMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  readonly hooks?: RefreshHooks;
}

const POLL_MIN_MS = 5;
const POLL_MAX_MS = 50;

/**
 * Exactly one refresh-token grant per expiry, however many requests and replicas want one.
 *
 * In-process, concurrent requests of a session share one promise. Across processes, a Redis lock
 * with an owner token and a renewed TTL elects one refresher; the others poll the token set until
 * it changes, or take the lock themselves if its holder died and the TTL lapsed. The token set is
 * written only here, under the lock, with a compare-and-set on its version, so a request that read
 * the session before a refresh can never write an old refresh token back. See docs/refresh.md.
 */
export class TokenRefresher {
  private readonly inflight = new Map<string, Promise<TokenSet>>();
  private readonly now: () => number;

  constructor(private readonly opts: RefresherOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The session's access token, refreshed first when it is due. */
  async fresh(session: Session): Promise<TokenSet> {
    const { tokens } = session;
    const now = this.now();
    if (tokens.refreshAt > now) return tokens;
    if (!tokens.refreshToken) {
      if (tokens.expiresAt > now) return tokens;
      await this.opts.sessions.destroy(session);
      throw new BffError('session_expired', { message: 'The session has ended: its access token expired.' });
    }
    let shared = this.inflight.get(session.key);
    if (!shared) {
      shared = this.coordinate(session).finally(() => this.inflight.delete(session.key));
      this.inflight.set(session.key, shared);
    }
    return shared;
  }

  private async coordinate(session: Session): Promise<TokenSet> {
    const { sessions, lockTtlMs, waitTimeoutMs } = this.opts;
    const deadline = this.now() + waitTimeoutMs;
    let pause = POLL_MIN_MS;
    for (;;) {
      const owner = randomUUID();
      if (await sessions.store.acquireLock(session.key, owner, lockTtlMs)) {
        return this.refreshUnderLock(session, owner);
      }
      if (this.now() + pause >= deadline) {
        throw new BffError('idp_unavailable', { message: 'The token refresh did not complete in time.' });
      }
      await delay(pause);
      pause = Math.min(pause * 2, POLL_MAX_MS);
      const current = await sessions.readTokens(session);
      if (!current) throw new BffError('session_expired');
      if (current.tokens.refreshAt > this.now()) return current.tokens;
    }
  }

  private async refreshUnderLock(session: Session, owner: string): Promise<TokenSet> {
    const { sessions, lockTtlMs, log } = this.opts;
    const renew = setInterval(() => {
      sessions.store.renewLock(session.key, owner, lockTtlMs).catch(() => undefined);
    }, lockTtlMs / 3);
    try {
      // Re-read under the lock: another replica may have refreshed since this request loaded the session.
      const current = await sessions.readTokens(session);
      if (!current) throw new BffError('session_expired');
      if (current.tokens.refreshAt > this.now()) return current.tokens;

      await this.opts.hooks?.beforeRefresh?.(session);
      // Last moment to back out: if the lock lapsed (a stall, a Redis blip), someone else may be refreshing
      // with this very refresh token, and a second use would make the IdP revoke the grant.
      if (!(await sessions.store.renewLock(session.key, owner, lockTtlMs))) {
        throw new BffError('idp_unavailable', { message: 'The token refresh lost its lock; try again.' });
      }
      let next: TokenSet;
      try {
        next = await this.opts.refresh(current.tokens);
      } catch (err) {
        if (err instanceof BffError && err.code === 'session_expired') {
          await sessions.destroy(session);
          log.info('refresh token rejected by the IdP; session ended');
        }
        throw err;
      }
      if (await sessions.writeTokens(session, current.version, next)) return next;
      // Only possible if the lock lapsed while we worked: trust whatever the winner stored.
      const winner = await sessions.readTokens(session);
      if (winner && winner.tokens.refreshAt > this.now()) return winner.tokens;
      throw new BffError('session_expired');
    } finally {
      clearInterval(renew);
      await sessions.store.releaseLock(session.key, owner).catch(() => undefined);
    }
  }
}
