import { performance } from 'node:perf_hooks';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LeanCounter, LeanHistogram } from './lean-metrics.js';

/** What a request was for: the SPA's API calls, coatcheck's own endpoints, or the SPA's files. */
export type RequestKind = 'api' | 'bff' | 'static';
export type RefreshOutcome = 'success' | 'invalid_grant' | 'idp_error' | 'lock_timeout' | 'lost_lock';
export type UpstreamErrorReason = 'connect' | 'timeout' | 'reset';
export type IdpEndpoint = 'discovery' | 'jwks' | 'par' | 'token' | 'revocation' | 'userinfo';
export type SessionEndReason = 'logout' | 'backchannel' | 'expired' | 'invalid_grant';

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * coatcheck's Prometheus metrics, one registry per app so tests can build many. No label ever
 * carries a user, session or token value: every label set is a small closed list or a configured
 * route path.
 */
export class Metrics {
  readonly registry = new Registry();
  // Every proxied request counts into these four, so they are lean-metrics.ts's: prom-client's
  // bound children hash their labels on each call.
  private readonly httpRequests = new LeanCounter(
    'coatcheck_http_requests_total',
    'Requests answered, by kind and status class.',
    ['kind', 'status_class'],
    this.registry,
  );
  private readonly httpDuration = new LeanHistogram(
    'coatcheck_http_request_duration_seconds',
    'Time from request to the end of the response, by kind.',
    ['kind'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    this.registry,
  );
  readonly upstreamDuration = new LeanHistogram(
    'coatcheck_upstream_request_duration_seconds',
    'Time until the upstream answered with its response head, by configured route.',
    ['route'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    this.registry,
  );
  readonly upstreamErrors = new Counter({
    name: 'coatcheck_upstream_errors_total',
    help: 'Upstream calls that failed, by configured route and reason.',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly refreshes = new Counter({
    name: 'coatcheck_token_refresh_total',
    help: 'Refresh-token grants attempted or given up on, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly refreshDuration = new Histogram({
    name: 'coatcheck_token_refresh_duration_seconds',
    help: 'Time from the first attempt at the refresh lock to the outcome, lock wait and IdP call included.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly lockWait = new Histogram({
    name: 'coatcheck_refresh_lock_wait_seconds',
    help: "Time a request waited for another request's or replica's refresh.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessionCache = new LeanCounter(
    'coatcheck_session_cache_requests_total',
    'API-path session lookups, by whether the process-local cache answered.',
    ['result'],
    this.registry,
  );
  readonly storeDuration = new Histogram({
    name: 'coatcheck_store_operation_duration_seconds',
    help: 'Session store operations, by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'coatcheck_store_errors_total',
    help: 'Session store operations that failed, by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly idpDuration = new Histogram({
    name: 'coatcheck_idp_request_duration_seconds',
    help: 'Calls to the identity provider, by endpoint.',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly logins = new Counter({
    name: 'coatcheck_logins_total',
    help: 'Completed callbacks: success, or the error code of a failed one.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly redisWaitTimeouts = new Counter({
    name: 'coatcheck_redis_wait_timeouts_total',
    help: 'Rotated refresh tokens that no Redis replica acknowledged within BFF_REDIS_WAIT_TIMEOUT.',
    registers: [this.registry],
  });
  readonly sessionsEnded = new Counter({
    name: 'coatcheck_sessions_ended_total',
    help: 'Sessions ended, by reason; expired counts expiries a request observed.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Bound children, made once: the hot path does no label lookup and builds no label strings. */
  private readonly requestChildren: Record<RequestKind, { inc(): void }[]>;
  private readonly durationChildren: Record<RequestKind, { observe(v: number): void }>;
  readonly refreshOutcomes: Record<RefreshOutcome, { inc(): void }>;
  readonly cacheResults: SessionCacheCounters;
  readonly sessionEnds: Record<SessionEndReason, { inc(value?: number): void }>;
  private readonly idpChildren: Record<IdpEndpoint, { observe(v: number): void }>;

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    const kinds = ['api', 'bff', 'static'] as const;
    this.requestChildren = bind(kinds, (kind) =>
      STATUS_CLASSES.map((cls) => this.httpRequests.labels(kind, cls)),
    );
    this.durationChildren = bind(kinds, (kind) => this.httpDuration.labels(kind));
    this.refreshOutcomes = bind(
      ['success', 'invalid_grant', 'idp_error', 'lock_timeout', 'lost_lock'] as const,
      (outcome) => this.refreshes.labels(outcome),
    );
    this.cacheResults = bind(['hit', 'miss', 'bypass'] as const, (result) =>
      this.sessionCache.labels(result),
    );
    this.sessionEnds = bind(['logout', 'backchannel', 'expired', 'invalid_grant'] as const, (reason) =>
      this.sessionsEnded.labels(reason),
    );
    this.idpChildren = bind(
      ['discovery', 'jwks', 'par', 'token', 'revocation', 'userinfo'] as const,
      (endpoint) => this.idpDuration.labels(endpoint),
    );
  }

  /** One answered request; `seconds` from its arrival to the end of the response. */
  request(kind: RequestKind, status: number, seconds: number): void {
    this.requestChildren[kind][Math.min(4, Math.max(0, Math.floor(status / 100) - 1))]!.inc();
    this.durationChildren[kind].observe(seconds);
  }

  /** The children of one configured route, bound when the proxy is built. */
  route(path: string): RouteMetrics {
    return {
      duration: this.upstreamDuration.labels(path),
      errors: bind(['connect', 'timeout', 'reset'] as const, (reason) =>
        this.upstreamErrors.labels(path, reason),
      ),
    };
  }

  /** One finished refresh attempt (or a wait given up on), with the time it took. */
  refresh(outcome: RefreshOutcome, seconds: number): void {
    this.refreshOutcomes[outcome].inc();
    this.refreshDuration.observe(seconds);
  }

  /** Times one call to the IdP, failed calls included. */
  async idp<T>(endpoint: IdpEndpoint, call: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await call();
    } finally {
      this.idpChildren[endpoint].observe((performance.now() - started) / 1000);
    }
  }

  /** The store's children for one operation, bound when the measured store is built. */
  storeOperation(operation: string): StoreOperationMetrics {
    return { duration: this.storeDuration.labels(operation), errors: this.storeErrors.labels(operation) };
  }
}

export interface RouteMetrics {
  readonly duration: { observe(seconds: number): void };
  readonly errors: Record<UpstreamErrorReason, { inc(): void }>;
}

export interface StoreOperationMetrics {
  readonly duration: { observe(seconds: number): void };
  readonly errors: { inc(): void };
}

export type SessionCacheCounters = Record<'hit' | 'miss' | 'bypass', { inc(): void }>;

function bind<K extends string, V>(keys: readonly K[], make: (key: K) => V): Record<K, V> {
  return Object.fromEntries(keys.map((k) => [k, make(k)])) as Record<K, V>;
}
