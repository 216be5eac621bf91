import type { Redis } from 'ioredis';
import type { InvalidationFeed } from './store.js';

/** How often the subscription is checked with a PING, and how old its last PONG may be while live. */
const HEARTBEAT_MS = 1000;
const STALE_MS = 3000;

/**
 * The invalidation channel on its own connection (a subscribed connection can do nothing else).
 * Pub/sub delivers at most once, so whatever interrupts the subscription (a disconnect, a Redis
 * restart) makes the feed not live and tells listeners to forget everything; it is live again
 * only once the subscription is confirmed on the new connection. A connection can also die
 * silently (a NAT or firewall dropping an idle flow): a PING every second finds that out, and a
 * feed whose last PONG is older than STALE_MS is not live, whatever the socket says.
 */
export class RedisInvalidationFeed implements InvalidationFeed {
  private listeners: ((key: string | undefined) => void)[] = [];
  private subscribed = false;
  private lastPong = 0;
  private closed = false;
  private waiting: (() => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;
  private sub!: Redis;

  /**
   * connect: a fresh subscriber connection each call. A connection that ends for good (its node is
   * gone from a cluster) is replaced by the next one, which may be on another node.
   */
  constructor(
    private readonly connect: () => Redis,
    private readonly channel: string,
  ) {
    this.attach(connect());
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private attach(sub: Redis): void {
    this.sub = sub;
    sub.on('error', () => {
      // Reconnects by itself; until then the feed is not live and caches are bypassed.
    });
    sub.on('message', (_channel: string, key: string) => {
      if (key) this.emit(key);
    });
    const down = (): void => this.down();
    sub.on('close', down);
    sub.on('reconnecting', down);
    sub.on('end', () => {
      down();
      if (this.closed || this.sub !== sub) return;
      setTimeout(() => {
        if (!this.closed && this.sub === sub) this.attach(this.connect());
      }, HEARTBEAT_MS).unref();
    });
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          if (this.closed || this.sub !== sub || sub.status !== 'ready') return;
          // Anything cached before this point may have missed a message: start clean.
          this.emit(undefined);
          this.subscribed = true;
          this.lastPong = Date.now();
          for (const resolve of this.waiting.splice(0)) resolve();
        },
        // Not allowed, or the connection went: retry on a fresh connection, without spinning.
        () => setTimeout(() => sub.disconnect(true), HEARTBEAT_MS).unref(),
      );
    });
  }

  get live(): boolean {
    return this.subscribed && Date.now() - this.lastPong < STALE_MS;
  }

  onInvalidate(listener: (key: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  whenLive(): Promise<void> {
    return this.live ? Promise.resolve() : new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A change this process made itself: no need to wait for its own message. */
  dropLocally(key: string): void {
    this.emit(key);
  }

  private beat(): void {
    if (!this.subscribed) return;
    if (Date.now() - this.lastPong >= STALE_MS) {
      this.down();
      this.sub.disconnect(true);
      return;
    }
    this.sub.ping().then(
      () => (this.lastPong = Date.now()),
      () => undefined,
    );
  }

  private down(): void {
    if (!this.subscribed) return;
    this.subscribed = false;
    this.emit(undefined);
  }

  private emit(key: string | undefined): void {
    for (const listener of this.listeners) listener(key);
  }

  close(): void {
    this.closed = true;
    this.subscribed = false;
    clearInterval(this.heartbeat);
    this.sub.disconnect();
  }
}
