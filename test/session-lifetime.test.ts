import { Redis } from 'ioredis';
import { Browser } from './support/browser.js';
import { startStack, type Stack } from './support/stack.js';
import { csrf, loggedIn } from './support/session.js';

let stack: Stack;
let redis: Redis;

beforeAll(async () => {
  stack = await startStack({ env: { BFF_SESSION_IDLE_TIMEOUT: '60', BFF_SESSION_ABSOLUTE_TIMEOUT: '150' } });
  redis = new Redis(stack.redis!.url);
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

async function user(b: Browser): Promise<{ status: number; expiresAt?: number }> {
  const page = await b.go(`${stack.bff.url}/bff/user`, { headers: csrf });
  return page.status === 200
    ? { status: 200, expiresAt: Date.parse(JSON.parse(page.text).sessionExpiresAt as string) }
    : { status: page.status };
}

test('idle timeout: each use extends the session; unused for the idle time, it is gone', async () => {
  const b = await loggedIn(stack.bff);
  // 40 s apart: each under the 60 s idle timeout, together past it, and short of the 150 s absolute limit.
  for (let i = 0; i < 2; i++) {
    stack.clock.advance(40_000);
    const u = await user(b);
    expect(u.status).toBe(200);
    // Truthful: idle timeout from this request, since the absolute limit is further away.
    expect(Math.abs(u.expiresAt! - (stack.clock.now() + 60_000))).toBeLessThan(100);
  }
  stack.clock.advance(61_000);
  expect((await user(b)).status).toBe(401);
  expect((await b.go(`${stack.bff.url}/api/x`, { headers: csrf })).status).toBe(401);
});

test('absolute timeout: an active session still ends, and sessionExpiresAt says when', async () => {
  const b = await loggedIn(stack.bff);
  const createdAt = stack.clock.now();
  stack.clock.advance(50_000);
  expect((await user(b)).status).toBe(200);
  stack.clock.advance(50_000);
  const near = await user(b);
  // 100 s in, 50 s left of the absolute 150 s: less than the 60 s idle window, so that is what it reports.
  expect(Math.abs(near.expiresAt! - (createdAt + 150_000))).toBeLessThan(100);
  stack.clock.advance(45_000);
  expect((await user(b)).status).toBe(200);
  stack.clock.advance(6_000);
  expect((await user(b)).status).toBe(401);
});

test('the Redis keys expire with the session', async () => {
  const b = await loggedIn(stack.bff);
  const session = (await stack.sessionOf(b))!;
  const keys = await redis.keys('coatcheck:*');
  const sessionKey = `coatcheck:s:${session.key}`;
  expect(keys).toContain(sessionKey);
  const ttl = await redis.pttl(sessionKey);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(60_000);
  for (const index of keys.filter((k) => k.startsWith('coatcheck:sub:') || k.startsWith('coatcheck:sid:'))) {
    const indexTtl = await redis.pttl(index);
    expect(indexTtl).toBeGreaterThan(0);
    expect(indexTtl).toBeLessThanOrEqual(150_000);
  }
  // An expired session is deleted when next presented, not just refused.
  stack.clock.advance(61_000);
  expect((await user(b)).status).toBe(401);
  expect(await redis.exists(sessionKey)).toBe(0);
});
