/**
 * kill -9 of one node of three while clients on every node send at a steady rate.
 *
 * - Every message that got a send_ack reaches every member's every device exactly once after
 *   the reconnects; every channel's history is seq 1..N with each acked id once.
 * - A send to a channel owned by the dead node, before its lease lapses, gets an error frame
 *   within the ask timeout instead of hanging; the first successful send to it after that is
 *   the takeover time.
 * - Every acked message_id, over all clients and channels, belongs to exactly one message. The
 *   nodes start without --node-number, as a cluster is usually run: each claims its message-id
 *   node number from etcd (with numbers given by hand the check would hold anyway).
 * - Presence with the real default timings (30 s presence timeout): a user whose only device was
 *   on the dead node goes offline for a friend on another node within 35 s. Offline arriving
 *   well before 30 s shows it came from the takeover path (membership change -> nodeDown via
 *   the presence_node index), not from the device timeout. Two such users are watched: one
 *   whose user actor died with the node (takeover: a fresh activation elsewhere) and one whose
 *   user actor lives on a surviving node (nodeDown broadcast). X2's friend has its user actor on
 *   the dead node, so X2's offline push races the friend's session re-registering with the new
 *   activation; the reattach's presence snapshot must cover either order.
 */
import test from 'ava';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { newUser, type TestUser } from '../support/server.ts';
import {
  befriend,
  closeAllDevices,
  convergenceReport,
  dumpLogs,
  unackedReport,
  expectedPerUser,
  LoadGenerator,
  openDevice,
  placement,
  RawSession,
  setupChat,
  sharedMessageIds,
  sleep,
  verifyScenario,
  waitForConvergence,
  waitForView,
  warnings,
  type Device,
} from './support.ts';

const ALL = ['n1', 'n2', 'n3'];
const ASK_TIMEOUT_MS = 10_000; // a send's channel ask: 2 x fanout_timeout_ms (5 s default)
let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(3, { 'node-number': undefined });
  await waitForView(cluster.nodes, ALL);
});

test.after.always(async () => {
  closeAllDevices();
  dumpLogs(cluster, 'kill9');
  await cluster?.stop();
});

/** Creates users on `node` until one's user actor is placed per `want`. */
async function userPlaced(node: ClusterNode, want: (owner: string) => boolean, prefix: string): Promise<TestUser> {
  for (let i = 0; i < 40; i++) {
    const u = await newUser(node, prefix);
    if (want(placement('user', u.userId, ALL))) return u;
  }
  throw new Error('no user with the wanted placement');
}

test('kill -9 under load: acked messages reach every device once, histories are clean, takeover and presence in bounds', async (t) => {
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  // User 2's main device is on n3 and so is its user actor: reconnecting it exercises a hello
  // whose user actor must first be taken over. User 5 (main device on n3) lives elsewhere.
  const s = await setupChat([n1, n2, n3], { usersPerNode: 2, secondDevices: true, userOk: (i, id) => (i === 2 ? placement('user', id, ALL) === 'n3' : i === 5 ? placement('user', id, ALL) === 'n1' : true) });

  // A DM whose channel actor lives on n3, between users on n1 and n2: the takeover probe. It
  // uses a bare WebSocket, so the server's answer is seen as is (the SDK would retry it).
  let probe: { channelId: string; raw: RawSession } | undefined;
  for (let i = 0; i < 30 && !probe; i++) {
    const a = await newUser(n1, 'pa');
    const b = await newUser(n2, 'pb');
    const { channel_id } = await a.http.openDm(b.userId);
    if (placement('channel', channel_id, ALL) === 'n3') probe = { channelId: channel_id, raw: await RawSession.open(n1.wsUrl, a, 'probe') };
  }
  if (!probe) throw new Error('no DM placed on n3');
  const probeSend = (timeoutMs: number) => probe!.raw.request('send', { channel_id: probe!.channelId, client_msg_id: 'probe-1', text: 'into the void' }, timeoutMs);
  t.is((await probeSend(10_000)).body, 'send_ack', 'the probe channel works before the kill'); // and is active on n3

  // Presence pairs: X's only device is on n3 and never reconnects; its friend F is on another node.
  const x1 = await userPlaced(n3, (o) => o === 'n3', 'xa'); // user actor dies with n3
  const x2 = await userPlaced(n3, (o) => o !== 'n3', 'xb'); // user actor survives
  const f1 = await newUser(n1, 'fa');
  const f2 = await userPlaced(n2, (o) => o === 'n3', 'fb'); // its user actor moves: X2's offline races the reattach
  await befriend(x1, f1);
  await befriend(x2, f2);
  const df1 = await openDevice(f1, 'f', [n1.wsUrl]);
  const df2 = await openDevice(f2, 'f', [n2.wsUrl]);
  await openDevice(x1, 'only', [n3.wsUrl]);
  await openDevice(x2, 'only', [n3.wsUrl]);
  t.log('presence placements (3 nodes → 2 nodes):', Object.fromEntries([['x1', x1], ['x2', x2], ['f1', f1], ['f2', f2]].map(([k, u]) => [k, `${placement('user', (u as TestUser).userId, ALL)}→${placement('user', (u as TestUser).userId, ['n1', 'n2'])}`])));
  const sawOnline = (d: Device, u: TestUser) => d.presences.some((p) => p.user_id === u.userId && p.online);
  for (let i = 0; i < 100 && !(sawOnline(df1, x1) && sawOnline(df2, x2)); i++) await sleep(50);
  t.true(sawOnline(df1, x1) && sawOnline(df2, x2), 'friends saw X1 and X2 come online');

  const numbers = await Promise.all([n1, n2, n3].map(async (n) => ((await (await fetch(`${n.baseUrl}/healthz`)).json()) as { node_number: number }).node_number));
  t.log('message-id node numbers (claimed from etcd):', numbers);
  t.is(new Set(numbers).size, 3, 'three different node numbers');

  const onN3 = s.devices.filter((d) => d.nodeId === 'n3');
  const load = new LoadGenerator(s.senders, 80);
  load.start();
  await sleep(4_000);
  const sentBefore = load.sent;

  const killedAt = Date.now();
  await n3.kill();
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };

  // 1. A send to the dead node's channel before its lease lapses: an answer within the ask
  //    timeout (an error frame, or an ack if the takeover was already done), never silence.
  const leftSeenAt = () =>
    [n1, n2].map((n) => {
      const line = n.logs.find((l) => l.includes('"left":["n3"]'));
      return line ? (JSON.parse(line) as { time: number }).time - killedAt : undefined;
    });
  const first = await probeSend(ASK_TIMEOUT_MS + 5_000);
  const firstMs = Date.now() - killedAt;
  const firstCode = first.body === 'error' ? first.error.code : first.body;
  t.log(`first send to the dead node's channel: ${firstCode} after ${firstMs} ms; n1/n2 saw n3 leave after (ms):`, leftSeenAt());
  check(first.body === 'send_ack' || (first.body === 'error' && ['UNAVAILABLE', 'TIMEOUT'].includes(first.error.code)), `the dead node's channel: an ack or a clear retryable error, got ${firstCode}`);
  check(firstMs <= ASK_TIMEOUT_MS + 1_000, `the dead node's channel answered within the ask timeout (${firstMs} ms)`);
  // 2. Takeover: resend (same client_msg_id) until acked.
  let takeoverMs: number | undefined = first.body === 'send_ack' ? firstMs : undefined;
  const probeAnswers: string[] = [];
  for (let i = 0; takeoverMs === undefined && i < 300 && Date.now() - killedAt < 30_000; i++) {
    const f = await probeSend(ASK_TIMEOUT_MS + 5_000);
    if (f.body === 'send_ack') takeoverMs = Date.now() - killedAt;
    else {
      probeAnswers.push(`${f.body === 'error' ? f.error.code : f.body}@${Date.now() - killedAt}`);
      await sleep(25);
    }
  }
  t.log(`kill -9 → first successful send to a channel owned by the killed node: ${takeoverMs} ms; answers before:`, probeAnswers.slice(0, 6), probeAnswers.length);
  check(takeoverMs !== undefined, 'the channel was taken over');
  const probeAcks = probe.raw.frames.flatMap((f) => (f.body === 'send_ack' ? [f.send_ack] : []));
  probe.raw.close();

  await sleep(Math.max(0, 6_000 - (Date.now() - killedAt)));
  await load.stop();
  t.log(`sent ${load.sent} (${sentBefore} before the kill), acked ${load.acked().length}, errors by code`, load.errorCounts());
  problems.push(...unackedReport(load, ALL));

  // Clients of the dead node came back on the others.
  for (const d of onN3) {
    const close = d.disconnects.find((x) => x.atMs >= killedAt);
    const back = d.welcomes.find((w) => w.atMs >= killedAt);
    check(back !== undefined && back.node_id !== 'n3', `${d.user.username}/${d.deviceId} reconnected elsewhere (close ${close?.code} willReconnect ${close?.willReconnect}, reconnect ${back ? back.atMs - killedAt : '-'} ms, closes ${JSON.stringify(d.disconnects.map((x) => x.code))})`);
  }
  t.log('reconnects after kill (ms):', onN3.map((d) => (d.welcomes.find((w) => w.atMs >= killedAt)?.atMs ?? NaN) - killedAt));

  const acks = [...load.acked().map((o) => o.ack!), ...probeAcks];
  const shared = sharedMessageIds(acks);
  t.log(`${acks.length} acks, ${new Set(acks.map((a) => a.message_id)).size} distinct message ids, ${shared.length} shared by two messages`);
  problems.push(...shared.slice(0, 20));

  const expected = expectedPerUser(load.acked(), s.membersOf);
  if (!(await waitForConvergence(s, expected, 15_000))) problems.push(...convergenceReport(s, expected));
  const verified = await verifyScenario(s, load.acked(), n1);
  t.log('inbox sizes', verified.inboxSizes);
  problems.push(...verified.problems);

  // 3. Presence: offline for friends within 35 s of the kill.
  const offline = async (d: Device, u: TestUser) => {
    const find = () => d.presences.find((x) => x.user_id === u.userId && !x.online && x.atMs >= killedAt);
    while (!find() && Date.now() - killedAt < 36_000) await sleep(100);
    const p = find();
    return p ? p.atMs - killedAt : undefined;
  };
  const [off1, off2] = await Promise.all([offline(df1, x1), offline(df2, x2)]);
  t.log(`offline pushes after kill -9: X1 (user actor taken over) ${off1} ms, X2 (user actor survived) ${off2} ms`);
  t.log('presence frames f1:', df1.presences.map((p) => `${p.user_id === x1.userId ? 'x1' : p.user_id} ${p.online} +${p.atMs - killedAt}`), 'f2:', df2.presences.map((p) => `${p.user_id === x2.userId ? 'x2' : p.user_id} ${p.online} +${p.atMs - killedAt}`));
  t.log('friends lists now:', (await f1.http.friends()).friends.map((f) => f.online), (await f2.http.friends()).friends.map((f) => f.online));
  check(off1 !== undefined && off1 <= 35_000, 'X1 offline within 35 s');
  check(off2 !== undefined && off2 <= 35_000, 'X2 offline within 35 s');
  check(off1 === undefined || off1 < 25_000, 'X1 went offline through the takeover path, well before the 30 s device timeout');
  t.deepEqual(problems, []);
});

test.after.always('diagnostics', (t) => {
  for (const n of cluster?.nodes ?? []) {
    const w = warnings(n, 40);
    if (w.length > 0) t.log(n.nodeId, w.length, 'warnings; first:', w.slice(0, 4).map((x) => JSON.stringify(x).slice(0, 300)));
  }
});
