import { MemorySessionStore } from '../src/session/memory-store.js';
import { RedisSessionStore } from '../src/session/redis-store.js';
import { startRedis } from './support/redis.js';
import { describeSessionStore } from './support/store-conformance.js';

describeSessionStore(
  'memory',
  async () => {
    const store = new MemorySessionStore();
    return { store, close: () => store.close() };
  },
  { invalidation: false },
);

describeSessionStore(
  'Redis',
  async () => {
    const redis = await startRedis();
    const store = new RedisSessionStore(redis.url);
    const replica = new RedisSessionStore(redis.url);
    await Promise.all([store.ready(), replica.ready()]);
    return {
      store,
      replica,
      async close() {
        await Promise.all([store.close(), replica.close()]);
        await redis.stop();
      },
    };
  },
  { invalidation: true },
);
