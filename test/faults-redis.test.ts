import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startLoad, tally, type LoadSample } from './support/fuzz-load.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { csrf, loggedIn } from './support/session.js';
import { startStack, type Stack } from './support/stack.js';

/*
 * Redis SIGKILLed under load and started again on the same port, behind two instances. Redis here
 * keeps an append-only file fsynced on every write, as a production Redis holding sessions should;
 * without persistence a restart empties it and every session ends (401, see health.test.ts).
 */

const SESSIONS = 8;
const WORKERS = 8;
const RECOVERY_MS = 10_000;

let dir: string;
let redis: TestRedis;
let stack: Stack;
let cookies: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'coatcheck-aof-'));
  redis = await startRedis({ appendOnlyDir: dir });
  stack = await startStack({ instances: 2, externalRedis: true, env: { BFF_REDIS_URL: redis.url } });
  cookies = await Promise.all(
    Array.from({ length: SESSIONS }, async (_, i) => {
      const b = await loggedIn(stack.bffs[i % 2]!);
      return b.jar.getCookieString(stack.bff.url);
    }),
  );
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('Redis killed and restarted under load: 503 JSON while down, no crash, back within seconds, no session lost', async () => {
  const load = startLoad(WORKERS, (worker, i) => ({
    url: `${stack.bffs[(worker + i) % 2]!.url}/api/load/${worker}/${i}`,
    headers: { ...csrf, cookie: cookies[(worker + i) % SESSIONS]! },
  }));
  try {
    await load.until((s) => s.status === 200, 10_000, 'the load to get going');

    const killedAt = Date.now();
    await redis.stop();
    // The session cache may answer for a while; then the store's absence shows, to every worker.
    let downAnswers = 0;
    await load.until(
      (s) => s.status === 503 && ++downAnswers >= WORKERS * 3,
      20_000,
      'calls answered 503 while Redis is down',
    );

    const restartedAt = Date.now();
    await redis.start();
    // Recovered: every worker's latest call, made after the restart, succeeded.
    const latest = new Map<number, LoadSample>();
    await load.until(
      (s) => {
        if (s.at >= restartedAt) latest.set(s.worker, s);
        return latest.size === WORKERS && [...latest.values()].every((x) => x.status === 200);
      },
      RECOVERY_MS,
      'every worker to get 200 again after the restart',
    );
    const recoveredAt = Date.now();
    await load.stop();

    const during = load.samples.filter((s) => s.at >= killedAt && s.at < restartedAt);
    const after = load.samples.filter((s) => s.at >= recoveredAt);
    // While down, an answer is 200 (from the session cache) or 503 store_unavailable; nothing else.
    const unexpected = load.samples.filter(
      (s) => !(s.status === 200 || (s.status === 503 && s.error === 'store_unavailable')),
    );

    // No session lost: each one works on both instances.
    const lost: number[] = [];
    for (const [i, cookie] of cookies.entries()) {
      for (const bff of stack.bffs) {
        const res = await request(`${bff.url}/bff/user`, { headers: { ...csrf, cookie } });
        await res.body.dump();
        if (res.statusCode !== 200) lost.push(i);
      }
    }
    const health = await Promise.all(
      stack.bffs.map(async (bff) => (await request(`${bff.url}/healthz`)).statusCode),
    );

    console.log(
      [
        `redis kill/restart: ${load.samples.length} calls by ${WORKERS} workers over ${SESSIONS} sessions and 2 instances`,
        `all calls: ${JSON.stringify(tally(load.samples))}`,
        `while down (${restartedAt - killedAt} ms): ${JSON.stringify(tally(during))}`,
        `recovery: every worker 200 again ${recoveredAt - restartedAt} ms after redis-server was back`,
        `after recovery: ${JSON.stringify(tally(after))}; sessions lost: ${new Set(lost).size} of ${SESSIONS}`,
      ].join('\n'),
    );

    expect(unexpected).toEqual([]);
    expect(during.some((s) => s.status === 503)).toBe(true);
    expect(recoveredAt - restartedAt).toBeLessThan(RECOVERY_MS);
    expect(lost).toEqual([]);
    expect(health).toEqual([200, 200]);
  } finally {
    await load.stop();
  }
}, 90_000);
