/**
 * `parleyctl drain` of one node of three while clients on every node send at a steady rate, as
 * sigterm.test.ts does with SIGTERM: the node leaves placement, its clients are closed with
 * 1012, reconnect to the other nodes within 5 s, resume from their last acked inbox_seq and miss
 * nothing, with no duplicates anywhere; and the drained process keeps running (out of the
 * member list, turning sockets away) until a SIGTERM, which it still obeys with exit 0.
 */
import test from 'ava';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { ctl } from '../support/parleyctl.ts';
import { unackedReport, closeAllDevices, RawSession, dumpLogs, LoadGenerator, logLines, placement, setupChat, sleep, waitForView, warnings, handoffReport } from './support.ts';

let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(3);
  await waitForView(cluster.nodes, ['n1', 'n2', 'n3']);
});

test.after.always(async () => {
  closeAllDevices();
  dumpLogs(cluster, 'parleyctl-drain');
  await cluster?.stop();
});

test('parleyctl drain under load: the node leaves placement without exiting; clients get 1012, reconnect elsewhere within 5 s, resume and miss nothing', async (t) => {
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
  const drain = await ctl(['drain', 'n3', '--etcd', cluster.etcdUrl, '--cluster-prefix', cluster.prefix, '--json']);
  const stoppedIn = Date.now() - stopAt;
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  check(drain.code === 0, `parleyctl drain exits 0 (got ${drain.code}: ${drain.stderr})`);
  if (drain.code === 0) t.like(JSON.parse(drain.stdout), { node_id: 'n3', drained: true });
  await sleep(5_000);
  check(n3.proc.exitCode === null && n3.proc.signalCode === null, 'the drained node is still running');
  await load.stop();
  t.log(`sent ${load.sent} (${sentBefore} before the drain), acked ${load.acked().length}, stop took ${stoppedIn} ms, errors by code`, load.errorCounts());
  problems.push(...unackedReport(load, ['n1', 'n2', 'n3']));

  const handoff = await handoffReport(s, onN3, 'n3', stopAt, load.acked(), n1);
  t.log('reconnect times (close → welcome), ms:', handoff.reconnects);
  t.log('inbox sizes', handoff.inboxSizes);
  problems.push(...handoff.problems);
  check(n3.logs.some((l) => l.includes('"left cluster"')), 'the drained node logged "left cluster"');
  check(n3.logs.some((l) => l.includes('"drained"')), 'the drained node logged "drained"');
  // Out of the member list; still answering its operator; a new socket is turned away with 1012.
  const nodes = await ctl(['nodes', '--etcd', cluster.etcdUrl, '--cluster-prefix', cluster.prefix, '--json']);
  check(nodes.code === 0 && JSON.stringify((JSON.parse(nodes.stdout) as { nodes: { node_id: string }[] }).nodes.map((n) => n.node_id)) === '["n1","n2"]', `nodes lists n1 and n2 after the drain: ${nodes.stdout}`);
  const late = await RawSession.open(n3.wsUrl, s.users[0]!, 'late').then(
    (x) => (x.close(), 'welcome'),
    (err: unknown) => String(err),
  );
  check(late !== 'welcome', `a drained node welcomes no new socket (got ${late})`);
  const exitCode = await n3.stop();
  check(exitCode === 0, `SIGTERM after the drain exits 0 (got ${exitCode})`);
  t.log('handoff lines:', logLines(cluster, 'actors handed off').map((x) => `${x.nodeId}: ${x.line.slice(0, 160)}`));
  t.deepEqual(problems, []);
});

test.after.always('diagnostics', (t) => {
  for (const n of cluster?.nodes ?? []) {
    const w = warnings(n, 40);
    if (w.length > 0) t.log(n.nodeId, w.length, 'warnings; first:', w.slice(0, 6).map((x) => JSON.stringify(x).slice(0, 300)));
  }
});
