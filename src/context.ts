import type { DpopNonces } from './oidc/dpop.js';
import type { Dispatcher } from 'undici';
import type { Config } from './config/load.js';
import type { RequestFacts } from './http/request-facts.js';
import type { SessionCookie } from './http/session-cookie.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { OidcClient } from './oidc/client.js';
import type { SessionCache } from './session/cache.js';
import type { HostSession } from './session/host-session.js';
import type { OpenSockets } from './session/open-sockets.js';
import type { TokenRefresher } from './session/refresh.js';
import type { Sessions } from './session/sessions.js';
import type { Tracer } from './tracing/tracer.js';

/** Everything an endpoint may use. Built once by createApp; endpoints never reach for globals. */
export interface AppContext {
  readonly config: Config;
  /** Secure or not, the client chain, the path below the base path: one policy for Express and the fast path. */
  readonly requestFacts: RequestFacts;
  readonly sessionCookie: SessionCookie;
  /** Set with `session: 'express-session'`: the browser's session is the host app's, not coatcheck's cookie. */
  readonly hostSession?: HostSession;
  readonly oidc: OidcClient;
  readonly sessions: Sessions;
  readonly refresher: TokenRefresher;
  /** The API path's process-local session cache; absent with the memory store or BFF_SESSION_CACHE_TTL=0. */
  readonly sessionCache: SessionCache | undefined;
  /** The DPoP nonces upstreams sent, by origin (RFC 9449 §9). */
  readonly dpopNonces: DpopNonces;
  /** The WebSockets open in this process, by session, closed when their session ends (src/proxy/websocket.ts). */
  readonly openSockets: OpenSockets;
  readonly upstream: Dispatcher;
  readonly log: Logger;
  /** The per-request lines only: the same stream, no redaction (see createAccessLogger). */
  readonly accessLog: Logger;
  readonly now: () => number;
  /** This app's metrics; counted whether or not BFF_METRICS_PORT serves them. */
  readonly metrics: Metrics;
  /** Spans for requests, session loads, refreshes, IdP and upstream calls; a constant no-op when tracing is off. */
  readonly tracer: Tracer;
}
