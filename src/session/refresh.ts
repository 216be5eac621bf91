import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { BffError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { InvalidTokenResponseError, UnverifiedRefreshError, describeIdpError } from '../oidc/errors.js';
import { tokenFor, type TokenSet, type TokenTarget } from '../oidc/token-set.js';
import type { Tracer } from '../tracing/tracer.js';
import type { Session, Sessions } from './sessions.js';

export interface RefreshHooks {
  /** Runs under the lock, just before the IdP call. Tests use it to stall or crash a lock holder. */
  beforeRefresh?: (session: Session) => Promise<void>;
}

export interface RefresherOptions {
  readonly sessions: Sessions;
  /**
   * Calls the IdP, for the login's token or a route's (`target`), and answers the whole set with it.
   * Throws BffError: session_expired for invalid_grant, idp_unavailable otherwise.
   */
  readonly refresh: (tokens: TokenSet, target?: TokenTarget) => Promise<TokenSet>;
  readonly lockTtlMs: number;
  /** No request waits longer than this for someone else's refresh. */
  readonly waitTimeoutMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  readonly hooks?: RefreshHooks;
  /** Where outcomes, durations and lock waits are counted. */
  readonly metrics?: Metrics;
  /** A span per refresh, lock wait included, with the IdP call under it. */
  readonly tracer?: Tracer;
}

/**
 * How a refresh ended, as logged (and, by the same names, counted): success; invalid_grant (the IdP
 * refused the refresh token, the session ends); idp_error (the IdP failed, or sent an answer that
 * cannot be used); lock_timeout (another request's refresh took too long to wait for); lost_lock
 * (the lock lapsed before the IdP call, so it was not made).
 */
export type RefreshOutcome = 'success' | 'invalid_grant' | 'idp_error' | 'lock_timeout' | 'lost_lock';

const POLL_MIN_MS = 5;
const POLL_MAX_MS = 50;

/** Whether a request for this target must refresh first: its token is due, or the route has none yet. */
function due(tokens: TokenSet, target: TokenTarget | undefined, now: number): boolean {
  const token = tokenFor(tokens, target);
  return !token || token.refreshAt <= now;
}

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

  /**
   * The session's token set, with the access token for `target` (the login's without one) obtained
   * or refreshed first when it is due. Every target shares the one refresh token, so every refresh,
   * whatever its target, takes the session's one lock and writes the whole set.
   */
  async fresh(session: Session, target?: TokenTarget): Promise<TokenSet> {
    const { tokens } = session;
    const now = this.now();
    if (!due(tokens, target, now)) return tokens;
    if (!tokens.refreshToken) {
      const token = tokenFor(tokens, target);
      if (token && token.expiresAt > now) return tokens;
      if (target && tokens.expiresAt > now) {
        // The session lives on for its other routes; this one cannot have a token of its own.
        throw new BffError('unauthenticated', {
          message: 'This session has no refresh token to get a token for this API. Log in again.',
        });
      }
      await this.opts.sessions.destroy(session);
      this.opts.metrics?.sessionEnds.expired.inc();
      throw new BffError('session_expired', { message: 'The session has ended: its access token expired.' });
    }
    const flight = target ? `${session.key}\n${target.key}` : session.key;
    let shared = this.inflight.get(flight);
    if (!shared) {
      const refreshing = this.opts.tracer
        ? this.opts.tracer.run('token refresh', () => this.coordinate(session, target))
        : this.coordinate(session, target);
      shared = refreshing.finally(() => this.inflight.delete(flight));
      this.inflight.set(flight, shared);
    }
    return shared;
  }

  /**
   * One line per refresh: debug when it worked, warn when not; and the same outcome counted. The
   * log's duration is the IdP call's (or the wait's, for lock_timeout); the metric's runs from the
   * first attempt at the lock, so it is what the waiting request experienced.
   */
  private record(
    outcome: RefreshOutcome,
    startedAt: number,
    details: Record<string, unknown> = {},
    attemptStartedAt = startedAt,
  ): void {
    const end = performance.now();
    this.opts.metrics?.refresh(outcome, (end - attemptStartedAt) / 1000);
    if (outcome === 'invalid_grant') this.opts.metrics?.sessionEnds.invalid_grant.inc();
    const entry = { outcome, durationMs: Math.round(end - startedAt), ...details };
    if (outcome === 'success') this.opts.log.debug(entry, 'token refresh');
    else this.opts.log.warn(entry, 'token refresh failed');
  }

  private async coordinate(session: Session, target: TokenTarget | undefined): Promise<TokenSet> {
    const { sessions, lockTtlMs, waitTimeoutMs } = this.opts;
    const startedAt = performance.now();
    const deadline = this.now() + waitTimeoutMs;
    let pause = POLL_MIN_MS;
    let waited = false;
    // Observed once, when a request that found the lock taken stops waiting, however that ends.
    const waitOver = () => {
      if (waited) this.opts.metrics?.lockWait.observe((performance.now() - startedAt) / 1000);
      waited = false;
    };
    for (;;) {
      const owner = randomUUID();
      if (await sessions.refreshLock.acquireLock(session.key, owner, lockTtlMs)) {
        waitOver();
        return this.refreshUnderLock(session, target, owner, startedAt);
      }
      waited = true;
      if (this.now() + pause >= deadline) {
        waitOver();
        this.record('lock_timeout', startedAt);
        throw new BffError('idp_unavailable', { message: 'The token refresh did not complete in time.' });
      }
      await delay(pause);
      pause = Math.min(pause * 2, POLL_MAX_MS);
      const current = await sessions.readTokens(session);
      const settled = current && !due(current.tokens, target, this.now());
      if (!current || settled) waitOver();
      if (!current) throw new BffError('session_expired');
      if (settled) return current.tokens;
    }
  }

  private async refreshUnderLock(
    session: Session,
    target: TokenTarget | undefined,
    owner: string,
    attemptStartedAt: number,
  ): Promise<TokenSet> {
    const { sessions, lockTtlMs } = this.opts;
    const renew = setInterval(() => {
      sessions.refreshLock.renewLock(session.key, owner, lockTtlMs).catch(() => undefined);
    }, lockTtlMs / 3);
    try {
      // Re-read under the lock: another replica may have refreshed since this request loaded the session.
      const current = await sessions.readTokens(session);
      if (!current) throw new BffError('session_expired');
      if (!due(current.tokens, target, this.now())) return current.tokens;

      await this.opts.hooks?.beforeRefresh?.(session);
      // Last moment to back out: if the lock lapsed (a stall, a Redis blip), someone else may be refreshing
      // with this very refresh token, and a second use would make the IdP revoke the grant.
      const startedAt = performance.now();
      if (!(await sessions.refreshLock.renewLock(session.key, owner, lockTtlMs))) {
        this.record('lost_lock', startedAt, {}, attemptStartedAt);
        throw new BffError('idp_unavailable', { message: 'The token refresh lost its lock; try again.' });
      }
      let next: TokenSet;
      try {
        // The refresh token read under the lock, never the request's: that one may be spent already.
        next = await this.opts.refresh(current.tokens, target);
      } catch (err) {
        const ends = err instanceof BffError && err.code === 'session_expired';
        if (ends) await sessions.destroy(session);
        // The rotated refresh token must be kept, or the next refresh would replay the used one.
        if (err instanceof UnverifiedRefreshError)
          await sessions.writeTokens(session, current.version, err.keep);
        if (err instanceof InvalidTokenResponseError) {
          this.record(
            'idp_error',
            startedAt,
            {
              reason: 'invalid_token_response',
              sessionEnded: true,
              refreshTokenRevoked: err.revoked,
              idp: describeIdpError(err),
            },
            attemptStartedAt,
          );
        } else {
          this.record(
            ends ? 'invalid_grant' : 'idp_error',
            startedAt,
            { ...(ends ? { sessionEnded: true } : {}), idp: describeIdpError(err) },
            attemptStartedAt,
          );
        }
        throw err;
      }
      this.record('success', startedAt, {}, attemptStartedAt);
      if (await sessions.writeTokens(session, current.version, next)) return next;
      // Only possible if the lock lapsed while we worked: trust whatever the winner stored.
      const winner = await sessions.readTokens(session);
      if (winner && !due(winner.tokens, target, this.now())) return winner.tokens;
      throw new BffError('session_expired');
    } finally {
      clearInterval(renew);
      await sessions.refreshLock.releaseLock(session.key, owner).catch(() => undefined);
    }
  }
}
