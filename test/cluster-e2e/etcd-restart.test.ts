/**
 * etcd is killed and restarted (same data dir, same ports) while a 3-node cluster serves chat:
 * the nodes re-register and keep serving, and no node evicts itself ("cluster membership lost",
 * cluster-router.ts stopServing) while its own lease is still valid. etcd keeps leases across a
 * restart (and extends them when its leader comes back), so a restart shorter than the lease TTL
 * never lets a lease lapse.
 */
import test from 'ava';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import {
  closeAllDevices,
  convergenceReport,
  dumpLogs,
  expectedPerUser,
  LoadGenerator,
  logLines,
  setupChat,
  sleep,
  unackedReport,
  verifyScenario,
  waitForConvergence,
  waitForView,
  warnings,
} from './support.ts';

const ALL = ['n1', 'n2', 'n3'];
const LEASE_TTL_S = 3; // startCluster's setting
let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(3);
  await waitForView(cluster.nodes, ALL);
});

test.after.always(async () => {
  closeAllDevices();
  dumpLogs(cluster, 'etcd-restart');
  await cluster?.stop();
});

const timeOf = (line: string) => (JSON.parse(line) as { time: number }).time;

test('etcd restart under load: nodes re-register, keep serving, and none evicts itself while its lease is valid', async (t) => {
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const s = await setupChat([n1, n2, n3], { usersPerNode: 1, secondDevices: true });
  const load = new LoadGenerator(s.senders, 30);
  load.start();
  await sleep(2_000);

  const { downAtMs, upAtMs } = await cluster.restartEtcd();
  const outageMs = upAtMs - downAtMs;
  t.log(`etcd down for ${outageMs} ms (kill -9 → answering /health again); lease TTL ${LEASE_TTL_S} s`);

  // Re-registration: every node's record is back in etcd and every view lists all three.
  const etcd = createEtcdClient({ hosts: cluster.etcdUrl });
  let records: string[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      records = Object.keys(await etcd.getAll().prefix(`${cluster.prefix}/members/`).strings()).map((k) => k.slice(`${cluster.prefix}/members/`.length)).sort();
      if (records.join() === ALL.join()) break;
      await sleep(100);
    }
  } finally {
    etcd.close();
  }
  const viewMs = await waitForView(cluster.nodes, ALL, 20_000);
  t.log(`member records after the restart: ${records.join(',')}; views agree ${viewMs} ms after checking`);

  // Keep serving: the load goes on across the restart, then a few more seconds.
  await sleep(4_000);
  await load.stop();
  t.log(`sent ${load.sent}, acked ${load.acked().length}, errors by code`, load.errorCounts());
  const problems: string[] = [...unackedReport(load, ALL)];
  if (records.join() !== ALL.join()) problems.push(`member records in etcd after the restart: ${records.join(',')}`);
  const expected = expectedPerUser(load.acked(), s.membersOf);
  if (!(await waitForConvergence(s, expected, 15_000))) problems.push(...convergenceReport(s, expected));
  const verified = await verifyScenario(s, load.acked(), n2);
  problems.push(...verified.problems);
  for (const d of s.devices) if (d.disconnects.length > 0) problems.push(`${d.user.username}/${d.deviceId} was disconnected: ${JSON.stringify(d.disconnects.map((x) => x.code))}`);

  // What each node said about its own registration, relative to the kill.
  const rel = (text: string) => logLines(cluster, text).map((l) => `${l.nodeId} +${timeOf(l.line) - downAtMs} ms`);
  const unhealthy = rel('own registration may have lapsed');
  const lost = rel('cluster membership lost');
  t.log('unhealthy:', unhealthy, 'membership lost:', lost, 're-registered:', rel('re-registered after a failed renewal'), 'new lease:', rel('registering under a new lease'), 'healthy again:', rel('healthy again'));
  for (const l of lost) problems.push(`self-eviction during an etcd restart of ${outageMs} ms (lease TTL ${LEASE_TTL_S * 1000} ms; etcd keeps the lease): ${l}`);
  t.deepEqual(problems, []);
});

test.after.always('diagnostics', (t) => {
  for (const n of cluster?.nodes ?? []) {
    const w = warnings(n, 40);
    if (w.length > 0) t.log(n.nodeId, w.length, 'warnings; first:', w.slice(0, 5).map((x) => JSON.stringify(x).slice(0, 250)));
  }
});
