import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type Span,
  type TextMapPropagator,
  type Tracer as ApiTracer,
} from '@opentelemetry/api';
import type { Listener, TraceSpan, Tracer, UpstreamSpan } from './tracer.js';
import { requestIdOfResponse } from '../http/request-log.js';

/** What is current while a request is handled: the span context, and the request's method for naming. */
interface Scope {
  readonly context: Context;
  readonly method: string;
}

/** What a failed span records: the error's stable code, never its message, which may quote input. */
function fail(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | undefined)?.code;
  const type = typeof code === 'string' ? code : 'error';
  span.setAttribute('error.type', type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

class ChildSpan implements TraceSpan {
  constructor(private readonly span: Span) {}
  end(error?: unknown): void {
    if (error !== undefined) fail(this.span, error);
    this.span.end();
  }
}

class UpstreamCall implements UpstreamSpan {
  constructor(
    private readonly span: Span,
    private readonly propagator: TextMapPropagator,
  ) {}
  inject(headers: Record<string, string | string[]>): void {
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, this.span), headers, defaultTextMapSetter);
  }
  track(forwarding: Promise<void>, res: ServerResponse): Promise<void> {
    return forwarding.then(
      () => {
        this.span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500) this.span.setStatus({ code: SpanStatusCode.ERROR });
        this.span.end();
      },
      (err: unknown) => {
        fail(this.span, err);
        this.span.end();
        throw err;
      },
    );
  }
}

/**
 * Tracing on: OpenTelemetry spans, with the current request's context kept in this tracer's own
 * AsyncLocalStorage. Nothing is registered globally, so several coatchecks in one process (tests)
 * each trace on their own, and one with tracing off is not touched at all.
 */
export class OtelTracer implements Tracer {
  readonly enabled = true;
  private readonly scope = new AsyncLocalStorage<Scope>();
  private readonly origins = new Map<string, { address: string; port: number }>();

  constructor(
    private readonly tracer: ApiTracer,
    private readonly propagator: TextMapPropagator,
    private readonly provider: { forceFlush(): Promise<void>; shutdown(): Promise<void> },
  ) {}

  instrument(listener: Listener, untraced: ReadonlySet<string>): Listener {
    return (req: IncomingMessage, res: ServerResponse) => {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (untraced.has(path)) return listener(req, res);
      const method = req.method ?? 'GET';
      const parent = this.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
      const span = this.tracer.startSpan(
        method,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': path } },
        parent,
      );
      res.once('close', () => {
        span.setAttribute('http.response.status_code', res.statusCode);
        // From request-log.ts: the ingress's sane X-Request-Id, or one made there.
        const requestId = requestIdOfResponse(res);
        if (typeof requestId === 'string') span.setAttribute('coatcheck.request_id', requestId);
        if (!res.writableFinished) span.setAttribute('coatcheck.aborted', true);
        if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      });
      this.scope.run({ context: trace.setSpan(parent, span), method }, listener, req, res);
    };
  }

  route(route: string): void {
    const current = this.scope.getStore();
    const span = current && trace.getSpan(current.context);
    if (!span) return;
    span.updateName(`${current.method} ${route}`);
    span.setAttribute('http.route', route);
  }

  start(name: string): TraceSpan {
    return new ChildSpan(this.tracer.startSpan(name, undefined, this.current()));
  }

  upstream(route: string, method: string, origin: string): UpstreamSpan {
    let server = this.origins.get(origin);
    if (!server) {
      const url = new URL(origin);
      server = { address: url.hostname, port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80) };
      this.origins.set(origin, server);
    }
    const span = this.tracer.startSpan(
      `${method} ${route}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': method,
          'server.address': server.address,
          'server.port': server.port,
          'coatcheck.route': route,
        },
      },
      this.current(),
    );
    return new UpstreamCall(span, this.propagator);
  }

  run<T>(name: string, work: () => Promise<T>, kind: 'internal' | 'client' = 'internal'): Promise<T> {
    const current = this.scope.getStore();
    const parent = current?.context ?? ROOT_CONTEXT;
    const span = this.tracer.startSpan(
      name,
      { kind: kind === 'client' ? SpanKind.CLIENT : SpanKind.INTERNAL },
      parent,
    );
    const scope = { context: trace.setSpan(parent, span), method: current?.method ?? '' };
    let running: Promise<T>;
    try {
      running = this.scope.run(scope, work);
    } catch (err) {
      running = Promise.reject(err as Error);
    }
    return running.then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        fail(span, err);
        span.end();
        throw err;
      },
    );
  }

  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }

  private current(): Context {
    return this.scope.getStore()?.context ?? ROOT_CONTEXT;
  }
}
