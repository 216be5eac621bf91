import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** Where an answer goes, chosen when its head arrives: the response itself, or a stand-in. */
export type ChooseSink = (statusCode: number, headers: IncomingHttpHeaders) => Writable;

/**
 * Sends one request and writes the answer's body into the Writable `choose` returns for its head,
 * with backpressure. It is undici's stream() without what the proxy does not use (an async resource,
 * an abort signal, trailers, finished()'s listeners), which a bench of a minimal proxy puts at a
 * fifth of a request's CPU.
 *
 * `downstream` is the client's response: once it closes unfinished (the client went away, before
 * the head or during the body), the upstream request is aborted and the relay rejects. Otherwise it
 * settles when the sink closes: resolves if the sink finished, else rejects (the upstream failed
 * mid-body, which destroys the sink). Before a head, the upstream's error (or the request body's)
 * rejects at once.
 */
export function relay(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  downstream: Writable,
  choose: ChooseSink,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const handler = new RelayHandler(
      choose,
      (err) => (err ? reject(err) : resolve()),
      options.body,
      downstream,
    );
    if (!handler.settledAlready()) dispatcher.dispatch(options, handler);
  });
}

class RelayHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private sink: Writable | undefined;
  private failure: Error | undefined;
  private settled = false;

  constructor(
    private readonly choose: ChooseSink,
    private readonly done: (err?: Error) => void,
    body: Dispatcher.DispatchOptions['body'],
    private readonly downstream: Writable,
  ) {
    // A request body that fails before undici has taken it up (a client gone mid-upload, a size
    // cap passed) would otherwise be an unhandled 'error'.
    if (isReadable(body)) body.on('error', (err: Error) => this.onResponseError(this.controller, err));
    // 'close' comes once: a client already gone will not say so again.
    if (downstream.destroyed || downstream.closed) this.clientGone();
    else downstream.once('close', () => (downstream.writableFinished ? this.answered() : this.clientGone()));
  }

  settledAlready(): boolean {
    return this.settled;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(this.failure ?? prematureClose());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200 || this.sink || this.settled) return;
    const sink = this.choose(statusCode, headers);
    this.sink = sink;
    // A write after the sink ended or failed is reported here, not thrown at the process; the
    // failure that matters reaches the caller through settle().
    sink.on('error', ignore);
    sink.on('drain', () => controller.resume());
    // The downstream response's own close is watched from the start.
    if (sink !== this.downstream) sink.once('close', () => this.sinkClosed(sink));
    if (sink.writableNeedDrain) controller.pause();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.sink && !this.sink.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.sink?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (!this.sink) return this.settle(err);
    // Mid-body: the sink's close settles, with this error.
    this.failure ??= err;
    if (!this.sink.destroyed) this.sink.destroy(err);
  }

  private sinkClosed(sink: Writable): void {
    if (sink.writableFinished) return this.settle();
    this.abortWith(this.failure ?? prematureClose());
  }

  /**
   * The client's answer is complete. When it came from the sink, that is the relay done. When coatcheck
   * answered instead (a step-up), the upstream's body is going to a stand-in that nobody reads:
   * stop it, or an endless one would hold the connection.
   */
  private answered(): void {
    if (this.sink && this.sink !== this.downstream && !this.settled) this.controller?.abort(prematureClose());
    this.settle();
  }

  private clientGone(): void {
    this.abortWith(this.failure ?? prematureClose());
  }

  private abortWith(err: Error): void {
    if (!this.settled) this.controller?.abort(err);
    this.settle(err);
  }

  private settle(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.failure ??= err;
    this.done(err);
  }
}

const ignore = (): void => {};

function isReadable(body: unknown): body is Readable {
  return typeof (body as Readable | null)?.on === 'function';
}

function prematureClose(): Error {
  return Object.assign(new Error('the answer closed before it was complete'), {
    code: 'ERR_STREAM_PREMATURE_CLOSE',
  });
}
