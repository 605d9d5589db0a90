/**
 * Two nodes on one Cassandra, with etcd: kill -9 of one while clients on both send at a steady
 * rate loses no acknowledged message; every channel's history stays seq 1..N without duplicates.
 * The same checks as test/cluster-e2e/kill9.test.ts, on the networked store (whose fencing is
 * Cassandra's own conditional writes, not SQLite's transactions).
 */
import test from 'ava';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { startTestCassandra, type TestCassandra } from '../support/cassandra.ts';
import {
  closeAllDevices,
  convergenceReport,
  expectedPerUser,
  LoadGenerator,
  setupChat,
  sleep,
  unackedReport,
  verifyScenario,
  waitForConvergence,
  waitForView,
} from '../cluster-e2e/support.ts';

const ALL = ['n1', 'n2'];
let cassandra: TestCassandra;
let cluster: TestCluster;

test.before(async () => {
  cassandra = await startTestCassandra();
  cluster = await startCluster(2, { store: cassandra.storeUrl() });
  await waitForView(cluster.nodes, ALL);
});

test.after.always(async () => {
  closeAllDevices();
  await cluster?.stop();
  await cassandra?.stop();
});

test('two nodes on Cassandra: kill -9 of one under load loses no acknowledged message', async (t) => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const s = await setupChat([n1, n2], { usersPerNode: 3, secondDevices: true });
  const load = new LoadGenerator(s.senders, 40);
  load.start();
  await sleep(4_000);
  const killedAt = Date.now();
  await n2.kill();
  await sleep(8_000);
  await load.stop();
  t.log(`sent ${load.sent}, acked ${load.acked().length}, errors`, load.errorCounts(), `kill at +4 s, stop at +${Date.now() - killedAt + 4000} ms`);
  const problems = unackedReport(load, ALL);
  const expected = expectedPerUser(load.acked(), s.membersOf);
  if (!(await waitForConvergence(s, expected, 30_000))) problems.push(...convergenceReport(s, expected));
  const verified = await verifyScenario(s, load.acked(), n1);
  problems.push(...verified.problems);
  t.true(load.acked().length > 0);
  t.deepEqual(problems, []);
});
