import type { IncomingMessage, ServerResponse } from 'node:http';
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
 * undici's stream() writes the upstream body straight into the response (no intermediate
 * Readable, no pipeline bookkeeping): measured at about 2x the throughput of request() + pipeline()
 * for 1 KB answers on the bench machine. A client that goes away destroys the response, which
 * aborts the upstream request. Errors before the answer starts become 502/504; after that the only
 * honest signal left is to cut the connection.
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
  try {
    await dispatcher.stream(
      {
        origin: target.origin,
        path: target.path,
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: target.headers,
        body: hasBody ? req : null,
        headersTimeout: target.timeoutMs,
        bodyTimeout: target.timeoutMs,
      },
      ({ statusCode, headers }) => {
        res.writeHead(statusCode, downstreamResponseHeaders(headers));
        return res;
      },
    );
  } catch (err) {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    throw upstreamError(err);
  }
}
