import { jest } from '@jest/globals';
import { RedisSessionStore } from '../src/session/redis-store.js';
import type { RedisTarget } from '../src/session/redis-connection.js';
import {
  startClusterTopology,
  startSentinelTopology,
  type ClusterTopology,
  type SentinelTopology,
} from './support/redis-topology.js';
import { describeSessionStore } from './support/store-conformance.js';

/** The same store contract as standalone Redis (test/store-conformance.test.ts), on real topologies. */

const auth = { username: undefined, password: undefined, caFile: undefined };

async function openPair(start: () => Promise<{ stop(): Promise<void> }>, target: (t: never) => RedisTarget) {
  const topology = await start();
  const store = new RedisSessionStore(target(topology as never));
  const replica = new RedisSessionStore(target(topology as never));
  await Promise.all([store.ready(10_000), replica.ready(10_000)]);
  return {
    store,
    replica,
    async close() {
      await Promise.all([store.close(), replica.close()]);
      await topology.stop();
    },
  };
}

jest.setTimeout(40_000);

describeSessionStore(
  'Redis Sentinel',
  () =>
    openPair(startSentinelTopology, (t: SentinelTopology) => ({
      ...auth,
      topology: 'sentinel',
      sentinelUrls: t.sentinelUrls,
      masterName: t.masterName,
    })),
  { invalidation: true },
);

describeSessionStore(
  'Redis Cluster',
  () =>
    openPair(startClusterTopology, (t: ClusterTopology) => ({
      ...auth,
      topology: 'cluster',
      clusterUrls: t.seedUrls,
    })),
  { invalidation: true },
);
