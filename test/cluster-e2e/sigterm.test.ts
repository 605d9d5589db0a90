/**
 * SIGTERM of one node of three while clients on every node send at a steady rate: its clients
 * are closed with 1012, reconnect to the other nodes within 5 s, resume from their last acked
 * inbox_seq and miss nothing, with no duplicates anywhere.
 */
import test from 'ava';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { unackedReport, closeAllDevices, dumpLogs, LoadGenerator, logLines, placement, setupChat, sleep, waitForView, warnings, handoffReport } from './support.ts';

let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(3);
  await waitForView(cluster.nodes, ['n1', 'n2', 'n3']);
});

test.after.always(async () => {
  closeAllDevices();
  dumpLogs(cluster, 'sigterm');
  await cluster?.stop();
});

test('SIGTERM under load: clients get 1012, reconnect elsewhere within 5 s, resume and miss nothing', async (t) => {
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  // User 2's main device is on n3 and so is its user actor (handed off while the device moves).
  const s = await setupChat([n1, n2, n3], { usersPerNode: 2, secondDevices: true, userOk: (i, id) => i !== 2 || placement('user', id, ['n1', 'n2', 'n3']) === 'n3' });
  const onN3 = s.devices.filter((d) => d.nodeId === 'n3');
  t.true(onN3.length >= 2, 'some devices are on the node we stop');
  t.log('devices on n3:', onN3.length, 'channels owned by n3:', [...s.membersOf.keys()].filter((c) => placement('channel', c, ['n1', 'n2', 'n3']) === 'n3').length, 'of', s.membersOf.size);

  const load = new LoadGenerator(s.senders, 80);
  load.start();
  await sleep(4_000);
  const sentBefore = load.sent;
  const stopAt = Date.now();
  const exitCode = await n3.stop();
  const stoppedIn = Date.now() - stopAt;
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  check(exitCode === 0, `graceful stop exits 0 (got ${exitCode})`);
  await sleep(5_000);
  await load.stop();
  t.log(`sent ${load.sent} (${sentBefore} before SIGTERM), acked ${load.acked().length}, stop took ${stoppedIn} ms, errors by code`, load.errorCounts());
  problems.push(...unackedReport(load, ['n1', 'n2', 'n3']));

  const handoff = await handoffReport(s, onN3, 'n3', stopAt, load.acked(), n1);
  t.log('reconnect times (close → welcome), ms:', handoff.reconnects);
  t.log('inbox sizes', handoff.inboxSizes);
  problems.push(...handoff.problems);
  check(n3.logs.some((l) => l.includes('"left cluster"')), 'the stopped node logged "left cluster"');
  t.log('handoff lines:', logLines(cluster, 'actors handed off').map((x) => `${x.nodeId}: ${x.line.slice(0, 160)}`));
  t.deepEqual(problems, []);
});

test.after.always('diagnostics', (t) => {
  for (const n of cluster?.nodes ?? []) {
    const w = warnings(n, 40);
    if (w.length > 0) t.log(n.nodeId, w.length, 'warnings; first:', w.slice(0, 6).map((x) => JSON.stringify(x).slice(0, 300)));
  }
});
