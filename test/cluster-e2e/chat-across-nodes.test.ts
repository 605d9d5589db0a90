/**
 * A steady 3-node cluster (etcd membership, gRPC transport, shared SQLite): chat, multi-device
 * and presence across nodes; the inter-node secret; same-node vs cross-node latency.
 * One cluster for the file, so the tests run serially.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { createHmac } from 'node:crypto';
import { encodePayload } from '../../runtime/cluster/cluster-router.ts';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { GrpcTransport } from '../../runtime/transport/grpc-transport.ts';
import { CLUSTER_SECRET_HEADER, NODE_ID_HEADER } from '../../runtime/transport/cluster-secret.ts';
import { CONNECT_PATH, connectMethod, type Batch } from '../../runtime/transport/grpc-wire.ts';
import type { Envelope } from '../../runtime/transport/transport.ts';
import { ParleyHttp } from '../../client/index.ts';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { eventually, newUser, type TestUser } from '../support/server.ts';
import { befriend, checkConnections, checkDeliveries, openDevice, percentiles, placement, sleep, waitForView, warnings, type Device } from './support.ts';

const NODES = ['n1', 'n2', 'n3'];
let cluster: TestCluster;
let n1: ClusterNode, n2: ClusterNode, n3: ClusterNode;
const devices: Device[] = [];

test.before(async () => {
  // Send limits raised for the latency runs (one client sends ~500 messages back to back).
  cluster = await startCluster(3, { 'send-rate': '2000', 'send-burst': '2000' });
  [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  await waitForView(cluster.nodes, NODES);
});

test.after.always(async () => {
  for (const d of devices) d.close();
  await cluster?.stop();
});

async function device(user: TestUser, id: string, node: ClusterNode | ClusterNode[]): Promise<Device> {
  const servers = (Array.isArray(node) ? node : [node]).map((n) => n.wsUrl);
  const d = await openDevice(user, id, servers);
  devices.push(d);
  return d;
}

const ids = (ds: readonly { message: { message_id: string } }[]) => ds.map((d) => d.message.message_id);

test.serial('1:1 and group across three nodes: each delivery once, in channel order; presence pushes cross nodes', async (t) => {
  const a = await newUser(n1, 'a');
  const b = await newUser(n2, 'b');
  const c = await newUser(n3, 'c');
  const stranger = await newUser(n2, 's');
  await befriend(a, b);
  await befriend(c, b);
  t.log('placement', { a: placement('user', a.userId, NODES), b: placement('user', b.userId, NODES), c: placement('user', c.userId, NODES) });

  // b (on n2) watches; a connects on n1 and c on n3: b gets both online pushes.
  const db = await device(b, 'b1', n2);
  const ds = await device(stranger, 's1', n2);
  const da = await device(a, 'a1', n1);
  const dc = await device(c, 'c1', n3);
  t.deepEqual([da.nodeId, db.nodeId, dc.nodeId], ['n1', 'n2', 'n3']);
  t.true(await eventually(() => db.presences.some((p) => p.user_id === a.userId && p.online), 10_000), 'b sees a (n1) online');
  t.true(await eventually(() => db.presences.some((p) => p.user_id === c.userId && p.online), 10_000), 'b sees c (n3) online');

  // 1:1 both ways, pipelined sends (no waiting between them).
  const dm = (await a.http.openDm(b.userId)).channel_id;
  t.log('dm on', placement('channel', dm, NODES));
  const acks = await Promise.all([
    ...Array.from({ length: 15 }, (_, i) => da.client.send(dm, `a->b ${i}`)),
    ...Array.from({ length: 15 }, (_, i) => db.client.send(dm, `b->a ${i}`)),
  ]);
  t.deepEqual(acks.map((x) => x.channel_seq).sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1), 'channel_seq 1..30');
  const dmIds = new Set(acks.map((x) => x.message_id));
  t.true(await eventually(() => da.deliveries.length >= 30 && db.deliveries.length >= 30, 15_000));
  await sleep(300); // nothing more may arrive
  for (const [name, d] of [['a', da], ['b', db]] as const) {
    t.deepEqual(checkDeliveries(name, d.deliveries, dmIds, { gapFree: true }), []);
    t.is(d.deliveries.length, 30);
    t.deepEqual(d.deliveries.map((x) => x.message.channel_seq), Array.from({ length: 30 }, (_, i) => i + 1), `${name}: channel order`);
  }

  // Group of three, one member per node, everyone sending at once.
  const g = (await c.http.createGroup('trio', [a.userId, b.userId])).channel_id;
  t.log('group on', placement('channel', g, NODES));
  const gAcks = await Promise.all([da, db, dc].flatMap((d, k) => Array.from({ length: 10 }, (_, i) => d.client.send(g, `g ${k}.${i}`))));
  const gIds = new Set(gAcks.map((x) => x.message_id));
  t.deepEqual(gAcks.map((x) => x.channel_seq).sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
  t.true(await eventually(() => da.deliveries.length >= 60 && db.deliveries.length >= 60 && dc.deliveries.length >= 30, 15_000));
  await sleep(300);
  for (const [name, d, expected] of [['a', da, 60], ['b', db, 60], ['c', dc, 30]] as const) {
    const inGroup = d.deliveries.filter((x) => x.message.channel_id === g);
    t.is(d.deliveries.length, expected, `${name}: every delivery once`);
    t.deepEqual(inGroup.map((x) => x.message.channel_seq), Array.from({ length: 30 }, (_, i) => i + 1), `${name}: group in channel order`);
    t.deepEqual(checkDeliveries(name, d.deliveries, name === 'c' ? gIds : new Set([...dmIds, ...gIds]), { gapFree: true }), []);
    t.deepEqual(checkConnections(d), []);
  }
  // The same message is the same everywhere.
  t.deepEqual(ids(da.deliveries.filter((x) => x.message.channel_id === g)), ids(dc.deliveries));

  // Offline pushes cross nodes too: a (n1) and c (n3) close cleanly, b (n2) hears at once.
  const closedAt = Date.now();
  da.close();
  dc.close();
  t.true(await eventually(() => db.presences.some((p) => p.user_id === a.userId && !p.online), 5_000), 'b sees a offline');
  t.true(await eventually(() => db.presences.some((p) => p.user_id === c.userId && !p.online), 5_000), 'b sees c offline');
  const offA = db.presences.find((p) => p.user_id === a.userId && !p.online)!;
  t.log('offline push after clean close took', offA.atMs - closedAt, 'ms');
  t.true(offA.atMs - closedAt < 2_000, 'a clean close is offline at once, not after the presence timeout');
  t.is(ds.presences.length, 0, 'no presence frames to a non-friend');
  const friends = await b.http.friends();
  t.deepEqual(Object.fromEntries(friends.friends.map((f) => [f.user_id, f.online])), { [a.userId]: false, [c.userId]: false });
});

test.serial('one user, two devices on two nodes: both get every message, including their own', async (t) => {
  const d = await newUser(n1, 'd');
  const e = await newUser(n2, 'e');
  const f = await newUser(n3, 'f');
  const phone = await device(d, 'phone', n1);
  const laptop = await device(d, 'laptop', n3);
  const de = await device(e, 'e1', n2);
  t.deepEqual([phone.nodeId, laptop.nodeId, de.nodeId], ['n1', 'n3', 'n2']);
  const dm = (await e.http.openDm(d.userId)).channel_id;
  const g = (await f.http.createGroup('g', [d.userId, e.userId])).channel_id;
  const acks = [];
  for (let i = 0; i < 10; i++) {
    acks.push(de.client.send(dm, `e->d ${i}`));
    acks.push(phone.client.send(dm, `d(phone)->e ${i}`));
    acks.push(laptop.client.send(g, `d(laptop)->g ${i}`));
    acks.push(f.http.postMessage(g, `f-${i}`, `f->g ${i}`).then((r) => ({ message_id: r.message_id })));
  }
  const all = new Set((await Promise.all(acks)).map((x) => x.message_id));
  t.is(all.size, 40);
  t.true(await eventually(() => phone.deliveries.length >= 40 && laptop.deliveries.length >= 40, 15_000));
  await sleep(300);
  for (const [name, dev] of [['phone', phone], ['laptop', laptop]] as const) {
    t.is(dev.deliveries.length, 40, `${name}: 40 deliveries`);
    t.deepEqual(checkDeliveries(name, dev.deliveries, all, { gapFree: true }), []);
    t.deepEqual(checkConnections(dev), []);
  }
  // Same inbox, so the same entries at the same seqs on both devices.
  t.deepEqual(
    phone.deliveries.map((x) => [x.inbox_seq, x.message.message_id]),
    laptop.deliveries.map((x) => [x.inbox_seq, x.message.message_id]),
  );
  t.true(await eventually(() => de.deliveries.length >= 40, 5_000));
  t.deepEqual(checkDeliveries('e', de.deliveries, all, { gapFree: true }), [], 'e: the 20 DM and 20 group messages');
});

/** Envelope telling a user actor that a made-up friend came online; observable as a presence push. */
function fakePresence(userId: string, fakeFriend: string): Envelope {
  const message = { type: 'presenceChanged', presence: { user_id: fakeFriend, online: true, last_active_at_ms: 1 } };
  return { kind: 'tell', targetKind: 'user', targetKey: userId, correlationId: 0, hops: 0, payload: encodePayload(message), senderNode: 'intruder' };
}

test.serial('typing crosses nodes: members on other nodes get the notice, the typist devices do not', async (t) => {
  const a = await newUser(n1, 'ta');
  const b = await newUser(n2, 'tb');
  const c = await newUser(n3, 'tc');
  const { channel_id: group } = await a.http.createGroup('typing', [b.userId, c.userId]);
  const da = await device(a, 'ta1', n1);
  const da2 = await device(a, 'ta2', n3);
  const db = await device(b, 'tb1', n2);
  const dc = await device(c, 'tc1', n3);
  const notices = new Map<Device, string[]>();
  for (const d of [da, da2, db, dc]) {
    const list: string[] = [];
    notices.set(d, list);
    d.client.on('typing', (n) => list.push(`${n.channel_id}/${n.user_id}`));
  }
  da.client.typing(group);
  t.true(await eventually(() => notices.get(db)!.length === 1 && notices.get(dc)!.length === 1, 10_000), 'b (n2) and c (n3) get it');
  await sleep(300);
  t.deepEqual(notices.get(db), [`${group}/${a.userId}`]);
  t.deepEqual(notices.get(da)!.concat(notices.get(da2)!), [], 'not to the typist devices, on either node');
});

test.serial('read receipts cross nodes and the mark is read back through any node', async (t) => {
  const a = await newUser(n1, 'ra');
  const b = await newUser(n2, 'rb');
  const { channel_id: group } = await a.http.createGroup('reads', [b.userId]);
  await a.http.postMessage(group, 'r1', 'hello');
  const da = await device(a, 'ra1', n1);
  const db = await device(b, 'rb1', n2);
  const got: number[] = [];
  da.client.on('readReceipt', (r) => got.push(r.channel_seq));
  db.client.markRead(group, 1);
  t.true(await eventually(() => got.length === 1, 10_000), 'a (n1) gets b\'s (n2) receipt');
  t.deepEqual(got, [1]);
  const viaN3 = new ParleyHttp(n3.baseUrl, a.token);
  t.deepEqual((await viaN3.reads(group)).reads, [{ user_id: b.userId, channel_seq: 1 }]);
});

test.serial('a block set through one node holds for sends arriving on others: the DM refuses them, the blocker\'s inbox skips them', async (t) => {
  const a = await newUser(n1, 'ka');
  const b = await newUser(n2, 'kb');
  const c = await newUser(n3, 'kc');
  const dm = (await a.http.openDm(b.userId)).channel_id;
  const { channel_id: group } = await c.http.createGroup('blocks', [a.userId, b.userId]);
  // Set through a node that owns neither a's user actor nor the DM, when there is one; b's sends
  // then arrive on the other nodes (WebSocket on one, HTTP on another).
  const owners = [placement('user', a.userId, NODES), placement('channel', dm, NODES)];
  const via = cluster.nodes.find((n) => !owners.includes(n.nodeId)) ?? n1;
  const [wsNode, httpNode] = cluster.nodes.filter((n) => n !== via) as [ClusterNode, ClusterNode];
  t.log({ aUser: owners[0], dm: owners[1], blockVia: via.nodeId, bWs: wsNode.nodeId, bHttp: httpNode.nodeId });
  const da = await device(a, 'ka1', httpNode);
  const db = await device(b, 'kb1', wsNode);
  const dc = await device(c, 'kc1', via);
  await db.client.send(dm, 'before');
  t.true(await eventually(() => da.deliveries.length === 1, 10_000));

  await new ParleyHttp(via.baseUrl, a.token).block(b.userId);
  const wsSend = await db.client.send(dm, 'refused').then(
    () => 'sent',
    (e: { code: string }) => e.code,
  );
  t.is(wsSend, 'FORBIDDEN', `b's WebSocket send on ${wsNode.nodeId} is refused`);
  const httpSend = await new ParleyHttp(httpNode.baseUrl, b.token).postMessage(dm, 'k2', 'refused too').then(
    () => 0,
    (e: { status: number }) => e.status,
  );
  t.is(httpSend, 403, `b's HTTP send on ${httpNode.nodeId} is refused`);
  t.deepEqual((await new ParleyHttp(wsNode.baseUrl, a.token).blocks()).blocked, [b.userId], 'the list reads the same on every node');

  // In the group: b's message (sent on its node) never reaches a; c's does, at the next inbox seq.
  await db.client.send(group, 'from b');
  await dc.client.send(group, 'from c');
  t.true(await eventually(() => da.deliveries.length === 2 && db.deliveries.length === 3, 10_000));
  await sleep(300);
  t.deepEqual(da.deliveries.map((d) => [d.inbox_seq, d.message.text]), [[1, 'before'], [2, 'from c']]);
});

test.serial('inter-node gRPC without the cluster secret is refused and delivers nothing', async (t) => {
  const victim = await newUser(n1, 'v');
  const dv = await device(victim, 'v1', n1);
  const owner = placement('user', victim.userId, NODES);
  const etcd = createEtcdClient({ hosts: cluster.etcdUrl });
  const transports: GrpcTransport[] = [];
  const raw: grpc.Client[] = [];
  try {
    const record = JSON.parse((await etcd.get(`${cluster.prefix}/members/${owner}`).string())!) as { grpcAddress: string };
    t.log('user actor on', owner, 'at', record.grpcAddress);

    // 1. A GrpcTransport with a wrong secret: its stream is refused, it reports the peer down.
    const intruder = new GrpcTransport({ nodeId: 'intruder', listenAddress: '127.0.0.1:0', clusterSecret: 'not-the-secret-'.repeat(4) });
    transports.push(intruder);
    await intruder.start();
    const downs: string[] = [];
    intruder.onPeerDown((n) => downs.push(n));
    for (let i = 0; i < 5; i++) intruder.send(owner, record.grpcAddress, fakePresence(victim.userId, `wrong-secret-${i}`));
    t.true(await eventually(() => downs.length > 0, 5_000), 'the intruder sees its stream refused');

    // 2. A raw stream that writes at once, without waiting for acceptance: wrong secret, and none at all.
    const rawAttempt = async (secret: string | undefined, tag: string): Promise<grpc.StatusObject> => {
      const client = new grpc.Client(record.grpcAddress, grpc.credentials.createInsecure());
      raw.push(client);
      const md = new grpc.Metadata();
      if (secret !== undefined) md.set(CLUSTER_SECRET_HEADER, secret);
      md.set(NODE_ID_HEADER, 'intruder');
      const call = client.makeBidiStreamRequest<Batch, Batch>(CONNECT_PATH, connectMethod.requestSerialize, connectMethod.responseDeserialize, md);
      call.on('error', () => undefined);
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.write([fakePresence(victim.userId, `${tag}-1`), fakePresence(victim.userId, `${tag}-2`)]);
      call.write([fakePresence(victim.userId, `${tag}-3`)]);
      return Promise.race([status, sleep(5_000).then(() => ({ code: -1, details: 'no status in 5 s', metadata: new grpc.Metadata() }))]);
    };
    const wrong = await rawAttempt('x'.repeat(64), 'raw-wrong');
    const none = await rawAttempt(undefined, 'raw-none');
    t.is(wrong.code, grpc.status.UNAUTHENTICATED, `wrong secret: ${wrong.details}`);
    t.is(none.code, grpc.status.UNAUTHENTICATED, `no secret: ${none.details}`);
    t.true(cluster.node(owner).logs.some((l) => l.includes('refused inter-node stream')), 'the node logs the refusal');

    await sleep(1_500);
    t.deepEqual(dv.presences.map((p) => p.user_id), [], 'no envelope from an unauthenticated stream reached the user actor');

    // 3. Control: the same envelope with the real secret (derived as node-assembly does) is delivered,
    //    so the silence above is the refusal and not a test that could never see anything.
    const shared = (await etcd.get(`${cluster.prefix}/secret`).string())!;
    const clusterSecret = createHmac('sha256', Buffer.from(shared, 'utf8')).update('parley/cluster').digest().toString('hex');
    const insider = new GrpcTransport({ nodeId: 'insider', listenAddress: '127.0.0.1:0', clusterSecret });
    transports.push(insider);
    await insider.start();
    insider.send(owner, record.grpcAddress, fakePresence(victim.userId, 'right-secret'));
    t.true(await eventually(() => dv.presences.some((p) => p.user_id === 'right-secret'), 5_000), 'control: with the secret the push arrives');
    t.deepEqual(dv.presences.map((p) => p.user_id), ['right-secret']);
  } finally {
    for (const x of transports) await x.stop();
    for (const c of raw) c.close();
    etcd.close();
  }
});

/**
 * Ping-pong latency: send, wait for the recipient's delivery, next. `x` sends to `y`.
 * Returns send→delivery times in ms.
 */
async function pingPong(x: Device, y: Device, channelId: string, count: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const text = `ping ${i} ${Math.random()}`;
    const arrived = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`delivery ${i} did not arrive in 10 s`));
      }, 10_000);
      const off = y.client.on('delivery', (d) => {
        if (d.message.text !== text) return;
        clearTimeout(timer);
        off();
        resolve(performance.now());
      });
    });
    const t0 = performance.now();
    const acked = x.client.send(channelId, text);
    times.push((await arrived) - t0);
    await acked;
  }
  return times;
}

/** Users created on n1 until `want` pairs of them satisfy `ok`; bounded. */
async function findPair(ok: (p: TestUser, q: TestUser, dm: string) => boolean, userFilter: (u: TestUser) => 'p' | 'q' | 'both' | undefined): Promise<{ p: TestUser; q: TestUser; dm: string }> {
  const ps: TestUser[] = [];
  const qs: TestUser[] = [];
  const tried = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const u = await newUser(n1, 'l');
    const role = userFilter(u);
    if (role === 'p' || role === 'both') ps.push(u);
    if (role === 'q' || role === 'both') qs.push(u);
    for (const p of ps) {
      for (const q of qs) {
        if (p === q || tried.has(`${p.userId}:${q.userId}`)) continue;
        tried.add(`${p.userId}:${q.userId}`);
        tried.add(`${q.userId}:${p.userId}`);
        const dm = (await p.http.openDm(q.userId)).channel_id;
        if (ok(p, q, dm)) return { p, q, dm };
      }
    }
  }
  throw new Error('no suitable pair of users found');
}

test.serial('latency: same-node vs cross-node 1:1 send→delivery, ~500 messages each', async (t) => {
  // Same node: both users' actors, the DM channel and both sockets on n1.
  const same = await findPair(
    (_p, _q, dm) => placement('channel', dm, NODES) === 'n1',
    (u) => (placement('user', u.userId, NODES) === 'n1' ? 'both' : undefined),
  );
  // Cross node: sender socket on n1, channel on n2, recipient's user actor on n3, recipient socket
  // on n2: client → n1 → n2 → n3 → n2 → client.
  const cross = await findPair(
    (_p, _q, dm) => placement('channel', dm, NODES) === 'n2',
    (u) => (placement('user', u.userId, NODES) === 'n3' ? 'q' : placement('user', u.userId, NODES) !== 'n2' ? 'p' : undefined),
  );
  const sx = await device(same.p, 'lat', n1);
  const sy = await device(same.q, 'lat', n1);
  const cx = await device(cross.p, 'lat', n1);
  const cy = await device(cross.q, 'lat', n2);
  await pingPong(sx, sy, same.dm, 30); // warm-up
  await pingPong(cx, cy, cross.dm, 30);
  const sameTimes = await pingPong(sx, sy, same.dm, 500);
  const crossTimes = await pingPong(cx, cy, cross.dm, 500);
  const s = percentiles(sameTimes);
  const c = percentiles(crossTimes);
  const fmt = (p: ReturnType<typeof percentiles>) => `n=${p.n} p50=${p.p50.toFixed(2)} ms p90=${p.p90.toFixed(2)} ms p99=${p.p99.toFixed(2)} ms max=${p.max.toFixed(2)} ms`;
  t.log(`same-node  (all on n1):                       ${fmt(s)}`);
  t.log(`cross-node (n1 → channel n2 → user n3 → n2):  ${fmt(c)}`);
  t.is(sy.deliveries.length, 530);
  t.is(cy.deliveries.length, 530);
  t.deepEqual(checkConnections(sy), []);
  t.deepEqual(checkConnections(cy), []);
  // Loose sanity bound only: this is a measurement, not a benchmark gate.
  t.true(c.p50 < 500 && s.p50 < 500);
});

test.after.always('no node logged an error', (t) => {
  for (const n of cluster?.nodes ?? []) {
    const errs = warnings(n, 50);
    if (errs.length > 0) t.log(n.nodeId, errs.slice(0, 5));
  }
});
