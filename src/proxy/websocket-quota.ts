/**
 * WebSockets one session may hold open in one process. Each is a pair of connections held for as long
 * as the page likes; a SPA needs a handful (one per feed, per tab), and a page that opens them in a
 * loop should not hold the process's file descriptors.
 */
export const MAX_SOCKETS_PER_SESSION = 32;

/**
 * Places for WebSockets, by session key. A place is taken before the handshake goes upstream, so
 * handshakes in flight at once cannot together pass the cap, and given back when the handshake
 * fails or the socket closes.
 */
export class SocketQuota {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number = MAX_SOCKETS_PER_SESSION) {}

  /** Takes a place for `key`: the function that gives it back (once), or undefined when none is left. */
  take(key: string): (() => void) | undefined {
    const taken = this.held.get(key) ?? 0;
    if (taken >= this.max) return undefined;
    this.held.set(key, taken + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  }
}
