import type { Logger } from '../log.js';
import type { Session, Sessions } from './sessions.js';
import type { InvalidationFeed } from './store.js';

/** What the registry needs of an open socket: a way to close it with a WebSocket close code. */
export interface ClosableSocket {
  close(code: number, reason: string): void;
}

/** RFC 6455 §7.4.2 leaves 4000–4999 to applications; 4401 reads as "401, over a WebSocket". */
export const SESSION_ENDED = { code: 4401, reason: 'session ended' } as const;

/** The record expires on Redis's clock, a moment after coatcheck's: a look this much later finds it gone. */
const EXPIRY_SLACK_MS = 100;
/**
 * A session still there at its idle end was used elsewhere since, up to one idle period ago; how
 * far is not known without sliding it again. It is looked at this many times per idle period until
 * it is gone, so a socket closes at most that fraction of the idle timeout late.
 */
const LOOKS_PER_IDLE_PERIOD = 10;
const MIN_LOOK_INTERVAL_MS = 250;
/** setTimeout's largest delay; a later end is looked at then, and the timer set again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Entry {
  readonly session: Pick<Session, 'id' | 'key' | 'absoluteExpiresAt'>;
  readonly sockets: Set<ClosableSocket>;
  timer: NodeJS.Timeout | undefined;
  looking: boolean;
  lookAgain: boolean;
}

export interface OpenSocketsOptions {
  readonly sessions: Sessions;
  /** Called on first use, so a process without WebSockets never subscribes. */
  readonly feed: () => InvalidationFeed;
  readonly idleMs: number;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * The WebSockets open in this process, by session, and the one job of closing them when their
 * session ends, on this replica or any other.
 *
 * Endings that are events (logout, back-channel logout, a refresh the IdP refused) arrive on the
 * invalidation feed, which also carries token writes: each message for a session with sockets is
 * checked against the store, and only a session that is gone closes its sockets. While the feed is
 * down nothing arrives; when it is back it says "forget everything", and every session is checked.
 *
 * Timeouts are no event, so each session with sockets has a timer for its end. An open socket does
 * not slide the idle timeout (traffic on it is not seen, and an open tab is not a user): only API
 * calls and /bff/user do, as before. When the timer finds the session still there, something slid
 * it, and it is looked at again every idle period / LOOKS_PER_IDLE_PERIOD until its absolute end.
 */
export class OpenSockets {
  private readonly entries = new Map<string, Entry>();
  /** Bumped on every message: a socket whose session was read before a bump is checked at once. */
  private generation = 0;
  private subscribed = false;

  constructor(private readonly opts: OpenSocketsOptions) {}

  get size(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.sockets.size;
    return n;
  }

  /** Call before reading the session a socket will be added under, and pass the result to add(). */
  begin(): number {
    this.subscribe();
    return this.generation;
  }

  /** Registers an open socket; returns the function that takes it out again once it has closed. */
  add(session: Session, socket: ClosableSocket, begun: number): () => void {
    let entry = this.entries.get(session.key);
    if (!entry) {
      entry = {
        session: { id: session.id, key: session.key, absoluteExpiresAt: session.absoluteExpiresAt },
        sockets: new Set(),
        timer: undefined,
        looking: false,
        lookAgain: false,
      };
      this.entries.set(session.key, entry);
      this.arm(entry, Math.min(session.expiresAt, session.absoluteExpiresAt) + EXPIRY_SLACK_MS);
    }
    entry.sockets.add(socket);
    // The session may have ended between the read and now, and its message gone by.
    if (begun !== this.generation) this.look(entry);
    const added = entry;
    return () => {
      added.sockets.delete(socket);
      if (added.sockets.size === 0 && this.entries.get(added.session.key) === added) {
        clearTimeout(added.timer);
        this.entries.delete(added.session.key);
      }
    };
  }

  /** Closes every socket (shutdown), each with `code` and `reason`. */
  closeAll(code: number, reason: string): void {
    for (const entry of [...this.entries.values()]) this.end(entry, code, reason);
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.opts.feed().onInvalidate((key) => {
      this.generation++;
      if (key === undefined) for (const entry of this.entries.values()) this.look(entry);
      else {
        const entry = this.entries.get(key);
        if (entry) this.look(entry);
      }
    });
  }

  private arm(entry: Entry, at: number): void {
    clearTimeout(entry.timer);
    const delay = Math.min(Math.max(0, at - this.opts.now()), MAX_TIMER_MS);
    entry.timer = setTimeout(() => this.look(entry), delay);
    entry.timer.unref();
  }

  /** Reads the session without sliding it: gone means ended, and its sockets close. */
  private look(entry: Entry): void {
    if (entry.looking) {
      entry.lookAgain = true;
      return;
    }
    entry.looking = true;
    this.opts.sessions
      .readTokens(entry.session)
      .then(
        (found) => {
          if (this.entries.get(entry.session.key) !== entry) return;
          if (!found || this.opts.now() >= entry.session.absoluteExpiresAt) {
            this.end(entry, SESSION_ENDED.code, SESSION_ENDED.reason);
            return;
          }
          this.arm(entry, this.nextLook(entry));
        },
        (err: unknown) => {
          // The store is not answering: the sockets stay, and the session is looked at again later.
          this.opts.log.debug(
            { err: { message: (err as Error).message } },
            'open sockets: session check failed',
          );
          if (this.entries.get(entry.session.key) === entry) this.arm(entry, this.nextLook(entry));
        },
      )
      .finally(() => {
        entry.looking = false;
        if (entry.lookAgain && this.entries.get(entry.session.key) === entry) {
          entry.lookAgain = false;
          this.look(entry);
        }
      });
  }

  private nextLook(entry: Entry): number {
    const step = Math.max(MIN_LOOK_INTERVAL_MS, this.opts.idleMs / LOOKS_PER_IDLE_PERIOD);
    return Math.min(this.opts.now() + step, entry.session.absoluteExpiresAt + EXPIRY_SLACK_MS);
  }

  private end(entry: Entry, code: number, reason: string): void {
    clearTimeout(entry.timer);
    if (this.entries.get(entry.session.key) === entry) this.entries.delete(entry.session.key);
    for (const socket of entry.sockets) socket.close(code, reason);
    entry.sockets.clear();
  }
}
