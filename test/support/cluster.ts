import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startEtcd, type RunningService } from '../../runtime/services/index.ts';
import { startServer, type ServerHandle } from './server.ts';

export interface TestCluster {
  readonly etcd: RunningService;
  readonly etcdUrl: string;
  readonly nodes: ServerHandle[];
  readonly sharedDir: string;
  /** Starts one more node in the cluster (node ids n1, n2, ...). */
  addNode(index?: number): Promise<ServerHandle>;
  stop(): Promise<void>;
}

/**
 * A real cluster for tests: a private etcd on a free loopback port, and node processes sharing
 * one SQLite file (the one-box cluster mode), each with its own data dir and node number.
 */
export async function startCluster(size: number, extraFlags: Record<string, string> = {}): Promise<TestCluster> {
  const base = mkdtempSync(join(tmpdir(), 'parley-cluster-'));
  const etcdPort = await findFreePort();
  const etcd = await startEtcd({ dataDir: join(base, 'etcd'), port: etcdPort, peerPort: await findFreePort() });
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const sharedDir = join(base, 'shared');
  mkdirSync(sharedDir, { recursive: true });
  const nodes: ServerHandle[] = [];
  let next = 1;
  const addNode = async (index = next++): Promise<ServerHandle> => {
    const node = await startServer({
      dataDir: join(base, `n${index}`),
      flags: {
        'node-id': `n${index}`,
        'node-number': String(index),
        etcd: etcdUrl,
        'cluster-prefix': '/parley-test',
        store: `sqlite:${join(sharedDir, 'parley.db')}`,
        'lease-ttl-s': '3',
        ...extraFlags,
      },
    });
    nodes.push(node);
    return node;
  };
  for (let i = 0; i < size; i++) await addNode();
  return {
    etcd,
    etcdUrl,
    nodes,
    sharedDir,
    addNode,
    async stop() {
      await Promise.all(nodes.map((n) => n.kill()));
      await etcd.stop({ graceMs: 0 });
    },
  };
}
