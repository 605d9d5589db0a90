import anyTest, { type ExecutionContext } from 'ava';
import { connect, eventually, newUser, type ServerHandle } from '../support/server.ts';

/**
 * The single-node chat contract, registered once per storage engine: test/e2e/chat.test.ts runs
 * it on SQLite, test/cassandra/chat-on-cassandra.test.ts on a real Cassandra.
 */
export function registerChatSuite(engine: string, start: () => Promise<ServerHandle>, stop: () => Promise<void> = async () => undefined): void {
  let server: ServerHandle;
  const test = (title: string, fn: (t: ExecutionContext) => Promise<void>): void => anyTest(`[${engine}] ${title}`, fn);

  anyTest.before(async () => {
    server = await start();
  });

  anyTest.after.always(async () => {
    await server?.stop();
    await stop();
  });

test('1:1 - A sends, B gets the delivery, A gets send_ack, and A\'s second device gets it too', async (t) => {
  const a = await newUser(server, 'a');
  const b = await newUser(server, 'b');
  const { channel_id } = await a.http.openDm(b.userId);
  const a1 = await connect(server, a, 'a-phone');
  const a2 = await connect(server, a, 'a-laptop');
  const b1 = await connect(server, b, 'b-phone');
  const ack = await a1.client.send(channel_id, 'hello bob');
  t.is(ack.channel_id, channel_id);
  t.is(ack.channel_seq, 1);
  t.regex(ack.message_id, /^\d+$/);
  t.true(await eventually(() => b1.deliveries.length === 1 && a2.deliveries.length === 1 && a1.deliveries.length === 1));
  t.is(b1.deliveries[0]!.message.text, 'hello bob');
  t.is(b1.deliveries[0]!.message.sender_id, a.userId);
  t.is(b1.deliveries[0]!.message.message_id, ack.message_id);
  t.is(a2.deliveries[0]!.message.message_id, ack.message_id);
  t.is(b1.deliveries[0]!.inbox_seq, 1);
  for (const c of [a1, a2, b1]) c.client.close();
});

test('dm - the same channel id from either side, every time', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const x = await a.http.openDm(b.userId);
  const y = await b.http.openDm(a.userId);
  const z = await a.http.openDm(b.userId);
  t.is(x.channel_id, y.channel_id);
  t.is(x.channel_id, z.channel_id);
  const { channels } = await b.http.channels();
  t.deepEqual(channels.map((c) => [c.channel_id, c.kind]), [[x.channel_id, 'dm']]);
});

test('group - three members all receive, sender included', async (t) => {
  const [a, b, c] = await Promise.all([newUser(server), newUser(server), newUser(server)]);
  const { channel_id } = await a.http.createGroup('trio', [b.userId, c.userId]);
  const conns = await Promise.all([connect(server, a), connect(server, b), connect(server, c)]);
  await conns[1]!.client.send(channel_id, 'hi all');
  t.true(await eventually(() => conns.every((x) => x.deliveries.length === 1)));
  for (const x of conns) t.is(x.deliveries[0]!.message.text, 'hi all');
  const { channels } = await c.http.channels();
  t.is(channels[0]!.kind, 'group');
  t.deepEqual([...channels[0]!.member_ids].sort(), [a.userId, b.userId, c.userId].sort());
  for (const x of conns) x.client.close();
});

test('group - 100 members accepted, the 101st refused with GROUP_FULL', async (t) => {
  const owner = await newUser(server, 'own');
  const others = [];
  for (let i = 0; i < 100; i++) others.push(await newUser(server, 'm'));
  // 99 + the creator = 100 at creation: accepted.
  const { channel_id } = await owner.http.createGroup('hundred', others.slice(0, 99).map((u) => u.userId));
  const { channels } = await owner.http.channels();
  t.is(channels.find((c) => c.channel_id === channel_id)!.member_ids.length, 100);
  const err = await t.throwsAsync(owner.http.addMember(channel_id, others[99]!.userId));
  t.is((err as { status?: number }).status, 422);
  t.is((err as { code?: string }).code, 'GROUP_FULL');
  // 100 others + creator = 101 at creation: refused.
  const err2 = await t.throwsAsync(owner.http.createGroup('too-many', others.map((u) => u.userId)));
  t.is((err2 as { code?: string }).code, 'GROUP_FULL');
  // Removing one makes room again.
  await owner.http.removeMember(channel_id, others[0]!.userId);
  await t.notThrowsAsync(owner.http.addMember(channel_id, others[99]!.userId));
});

test('offline and multi-device - B gets exactly the 5 messages sent while away, in order; a new device gets the whole inbox', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const a1 = await connect(server, a);
  const b1 = await connect(server, b, 'b-phone');
  await a1.client.send(channel_id, 'before');
  t.true(await eventually(() => b1.deliveries.length === 1));
  await eventually(() => b1.client.lastAcked === 1);
  const resumeFrom = b1.client.lastAcked;
  b1.client.close();
  for (let i = 1; i <= 5; i++) await a1.client.send(channel_id, `away ${i}`);
  const b2 = await connect(server, b, 'b-phone', { lastInboxSeq: resumeFrom });
  t.true(await eventually(() => b2.deliveries.length >= 5));
  await new Promise((r) => setTimeout(r, 200)); // nothing more may arrive
  t.deepEqual(b2.deliveries.map((d) => d.message.text), ['away 1', 'away 2', 'away 3', 'away 4', 'away 5']);
  t.deepEqual(b2.deliveries.map((d) => d.inbox_seq), [2, 3, 4, 5, 6]);
  const b3 = await connect(server, b, 'b-tablet', { lastInboxSeq: 0 });
  t.true(await eventually(() => b3.deliveries.length === 6));
  t.deepEqual(b3.deliveries.map((d) => d.inbox_seq), [1, 2, 3, 4, 5, 6]);
  for (const c of [a1, b2, b3]) c.client.close();
});

test('idempotency - one client_msg_id sent twice over WebSocket and once over HTTP gives one message and one delivery', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const a1 = await connect(server, a);
  const b1 = await connect(server, b);
  const first = await a1.client.send(channel_id, 'once', 'cm-1');
  const second = await a1.client.send(channel_id, 'once', 'cm-1');
  const viaHttp = await a.http.postMessage(channel_id, 'cm-1', 'once');
  t.is(second.message_id, first.message_id);
  t.is(viaHttp.message_id, first.message_id);
  t.is(viaHttp.channel_seq, first.channel_seq);
  await new Promise((r) => setTimeout(r, 300));
  t.is(b1.deliveries.length, 1);
  const { messages } = await a.http.history(channel_id);
  t.is(messages.length, 1);
  a1.client.close();
  b1.client.close();
});

test('ordering - message_id and channel_seq grow with send order; inbox_seq is gap-free per user', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const c = await newUser(server);
  const dm = (await a.http.openDm(b.userId)).channel_id;
  const group = (await a.http.createGroup('g', [b.userId, c.userId])).channel_id;
  const a1 = await connect(server, a);
  const b1 = await connect(server, b);
  const acks = [];
  for (let i = 0; i < 30; i++) acks.push(await a1.client.send(i % 2 ? dm : group, `m${i}`));
  for (const ch of [dm, group]) {
    const mine = acks.filter((x) => x.channel_id === ch);
    for (let i = 1; i < mine.length; i++) {
      t.true(BigInt(mine[i]!.message_id) > BigInt(mine[i - 1]!.message_id));
      t.is(mine[i]!.channel_seq, mine[i - 1]!.channel_seq + 1);
    }
  }
  t.true(await eventually(() => b1.deliveries.length === 30));
  t.deepEqual(b1.deliveries.map((d) => d.inbox_seq), Array.from({ length: 30 }, (_, i) => i + 1));
  t.deepEqual(b1.deliveries.map((d) => d.message.text), Array.from({ length: 30 }, (_, i) => `m${i}`));
  a1.client.close();
  b1.client.close();
});

test('history - newest first, paged with before, FORBIDDEN for non-members', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const outsider = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  for (let i = 0; i < 7; i++) await a.http.postMessage(channel_id, `h${i}`, `text ${i}`);
  const page1 = await b.http.history(channel_id, { limit: 3 });
  t.deepEqual(page1.messages.map((m) => m.text), ['text 6', 'text 5', 'text 4']);
  t.true(page1.has_more);
  const page2 = await b.http.history(channel_id, { limit: 5, before: page1.messages[2]!.message_id });
  t.deepEqual(page2.messages.map((m) => m.text), ['text 3', 'text 2', 'text 1', 'text 0']);
  t.false(page2.has_more);
  const m = page1.messages[0]!;
  t.deepEqual(Object.keys(m).sort(), ['channel_id', 'channel_seq', 'client_msg_id', 'created_at_ms', 'message_id', 'sender_id', 'text']);
  t.is(typeof m.channel_seq, 'number');
  t.is(typeof m.message_id, 'string');
  const err = await t.throwsAsync(outsider.http.history(channel_id));
  t.is((err as { status?: number }).status, 403);
  const ws = await connect(server, b);
  const viaWs = await ws.client.history(channel_id, { limit: 2 });
  t.deepEqual(viaWs.messages.map((x) => x.text), ['text 6', 'text 5']);
  ws.client.close();
});

test('blocks and read marks - kept in this engine\'s store and enforced', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  await a.http.postMessage(channel_id, 'r1', 'one');
  await a.http.postMessage(channel_id, 'r2', 'two');
  const bw = await connect(server, b);
  // The mark is written through before its receipt goes out: when A sees the receipt, it is stored.
  const aw = await connect(server, a);
  let receipts = 0;
  aw.client.on('readReceipt', () => receipts++);
  bw.client.markRead(channel_id, 2);
  t.true(await eventually(() => receipts === 1));
  t.is((await b.http.channels()).channels.find((c) => c.channel_id === channel_id)?.last_read_seq, 2);
  t.deepEqual((await a.http.reads(channel_id)).reads.find((r) => r.user_id === b.userId), { user_id: b.userId, channel_seq: 2 });
  await a.http.block(b.userId);
  t.deepEqual(await a.http.blocks(), { blocked: [b.userId] });
  const refused = await t.throwsAsync(b.http.postMessage(channel_id, 'r3', 'blocked'));
  t.is((refused as { status?: number }).status, 403);
  await a.http.unblock(b.userId);
  t.deepEqual(await a.http.blocks(), { blocked: [] });
  bw.client.close();
  aw.client.close();
});
}
