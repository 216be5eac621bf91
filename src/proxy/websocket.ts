import { randomUUID } from 'node:crypto';
import {
  request as httpRequest,
  ServerResponse,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { AppContext } from '../context.js';
import { BffError } from '../errors.js';
import { sessionFromCookie } from '../http/request-session.js';
import { nonceChallenge, signerFor, type DpopKeyJwk } from '../oidc/dpop.js';
import { tokenFor, type AccessToken } from '../oidc/token-set.js';
import type { Session } from '../session/sessions.js';
import { HOP_BY_HOP_RESPONSE, downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { compileRoutes, type RouteMatch } from './routes.js';
import { isSafePath } from './safe-path.js';
import { SocketQuota } from './websocket-quota.js';
import { WebSocketTunnel } from './websocket-tunnel.js';

/** RFC 6455 §7.4.1: the endpoint is going away, as a server does when it shuts down. */
const GOING_AWAY = { code: 1001, reason: 'server shutting down' } as const;

export interface WebSocketProxyOptions {
  /** Another upgrade handler (the dev server's) takes upgrades outside the API routes. */
  readonly othersHandled: boolean;
  /** The request listener, for requests that ask for another upgrade (h2c) or none of ours. */
  readonly serve: (req: IncomingMessage, res: ServerResponse) => void;
}

/**
 * WebSockets to API routes. The handshake is an API call like any (handler.ts): the route's methods
 * must include GET, and its token policy decides whether the session is read and which token goes
 * upstream. Browsers cannot add X-CSRF to a WebSocket handshake, so the Origin header stands in for
 * it on every route: it must be the public origin exactly. Then, as on the fast path, the session
 * (401 without one where the route needs it, before anything is upgraded) and a refresh when due;
 * then the handshake goes to the upstream with the route's token, if any, and without coatcheck's
 * cookies, and the upstream's answer comes back: its 101 and then both directions relayed byte for
 * byte, or its refusal as it is. BFF_UPSTREAM_TIMEOUT bounds the wait for that answer's head only,
 * never an established socket.
 *
 * Every socket opened with a session is registered with it (ctx.openSockets), which closes it with
 * 4401 "session ended" when the session ends, and counts against the session's quota. Returns the
 * closer for shutdown: upgraded sockets are no longer the HTTP server's to close.
 */
export function attachWebSocketProxy(
  server: Server,
  ctx: AppContext,
  options: WebSocketProxyOptions,
): { close(): void } {
  const { config, requestFacts: facts, log, openSockets } = ctx;
  const match = compileRoutes(config.routes);
  const publicUrl = new URL(config.publicUrl);
  const publicOrigin = publicUrl.origin;
  const forwarded = { proto: publicUrl.protocol.slice(0, -1), host: publicUrl.host };
  const tunnels = new Set<WebSocketTunnel>();
  const quota = new SocketQuota();
  let closed = false;

  /** `refusal` gets the headers a refusal needs (Allow), as handler.ts sets them on its response. */
  async function handle(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    path: string,
    found: RouteMatch,
    requestId: string,
    refusal: Record<string, string>,
  ): Promise<number> {
    const { route } = found;
    // A handshake is a GET (RFC 6455 §4.1), so it needs a route that accepts GET.
    if (!route.methods.has('GET')) {
      refusal.Allow = route.allow;
      throw new BffError('method_not_allowed', { message: `This API route accepts ${route.allow}.` });
    }
    if (req.method !== 'GET') {
      refusal.Allow = 'GET';
      throw new BffError('method_not_allowed', { message: 'A WebSocket handshake is a GET.' });
    }
    // Node has stopped parsing the connection: a body would reach the upstream after its 101, as
    // bytes of the WebSocket, or as a request of its own to an upstream that ignores the upgrade.
    if (carriesBody(req)) throw new BffError('invalid_request', { message: NO_BODY });
    if (!isSafePath(path)) throw new BffError('invalid_path');
    if (req.headers.origin !== publicOrigin) throw new BffError('origin_not_allowed');
    let session: Session | undefined;
    let begun = 0;
    // A `none` route never attaches a token, so it has no use for the session.
    if (route.token !== 'none') {
      begun = openSockets.begin();
      session = await sessionFromCookie(ctx, req.headers.cookie, facts.secure(req), ctx.sessionCache);
    }
    if (!session && route.token === 'user') throw new BffError('unauthenticated');
    const release = session ? quota.take(session.key) : () => undefined;
    if (!release) throw new BffError('too_many_sockets');
    let kept = false;
    try {
      const status = await connect(req, socket, head, found, requestId, session, begun, release);
      kept = status === 101;
      return status;
    } finally {
      if (!kept) release();
    }
  }

  /** From the token on: the handshake upstream, and the tunnel if the upstream switches protocols. */
  async function connect(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    found: RouteMatch,
    requestId: string,
    session: Session | undefined,
    begun: number,
    release: () => void,
  ): Promise<number> {
    const target = found.route.tokenTarget;
    const tokens = session && (await ctx.refresher.fresh(session, target));
    const access = tokens && tokenFor(tokens, target);
    if (socket.destroyed) return 0;

    const upstreamPath = found.route.basePath + found.rest;
    const fullPath = upstreamPath.charCodeAt(0) === 47 ? upstreamPath : `/${upstreamPath}`;
    const answer = await handshake(req, found.route.origin, fullPath, access, tokens?.dpopKey, requestId);
    if (answer.statusCode !== 101) {
      // The browser may have gone while the upstream answered: then nobody reads its answer.
      if (socket.destroyed) answer.response.destroy();
      else passRefusal(answer.response, socket);
      return answer.statusCode;
    }
    if (socket.destroyed || closed) {
      answer.socket.destroy();
      return 0;
    }
    socket.write(switchingProtocols(answer.response));
    for (const s of [socket, answer.socket] as Partial<Socket>[]) {
      s.setNoDelay?.(true);
      s.setTimeout?.(0);
    }
    const tunnel: WebSocketTunnel = new WebSocketTunnel(
      socket,
      answer.socket,
      { client: head, upstream: answer.head },
      () => {
        tunnels.delete(tunnel);
        remove?.();
        release();
        log.debug({ reqId: requestId }, 'websocket closed');
      },
    );
    tunnels.add(tunnel);
    // The tunnel reports its close from an event, never from its constructor: `remove` is set by then.
    // A socket without a session (a `none` route, or `optional` without one) carries nothing of one to end.
    const remove = session && openSockets.add(session, tunnel, begun);
    return 101;
  }

  interface Answer {
    readonly statusCode: number;
    readonly response: IncomingMessage;
    readonly socket: Duplex;
    readonly head: Buffer;
  }

  /**
   * Sends the handshake, with `access` if the route attaches a token, and waits, for
   * BFF_UPSTREAM_TIMEOUT at most, for the head of the answer. An upstream that wants a DPoP nonce
   * gets the handshake once more, with its nonce.
   */
  async function handshake(
    req: IncomingMessage,
    origin: string,
    path: string,
    access: AccessToken | undefined,
    key: DpopKeyJwk | undefined,
    requestId: string,
  ): Promise<Answer> {
    // A key comes only with a session, whose token for this route fresh() made sure of.
    const dpopKey = access && key;
    const headers = upstreamRequestHeaders(
      req.headers,
      access && `${dpopKey ? 'DPoP' : 'Bearer'} ${access.accessToken}`,
      { for: facts.forwardedFor(req), ...forwarded },
      requestId,
      ctx.hostSession?.upstreamCookieFilter(req),
    );
    // The handshake has no body (carriesBody), and the upstream must not wait for one.
    delete headers['content-length'];
    headers.connection = 'Upgrade';
    headers.upgrade = 'websocket';
    const send = (): Promise<Answer> => {
      if (dpopKey) {
        headers.dpop = signerFor(dpopKey).proof({
          // RFC 9449 §4.2: the proof names the method and the URI without its query; ws: is http: here.
          htm: 'GET',
          htu: origin + pathOnly(path),
          accessToken: access.accessToken,
          nonce: ctx.dpopNonces.get(origin),
        });
      }
      return upstreamHandshake(origin, path, headers, config.upstreamTimeoutMs);
    };
    let answer = await send();
    if (dpopKey) {
      const challenge = nonceChallenge(answer.statusCode, answer.response.headers);
      const nonce = answer.response.headers['dpop-nonce'];
      ctx.dpopNonces.remember(origin, challenge ?? (typeof nonce === 'string' ? nonce : undefined));
      if (challenge) {
        answer.response.resume();
        answer = await send();
      }
    }
    return answer;
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = facts.pathBelowBase(req.url ?? '/');
    const found = path === undefined ? undefined : match(path);
    const webSocket = req.headers.upgrade?.toLowerCase() === 'websocket';
    if (!found || path === undefined || !webSocket) {
      if (found || !options.othersHandled) answerAsHttp(req, socket, head, options.serve);
      return;
    }
    socket.on('error', () => socket.destroy());
    if (closed) {
      socket.destroy();
      return;
    }
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
    const started = performance.now();
    const done = (status: number): void => {
      ctx.accessLog.info(
        {
          reqId: requestId,
          method: req.method,
          path: pathOnly(req.url ?? ''),
          status,
          ms: Math.round((performance.now() - started) * 10) / 10,
          websocket: true,
        },
        'request',
      );
    };
    const refusal: Record<string, string> = {};
    handle(req, socket, head, path, found, requestId, refusal).then(done, (err: unknown) => {
      const e = err instanceof BffError ? err : new BffError('internal_error', { cause: err });
      const entry = { reqId: requestId, error: e.code, cause: describeCause(e.cause) };
      if (e.status >= 500) log.error(entry, e.message);
      else log.info(entry, e.message);
      refuse(socket, e.status, e.toJSON(), refusal);
      done(e.status);
    });
  });

  return {
    close() {
      closed = true;
      for (const tunnel of tunnels) tunnel.close(GOING_AWAY.code, GOING_AWAY.reason);
    },
  };
}

const SAFE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

const NO_BODY = 'A request asking for an upgrade cannot have a body.';

/** Whether the request says it has a body: any Transfer-Encoding, or a Content-Length other than 0. */
function carriesBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Opens a fresh connection (an upgraded one never goes back to a pool) and resolves with the answer's head. */
function upstreamHandshake(
  origin: string,
  path: string,
  headers: Record<string, string | string[]>,
  timeoutMs: number,
): Promise<{ statusCode: number; response: IncomingMessage; socket: Duplex; head: Buffer }> {
  const url = new URL(origin);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || undefined,
      method: 'GET',
      path,
      headers: { ...headers, host: url.host },
      agent: false,
    });
    // Only until the head arrives: an established socket, or a refusal's body, has no deadline here.
    const timer = setTimeout(() => {
      req.destroy(new BffError('upstream_timeout'));
    }, timeoutMs);
    req.on('upgrade', (response: IncomingMessage, socket: Duplex, head: Buffer) => {
      clearTimeout(timer);
      resolve({ statusCode: 101, response, socket, head });
    });
    req.on('response', (response: IncomingMessage) => {
      clearTimeout(timer);
      resolve({
        statusCode: response.statusCode ?? 502,
        response,
        socket: response.socket,
        head: Buffer.alloc(0),
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof BffError ? err : new BffError('upstream_unreachable', { cause: err }));
    });
    req.end();
  });
}

/** The upstream's 101 for the browser: its headers as sent, minus the hop's and any cookie of coatcheck's. */
function switchingProtocols(response: IncomingMessage): string {
  const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: websocket'];
  const raw = response.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(lower)) continue;
    if (lower === 'set-cookie' && !downstreamResponseHeaders({ 'set-cookie': [raw[i + 1]!] })['set-cookie'])
      continue;
    lines.push(`${name}: ${raw[i + 1]!}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * An upstream that does not switch protocols: its status, headers (as the fast path passes them) and
 * body reach the browser, which then sees the WebSocket fail. The connection closes after it.
 */
function passRefusal(response: IncomingMessage, socket: Duplex): void {
  const headers = downstreamResponseHeaders(response.headers);
  const lines = [`HTTP/1.1 ${response.statusCode} ${response.statusMessage ?? ''}`];
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${String(v)}`);
  }
  lines.push('Connection: close');
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  response.pipe(socket);
  response.on('error', () => socket.destroy());
}

/**
 * Once an 'upgrade' listener exists, Node hands it every request with an Upgrade header. One that is
 * not a WebSocket to an API route (curl --http2 asks for h2c, say) is served as it was before there
 * was a listener: as plain HTTP, by the app, on a connection that then closes. Node has already
 * stopped parsing that connection, so a request body could not be read: such a request gets 400.
 */
function answerAsHttp(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  serve: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  socket.on('error', () => socket.destroy());
  if (head.length || carriesBody(req)) {
    const e = new BffError('invalid_request', { message: NO_BODY });
    refuse(socket, e.status, e.toJSON());
    return;
  }
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.on('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  serve(req, res);
}

/** A refusal written on the raw socket, as JSON {error, message}; nothing is upgraded. */
function refuse(
  socket: Duplex,
  status: number,
  body: { error: string; message: string },
  extra: Record<string, string> = {},
): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(json)}`,
    'Cache-Control: no-store',
    'Connection: close',
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
}

/** RFC 9449 §4.2: a proof's htu has no query; the access log has none either. */
function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

/** Only names and messages of causes are logged: library errors can carry whole responses. */
function describeCause(cause: unknown): unknown {
  if (!(cause instanceof Error)) return undefined;
  return { name: cause.name, message: cause.message, code: (cause as { code?: unknown }).code };
}
