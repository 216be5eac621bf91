import { Writable } from 'node:stream';
import { request } from 'undici';
import { runDemo } from '../src/demo/run.js';
import { Browser } from './support/browser.js';
import { freePort } from './support/ports.js';
import { csrf } from './support/session.js';

/** Demo mode as `BFF_DEMO_DPOP=true npm start` runs it, in process, on free ports. */
describe('demo mode with BFF_DEMO_DPOP=true', () => {
  let demo: { stop(): Promise<void> };
  let appUrl: string;
  let apiUrl: string;
  let banner = '';
  const write = process.stdout.write.bind(process.stdout);

  beforeAll(async () => {
    const [app, idp, api] = [await freePort(), await freePort(), await freePort()];
    appUrl = `http://localhost:${app}`;
    apiUrl = `http://127.0.0.1:${api}`;
    // The start-up banner goes to stdout; kept here so the test can read it.
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        banner += chunk.toString();
        cb();
      },
    });
    process.stdout.write = sink.write.bind(sink) as typeof process.stdout.write;
    try {
      demo = await runDemo({
        BFF_PORT: String(app),
        BFF_DEMO_IDP_PORT: String(idp),
        BFF_DEMO_API_PORT: String(api),
        BFF_DEMO_DPOP: 'true',
        BFF_LOG_LEVEL: 'silent',
      });
    } finally {
      process.stdout.write = write;
    }
  }, 60_000);
  afterAll(() => demo?.stop());

  test('the banner says DPoP is on', () => {
    expect(banner).toContain('DPoP is on');
  });

  test('after a login at the demo IdP, an API call carries a proof the demo API verifies', async () => {
    const b = new Browser();
    const landed = await b.login(appUrl, { username: 'demo', password: 'demo' });
    expect(landed.url).toBe(`${appUrl}/`);
    const res = await b.go(`${appUrl}/api/hello?x=1`, { headers: csrf });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text) as { path: string; token: Record<string, unknown> };
    expect(body.path).toBe('/hello?x=1');
    expect(body.token.subject).toBe('demo-user-0001');
    // The API matched the proof's key to the token's cnf.jkt, and says which key it was.
    expect(body.token.dpopKeyThumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // A second call is a fresh proof (its own jti): the API's replay check lets it through.
    expect((await b.go(`${appUrl}/api/hello`, { headers: csrf })).status).toBe(200);
  });

  test('the demo API refuses a bearer token and a DPoP token without a proof', async () => {
    const bearer = await request(`${apiUrl}/hello`, { headers: { authorization: 'Bearer abc' } });
    expect(bearer.statusCode).toBe(401);
    expect(bearer.headers['www-authenticate']).toBe('DPoP');
    expect(((await bearer.body.json()) as { message: string }).message).toBe(
      'DPoP refused: not a DPoP token',
    );
    const noProof = await request(`${apiUrl}/hello`, { headers: { authorization: 'DPoP abc' } });
    expect(noProof.statusCode).toBe(401);
    expect(((await noProof.body.json()) as { message: string }).message).toBe('DPoP refused: no proof');
  });
});
