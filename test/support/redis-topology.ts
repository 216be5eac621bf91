import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort, waitFor } from './ports.js';
import type { RedisTlsFiles } from './tls-certs.js';

/*
 * Real Redis Sentinel and Cluster topologies for tests: every process runs on 127.0.0.1 on a free port,
 * without persistence, in a temp dir of its own, and belongs to the test that started it.
 */

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;
const TOTAL_SLOTS = 16384;

/** Arguments every data node gets: loopback only, nothing written to disk, replicas sync at once. */
const DATA_NODE_ARGS = [
  '--bind',
  HOST,
  '--protected-mode',
  'no',
  '--save',
  '',
  '--appendonly',
  'no',
  // The default delay holds the first full sync of every replica back by seconds.
  '--repl-diskless-sync-delay',
  '0',
];

/** An ACL user on the data nodes; with one, the default user is switched off. */
export interface DataNodeUser {
  readonly username: string;
  readonly password: string;
}

/** What a connection to a process of the topology needs besides its port: TLS, credentials. */
type Access = Pick<RedisOptions, 'tls' | 'username' | 'password'>;

/**
 * Serve TLS only (no plain port) and speak it to the other nodes too: replication, the cluster bus,
 * and a sentinel's links to data nodes and to its peers. Clients need no certificate of their own.
 */
function tlsArgs(tls: RedisTlsFiles | undefined, port: number, cluster = false): string[] {
  if (!tls) return ['--port', String(port)];
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.certFile,
    '--tls-key-file',
    tls.keyFile,
    '--tls-ca-cert-file',
    tls.caFile,
    '--tls-auth-clients',
    'no',
    '--tls-replication',
    'yes',
    ...(cluster ? ['--tls-cluster', 'yes'] : []),
  ];
}

/** The data node's ACL: only `user` may connect, and a replica logs in to its master as that user. */
function userArgs(user: DataNodeUser | undefined): string[] {
  if (!user) return [];
  return [
    '--user',
    'default',
    'off',
    '--user',
    user.username,
    'on',
    `>${user.password}`,
    '~*',
    '&*',
    '+@all',
    '--masteruser',
    user.username,
    '--masterauth',
    user.password,
  ];
}

function accessFor(tls: RedisTlsFiles | undefined, credentials: Omit<Access, 'tls'> = {}): Access {
  return { ...(tls ? { tls: { ca: readFileSync(tls.caFile) } } : {}), ...credentials };
}

/** One redis-server or redis-sentinel process the topology owns. */
export interface TopologyProcess {
  readonly port: number;
  readonly url: string;
  /** False once the process has exited (killed or crashed). */
  readonly alive: boolean;
  /** Everything it printed so far; the topology's events are read from here. */
  output(): string;
  /** SIGKILL, as a crash would; resolves once the process has exited. */
  kill(): Promise<void>;
  /** SIGSTOP: alive and connected, but answering nothing (a hung node) until resume(). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /**
   * Starts it again on the same port with the same arguments and directory (no-op while alive). A former
   * sentinel master comes back as a master until the sentinels convert it, which takes them seconds.
   */
  restart(): Promise<void>;
}

interface ProcessSpec {
  command: string;
  /** Called before every (re)start; it may write the config file the arguments name. */
  args: (port: number) => Promise<string[]>;
  ready: string;
  /** rediss when the process serves TLS only. */
  scheme?: 'redis' | 'rediss';
}

async function freeTopologyPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port !== 6379) return port;
  }
}

async function spawnReady(spec: ProcessSpec, port: number, log: { text: string }): Promise<ChildProcess> {
  const child = spawn(spec.command, await spec.args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
  const append = (chunk: Buffer) => {
    log.text += chunk.toString();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`${spec.command} on port ${port} did not start`)),
        START_TIMEOUT_MS,
      );
      const done = () => {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        child.off('exit', exited);
        child.off('error', fail);
      };
      function fail(err: Error) {
        done();
        reject(err);
      }
      function exited(code: number | null, signal: string | null) {
        fail(new Error(`${spec.command} on port ${port} exited (${signal ?? code}) before it was ready`));
      }
      function check() {
        if (log.text.includes(spec.ready)) {
          done();
          resolve();
        }
      }
      child.once('error', fail);
      child.once('exit', exited);
      child.stdout!.on('data', check);
      check();
    });
  } catch (err) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    throw err;
  }
  return child;
}

async function startProcess(spec: ProcessSpec): Promise<TopologyProcess> {
  const log = { text: '' };
  let port = await freeTopologyPort();
  let child: ChildProcess | undefined;
  // A free port can be taken by another suite between freePort() and bind(); that is worth a retry.
  for (let attempt = 1; ; attempt++) {
    try {
      child = await spawnReady(spec, port, log);
      break;
    } catch (err) {
      if (attempt >= 3 || !log.text.includes('Address already in use')) {
        throw new Error(`${(err as Error).message}\n${log.text}`, { cause: err });
      }
      port = await freeTopologyPort();
    }
  }
  const isAlive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  return {
    port,
    url: `${spec.scheme ?? 'redis'}://${HOST}:${port}`,
    get alive() {
      return isAlive();
    },
    output: () => log.text,
    async kill() {
      if (!child || !isAlive()) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    pause() {
      if (child && isAlive()) child.kill('SIGSTOP');
    },
    resume() {
      if (child && isAlive()) child.kill('SIGCONT');
    },
    async restart() {
      if (isAlive()) return;
      try {
        child = await spawnReady(spec, port, log);
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${log.text}`, { cause: err });
      }
    },
  };
}

/** Sends one command to one node on a throwaway connection that neither queues nor retries. */
export async function ask(port: number, command: string, ...args: (string | number)[]): Promise<unknown> {
  return askWith({}, port, command, ...args);
}

/** ask() over TLS or as a user, for a topology started with either. */
async function askWith(
  access: Access,
  port: number,
  command: string,
  ...args: (string | number)[]
): Promise<unknown> {
  const client = new Redis({
    host: HOST,
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    ...access,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    // disconnect() on a client that never connected arms a timer on a closed socket that keeps jest alive.
    if (client.status !== 'end') client.disconnect();
  }
}

/** Like askWith(), but undefined instead of an error, for polling nodes that may be down. */
async function tryAsk(
  access: Access,
  port: number,
  command: string,
  ...args: (string | number)[]
): Promise<unknown> {
  try {
    return await askWith(access, port, command, ...args);
  } catch {
    return undefined;
  }
}

type Marks = ReadonlyMap<TopologyProcess, number>;

/** How much each process has printed so far, so later waits see only what comes after. */
function mark(processes: readonly TopologyProcess[]): Marks {
  return new Map(processes.map((p) => [p, p.output().length]));
}

/** Resolves when `pattern` shows up in one of the processes' output (after `since`); polls the captured text. */
async function waitForOutput(
  processes: readonly TopologyProcess[],
  pattern: RegExp,
  timeoutMs: number,
  what: string,
  since?: Marks,
): Promise<void> {
  await waitFor(
    () => processes.some((p) => pattern.test(p.output().slice(since?.get(p) ?? 0))),
    timeoutMs,
    what,
  );
}

function infoField(info: unknown, field: string): string | undefined {
  const match = new RegExp(`^${field}:(.*)$`, 'm').exec(String(info ?? ''));
  return match?.[1]?.trim();
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function stopAll(processes: readonly TopologyProcess[], dirs: readonly string[]): Promise<void> {
  await Promise.all(processes.map((p) => p.kill()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}

/** Runs `build`; if it throws, stops what it started so far and rethrows with every process's output. */
async function buildOrCleanUp<T>(
  processes: TopologyProcess[],
  dirs: string[],
  build: () => Promise<T>,
): Promise<T> {
  try {
    return await build();
  } catch (err) {
    const logs = processes.map((p) => `--- port ${p.port} ---\n${p.output()}`).join('\n');
    await stopAll(processes, dirs);
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------------
// Sentinel

export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

export interface SentinelTopology {
  readonly masterName: string;
  /** redis://127.0.0.1:<port> of each sentinel (rediss:// with TLS), without credentials. */
  readonly sentinelUrls: readonly string[];
  /** The same, in the shape ioredis takes: `new Redis({ sentinels, name: masterName })`. */
  readonly sentinels: readonly SentinelAddress[];
  readonly sentinelProcesses: readonly TopologyProcess[];
  /** Both data nodes, in start order (the first started as master). */
  readonly nodes: readonly TopologyProcess[];
  /** The data node that is master as of the last start or waitForFailover(). */
  master(): TopologyProcess;
  /** The other data node. */
  replica(): TopologyProcess;
  /** What the first sentinel that answers says: SENTINEL get-master-addr-by-name. */
  currentMaster(): Promise<SentinelAddress>;
  /**
   * Waits until the sentinels have switched the master away from master() (after a test killed it):
   * a +switch-master event, every live sentinel naming the new master, and that node reporting role
   * master. Afterwards master() and replica() have swapped. Resolves with the new master.
   */
  waitForFailover(timeoutMs?: number): Promise<TopologyProcess>;
  /** ask() on a data node, with the topology's TLS and data-node user. */
  askNode(port: number, command: string, ...args: (string | number)[]): Promise<unknown>;
  /** Kills every process and removes the temp dirs; safe to call more than once. */
  stop(): Promise<void>;
}

export interface SentinelOptions {
  /** TLS on every port: data nodes, replication, sentinels and their links. */
  tls?: RedisTlsFiles;
  /** The only user the data nodes accept; sentinels and the replica log in as it. */
  dataNodeUser?: DataNodeUser;
  /** The sentinels' requirepass (user default); they use it with each other too. */
  sentinelPassword?: string;
  masterName?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /** More lines for every sentinel's config file, after the generated ones. */
  sentinelConfig?: readonly string[];
}

/** One master, one replica and three sentinels (quorum 2), ready: sentinels know the replica and each other. */
export async function startSentinelTopology(options: SentinelOptions = {}): Promise<SentinelTopology> {
  const masterName = options.masterName ?? 'coatcheck-test';
  const downAfterMs = options.downAfterMs ?? 1000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 3000;
  const { tls, dataNodeUser, sentinelPassword } = options;
  const scheme = tls ? 'rediss' : 'redis';
  const nodeAccess = accessFor(tls, dataNodeUser);
  const sentinelAccess = accessFor(tls, sentinelPassword ? { password: sentinelPassword } : {});
  const dirs: string[] = [];
  const processes: TopologyProcess[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coatcheck-sentinel-'));
    dirs.push(dir);
    return dir;
  };

  return buildOrCleanUp(processes, dirs, async () => {
    const masterDir = await tempDir();
    const master = await startProcess({
      command: 'redis-server',
      args: async (port) => [
        ...tlsArgs(tls, port),
        '--dir',
        masterDir,
        ...DATA_NODE_ARGS,
        ...userArgs(dataNodeUser),
      ],
      ready: 'Ready to accept connections',
      scheme,
    });
    processes.push(master);
    const replicaDir = await tempDir();
    const replica = await startProcess({
      command: 'redis-server',
      args: async (port) => [
        ...tlsArgs(tls, port),
        '--dir',
        replicaDir,
        ...DATA_NODE_ARGS,
        ...userArgs(dataNodeUser),
        '--replicaof',
        HOST,
        String(master.port),
      ],
      ready: 'Ready to accept connections',
      scheme,
    });
    processes.push(replica);
    await waitForOutput(
      [replica],
      /MASTER <-> REPLICA sync: Finished with success/,
      START_TIMEOUT_MS,
      'replica sync',
    );

    const sentinelProcesses: TopologyProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const dir = await tempDir();
      const file = join(dir, 'sentinel.conf');
      const sentinel = await startProcess({
        command: 'redis-sentinel',
        // A sentinel rewrites its config file, so each one gets a fresh, writable file of its own.
        args: async (port) => {
          await writeFile(
            file,
            [
              ...(tls
                ? [
                    'port 0',
                    `tls-port ${port}`,
                    `tls-cert-file ${tls.certFile}`,
                    `tls-key-file ${tls.keyFile}`,
                    `tls-ca-cert-file ${tls.caFile}`,
                    'tls-auth-clients no',
                    // A sentinel dials data nodes and its peers over TLS only with this.
                    'tls-replication yes',
                  ]
                : [`port ${port}`]),
              `bind ${HOST}`,
              'protected-mode no',
              `dir ${dir}`,
              `sentinel monitor ${masterName} ${HOST} ${master.port} 2`,
              `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
              `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
              `sentinel parallel-syncs ${masterName} 1`,
              ...(dataNodeUser
                ? [
                    `sentinel auth-user ${masterName} ${dataNodeUser.username}`,
                    `sentinel auth-pass ${masterName} ${dataNodeUser.password}`,
                  ]
                : []),
              // Peers authenticate to each other with sentinel-pass, clients with requirepass.
              ...(sentinelPassword
                ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`]
                : []),
              ...(options.sentinelConfig ?? []),
              '',
            ].join('\n'),
          );
          return [file];
        },
        ready: `+monitor master ${masterName}`,
        scheme,
      });
      processes.push(sentinel);
      sentinelProcesses.push(sentinel);
    }

    // A failover needs each sentinel to know the replica and the two other sentinels (for the vote).
    for (const sentinel of sentinelProcesses) {
      const others = sentinelProcesses.filter((s) => s !== sentinel);
      await waitFor(
        () => {
          const out = sentinel.output();
          return (
            out.includes(`+slave slave ${HOST}:${replica.port} `) &&
            others.every((o) =>
              new RegExp(`\\+sentinel sentinel \\w+ ${escape(HOST)} ${o.port} @ ${escape(masterName)} `).test(
                out,
              ),
            )
          );
        },
        START_TIMEOUT_MS,
        `sentinel ${sentinel.port} to discover the replica and its peers`,
      );
    }

    let since = mark(processes);
    let currentMasterNode = master;
    let currentReplicaNode = replica;
    const sentinels = sentinelProcesses.map((s) => ({ host: HOST, port: s.port }));

    const askSentinel = async (port: number): Promise<SentinelAddress | undefined> => {
      const reply = (await tryAsk(
        sentinelAccess,
        port,
        'SENTINEL',
        'get-master-addr-by-name',
        masterName,
      )) as [string, string] | null | undefined;
      return reply ? { host: reply[0], port: Number(reply[1]) } : undefined;
    };

    const topology: SentinelTopology = {
      masterName,
      sentinelUrls: sentinelProcesses.map((s) => s.url),
      sentinels,
      sentinelProcesses,
      nodes: [master, replica],
      master: () => currentMasterNode,
      replica: () => currentReplicaNode,
      async currentMaster() {
        for (const s of sentinelProcesses) {
          const address = s.alive ? await askSentinel(s.port) : undefined;
          if (address) return address;
        }
        throw new Error('no sentinel answered get-master-addr-by-name');
      },
      async waitForFailover(timeoutMs = 15_000) {
        const deadline = Date.now() + timeoutMs;
        const left = () => Math.max(0, deadline - Date.now());
        const former = currentMasterNode;
        const switched = new RegExp(`\\+switch-master ${escape(masterName)} ${escape(HOST)} ${former.port} `);
        await waitForOutput(
          sentinelProcesses,
          switched,
          left(),
          `+switch-master away from port ${former.port}`,
          since,
        );
        const promoted = currentReplicaNode;
        await waitFor(
          async () => {
            for (const s of sentinelProcesses.filter((p) => p.alive)) {
              if ((await askSentinel(s.port))?.port !== promoted.port) return false;
            }
            return (
              infoField(await tryAsk(nodeAccess, promoted.port, 'INFO', 'replication'), 'role') === 'master'
            );
          },
          left(),
          `every sentinel to name port ${promoted.port} as master`,
        );
        currentMasterNode = promoted;
        currentReplicaNode = former;
        since = mark(processes);
        return promoted;
      },
      askNode: (port, command, ...args) => askWith(nodeAccess, port, command, ...args),
      stop: () => stopAll(processes, dirs),
    };
    return topology;
  });
}

// ---------------------------------------------------------------------------------------------------
// Cluster

export interface ClusterNode extends TopologyProcess {
  /** The node's cluster id (CLUSTER MYID). */
  readonly id: string;
  /** As of the last start or waitForFailover(). */
  readonly role: 'master' | 'replica';
  /** For a replica, the id of its master. */
  readonly masterId: string | undefined;
}

export interface ClusterTopology {
  /** redis://127.0.0.1:<port> of every node (rediss:// with TLS). */
  readonly seedUrls: readonly string[];
  /** In the shape ioredis takes: `new Cluster(topology.seeds)`. */
  readonly seeds: readonly { host: string; port: number }[];
  readonly nodes: readonly ClusterNode[];
  masters(): ClusterNode[];
  /** CLUSTER KEYSLOT, asked of a live node. */
  slotOf(key: string): Promise<number>;
  /** The live master that serves the slot, by CLUSTER SLOTS of a live node. */
  masterForSlot(slot: number): Promise<ClusterNode>;
  masterForKey(key: string): Promise<ClusterNode>;
  /**
   * Waits until every killed master's slots are served by a promoted replica: cluster_state:ok and
   * all slots assigned to live masters on every live node. Afterwards the nodes' roles are refreshed.
   * Resolves with the promoted nodes.
   */
  waitForFailover(timeoutMs?: number): Promise<ClusterNode[]>;
  /** ask() on a node, with the topology's TLS and user. */
  askNode(port: number, command: string, ...args: (string | number)[]): Promise<unknown>;
  /** Kills every process and removes the temp dir; safe to call more than once. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodeTimeoutMs?: number;
  /** TLS on every port: clients, replication and the cluster bus. */
  tls?: RedisTlsFiles;
  /** The only user the nodes accept; replicas and redis-cli log in as it. */
  dataNodeUser?: DataNodeUser;
}

interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | undefined;
  slots: string[];
}

/** Parses CLUSTER NODES. */
function parseNodes(text: string): NodeLine[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.split(' ');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)?.[1]),
        flags: flags!.split(','),
        masterId: masterId === '-' ? undefined : masterId,
        slots,
      };
    });
}

type SlotRange = [number, number, [string, number, string, ...unknown[]], ...unknown[]];

/** Three masters with a replica each, created by redis-cli --cluster create and fully converged. */
export async function startClusterTopology(options: ClusterOptions = {}): Promise<ClusterTopology> {
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2000;
  const { tls, dataNodeUser } = options;
  const access = accessFor(tls, dataNodeUser);
  const dirs: string[] = [];
  const processes: TopologyProcess[] = [];

  return buildOrCleanUp(processes, dirs, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coatcheck-cluster-'));
    dirs.push(dir);
    const started = await Promise.all(
      Array.from({ length: 6 }, async () => {
        // The bus port defaults to port + 10000, which overflows for high ephemeral ports: pick one.
        const busPort = await freeTopologyPort();
        const node = await startProcess({
          command: 'redis-server',
          args: async (port) => [
            ...tlsArgs(tls, port, true),
            '--dir',
            dir,
            ...DATA_NODE_ARGS,
            ...userArgs(dataNodeUser),
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--cluster-node-timeout',
            String(nodeTimeoutMs),
            '--cluster-port',
            String(busPort),
            '--cluster-announce-ip',
            HOST,
            // A replica that lost its master long ago still takes over: the tests want a failover.
            '--cluster-replica-validity-factor',
            '0',
          ],
          ready: 'Ready to accept connections',
          scheme: tls ? 'rediss' : 'redis',
        });
        processes.push(node);
        return node;
      }),
    );

    const create = spawn(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...started.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
        ...(tls ? ['--tls', '--cacert', tls.caFile] : []),
        ...(dataNodeUser
          ? ['--user', dataNodeUser.username, '--pass', dataNodeUser.password, '--no-auth-warning']
          : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let createOutput = '';
    create.stdout.on('data', (c: Buffer) => (createOutput += c.toString()));
    create.stderr.on('data', (c: Buffer) => (createOutput += c.toString()));
    const [code] = (await once(create, 'exit')) as [number | null];
    if (code !== 0 || !createOutput.includes('All 16384 slots covered')) {
      throw new Error(`redis-cli --cluster create failed (${code}):\n${createOutput}`);
    }

    const state = new Map<number, { id: string; role: 'master' | 'replica'; masterId: string | undefined }>();
    const nodes: ClusterNode[] = started.map((p) => {
      const node = Object.create(p, {
        id: { get: () => state.get(p.port)?.id ?? '' },
        role: { get: () => state.get(p.port)?.role ?? 'master' },
        masterId: { get: () => state.get(p.port)?.masterId },
      }) as ClusterNode;
      return node;
    });
    const byId = (id: string) => nodes.find((n) => n.id === id);

    /**
     * True when every live node says cluster_state:ok and sees the same live masters holding all slots,
     * each live master with a live replica known to all (so a later failover can win its vote).
     */
    const converged = async (expectReplicas: boolean): Promise<NodeLine[] | undefined> => {
      let agreed: string | undefined;
      let lines: NodeLine[] = [];
      for (const node of nodes.filter((n) => n.alive)) {
        const info = await tryAsk(access, node.port, 'CLUSTER', 'INFO');
        if (infoField(info, 'cluster_state') !== 'ok') return undefined;
        if (infoField(info, 'cluster_slots_ok') !== String(TOTAL_SLOTS)) return undefined;
        const text = await tryAsk(access, node.port, 'CLUSTER', 'NODES');
        if (typeof text !== 'string') return undefined;
        lines = parseNodes(text).filter((l) => !l.flags.includes('fail') && !l.flags.includes('noaddr'));
        const view = lines
          .filter((l) => l.flags.includes('master') && l.slots.length > 0)
          .map((l) => `${l.id}:${l.slots.join(',')}`)
          .sort()
          .join(' ');
        if (agreed !== undefined && agreed !== view) return undefined;
        agreed = view;
      }
      const masters = lines.filter((l) => l.flags.includes('master') && l.slots.length > 0);
      if (masters.length !== 3) return undefined;
      if (expectReplicas && !masters.every((m) => lines.some((l) => l.masterId === m.id))) return undefined;
      return lines;
    };

    const refresh = async (lines: NodeLine[]) => {
      for (const node of started) {
        const id =
          ((await tryAsk(access, node.port, 'CLUSTER', 'MYID')) as string | undefined) ??
          state.get(node.port)?.id;
        const line = lines.find((l) => l.port === node.port);
        state.set(node.port, {
          id: id ?? '',
          role: line?.flags.includes('slave') ? 'replica' : 'master',
          masterId: line?.masterId,
        });
      }
    };

    const lines = await waitFor(() => converged(true), START_TIMEOUT_MS, 'the cluster to converge');
    await refresh(lines);
    // Replicas must have synced before a test kills their master, or the failover has nothing to keep.
    for (const replica of nodes.filter((n) => n.role === 'replica')) {
      await waitFor(
        async () =>
          infoField(await tryAsk(access, replica.port, 'INFO', 'replication'), 'master_link_status') === 'up',
        START_TIMEOUT_MS,
        `replica ${replica.port} to sync`,
      );
    }

    let since = mark(processes);
    const liveNode = () => {
      const node = nodes.find((n) => n.alive);
      if (!node) throw new Error('no cluster node is alive');
      return node;
    };

    const topology: ClusterTopology = {
      seedUrls: nodes.map((n) => n.url),
      seeds: nodes.map((n) => ({ host: HOST, port: n.port })),
      nodes,
      masters: () => nodes.filter((n) => n.role === 'master'),
      async slotOf(key) {
        return Number(await askWith(access, liveNode().port, 'CLUSTER', 'KEYSLOT', key));
      },
      async masterForSlot(slot) {
        const ranges = (await askWith(access, liveNode().port, 'CLUSTER', 'SLOTS')) as SlotRange[];
        const range = ranges.find(([from, to]) => slot >= from && slot <= to);
        const node = range && byId(range[2][2]);
        if (!node) throw new Error(`no master serves slot ${slot}`);
        return node;
      },
      async masterForKey(key) {
        return this.masterForSlot(await this.slotOf(key));
      },
      async waitForFailover(timeoutMs = 15_000) {
        const deadline = Date.now() + timeoutMs;
        const dead = nodes.filter((n) => !n.alive && n.role === 'master');
        const heirs = nodes.filter((n) => n.alive && dead.some((d) => d.id === n.masterId));
        // The replica logs its won election; that is the event. Convergence has no event, so it is polled.
        await waitForOutput(
          heirs,
          /Failover election won/,
          timeoutMs,
          'a replica to win a failover election',
          since,
        );
        const settled = await waitFor(
          () => converged(false),
          Math.max(0, deadline - Date.now()),
          'the cluster to settle after the failover',
        );
        await refresh(settled);
        since = mark(processes);
        return heirs.filter((n) => n.role === 'master');
      },
      askNode: (port, command, ...args) => askWith(access, port, command, ...args),
      stop: () => stopAll(processes, dirs),
    };
    return topology;
  });
}
