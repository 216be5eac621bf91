import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { BffError } from '../errors.js';
import { downstreamResponseHeaders } from './headers.js';

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

function upstreamError(err: unknown): BffError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new BffError('upstream_timeout', { cause: err });
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return new BffError('invalid_request', { cause: err });
  if (UNREACHABLE.has(code)) return new BffError('upstream_unreachable', { cause: err });
  return new BffError('upstream_unreachable', { cause: err });
}

export interface UpstreamRequest {
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly timeoutMs: number;
}

/**
 * Streams the request to the upstream and the answer back, without buffering either body.
 * Errors before the answer starts become 502/504; after that the only honest signal left is to
 * cut the connection, which the browser sees as a failed response rather than a truncated success.
 */
export async function forward(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  target: UpstreamRequest,
): Promise<void> {
  const method = req.method ?? 'GET';
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  const abort = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);

  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await dispatcher.request({
      origin: target.origin,
      path: target.path,
      method: method as Dispatcher.HttpMethod,
      headers: target.headers,
      body: hasBody ? req : null,
      headersTimeout: target.timeoutMs,
      bodyTimeout: target.timeoutMs,
      signal: abort.signal,
    });
  } catch (err) {
    res.off('close', onClose);
    if (abort.signal.aborted) return;
    throw upstreamError(err);
  }
  res.writeHead(upstream.statusCode, downstreamResponseHeaders(upstream.headers));
  try {
    await pipeline(upstream.body, res);
  } catch {
    res.destroy();
  } finally {
    res.off('close', onClose);
  }
}
