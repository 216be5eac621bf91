import type { Duplex } from 'node:stream';
import { FrameBoundaries, closeFrame } from './websocket-frames.js';

/**
 * How long a tunnel that coatcheck closes waits for a frame in progress to finish and for both peers
 * to hang up, before it cuts both connections.
 */
const CLOSE_GRACE_MS = 2000;

/**
 * One direction: bytes relayed as they arrive, with the same backpressure as pipe() (the source
 * pauses while the destination's buffer is full), and the frame boundaries followed on the way.
 */
class Relay {
  private readonly frames = new FrameBoundaries();
  private closeWith: Buffer | undefined;
  private sent = false;

  constructor(
    private readonly from: Duplex,
    private readonly to: Duplex,
  ) {
    from.on('data', (chunk: Buffer) => this.relay(chunk));
    to.on('drain', () => from.resume());
    from.on('end', () => {
      if (!this.sent) to.end();
    });
  }

  relay(chunk: Buffer): void {
    if (this.sent) return;
    if (this.closeWith) {
      const n = this.frames.read(chunk, true);
      if (n) this.to.write(n === chunk.length ? chunk : chunk.subarray(0, n));
      if (this.frames.atBoundary) this.sendClose();
      return;
    }
    this.frames.read(chunk);
    if (!this.to.write(chunk)) this.from.pause();
  }

  /** The close frame goes out once the frame in progress, if any, has passed; nothing is relayed after it. */
  close(frame: Buffer): void {
    if (this.closeWith) return;
    this.closeWith = frame;
    if (this.frames.atBoundary) this.sendClose();
  }

  private sendClose(): void {
    this.sent = true;
    this.to.end(this.closeWith);
  }
}

/**
 * An established WebSocket between the browser and an upstream: both directions relayed byte for
 * byte, nothing buffered beyond what backpressure holds, and no timeout. coatcheck can end it with
 * a close frame of its own to each side (when the session ends, or at shutdown).
 */
export class WebSocketTunnel {
  private readonly toClient: Relay;
  private readonly toUpstream: Relay;
  private finished = false;
  private grace: NodeJS.Timeout | undefined;

  /**
   * `clientHead` and `upstreamHead` are bytes that arrived with the handshake (already past the
   * HTTP head); `onClosed` runs once, when either side has gone.
   */
  constructor(
    private readonly client: Duplex,
    private readonly upstream: Duplex,
    heads: { readonly client: Buffer; readonly upstream: Buffer },
    private readonly onClosed: () => void,
  ) {
    this.toClient = new Relay(upstream, client);
    this.toUpstream = new Relay(client, upstream);
    const finish = (): void => this.finish();
    // One side gone: the other is ended, so what is still queued for it gets out, then cut if it lingers.
    const closed = (other: Duplex) => (): void => {
      if (other.destroyed) this.finish();
      else {
        other.end();
        this.armGrace();
      }
    };
    client.on('close', closed(upstream)).on('error', finish);
    upstream.on('close', closed(client)).on('error', finish);
    if (heads.upstream.length) this.toClient.relay(heads.upstream);
    if (heads.client.length) this.toUpstream.relay(heads.client);
  }

  /**
   * Closes both sides with `code` and `reason`: the browser gets a close frame as a server sends it,
   * the upstream one as a client sends it (masked), each between two frames.
   */
  close(code: number, reason: string): void {
    if (this.finished) return;
    this.toClient.close(closeFrame(code, reason, false));
    this.toUpstream.close(closeFrame(code, reason, true));
    this.armGrace();
  }

  private armGrace(): void {
    if (this.grace) return;
    this.grace = setTimeout(() => this.finish(), CLOSE_GRACE_MS);
    this.grace.unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.grace);
    this.client.destroy();
    this.upstream.destroy();
    this.onClosed();
  }
}
