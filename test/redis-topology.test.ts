import { once } from 'node:events';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { waitFor } from './support/ports.js';
import {
  ask,
  startClusterTopology,
  startSentinelTopology,
  type ClusterTopology,
  type SentinelTopology,
} from './support/redis-topology.js';

/*
 * Proves the topology helpers against ioredis: real sentinels and a real cluster, real SIGKILLs,
 * real failovers. Each failover is bounded by the 15 s the product promises.
 */

const RECOVERY_MS = 15_000;

/** Errors seen while polling, so a failed deadline says what the client kept answering. */
function attempt<T>(errors: string[], run: () => Promise<T>): () => Promise<T | undefined> {
  return async () => {
    try {
      return await run();
    } catch (err) {
      errors.push((err as Error).message);
      return undefined;
    }
  };
}

describe('a Sentinel topology', () => {
  let topology: SentinelTopology;
  const clients: Redis[] = [];
  const connect = () => {
    const client = new Redis({ sentinels: [...topology.sentinels], name: topology.masterName });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    topology = await startSentinelTopology();
  }, 30_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await topology?.stop();
    await topology?.stop();
  });

  test('the sentinels name the master it started, and the replica follows it', async () => {
    expect(topology.sentinelUrls).toHaveLength(3);
    expect(await topology.currentMaster()).toEqual({ host: '127.0.0.1', port: topology.master().port });
    const info = String(await ask(topology.replica().port, 'INFO', 'replication'));
    expect(info).toContain(`master_port:${topology.master().port}`);
  });

  test('WAIT 1 on the master returns 1 while the replica is up', async () => {
    const client = connect();
    await client.set('wait:key', 'v');
    expect(await client.call('WAIT', 1, 1000)).toBe(1);
  });

  test('after a SIGKILL of the master, ioredis works again on the promoted replica within 15 s', async () => {
    const client = connect();
    await client.set('session:kept', 'before');
    expect(await client.call('WAIT', 1, 1000)).toBe(1);
    const former = topology.master();
    const replica = topology.replica();

    const killedAt = Date.now();
    await former.kill();
    // Sent into the outage: the offline queue holds it until ioredis has asked the sentinels again.
    const queued = client.get('session:kept');
    const promoted = await topology.waitForFailover(RECOVERY_MS);
    expect(promoted.port).toBe(replica.port);
    expect(topology.master()).toBe(replica);
    expect(await topology.currentMaster()).toEqual({ host: '127.0.0.1', port: replica.port });

    expect(await queued).toBe('before');
    await client.set('session:kept', 'after');
    expect(await ask(replica.port, 'GET', 'session:kept')).toBe('after');
    expect(Date.now() - killedAt).toBeLessThan(RECOVERY_MS);
  }, 25_000);
});

describe('a Cluster topology', () => {
  let topology: ClusterTopology;
  const clients: (Redis | Cluster)[] = [];
  const connectCluster = (options: ClusterOptions = {}) => {
    // ioredis' slot refresher leaves a disconnect timer per dead node; a short one lets jest exit promptly.
    const cluster = new Cluster([...topology.seeds], {
      ...options,
      redisOptions: { ...options.redisOptions, disconnectTimeout: 100 },
    });
    cluster.on('error', () => {});
    clients.push(cluster);
    return cluster;
  };
  /** Closes node clients before a test kills their node: one left reconnecting holds a timer after disconnect(). */
  const closeNodeClients = () => {
    for (const client of clients) if (client instanceof Redis && client.status !== 'end') client.disconnect();
  };
  const connectNode = (port: number, options: RedisOptions = {}) => {
    const client = new Redis({ ...options, host: '127.0.0.1', port });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    topology = await startClusterTopology();
  }, 40_000);
  afterAll(async () => {
    // A second disconnect() of an ended client arms a timer that nothing clears.
    for (const client of clients) if (client.status !== 'end') client.disconnect();
    await topology?.stop();
    await topology?.stop();
  });

  test('it has three masters with one replica each, all slots covered', async () => {
    const masters = topology.masters();
    expect(masters).toHaveLength(3);
    for (const master of masters) {
      expect(topology.nodes.filter((n) => n.role === 'replica' && n.masterId === master.id)).toHaveLength(1);
    }
    const info = String(await ask(topology.nodes[0]!.port, 'CLUSTER', 'INFO'));
    expect(info).toContain('cluster_slots_ok:16384');
  });

  test('keys spread over the three masters and read back through Redis.Cluster', async () => {
    const cluster = connectCluster();
    const keys = Array.from({ length: 30 }, (_, i) => `spread:${i}`);
    await Promise.all(keys.map((key) => cluster.set(key, key)));
    expect(await Promise.all(keys.map((key) => cluster.get(key)))).toEqual(keys);
    const owners = await Promise.all(keys.map(async (key) => (await topology.masterForKey(key)).port));
    expect(new Set(owners).size).toBe(3);
  });

  test('keys with one hash tag share a slot, so scripts and MULTI over them work; other keys do not', async () => {
    const cluster = connectCluster();
    const [a, b] = ['{x}:a', '{x}:b'];
    expect(await topology.slotOf(a)).toBe(await topology.slotOf(b));
    expect((await topology.masterForKey(a)).port).toBe((await topology.masterForKey(b)).port);

    const swap = `
      local a = redis.call('GET', KEYS[1]); local b = redis.call('GET', KEYS[2])
      redis.call('SET', KEYS[1], b); redis.call('SET', KEYS[2], a); return {b, a}`;
    await cluster.mset(a, '1', b, '2');
    // defineCommand sends EVALSHA and falls back to EVAL on NOSCRIPT, whichever node owns the slot.
    cluster.defineCommand('swap', { numberOfKeys: 2, lua: swap });
    const run = (keys: string[]) =>
      (cluster as unknown as { swap(...k: string[]): Promise<string[]> }).swap(...keys);
    expect(await run([a, b])).toEqual(['2', '1']);
    expect(await run([a, b])).toEqual(['1', '2']);
    // Once loaded on the slot's master, a plain EVALSHA routed by its keys finds it.
    const sha = (await connectNode((await topology.masterForKey(a)).port).script('LOAD', swap)) as string;
    expect(await cluster.evalsha(sha, 2, a, b)).toEqual(['2', '1']);

    expect(await cluster.multi().incr(a).incr(b).exec()).toEqual([
      [null, 3],
      [null, 2],
    ]);
    await expect(cluster.eval(swap, 2, '{x}:a', '{y}:b')).rejects.toThrow(/CROSSSLOT/);
  });

  test('WAIT on a slot master, on the connection that wrote, counts its replica', async () => {
    const master = await topology.masterForKey('{w}');
    const client = connectNode(master.port);
    await client.set('{w}:key', 'v');
    expect(await client.call('WAIT', 1, 1000)).toBe(1);
    closeNodeClients();
  });

  test('a plain PUBLISH on one node reaches subscribers on every other node, replicas included', async () => {
    const [first, second] = topology.masters();
    const replica = topology.nodes.find((n) => n.role === 'replica')!;
    // Subscribers skip the ready check: an INFO that reaches a connection once it has subscribed is
    // refused ("only (P|S)SUBSCRIBE … are allowed in this context"), which made this test flaky.
    const subscriberOnly = { enableReadyCheck: false };
    const onMaster = connectNode(second!.port, subscriberOnly);
    const onReplica = connectNode(replica.port, subscriberOnly);
    await onMaster.subscribe('invalidate');
    await onReplica.subscribe('invalidate');
    const received = Promise.all([once(onMaster, 'message'), once(onReplica, 'message')]);
    await connectNode(first!.port).publish('invalidate', 'sid-1');
    expect(await received).toEqual([
      ['invalidate', 'sid-1'],
      ['invalidate', 'sid-1'],
    ]);

    // The same holds between two Redis.Cluster clients, whichever nodes they picked.
    const subscriber = connectCluster({ redisOptions: subscriberOnly });
    await subscriber.subscribe('invalidate-cluster');
    const message = once(subscriber, 'message');
    await connectCluster().publish('invalidate-cluster', 'sid-2');
    expect(await message).toEqual(['invalidate-cluster', 'sid-2']);
    closeNodeClients();
  });

  test('after a SIGKILL of the master of a key slot, its replica serves the slot within 15 s', async () => {
    const key = '{session-1}:record';
    const former = await topology.masterForKey(key);
    const heir = topology.nodes.find((n) => n.masterId === former.id)!;
    const writer = connectNode(former.port);
    await writer.set(key, 'before');
    expect(await writer.call('WAIT', 1, 1000)).toBe(1);
    const cluster = connectCluster();
    // Retries outlast the failover (node timeout, then the election): the default budget does not.
    const patient = connectCluster({ retryDelayOnFailover: 500, maxRedirections: 40 });
    expect(await cluster.get(key)).toBe('before');
    expect(await patient.get(key)).toBe('before');
    closeNodeClients();

    const killedAt = Date.now();
    await former.kill();
    const sentIntoOutage = patient.get(key);
    const errors: string[] = [];
    const value = await waitFor(
      attempt(errors, () => cluster.get(key)),
      RECOVERY_MS,
      'GET through the cluster after failover',
    ).catch((err: Error) =>
      Promise.reject(new Error(`${err.message}; last errors: ${errors.slice(-3).join('; ')}`)),
    );
    expect(value).toBe('before');
    expect(await sentIntoOutage).toBe('before');
    expect(Date.now() - killedAt).toBeLessThan(RECOVERY_MS);
    // What the default client answered meanwhile: its redirection budget ran out before the election.
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => /Too many Cluster redirections|CLUSTERDOWN/.test(e))).toBe(true);

    const promoted = await topology.waitForFailover(RECOVERY_MS);
    expect(promoted.map((n) => n.port)).toEqual([heir.port]);
    expect(heir.role).toBe('master');
    expect((await topology.masterForKey(key)).port).toBe(heir.port);
    await cluster.set(key, 'after');
    expect(await ask(heir.port, 'GET', key)).toBe('after');
  }, 25_000);
});

describe('a topology that fails to start', () => {
  test('stops what it had started and throws with their output', async () => {
    // The master and the replica start; the first sentinel rejects its config file and exits.
    const failure = await startSentinelTopology({ sentinelConfig: ['no-such-directive yes'] }).then(
      async (topology) => {
        await topology.stop();
        return new Error('started with a broken sentinel config');
      },
      (err: Error) => err,
    );

    expect(failure.message).toMatch(/redis-sentinel on port \d+ exited/);
    expect(failure.message).toContain('no-such-directive');
    const ports = [...failure.message.matchAll(/--- port (\d+) ---/g)].map((m) => Number(m[1]));
    expect(ports).toHaveLength(2);
    for (const port of ports) await expect(ask(port, 'PING')).rejects.toThrow();
  });
});
