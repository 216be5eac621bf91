import { request } from 'undici';
import { Browser } from './support/browser.js';
import { freePort, waitFor } from './support/ports.js';
import { signOutAtIdp, startStack, ALICE, type Stack } from './support/stack.js';
import { startUpstream, type TestUpstream } from './support/upstream.js';

const csrf = { 'x-csrf': '1' };

/** A Prometheus text exposition as `name{a="x",b="y"}` (labels sorted) → value. */
function parse(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort()
      .join(',');
    series.set(labels ? `${m[1]}{${labels}}` : m[1]!, Number(m[3]));
  }
  return series;
}

describe('Prometheus metrics on BFF_METRICS_PORT', () => {
  let stack: Stack;
  let api: TestUpstream;
  let deadPort: number;

  beforeAll(async () => {
    api = await startUpstream();
    deadPort = await freePort();
    stack = await startStack({
      env: {
        BFF_METRICS_PORT: '0',
        BFF_SESSION_CACHE_TTL: '5',
        BFF_ROUTES: JSON.stringify([
          { path: '/api', target: `${api.url}/v1` },
          // Nothing listens there: every call is a connect failure.
          { path: '/down', target: `http://127.0.0.1:${deadPort}` },
        ]),
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await api?.close();
  });

  async function scrape(): Promise<{ text: string; series: Map<string, number> }> {
    const port = stack.bff.coatcheck.metricsPort;
    expect(port).toEqual(expect.any(Number));
    const res = await request(`http://127.0.0.1:${port}/metrics`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.body.text();
    return { text, series: parse(text) };
  }

  test('real traffic shows in the scrape as exact values, with no secret in any label', async () => {
    const b = new Browser();
    await b.login(stack.bff.url);
    const session = (await stack.sessionOf(b))!;
    const cookies = (await b.jar.getCookies(stack.bff.url)).map((c) => c.value);

    for (let i = 0; i < 3; i++)
      expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    expect((await b.go(`${stack.bff.url}/down/x`, { headers: csrf })).status).toBe(502);

    // Past the refresh time: the next API call refreshes once.
    stack.clock.advance(session.tokens.refreshAt - stack.clock.now() + 1000);
    expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(200);
    const refreshed = (await stack.sessionOf(b))!;

    const user = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
    expect(user.status).toBe(200);
    const { logoutUrl } = JSON.parse(user.text) as { logoutUrl: string };
    expect((await b.go(`${stack.bff.url}${logoutUrl}`, { follow: false })).status).toBe(302);

    // A second user session, ended by the IdP's back-channel logout; its next call finds it gone.
    const c = new Browser();
    await c.login(stack.bff.url);
    const other = (await stack.sessionOf(c))!;
    await signOutAtIdp(stack, c);
    expect((await c.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(401);

    // A callback that does not belong to any login.
    expect((await new Browser().go(`${stack.bff.url}/bff/callback?state=forged&code=x`)).status).toBe(400);
    // The public port does not serve metrics.
    const publicMetrics = await request(`${stack.bff.url}/metrics`);
    await publicMetrics.body.dump();
    expect(publicMetrics.statusCode).toBe(404);

    const { text, series } = await scrape();
    const v = (key: string) => series.get(key) ?? 0;

    expect(v('coatcheck_logins_total{outcome="success"}')).toBe(2);
    expect(v('coatcheck_logins_total{outcome="login_state_invalid"}')).toBe(1);
    expect(v('coatcheck_http_requests_total{kind="api",status_class="2xx"}')).toBe(4);
    expect(v('coatcheck_http_requests_total{kind="api",status_class="4xx"}')).toBe(1);
    expect(v('coatcheck_http_requests_total{kind="api",status_class="5xx"}')).toBe(1);
    expect(v('coatcheck_http_request_duration_seconds_count{kind="api"}')).toBe(6);
    // /bff/user, two logins' start and callback, logout, back-channel logout, the forged callback.
    expect(v('coatcheck_http_requests_total{kind="bff",status_class="2xx"}')).toBe(2);
    expect(v('coatcheck_http_requests_total{kind="bff",status_class="3xx"}')).toBe(5);
    expect(v('coatcheck_http_requests_total{kind="bff",status_class="4xx"}')).toBe(1);
    // Each login lands on / (no SPA configured here: 404), and the public /metrics.
    expect(v('coatcheck_http_requests_total{kind="static",status_class="4xx"}')).toBe(3);

    expect(v('coatcheck_upstream_errors_total{reason="connect",route="/down"}')).toBe(1);
    expect(v('coatcheck_upstream_errors_total{reason="connect",route="/api"}')).toBe(0);
    expect(v('coatcheck_upstream_request_duration_seconds_count{route="/api"}')).toBe(4);
    expect(v('coatcheck_upstream_request_duration_seconds_count{route="/down"}')).toBe(0);

    expect(v('coatcheck_token_refresh_total{outcome="success"}')).toBe(1);
    expect(v('coatcheck_token_refresh_total{outcome="invalid_grant"}')).toBe(0);
    expect(v('coatcheck_token_refresh_duration_seconds_count')).toBe(1);
    // Nobody waited for someone else's refresh.
    expect(v('coatcheck_refresh_lock_wait_seconds_count')).toBe(0);

    expect(v('coatcheck_sessions_ended_total{reason="logout"}')).toBe(1);
    expect(v('coatcheck_sessions_ended_total{reason="backchannel"}')).toBe(1);
    expect(v('coatcheck_sessions_ended_total{reason="expired"}')).toBe(1);

    // Six API calls carried a genuine cookie; each was one cache lookup.
    const lookups = ['hit', 'miss', 'bypass'].map((r) =>
      v(`coatcheck_session_cache_requests_total{result="${r}"}`),
    );
    expect(lookups[0]).toBeGreaterThanOrEqual(1);
    expect(lookups[1]).toBeGreaterThanOrEqual(1);
    expect(lookups[0]! + lookups[1]! + lookups[2]!).toBe(6);

    expect(v('coatcheck_idp_request_duration_seconds_count{endpoint="discovery"}')).toBe(1);
    expect(v('coatcheck_idp_request_duration_seconds_count{endpoint="jwks"}')).toBeGreaterThanOrEqual(1);
    // Two code redemptions and one refresh.
    expect(v('coatcheck_idp_request_duration_seconds_count{endpoint="token"}')).toBe(3);
    expect(v('coatcheck_idp_request_duration_seconds_count{endpoint="revocation"}')).toBe(1);

    expect(v('coatcheck_store_operation_duration_seconds_count{operation="create"}')).toBe(2);
    expect(v('coatcheck_store_operation_duration_seconds_count{operation="writeTokens"}')).toBe(1);
    expect(v('coatcheck_store_operation_duration_seconds_count{operation="acquireLock"}')).toBe(1);
    expect(v('coatcheck_store_operation_duration_seconds_count{operation="destroyIndexed"}')).toBe(1);
    expect(v('coatcheck_store_operation_duration_seconds_count{operation="load"}')).toBeGreaterThanOrEqual(3);
    expect(v('coatcheck_store_errors_total{operation="load"}')).toBe(0);

    // prom-client's default process and Node.js metrics come along.
    expect(series.has('process_cpu_user_seconds_total')).toBe(true);
    expect(series.has('nodejs_eventloop_lag_seconds')).toBe(true);

    const secrets = [
      session.id,
      session.key,
      session.tokens.accessToken,
      session.tokens.refreshToken!,
      session.tokens.idToken!,
      refreshed.tokens.accessToken,
      refreshed.tokens.refreshToken!,
      other.id,
      other.tokens.accessToken,
      ALICE.sub,
      ...cookies,
    ];
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(decodeURIComponent(secret));
    }
  });

  test('a store that does not answer is counted per operation', async () => {
    await stack.redis!.stop();
    try {
      const ready = await request(`${stack.bff.url}/readyz`);
      await ready.body.dump();
      expect(ready.statusCode).toBe(503);
      const { series } = await scrape();
      expect(series.get('coatcheck_store_errors_total{operation="ping"}')).toBe(1);
    } finally {
      await stack.redis!.start();
      // Let the store reconnect before the stack closes, so no reconnect attempt outlives the suite.
      await waitFor(
        async () => {
          const res = await request(`${stack.bff.url}/readyz`);
          await res.body.dump();
          return res.statusCode === 200 ? true : undefined;
        },
        10_000,
        'readiness',
      );
    }
  });
});

describe('without BFF_METRICS_PORT', () => {
  test('no metrics listener is started, and the public port has no /metrics', async () => {
    const stack = await startStack({ store: 'memory' });
    try {
      expect(stack.bff.coatcheck.metricsPort).toBeUndefined();
      const res = await request(`${stack.bff.url}/metrics`);
      await res.body.dump();
      expect(res.statusCode).toBe(404);
    } finally {
      await stack.close();
    }
  });
});

describe('refresh outcomes, lock waits and upstream timeouts across two instances', () => {
  let stack: Stack;
  let entered!: () => void;
  let release!: () => void;
  const holding = new Promise<void>((r) => (entered = r));
  const gate = new Promise<void>((r) => (release = r));

  beforeAll(async () => {
    stack = await startStack({
      instances: 2,
      // The wait for another's refresh is bounded by the upstream timeout: short, so it gives up soon.
      env: { BFF_METRICS_PORT: '0', BFF_UPSTREAM_TIMEOUT: '1' },
      refreshHooks: (i) =>
        i === 0
          ? {
              beforeRefresh: async () => {
                entered();
                await gate;
              },
            }
          : undefined,
    });
  });
  afterAll(async () => {
    release();
    await stack?.close();
  });

  async function scrape(instance: number): Promise<Map<string, number>> {
    const res = await request(`http://127.0.0.1:${stack.bffs[instance]!.coatcheck.metricsPort}/metrics`);
    return parse(await res.body.text());
  }

  test('a request that waits too long for another instance’s refresh counts lock_timeout and its wait', async () => {
    const b = new Browser();
    await b.login(stack.bffs[1]!.url);
    const cookie = await b.jar.getCookieString(stack.bffs[1]!.url);
    const session = (await stack.sessionOf(b, stack.bffs[1]))!;
    stack.clock.advance(session.tokens.refreshAt - stack.clock.now() + 1000);

    // Instance 0 takes the lock and holds it…
    const holder = request(`${stack.bffs[0]!.url}/api/holder`, { headers: { ...csrf, cookie } });
    await holding;
    // …so instance 1 waits for it, and gives up.
    const waiter = await b.go(`${stack.bffs[1]!.url}/api/waiter`, { headers: csrf });
    expect(waiter.status).toBe(503);
    release();
    const held = await holder;
    await held.body.dump();
    expect(held.statusCode).toBe(200);

    const one = await scrape(1);
    expect(one.get('coatcheck_token_refresh_total{outcome="lock_timeout"}')).toBe(1);
    expect(one.get('coatcheck_refresh_lock_wait_seconds_count')).toBe(1);
    expect(one.get('coatcheck_refresh_lock_wait_seconds_sum')).toBeGreaterThan(0);
    expect(one.get('coatcheck_token_refresh_total{outcome="success"}') ?? 0).toBe(0);
    const zero = await scrape(0);
    expect(zero.get('coatcheck_token_refresh_total{outcome="success"}')).toBe(1);
    expect(zero.get('coatcheck_refresh_lock_wait_seconds_count')).toBe(0);
  });

  test('a grant the IdP revoked counts invalid_grant, as a refresh outcome and as a session end', async () => {
    const b = new Browser();
    await b.login(stack.bffs[1]!.url);
    const session = (await stack.sessionOf(b, stack.bffs[1]))!;
    const rt = await stack.idp.provider.RefreshToken.find(session.tokens.refreshToken!);
    await (await stack.idp.provider.Grant.find(rt!.grantId!))!.destroy();
    stack.clock.advance(session.tokens.refreshAt - stack.clock.now() + 1000);

    expect((await b.go(`${stack.bffs[1]!.url}/api/x`, { headers: csrf })).status).toBe(401);
    const one = await scrape(1);
    expect(one.get('coatcheck_token_refresh_total{outcome="invalid_grant"}')).toBe(1);
    expect(one.get('coatcheck_sessions_ended_total{reason="invalid_grant"}')).toBe(1);
  });

  test('an upstream that does not answer in time counts reason timeout for its route', async () => {
    const b = new Browser();
    await b.login(stack.bffs[1]!.url);
    expect((await b.go(`${stack.bffs[1]!.url}/api/slow?ms=1500`, { headers: csrf })).status).toBe(504);
    const one = await scrape(1);
    expect(one.get('coatcheck_upstream_errors_total{reason="timeout",route="/api"}')).toBe(1);
    expect(one.get('coatcheck_http_requests_total{kind="api",status_class="5xx"}')).toBe(2);
  });
});
