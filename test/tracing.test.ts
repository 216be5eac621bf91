import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { jest } from '@jest/globals';
import { request } from 'undici';
import { ConfigError } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { startTracing } from '../src/tracing/sdk.js';
import { loadConfigAndTracing, tracingSettings } from '../src/tracing/settings.js';
import { NOOP_TRACER } from '../src/tracing/tracer.js';
import { validEnv } from './support/config-env.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.js';
import { waitFor } from './support/ports.js';
import { advanceToRefresh, csrf, loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

/**
 * Every SDK package coatcheck may import, each wrapped so that importing it is recorded. Only
 * src/tracing/sdk.ts imports them, dynamically, so the mocks are in place before any import.
 */
const SDK_PACKAGES = [
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/resources',
  '@opentelemetry/core',
  '@opentelemetry/exporter-trace-otlp-http',
  '@opentelemetry/exporter-trace-otlp-proto',
];
const sdkImports: string[] = [];
for (const name of SDK_PACKAGES) {
  jest.unstable_mockModule(name, () => {
    sdkImports.push(name);
    return jest.requireActual(name);
  });
}

const SERVER = 2;
const CLIENT = 3;
const INCOMING_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const INCOMING_PARENT = '00f067aa0ba902b7';

/** The JSON exporter, pointed at a receiver as OTEL_EXPORTER_OTLP_ENDPOINT would point it. */
function jsonTracing(receiver: OtlpReceiver) {
  const { settings, problems } = tracingSettings({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  });
  expect(problems).toEqual([]);
  return settings!;
}

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ store: 'memory' });
  });
  afterAll(() => stack?.close());

  test('adds no traceparent, passes a client one through untouched, sends X-Request-Id, and loads no SDK module', async () => {
    expect(stack.bff.app.context.tracer).toBe(NOOP_TRACER);
    const b = await loggedIn(stack.bff);

    const plain = await b.go(`${stack.bff.url}/api/off-plain`, { headers: csrf });
    expect(plain.status).toBe(200);
    const plainSeen = stack.upstream.requests.find((r) => r.url === '/v1/off-plain')!;
    expect(plainSeen.headers.traceparent).toBeUndefined();
    expect(plainSeen.headers['x-request-id']).toBe(plain.headers['x-request-id']);

    const traceparent = `00-${INCOMING_TRACE}-${INCOMING_PARENT}-01`;
    const carried = await b.go(`${stack.bff.url}/api/off-carried`, { headers: { ...csrf, traceparent } });
    expect(carried.status).toBe(200);
    const carriedSeen = stack.upstream.requests.find((r) => r.url === '/v1/off-carried')!;
    expect(carriedSeen.headers.traceparent).toBe(traceparent);

    expect(sdkImports).toEqual([]);
  });

  test("the upstream gets coatcheck's request id: the ingress's when sane, else coatcheck's own", async () => {
    const b = await loggedIn(stack.bff);
    const res = await b.go(`${stack.bff.url}/api/off-id`, {
      headers: { ...csrf, 'x-request-id': 'ingress-id-42' },
    });
    expect(res.headers['x-request-id']).toBe('ingress-id-42');
    const seen = stack.upstream.requests.find((r) => r.url === '/v1/off-id')!;
    expect(seen.headers['x-request-id']).toBe('ingress-id-42');

    // One coatcheck would not reuse is replaced, for the upstream too: both logs name the same id.
    const replaced = await b.go(`${stack.bff.url}/api/off-bad-id`, {
      headers: { ...csrf, 'x-request-id': 'not a sane id' },
    });
    const ownId = replaced.headers['x-request-id'] as string;
    expect(ownId).toMatch(/^[0-9a-f-]{36}$/);
    const seenReplaced = stack.upstream.requests.find((r) => r.url === '/v1/off-bad-id')!;
    expect(seenReplaced.headers['x-request-id']).toBe(ownId);
  });
});

describe('tracing on, exported over OTLP/HTTP JSON to a real receiver', () => {
  let stack: Stack;
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    stack = await startStack({ tracing: jsonTracing(receiver) });
  });
  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  /** The server span of the request that got this X-Request-Id, once exported. */
  function serverSpan(requestId: string): Promise<ReceivedSpan> {
    return waitFor(
      async () => {
        await stack.bff.app.context.tracer.flush();
        return receiver.spans.find(
          (s) => s.kind === SERVER && s.attributes['coatcheck.request_id'] === requestId,
        );
      },
      5000,
      `the server span of request ${requestId}`,
    );
  }
  const childrenOf = (span: ReceivedSpan): ReceivedSpan[] =>
    receiver.spans.filter((s) => s.traceId === span.traceId && s.parentSpanId === span.spanId);

  test('a proxied call that refreshes is one tree: the request, its session load, refresh (IdP call under it) and upstream call', async () => {
    const b = await loggedIn(stack.bff);
    await advanceToRefresh(stack, b);
    const res = await b.go(`${stack.bff.url}/api/orders/7?full=1`, { headers: csrf });
    expect(res.status).toBe(200);
    const requestId = res.headers['x-request-id'] as string;

    const root = await serverSpan(requestId);
    expect(root).toMatchObject({
      name: 'GET /api',
      parentSpanId: '',
      attributes: {
        'http.request.method': 'GET',
        'http.route': '/api',
        'url.path': '/api/orders/7',
        'http.response.status_code': 200,
      },
      resource: { 'service.name': 'coatcheck' },
    });
    const children = childrenOf(root);
    expect(children.map((s) => s.name).sort()).toEqual(['GET /api', 'session load', 'token refresh']);
    const refresh = children.find((s) => s.name === 'token refresh')!;
    expect(childrenOf(refresh).map((s) => [s.name, s.kind])).toEqual([['idp token', CLIENT]]);
    const upstream = children.find((s) => s.name === 'GET /api')!;
    expect(upstream).toMatchObject({
      kind: CLIENT,
      attributes: {
        'coatcheck.route': '/api',
        'server.address': '127.0.0.1',
        'http.response.status_code': 200,
      },
    });

    // The upstream continues the trace from coatcheck's upstream span, and can match coatcheck's log line.
    const seen = stack.upstream.requests.find((r) => r.url === '/v1/orders/7?full=1')!;
    expect(seen.headers.traceparent).toBe(`00-${root.traceId}-${upstream.spanId}-01`);
    expect(seen.headers['x-request-id']).toBe(requestId);
    expect(sdkImports).toContain('@opentelemetry/exporter-trace-otlp-http');
    expect(sdkImports).not.toContain('@opentelemetry/exporter-trace-otlp-proto');
  });

  test("an incoming traceparent is continued: same trace, the caller's span as parent", async () => {
    const b = await loggedIn(stack.bff);
    const res = await b.go(`${stack.bff.url}/api/continued`, {
      headers: { ...csrf, traceparent: `00-${INCOMING_TRACE}-${INCOMING_PARENT}-01` },
    });
    expect(res.status).toBe(200);
    const root = await serverSpan(res.headers['x-request-id'] as string);
    expect(root.traceId).toBe(INCOMING_TRACE);
    expect(root.parentSpanId).toBe(INCOMING_PARENT);
    const upstream = childrenOf(root).find((s) => s.kind === CLIENT)!;
    const seen = stack.upstream.requests.find((r) => r.url === '/v1/continued')!;
    expect(seen.headers.traceparent).toBe(`00-${INCOMING_TRACE}-${upstream.spanId}-01`);
  });

  test("coatcheck's endpoints are named after their path, a refused call shows its session load, and probes are not traced", async () => {
    const b = await loggedIn(stack.bff);
    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
    expect((await serverSpan(user.headers['x-request-id'] as string)).name).toBe('GET /bff/user');
    // The login's callback, served by Express, has its code exchange under it.
    const callbacks = receiver.spans.filter((s) => s.kind === SERVER && s.name === 'GET /bff/callback');
    expect(callbacks.length).toBeGreaterThan(0);
    expect(callbacks.map((c) => childrenOf(c).map((s) => s.name))).toContainEqual(['idp token']);

    const anonymous = await request(`${stack.bff.url}/api/nobody`, { headers: csrf });
    await anonymous.body.dump();
    expect(anonymous.statusCode).toBe(401);
    const refused = await serverSpan(anonymous.headers['x-request-id'] as string);
    expect(refused.attributes['http.response.status_code']).toBe(401);
    expect(childrenOf(refused).map((s) => s.name)).toEqual(['session load']);

    const probe = await request(`${stack.bff.url}/healthz`);
    await probe.body.dump();
    await stack.bff.app.context.tracer.flush();
    expect(receiver.spans.filter((s) => s.attributes['url.path'] === '/healthz')).toEqual([]);
  });

  test('no cookie, token, session id or query value reaches the exported spans', async () => {
    const b = await loggedIn(stack.bff);
    await advanceToRefresh(stack, b);
    const res = await b.go(`${stack.bff.url}/api/secrets?api_key=query-secret-value`, {
      headers: { ...csrf, authorization: 'Bearer client-sent-credential' },
    });
    expect(res.status).toBe(200);
    await serverSpan(res.headers['x-request-id'] as string);
    const session = (await stack.sessionOf(b))!;
    const cookies = (await b.jar.getCookies(stack.bff.url))
      .filter((c) => c.key.toLowerCase().includes('coatcheck'))
      .map((c) => c.value);
    expect(cookies.length).toBeGreaterThan(0);

    const exported = receiver.exports.map((e) => e.body.toString('utf8')).join('\n');
    const secrets = [
      ...cookies,
      decodeURIComponent(cookies[0]!),
      session.id,
      session.tokens.accessToken,
      session.tokens.refreshToken!,
      session.tokens.idToken!,
      'query-secret-value',
      'client-sent-credential',
    ];
    expect(secrets.filter((s) => exported.includes(s))).toEqual([]);
    expect(exported).not.toMatch(/bearer|cookie|api_key/i);
  });
});

describe('tracing on, exported over OTLP/HTTP protobuf (the default protocol)', () => {
  let receiver: OtlpReceiver;
  let server: Server;
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await receiver?.close();
  });

  test('spans reach /v1/traces as protobuf', async () => {
    receiver = await startOtlpReceiver();
    const { settings } = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: `${receiver.url}/` });
    expect(settings?.protocol).toBe('http/protobuf');
    const silent = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }));
    const tracer = await startTracing(settings!, silent);
    // The listener answers with the traceparent it would send upstream, to learn the trace id.
    server = createServer(
      tracer.instrument((_req, res) => {
        const headers: Record<string, string> = {};
        tracer.upstream('/x', 'GET', 'http://127.0.0.1:1').inject(headers);
        res.end(headers.traceparent);
      }, new Set()),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const traceparent = await (await request(`http://127.0.0.1:${port}/`)).body.text();
    const traceId = Buffer.from(traceparent.split('-')[1]!, 'hex');

    const exported = await waitFor(
      async () => {
        await tracer.flush();
        return receiver.exports.find((e) => e.body.includes(traceId));
      },
      5000,
      'a protobuf export',
    );
    expect(exported.path).toBe('/v1/traces');
    expect(exported.contentType).toBe('application/x-protobuf');
    expect(exported.body.includes(Buffer.from('coatcheck'))).toBe(true);
    await tracer.shutdown();
    expect(sdkImports).toContain('@opentelemetry/exporter-trace-otlp-proto');
  });
});

describe('the OTEL_* variables', () => {
  const endpoint = 'http://collector:4318';

  test('tracing is on only with an endpoint, OTEL_SDK_DISABLED not true and OTEL_TRACES_EXPORTER not none', () => {
    expect(tracingSettings({}).settings).toBeUndefined();
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }).settings).toBeUndefined();
    for (const disabled of ['true', 'TRUE', 'True']) {
      expect(
        tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: disabled }).settings,
      ).toBeUndefined();
    }
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: 'none' }).settings,
    ).toBeUndefined();
    // Off means nothing else is checked either.
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url', OTEL_SDK_DISABLED: 'true' })).toEqual({
      settings: undefined,
      problems: [],
    });

    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'false' }).settings,
    ).toEqual({
      endpoint: `${endpoint}/v1/traces`,
      protocol: 'http/protobuf',
      serviceName: 'coatcheck',
      resourceAttributes: {},
    });
    expect(
      tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://c.example/custom/path' }).settings
        ?.endpoint,
    ).toBe('https://c.example/custom/path');
  });

  test('the traces endpoint wins over the base one, and names come from the standard variables', () => {
    const { settings } = tracingSettings({
      OTEL_EXPORTER_OTLP_ENDPOINT: `${endpoint}/`,
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/v1/traces',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=ignored, deployment.environment=prod%20eu',
      OTEL_SERVICE_NAME: 'bff-eu',
    });
    expect(settings).toEqual({
      endpoint: 'http://traces:4318/v1/traces',
      protocol: 'http/json',
      serviceName: 'bff-eu',
      resourceAttributes: { 'deployment.environment': 'prod eu' },
    });
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs',
      }).settings?.serviceName,
    ).toBe('from-attrs');
  });

  test('a misconfiguration is listed with the BFF_* problems, all at once', () => {
    const env = {
      ...validEnv,
      BFF_PORT: 'not-a-port',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://collector',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_TRACES_EXPORTER: 'zipkin',
      OTEL_RESOURCE_ATTRIBUTES: 'no-equals-sign',
    };
    let problems: readonly string[] = [];
    try {
      loadConfigAndTracing(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      problems = (err as ConfigError).problems;
    }
    expect(problems.map((p) => p.slice(0, p.indexOf(':')))).toEqual([
      'BFF_PORT',
      'OTEL_TRACES_EXPORTER',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'OTEL_EXPORTER_OTLP_PROTOCOL',
      'OTEL_RESOURCE_ATTRIBUTES',
    ]);

    const { BFF_PORT: _port, ...valid } = env;
    expect(() => loadConfigAndTracing(valid)).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT: must be an http/);
    expect(loadConfigAndTracing({ ...validEnv, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }).tracing).toEqual(
      expect.objectContaining({ endpoint: `${endpoint}/v1/traces` }),
    );
  });
});
