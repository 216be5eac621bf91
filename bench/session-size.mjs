// Redis bytes per session, measured as bench/run.mjs measures them (MEMORY USAGE of every key one
// login leaves, SAMPLES 0), with the breakdown: each key, and each field of the session hash.
// Run: npm run build && node bench/session-size.mjs
import { Redis } from 'ioredis';
import { startIdp } from '../dist/demo/idp.js';
import {
  freePort,
  login,
  start,
  stopAll,
  waitForPort,
  startBenchRedis,
  benchIdpOptions,
  benchCoatcheckEnv,
} from './lib.mjs';

export async function sessionSize() {
  const ports = { redis: await freePort(), coatcheck: await freePort(), upstream: await freePort() };
  const redisUrl = `redis://127.0.0.1:${ports.redis}`;
  startBenchRedis(ports.redis);
  const coatcheckUrl = `http://127.0.0.1:${ports.coatcheck}`;
  const idp = await startIdp(benchIdpOptions(coatcheckUrl));
  await waitForPort(ports.redis, 'redis');
  start(
    process.execPath,
    ['dist/main.js'],
    benchCoatcheckEnv({
      port: ports.coatcheck,
      publicUrl: coatcheckUrl,
      issuer: idp.issuer,
      redisUrl,
      upstreamPort: ports.upstream,
      logLevel: 'warn',
    }),
    'coatcheck',
  );
  await waitForPort(ports.coatcheck, 'coatcheck');
  await login(coatcheckUrl);
  const redis = new Redis(redisUrl);
  const keys = [];
  for (const key of (await redis.keys('coatcheck:*')).sort()) {
    const bytes = (await redis.memory('USAGE', key, 'SAMPLES', 0)) ?? 0;
    const type = await redis.type(key);
    const entry = { key: key.replace(/:[A-Za-z0-9_-]{20,}$/, ':…'), type, bytes };
    if (type === 'hash') {
      entry.encoding = await redis.object('ENCODING', key);
      entry.fields = {};
      for (const f of await redis.hkeys(key)) entry.fields[f] = await redis.hstrlen(key, f);
    }
    keys.push(entry);
  }
  redis.disconnect();
  await idp.close();
  return { total: keys.reduce((a, k) => a + k.bytes, 0), keys };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const r = await sessionSize();
    for (const k of r.keys) {
      console.log(
        `${String(k.bytes).padStart(6)} B  ${k.type.padEnd(6)} ${k.key}${k.encoding ? ` (${k.encoding})` : ''}`,
      );
      for (const [f, n] of Object.entries(k.fields ?? {})) console.log(`          field ${f}: ${n} B`);
    }
    console.log(`${String(r.total).padStart(6)} B  total over ${r.keys.length} keys`);
  } finally {
    await stopAll();
  }
  process.exit(0);
}
