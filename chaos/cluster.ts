/**
 * The cluster a chaos run breaks: a private etcd, optionally a private Redis (presence) and a
 * private Cassandra (store), and N parleyd nodes on loopback, as test/support/cluster.ts and
 * bin/cluster-dev.ts build one (one shared SQLite file unless Cassandra is asked for, one secret
 * file for all). Two kinds of proxy can be put in the way (chaos/tcp-proxy.ts):
 *
 * - `etcdProxies`: each node reaches etcd through a proxy of its own, so one node can be cut from
 *   etcd while it still talks to its clients and to the other nodes (the partition scenario);
 * - `grpcProxies`: each node listens for peers on one port and advertises (`--grpc-advertise`) a
 *   proxy in front of it, so every byte between two nodes crosses one shaped link (netem).
 *
 * Everything it starts it stops, by pid (services/ and NodeProcess), on `stop()`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCassandra, startEtcd, startRedis, type RunningService } from '../services/index.ts';
import { assertPortsFree } from '../services/ports.ts';
import { NodeProcess, type CountedLine } from './node-process.ts';
import { TcpProxy } from './tcp-proxy.ts';

export const CLUSTER_PREFIX = '/parley-chaos';

export interface ChaosClusterOptions {
  readonly nodes: number;
  readonly leaseTtlS: number;
  /** The run's directory: every data dir and log goes under it. */
  readonly dir: string;
  /** `sqlite` (one shared file), `cassandra` (a private instance, restartable) or an external `cassandra://` URL. */
  readonly store: string;
  /** A private Redis for presence (restartable); false: presence in the store. */
  readonly redis: boolean;
  readonly etcdProxies?: boolean;
  readonly grpcProxies?: boolean;
  /** Extra flags for every node. */
  readonly flags?: Readonly<Record<string, string>>;
  readonly log: (line: string) => void;
}

export class ChaosCluster {
  readonly nodes: NodeProcess[] = [];
  readonly etcdProxies: TcpProxy[] = [];
  readonly grpcProxies: TcpProxy[] = [];
  private etcd!: RunningService;
  private redis: RunningService | undefined;
  private cassandra: RunningService | undefined;
  private etcdPort = 0;
  private etcdPeerPort = 0;
  private redisPort = 0;
  private cassandraPorts = { cql: 0, storage: 0 };
  private storeUrl = '';

  private constructor(private readonly o: ChaosClusterOptions) {}

  /**
   * Starts everything; on failure stops what did start and rethrows. A port taken between its
   * check and its use (the box is shared) costs a new attempt on other ports, twice at most.
   */
  static async start(o: ChaosClusterOptions): Promise<ChaosCluster> {
    for (let attempt = 1; ; attempt++) {
      // A directory of its own per attempt: etcd refuses a data dir that knew other ports.
      const c = new ChaosCluster(attempt === 1 ? o : { ...o, dir: join(o.dir, `attempt-${attempt}`) });
      try {
        await c.boot();
        return c;
      } catch (err) {
        await c.stop();
        const taken = /in use|EADDRINUSE/.test(String((err as Error).message));
        if (!taken || attempt >= 3) throw err;
        o.log(`a port was taken meanwhile (${(err as Error).message.split('\n')[0]}); starting again on other ports`);
      }
    }
  }

  get hasRedis(): boolean {
    return this.redis !== undefined;
  }

  /** Whether the store is a Cassandra this run started (and so may restart). */
  get ownsCassandra(): boolean {
    return this.cassandra !== undefined;
  }

  node(nodeId: string): NodeProcess {
    const n = this.nodes.find((x) => x.nodeId === nodeId);
    if (!n) throw new Error(`no node ${nodeId}`);
    return n;
  }

  private async boot(): Promise<void> {
    const { dir, log } = this.o;
    mkdirSync(dir, { recursive: true });
    this.etcdPort = await stablePort();
    this.etcdPeerPort = await stablePort();
    this.etcd = await this.launchEtcd();
    log(`etcd on 127.0.0.1:${this.etcdPort}`);
    if (this.o.redis) {
      this.redisPort = await stablePort();
      this.redis = await this.launchRedis();
      log(`redis on 127.0.0.1:${this.redisPort}`);
    }
    if (this.o.store === 'cassandra') {
      this.cassandraPorts = { cql: await stablePort(), storage: await stablePort() };
      log('starting a private Cassandra (about a minute)');
      this.cassandra = await this.launchCassandra();
      this.storeUrl = `cassandra://127.0.0.1:${this.cassandraPorts.cql}/parley_chaos?replication=simple:1`;
    } else if (this.o.store.startsWith('cassandra://')) {
      this.storeUrl = this.o.store;
    } else if (this.o.store === 'sqlite') {
      mkdirSync(join(dir, 'shared'), { recursive: true });
      this.storeUrl = `sqlite:${join(dir, 'shared', 'parley.db')}`;
    } else {
      throw new Error(`--store must be sqlite, cassandra or a cassandra:// URL, got ${JSON.stringify(this.o.store)}`);
    }
    const secretFile = join(dir, 'cluster.secret');
    writeFileSync(secretFile, randomBytes(36).toString('base64url'), { mode: 0o600 });
    for (let i = 1; i <= this.o.nodes; i++) {
      const nodeId = `n${i}`;
      const port = await stablePort();
      const grpcPort = await stablePort();
      let etcdUrl = `http://127.0.0.1:${this.etcdPort}`;
      if (this.o.etcdProxies) {
        const p = await TcpProxy.start({ host: '127.0.0.1', port: this.etcdPort }, await stablePort());
        this.etcdProxies.push(p);
        etcdUrl = `http://127.0.0.1:${p.port}`;
      }
      const flags: Record<string, string> = {
        'grpc-port': String(grpcPort),
        etcd: etcdUrl,
        'cluster-prefix': CLUSTER_PREFIX,
        store: this.storeUrl,
        'secret-file': secretFile,
        'lease-ttl-s': String(this.o.leaseTtlS),
        // Signing up a few hundred users at the production cost would take minutes of CPU; the
        // suite is about delivery, not about password hashing.
        'scrypt-log-n': '10',
        'log-level': 'info',
        ...(this.redis ? { redis: `redis://127.0.0.1:${this.redisPort}` } : {}),
        ...this.o.flags,
      };
      if (this.o.grpcProxies) {
        const p = await TcpProxy.start({ host: '127.0.0.1', port: grpcPort }, await stablePort());
        this.grpcProxies.push(p);
        flags['grpc-advertise'] = `127.0.0.1:${p.port}`;
      }
      mkdirSync(join(dir, nodeId), { recursive: true });
      this.nodes.push(new NodeProcess({ nodeId, port, dataDir: join(dir, nodeId), logFile: join(dir, `${nodeId}.log`), flags }));
    }
    // One at a time: each start compiles nothing (dist/), but claims a node number in etcd.
    for (const n of this.nodes) {
      await n.start();
      log(`${n.nodeId} serving on ${n.baseUrl}`);
    }
    await this.waitForView(this.nodes.map((n) => n.nodeId), 30_000);
  }

  private launchEtcd(): Promise<RunningService> {
    // Same ports and data dir on every start: the member's stored peer URL must keep matching.
    return startEtcd({ dataDir: join(this.o.dir, 'etcd'), port: this.etcdPort, peerPort: this.etcdPeerPort });
  }

  private launchRedis(): Promise<RunningService> {
    return startRedis({ dataDir: join(this.o.dir, 'redis'), port: this.redisPort });
  }

  private launchCassandra(): Promise<RunningService> {
    return startCassandra({ dataDir: join(this.o.dir, 'cassandra'), port: this.cassandraPorts.cql, storagePort: this.cassandraPorts.storage });
  }

  /** SIGKILL etcd, wait `downMs`, start it again on the same data and ports. */
  async restartEtcd(downMs: number): Promise<void> {
    await this.etcd.stop({ graceMs: 0 });
    await sleep(downMs);
    this.etcd = await this.launchEtcd();
  }

  /** SIGKILL Redis (no persistence: every presence key is gone), wait `downMs`, start it again. */
  async restartRedis(downMs: number): Promise<void> {
    if (!this.redis) throw new Error('this cluster has no Redis');
    await this.redis.stop({ graceMs: 0 });
    await sleep(downMs);
    this.redis = await this.launchRedis();
  }

  /** SIGKILL the private Cassandra, wait `downMs`, start it again on the same data. */
  async restartCassandra(downMs: number): Promise<void> {
    if (!this.cassandra) throw new Error('the store is not a Cassandra this run started');
    await this.cassandra.stop({ graceMs: 0 });
    await sleep(downMs);
    this.cassandra = await this.launchCassandra();
  }

  /**
   * Polls until every running node (or those of `among`) lists exactly `nodeIds` in
   * GET /v1/servers; resolves with the time it took.
   */
  waitForView(nodeIds: readonly string[], timeoutMs: number, among?: readonly NodeProcess[]): Promise<number> {
    return waitForViews((among ?? this.nodes).filter((n) => n.running && !n.isPaused), nodeIds, timeoutMs);
  }

  /** A counted log line summed over every node (node-process.ts COUNTED_LINES). */
  count(line: CountedLine): number {
    return this.nodes.reduce((sum, n) => sum + n.counts[line], 0);
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.kill()));
    for (const n of this.nodes) n.closeLog();
    await Promise.allSettled([...this.etcdProxies, ...this.grpcProxies].map((p) => p.close()));
    await Promise.allSettled([this.etcd?.stop({ graceMs: 0 }), this.redis?.stop({ graceMs: 0 }), this.cassandra?.stop({ graceMs: 0 })]);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Ports this process handed out, so two parts of one run never get the same one. */
const handedOut = new Set<number>();

/**
 * A free port below the kernel's ephemeral range (Linux: 32768 and up). A node keeps its ports
 * across restarts; an ephemeral one could be taken while it is down by any process's outgoing
 * connection, a random one down here only by someone choosing it on purpose.
 */
async function stablePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    try {
      await assertPortsFree('chaos', { port });
    } catch {
      continue;
    }
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found in 20000-31999 (EADDRINUSE)');
}

/**
 * Polls until each of `nodes` lists exactly `nodeIds` in GET /v1/servers (its membership view);
 * resolves with the time it took, rejects past `timeoutMs` with the views it last saw.
 */
export async function waitForViews(nodes: readonly { readonly baseUrl: string }[], nodeIds: readonly string[], timeoutMs: number, pollMs = 100): Promise<number> {
  const start = Date.now();
  const want = [...nodeIds].sort().join(',');
  for (;;) {
    const views = await Promise.all(
      nodes.map(async (n) => {
        try {
          const res = await fetch(`${n.baseUrl}/v1/servers`, { signal: AbortSignal.timeout(2_000) });
          const body = (await res.json()) as { servers: { node_id: string }[] };
          return body.servers.map((s) => s.node_id).sort().join(',');
        } catch {
          return '';
        }
      }),
    );
    if (views.every((v) => v === want)) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`membership views ${JSON.stringify(views)} did not become ${want} in ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}
