/**
 * Observability on a real 2-node cluster (etcd, gRPC): /metrics names each peer's gRPC queue,
 * and /readyz turns 503 with the reason when the node's registration lapses (etcd stopped
 * for longer than the lease), then 200 again once it has re-registered.
 */
import test from 'ava';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { closeAllDevices, dumpLogs, LoadGenerator, setupChat, sleep, waitForView } from './support.ts';

let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(2);
  await waitForView(cluster.nodes, ['n1', 'n2']);
});

test.after.always(async () => {
  closeAllDevices();
  dumpLogs(cluster, 'metrics-readyz');
  await cluster?.stop();
});

const readyz = async (n: ClusterNode): Promise<{ status: number; reason?: string }> => {
  const res = await fetch(`${n.baseUrl}/readyz`, { signal: AbortSignal.timeout(3_000) });
  const body = (await res.json()) as { reason?: string };
  return { status: res.status, ...(body.reason ? { reason: body.reason } : {}) };
};

test.serial('metrics - gRPC queue depth per peer, with the peer as label', async (t) => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const s = await setupChat([n1, n2], { usersPerNode: 1 });
  const load = new LoadGenerator(s.senders, 20);
  load.start();
  await sleep(1_500);
  await load.stop();
  t.true(load.acked().length > 0);
  let stored = 0;
  for (const [self, peer] of [[n1, 'n2'], [n2, 'n1']] as const) {
    const text = await (await fetch(`${self.baseUrl}/metrics`)).text();
    t.regex(text, new RegExp(`^parley_grpc_queue_depth\\{peer="${peer}"\\} \\d+$`, 'm'), `${self.nodeId} reports its queue to ${peer}`);
    // Counted where the channel lives, which may be either node.
    stored += Number(/^parley_messages_in_total (\d+)$/m.exec(text)?.[1] ?? 0);
  }
  t.true(stored > 0);
  // Every line a node logs says which node it is.
  for (const n of [n1, n2]) {
    const json = n.logs.filter((l) => l.startsWith('{'));
    t.true(json.length > 0);
    t.true(json.every((l) => (JSON.parse(l) as { node_id?: string }).node_id === n.nodeId), `${n.nodeId} logs carry node_id`);
  }
});

test.serial('readyz - 200 when registered; 503 with the reason while etcd is down past the lease; 200 again after', async (t) => {
  const n1 = cluster.nodes[0]!;
  t.deepEqual(await readyz(n1), { status: 200 });
  const restart = cluster.restartEtcd({ downMs: 7_000 }); // lease TTL 3 s in startCluster
  let seen: { status: number; reason?: string } | undefined;
  for (let i = 0; i < 60 && seen?.status !== 503; i++) {
    await sleep(100);
    seen = await readyz(n1).catch(() => undefined);
  }
  t.is(seen?.status, 503);
  t.regex(seen?.reason ?? '', /not registered in the cluster/);
  t.is((await fetch(`${n1.baseUrl}/healthz`)).status, 200, 'liveness is not readiness');
  await restart;
  let back = seen;
  for (let i = 0; i < 200 && back?.status !== 200; i++) {
    await sleep(100);
    back = await readyz(n1).catch(() => undefined);
  }
  t.is(back?.status, 200);
});
