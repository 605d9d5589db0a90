import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startEtcd, type RunningService } from '../../services/index.ts';
import { startServer, type ServerHandle } from './server.ts';

/** A node of a test cluster: its process handle plus the id it registered under. */
export interface ClusterNode extends ServerHandle {
  readonly nodeId: string;
}

export interface TestCluster {
  /** The etcd currently running (a new object after `restartEtcd`). */
  readonly etcd: RunningService;
  readonly etcdUrl: string;
  /** The etcd key prefix the nodes share (`/parley-test`). */
  readonly prefix: string;
  /** Every node started so far, in start order, including stopped or killed ones. */
  readonly nodes: ClusterNode[];
  readonly sharedDir: string;
  /** The shared SQLite file all nodes use. */
  readonly dbPath: string;
  /**
   * Starts one more node in the cluster (node ids n1, n2, ...), with optional extra flags of its
   * own; a flag given as undefined is left out (`{ 'node-number': undefined }`: claim one).
   */
  addNode(index?: number, flags?: Flags): Promise<ClusterNode>;
  /** The node with this id (throws when unknown). */
  node(nodeId: string): ClusterNode;
  /**
   * Stops etcd (SIGKILL unless `graceMs` is given) and starts it again on the same data dir and
   * ports. Resolves with when it went down and when it answered again (Date.now() values).
   */
  restartEtcd(options?: { graceMs?: number; downMs?: number }): Promise<{ downAtMs: number; upAtMs: number }>;
  /** Kills every node (SIGKILL) and etcd, and deletes the cluster's temp dir. */
  stop(): Promise<void>;
}

export const CLUSTER_PREFIX = '/parley-test';

/** Node flags; an undefined value drops a default (see `addNode`). */
export type Flags = Record<string, string | undefined>;

/**
 * A real cluster for tests: a private etcd on a free loopback port, and node processes sharing
 * one SQLite file (the one-box cluster mode), each with its own data dir and node number
 * (`--node-number` = its index, still claimed in etcd; `{ 'node-number': undefined }` leaves it
 * to the claim). `extraFlags` go to every node (a node's own flags in `addNode` win over them).
 */
export async function startCluster(size: number, extraFlags: Flags = {}): Promise<TestCluster> {
  const base = mkdtempSync(join(tmpdir(), 'parley-cluster-'));
  const etcdPort = await findFreePort();
  const etcdPeerPort = await findFreePort();
  const etcdDir = join(base, 'etcd');
  // Same ports and data dir on every start: the member's stored peer URL must keep matching.
  const launchEtcd = () => startEtcd({ dataDir: etcdDir, port: etcdPort, peerPort: etcdPeerPort });
  let etcd = await launchEtcd();
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const sharedDir = join(base, 'shared');
  mkdirSync(sharedDir, { recursive: true });
  const dbPath = join(sharedDir, 'parley.db');
  const nodes: ClusterNode[] = [];
  let next = 1;
  const addNode = async (index = next++, flags: Flags = {}): Promise<ClusterNode> => {
    next = Math.max(next, index + 1);
    const nodeId = `n${index}`;
    const merged: Flags = {
      'node-id': nodeId,
      'node-number': String(index),
      etcd: etcdUrl,
      'cluster-prefix': CLUSTER_PREFIX,
      store: `sqlite:${dbPath}`,
      'lease-ttl-s': '3',
      ...extraFlags,
      ...flags,
    };
    const handle = await startServer({
      dataDir: join(base, nodeId),
      flags: Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined)),
    });
    const node: ClusterNode = { ...handle, nodeId };
    nodes.push(node);
    return node;
  };
  // Last resort if the test process exits without stop() (a timed-out worker): no orphans left.
  const killAllNow = (): void => {
    for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    try {
      process.kill(etcd.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killAllNow);
  try {
    for (let i = 0; i < size; i++) await addNode();
  } catch (err) {
    process.removeListener('exit', killAllNow);
    await Promise.allSettled(nodes.map((n) => n.kill()));
    await etcd.stop({ graceMs: 0 });
    throw err;
  }
  return {
    get etcd() {
      return etcd;
    },
    etcdUrl,
    prefix: CLUSTER_PREFIX,
    nodes,
    sharedDir,
    dbPath,
    addNode,
    node(nodeId: string): ClusterNode {
      const n = nodes.find((x) => x.nodeId === nodeId);
      if (!n) throw new Error(`no node ${nodeId} in this cluster`);
      return n;
    },
    async restartEtcd(options = {}) {
      await etcd.stop({ graceMs: options.graceMs ?? 0 });
      const downAtMs = Date.now();
      if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
      etcd = await launchEtcd();
      return { downAtMs, upAtMs: Date.now() };
    },
    async stop() {
      process.removeListener('exit', killAllNow);
      await Promise.allSettled(nodes.map((n) => n.kill()));
      await etcd.stop({ graceMs: 0 });
      // PARLEY_E2E_KEEP=1 keeps the data (shared SQLite file, etcd, node dirs) for a post-mortem.
      if (!process.env.PARLEY_E2E_KEEP) rmSync(base, { recursive: true, force: true });
      else process.stderr.write(`cluster data kept in ${base}\n`);
    },
  };
}
