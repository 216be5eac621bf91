import { randomBytes } from 'node:crypto';

/**
 * Where the frames are in one direction of a WebSocket byte stream (RFC 6455 §5.2), read as the
 * bytes pass and holding none of them. coatcheck relays frames as opaque bytes; it needs to know
 * only where one ends, so that a close frame of its own lands between two frames and not inside one.
 */
export class FrameBoundaries {
  /** Payload bytes of the current frame still to come. */
  private payloadLeft = 0;
  /** The current frame's header bytes so far; empty between frames and during a payload. */
  private header: number[] = [];

  get atBoundary(): boolean {
    return this.payloadLeft === 0 && this.header.length === 0;
  }

  /**
   * Reads `chunk` and returns how many of its bytes were read: all of them, or with `stopAtBoundary`
   * only those up to the end of the frame in progress (0 when already between frames).
   */
  read(chunk: Buffer, stopAtBoundary = false): number {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (stopAtBoundary && this.atBoundary) return i;
      if (this.payloadLeft > 0) {
        const take = Math.min(this.payloadLeft, n - i);
        this.payloadLeft -= take;
        i += take;
        continue;
      }
      this.header.push(chunk[i++]!);
      this.headerDone();
    }
    return i;
  }

  /** Once the header is whole: the payload's length, from the 7-bit field or its 16- or 64-bit extension. */
  private headerDone(): void {
    const h = this.header;
    if (h.length < 2) return;
    const short = h[1]! & 0x7f;
    const extension = short === 126 ? 2 : short === 127 ? 8 : 0;
    const mask = h[1]! & 0x80 ? 4 : 0;
    if (h.length < 2 + extension + mask) return;
    let length = short;
    if (extension) {
      length = 0;
      for (let j = 2; j < 2 + extension; j++) length = length * 256 + h[j]!;
    }
    this.header = [];
    this.payloadLeft = length;
  }
}

/**
 * A close frame (RFC 6455 §5.5.1): status code, then a UTF-8 reason of at most 123 bytes. Frames to a
 * server must be masked (§5.3), frames to a client must not.
 */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason, 'utf8')]);
  if (payload.length > 125) throw new RangeError('"reason" must be at most 123 bytes');
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
  const key = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, payload]);
}
