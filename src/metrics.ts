import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What a request was for: the SPA's API calls, coatcheck's own endpoints, or the SPA's files. */
export type RequestKind = 'api' | 'bff' | 'static';
export type RefreshOutcome = 'success' | 'invalid_grant' | 'idp_error' | 'lock_timeout' | 'lost_lock';
export type UpstreamErrorReason = 'connect' | 'timeout' | 'reset';
export type IdpEndpoint = 'discovery' | 'jwks' | 'token' | 'revocation' | 'userinfo';
export type SessionEndReason = 'logout' | 'backchannel' | 'expired' | 'invalid_grant';

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * coatcheck's Prometheus metrics, one registry per app so tests can build many. No label ever
 * carries a user, session or token value: every label set is a small closed list or a configured
 * route path.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly httpRequests = new Counter({
    name: 'coatcheck_http_requests_total',
    help: 'Requests answered, by kind and status class.',
    labelNames: ['kind', 'status_class'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'coatcheck_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by kind.',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'coatcheck_upstream_request_duration_seconds',
    help: 'Time until the upstream answered with its response head, by configured route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
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
    help: 'Time a refresh took, lock wait included.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly lockWait = new Histogram({
    name: 'coatcheck_refresh_lock_wait_seconds',
    help: "Time a request waited for another request's or replica's refresh.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessionCache = new Counter({
    name: 'coatcheck_session_cache_requests_total',
    help: 'API-path session lookups, by whether the process-local cache answered.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
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
  readonly sessionsEnded = new Counter({
    name: 'coatcheck_sessions_ended_total',
    help: 'Sessions ended, by reason; expired counts expiries a request observed.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Bound children for the request counter: the hot path does no label lookup. */
  private readonly requestChildren = new Map<string, { inc(): void }>();
  private readonly durationChildren = new Map<string, { observe(v: number): void }>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    for (const kind of ['api', 'bff', 'static'] as const) {
      this.durationChildren.set(kind, this.httpDuration.labels(kind));
      for (const cls of STATUS_CLASSES) {
        this.requestChildren.set(`${kind}${cls}`, this.httpRequests.labels(kind, cls));
      }
    }
  }

  /** One answered request; `seconds` from its arrival to the end of the response. */
  request(kind: RequestKind, status: number, seconds: number): void {
    const cls = STATUS_CLASSES[Math.min(4, Math.max(0, Math.floor(status / 100) - 1))]!;
    this.requestChildren.get(`${kind}${cls}`)!.inc();
    this.durationChildren.get(kind)!.observe(seconds);
  }
}
