import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request listener, as http.createServer takes it. */
export type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** A child span the caller ends itself; nothing it starts nests under it. */
export interface TraceSpan {
  /** Ends the span, marked failed (by the error's code only) when an error is given. */
  end(error?: unknown): void;
}

/** The span of one upstream call. */
export interface UpstreamSpan {
  /** Sets `traceparent` (and `tracestate`) in the upstream's request headers to this span's. */
  inject(headers: Record<string, string | string[]>): void;
  /** Ends the span when the forwarding settles, with the status the client got; returns `forwarding` as is. */
  track(forwarding: Promise<void>, res: ServerResponse): Promise<void>;
}

/**
 * What coatcheck asks of tracing. There are two: NOOP_TRACER, when tracing is off, whose every
 * method is a constant no-op (no context is tracked, no object made, no SDK module loaded), and
 * the OpenTelemetry one (otel-tracer.ts), which src/tracing/sdk.ts loads only when configured.
 * Span attributes never carry a token, session id, cookie or query string.
 */
export interface Tracer {
  readonly enabled: boolean;
  /**
   * The listener, with a server span around each request (continuing an incoming `traceparent`)
   * that is current while the request is handled, except for the paths in `untraced` (probes).
   */
  instrument(listener: Listener, untraced: ReadonlySet<string>): Listener;
  /** Names the current request's span after the route it matched: a configured path, never the raw URL. */
  route(route: string): void;
  /** A child of the current span. */
  start(name: string): TraceSpan;
  /** A client span for a call to an API route's upstream, named after the route's configured path. */
  upstream(route: string, method: string, origin: string): UpstreamSpan;
  /** Runs `work` in a child of the current span, so the spans it starts nest under it. */
  run<T>(name: string, work: () => Promise<T>, kind?: 'internal' | 'client'): Promise<T>;
  /** Exports every ended span now (tests wait on it; a shutdown does it too). */
  flush(): Promise<void>;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

const NOOP_SPAN: TraceSpan = Object.freeze({ end() {} });
const NOOP_UPSTREAM: UpstreamSpan = Object.freeze({
  inject() {},
  track: (forwarding: Promise<void>) => forwarding,
});

export const NOOP_TRACER: Tracer = Object.freeze({
  enabled: false,
  instrument: (listener: Listener) => listener,
  route() {},
  start: () => NOOP_SPAN,
  upstream: () => NOOP_UPSTREAM,
  run: <T>(_name: string, work: () => Promise<T>) => work(),
  flush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});
