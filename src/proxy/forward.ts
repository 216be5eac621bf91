import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { performance } from 'node:perf_hooks';
import { BffError } from '../errors.js';
import type { RouteMetrics, UpstreamErrorReason } from '../metrics.js';
import { nonceChallenge, type DpopNonces } from '../oidc/dpop.js';
import { downstreamResponseHeaders, responseHead } from './headers.js';
import { relay } from './relay.js';

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/** Why an upstream call failed, in the words an operator uses (and a metric's reason label will). */
export type UpstreamFailure = 'timeout' | 'unreachable' | 'bad_request_body' | 'other';

export function classifyUpstreamFailure(err: unknown): UpstreamFailure {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return 'timeout';
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return 'bad_request_body';
  return UNREACHABLE.has(code) ? 'unreachable' : 'other';
}

const CONNECT_FAILURES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The metric's reason for a failed upstream call: connect (no connection was made), timeout (no
 * answer, or a stalled body, in time), reset (the connection failed once made). Undefined for the
 * client's own faults, which say nothing about the upstream.
 */
export function upstreamErrorReason(err: unknown): UpstreamErrorReason | undefined {
  const code = (err as { code?: string }).code ?? '';
  if (CONNECT_FAILURES.has(code)) return 'connect';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  if (classifyUpstreamFailure(err) === 'bad_request_body') return undefined;
  return 'reset';
}

/** The client sees a timeout as 504, its own bad body as 400, and every other failure as 502. */
function upstreamError(err: unknown): BffError {
  const failure = classifyUpstreamFailure(err);
  if (failure === 'timeout') return new BffError('upstream_timeout', { cause: err });
  if (failure === 'bad_request_body') return new BffError('invalid_request', { cause: err });
  return new BffError('upstream_unreachable', { cause: err });
}

export interface UpstreamRequest {
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly timeoutMs: number;
  /**
   * coatcheck's own response headers (security headers, X-Request-Id), written with the answer's
   * head; the upstream's header of the same name wins.
   */
  readonly ownHeaders?: ReadonlyArray<readonly [string, string]>;
  /**
   * The largest body to forward, in bytes; 0 or absent means no limit. The caller refuses a
   * Content-Length over it before calling (Node holds the body to its Content-Length), so only a
   * chunked body is counted here.
   */
  readonly maxBodySize?: number;
  /** The route's bound metrics: time to the response head, and failures by reason. */
  readonly metrics?: RouteMetrics;
  /** RFC 9470: turns a step-up challenge into the SPA's JSON answer (step-up.ts); other 401s pass through. */
  readonly stepUp?: (wwwAuthenticate: string | string[] | undefined) => object | undefined;
  /** With a DPoP-bound token: a fresh proof per attempt, with the upstream's last nonce. */
  readonly dpop?: {
    readonly nonces: DpopNonces;
    proof(nonce: string | undefined): string;
  };
}

/**
 * The request body, cut off once it grows past `max`. Before the answer starts, the body fails,
 * undici aborts the upstream request and the caller answers 413. After it, the client connection
 * is reset and undici, seeing the response close, aborts the upstream request; failing the body
 * there instead would make undici end a response that would then look complete (and it mishandles
 * a body error once the response has started).
 */
function capped(req: IncomingMessage, res: ServerResponse, max: number, onOver: () => void): Transform {
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen <= max) return done(null, chunk);
      onOver();
      if (res.headersSent) req.socket.resetAndDestroy();
      else done(new BffError('payload_too_large'));
    },
  });
  // pipe() passes on data, not failures: a client that goes away mid-body must end the upload too.
  // Once the answer has started, the response closing already tells undici.
  req.on('close', () => {
    if (!req.complete && !res.headersSent) counter.destroy(new Error('client closed the request body'));
  });
  return req.pipe(counter);
}

/**
 * Streams the request to the upstream and the answer back, without buffering either body.
 * relay() writes the upstream body straight into the response (no intermediate Readable, no
 * pipeline bookkeeping). A client that goes away destroys the response, which
 * aborts the upstream request. Errors before the answer starts become 502/504; after that the only
 * honest signal left is to cut the connection. A chunked body that passes maxBodySize aborts the
 * upstream request too: before the answer starts the client gets 413, after it a reset.
 */
export async function forward(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  target: UpstreamRequest,
): Promise<void> {
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  let over = false;
  const body = !hasBody
    ? null
    : target.maxBodySize && req.headers['content-length'] === undefined
      ? capped(req, res, target.maxBodySize, () => (over = true))
      : req;
  const started = performance.now();
  const { dpop } = target;
  const eventStream = acceptsEventStream(req.headers.accept);
  // An event stream must reach the browser event by event: compressed, it would sit in a
  // compressor's window. Asked without Accept-Encoding, the upstream sends it as it is.
  const requestHeaders = eventStream ? withoutAcceptEncoding(target.headers) : target.headers;
  // RFC 9449 §9: an upstream that wants a nonce says so once; a request without a body is sent again
  // with it. One with a body has been consumed, so its challenge reaches the SPA as it is.
  let challenged = false;
  let retried = false;
  const send = () =>
    relay(
      dispatcher,
      {
        origin: target.origin,
        path: target.path,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: dpop
          ? { ...requestHeaders, dpop: dpop.proof(dpop.nonces.get(target.origin)) }
          : requestHeaders,
        body,
        headersTimeout: target.timeoutMs,
        // Quiet between events is what an event stream does; the client going away ends it.
        bodyTimeout: eventStream ? 0 : target.timeoutMs,
      },
      res,
      (statusCode, headers) => {
        if (dpop) {
          const challenge = nonceChallenge(statusCode, headers);
          dpop.nonces.remember(target.origin, challenge ?? firstValue(headers['dpop-nonce']));
          if (challenge && !body && !retried) {
            challenged = true;
            return discard();
          }
        }
        target.metrics?.duration.observe((performance.now() - started) / 1000);
        const stepUp = statusCode === 401 ? target.stepUp?.(headers['www-authenticate']) : undefined;
        if (stepUp) return answerInstead(res, 401, stepUp, target.ownHeaders);
        const out = downstreamResponseHeaders(headers);
        // Proxies in front (nginx) buffer answers unless told not to; an event stream must not wait.
        if (isEventStream(out['content-type'])) out['x-accel-buffering'] = 'no';
        res.writeHead(statusCode, target.ownHeaders ? responseHead(out, target.ownHeaders) : out);
        return res;
      },
    );
  try {
    await send();
    if (challenged) {
      retried = true;
      await send();
    }
  } catch (err) {
    // A client that went away, or a body over the limit, is no fault of the upstream's.
    if (target.metrics && !over && !res.destroyed) {
      const reason = upstreamErrorReason(err);
      if (reason) target.metrics.errors[reason].inc();
    }
    // coatcheck's own answer (a step-up) is already complete; only the upstream's dropped body failed.
    if (res.writableEnded && !res.destroyed) return;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (over) {
      // The rest of the body is still on its way; reading it to keep the connection is not worth it.
      res.setHeader('Connection', 'close');
      throw new BffError('payload_too_large', { cause: err });
    }
    // A request body the upstream never took is still on the client's connection: closing it is
    // cheaper than reading it, and leaves no half-read request behind a keep-alive socket.
    if (body && !req.complete) res.setHeader('Connection', 'close');
    throw upstreamError(err);
  }
}

/** EventSource sends `Accept: text/event-stream`; a fetch() that reads a stream may too. */
function acceptsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && accept.toLowerCase().includes('text/event-stream');
}

function isEventStream(contentType: unknown): boolean {
  return typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream');
}

function withoutAcceptEncoding(
  headers: Record<string, string | string[]>,
): Record<string, string | string[]> {
  const { 'accept-encoding': _dropped, ...rest } = headers;
  return rest;
}

const firstValue = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** Answers the SPA with coatcheck's own JSON in place of the upstream's answer, whose body is dropped. */
function answerInstead(
  res: ServerResponse,
  status: number,
  json: object,
  own: ReadonlyArray<readonly [string, string]> = [],
): Writable {
  const body = JSON.stringify(json);
  const headers = {
    'cache-control': 'no-store',
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  res.writeHead(status, responseHead(headers, own));
  res.end(body);
  return discard();
}

/** Where a challenged answer's body goes: it is not the SPA's, and the request is sent again. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });
}
