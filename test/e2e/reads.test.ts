/**
 * Read marks on a real parleyd: unread counts per member (others' messages only), receipts to the
 * other members and the reader's other devices (not the device that read), a mark at the head and
 * past it (taken as the head), a lower mark ignored, marks kept across a restart, non-members
 * refused.
 */
import test from 'ava';
import { ParleyHttp, type ReadReceipt } from '../../client/index.ts';
import { connect, eventually, newUser, startServer } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('reads - unread counts, receipts, marks at and past the head, kept across a restart', async (t) => {
  let server = await startServer();
  const dataDir = server.dataDir;
  try {
    const [a, b, c, outsider] = [await newUser(server), await newUser(server), await newUser(server), await newUser(server)];
    const { channel_id: group } = await a.http.createGroup('reads', [b.userId, c.userId]);
    for (let i = 1; i <= 3; i++) await a.http.postMessage(group, `a${i}`, `from a ${i}`);
    await b.http.postMessage(group, 'b1', 'from b');

    const state = async (u: typeof a): Promise<unknown> => {
      const ch = (await u.http.channels()).channels.find((x) => x.channel_id === group)!;
      return { last_seq: ch.last_seq, last_read_seq: ch.last_read_seq, unread_count: ch.unread_count };
    };
    t.deepEqual(await state(b), { last_seq: 4, last_read_seq: 0, unread_count: 3 }, "b's own message is not unread");
    t.deepEqual(await state(c), { last_seq: 4, last_read_seq: 0, unread_count: 4 });

    const receipts = new Map<string, ReadReceipt[]>();
    const open = async (u: typeof a, device: string): Promise<Awaited<ReturnType<typeof connect>>> => {
      const conn = await connect(server, u, device);
      const list: ReadReceipt[] = [];
      receipts.set(`${u.userId}/${device}`, list);
      conn.client.on('readReceipt', (r) => list.push({ ...r }));
      return conn;
    };
    const conns = [await open(a, 'd1'), await open(b, 'phone'), await open(b, 'laptop'), await open(c, 'd1')];
    const bPhone = conns[1]!.client;

    bPhone.markRead(group, 2);
    t.true(await eventually(() => receipts.get(`${a.userId}/d1`)!.length === 1 && receipts.get(`${b.userId}/laptop`)!.length === 1 && receipts.get(`${c.userId}/d1`)!.length === 1, 5_000));
    t.deepEqual(receipts.get(`${a.userId}/d1`), [{ channel_id: group, user_id: b.userId, channel_seq: 2 }]);
    t.deepEqual(await state(b), { last_seq: 4, last_read_seq: 2, unread_count: 1 }, 'seq 3 by a is unread, seq 4 is b\'s own');

    bPhone.markRead(group, 1); // lower: ignored, nothing pushed
    bPhone.markRead(group, 4); // at the head
    t.true(await eventually(() => receipts.get(`${a.userId}/d1`)!.length === 2, 5_000));
    bPhone.markRead(group, 99); // past the head: taken as the head, which is no move
    await sleep(300);
    t.deepEqual(receipts.get(`${a.userId}/d1`)!.map((r) => r.channel_seq), [2, 4]);
    t.is(receipts.get(`${b.userId}/phone`)!.length, 0, 'not to the device that read');
    t.deepEqual(await state(b), { last_seq: 4, last_read_seq: 4, unread_count: 0 });

    await a.http.postMessage(group, 'a4', 'one more');
    conns[3]!.client.markRead(group, 99); // past the head: the head (5)
    t.true(await eventually(() => receipts.get(`${a.userId}/d1`)!.some((r) => r.user_id === c.userId && r.channel_seq === 5), 5_000));

    // Not a member: refused by ref over WebSocket, 403 over HTTP.
    const out = await connect(server, outsider, 'd1');
    const errors: string[] = [];
    out.client.on('error', (e) => errors.push(e.code));
    out.client.markRead(group, 1);
    t.true(await eventually(() => errors.length > 0, 5_000));
    t.deepEqual(errors, ['FORBIDDEN']);
    await t.throwsAsync(outsider.http.reads(group), { message: /not a member/ });
    for (const conn of [...conns, out]) conn.client.close();

    // Kept across a restart.
    await server.stop();
    server = await startServer({ dataDir });
    const [aHttp, bHttp] = [new ParleyHttp(server.baseUrl, a.token), new ParleyHttp(server.baseUrl, b.token)];
    const reads = (await aHttp.reads(group)).reads;
    t.deepEqual(reads, [{ user_id: b.userId, channel_seq: 4 }, { user_id: c.userId, channel_seq: 5 }].sort((x, y) => (x.user_id < y.user_id ? -1 : 1)));
    const bAfter = (await bHttp.channels()).channels.find((x) => x.channel_id === group)!;
    t.deepEqual([bAfter.last_seq, bAfter.last_read_seq, bAfter.unread_count], [5, 4, 1]);
  } finally {
    await server.stop();
  }
});
