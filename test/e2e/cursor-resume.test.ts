/**
 * The stored device cursor decides where a hello resumes: after the later of the client's
 * last_inbox_seq and the device's last ack, on one node and across restarts (SIGTERM writes every
 * cursor; kill -9 may forget the last second of acks, never more).
 */
import test from 'ava';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Past the user actor's cursor flush (once a second), with room for a slow machine. */
const PAST_FLUSH_MS = 1_800;

/** b's device receives and acks `count` messages a sends; resolves once every ack is sent. */
async function receiveAndAck(server: ServerHandle, a: TestUser, b: TestUser, channelId: string, deviceId: string, count: number, from: number): Promise<void> {
  const device = await connect(server, b, deviceId, { lastInboxSeq: from });
  for (let i = 0; i < count; i++) await a.http.postMessage(channelId, `m${from + i + 1}`, `message ${from + i + 1}`);
  if (!(await eventually(() => device.client.lastAcked === from + count, 10_000))) throw new Error(`device acked ${device.client.lastAcked}, not ${from + count}`);
  // The ack frame goes out before the close frame; the server handles them in that order.
  device.client.close();
}

test('cursor - a hello with last_inbox_seq 0 resumes after the device\'s stored cursor; sync still reads older entries; a new device replays from its own seq', async (t) => {
  const server = await startServer();
  try {
    const a = await newUser(server, 'a');
    const b = await newUser(server, 'b');
    const { channel_id } = await a.http.openDm(b.userId);
    const N = 40;
    await receiveAndAck(server, a, b, channel_id, 'phone', N, 0);
    await sleep(PAST_FLUSH_MS);

    const phone = await connect(server, b, 'phone', { lastInboxSeq: 0 });
    t.is(phone.client.welcome?.resumed_after_inbox_seq, N);
    t.is(phone.client.welcome?.inbox_head_seq, N);
    await sleep(300);
    t.is(phone.deliveries.length, 0, 'nothing the device acked is pushed again');
    await a.http.postMessage(channel_id, 'next', 'the next one');
    t.true(await eventually(() => phone.deliveries.length === 1));
    t.is(phone.deliveries[0]!.inbox_seq, N + 1);
    t.is(phone.client.lastAcked >= N, true);

    const page = await phone.client.sync(0, 100);
    t.deepEqual(page.deliveries.map((d) => d.inbox_seq), Array.from({ length: N + 1 }, (_, i) => i + 1), 'sync reads the older entries');

    // A later last_inbox_seq than the cursor wins: the client knows best what it has.
    await eventually(() => phone.client.lastAcked === N + 1);
    phone.client.close();
    const ahead = await connect(server, b, 'phone', { lastInboxSeq: N + 1 });
    t.is(ahead.client.welcome?.resumed_after_inbox_seq, N + 1);
    ahead.client.close();

    // Devices without a cursor start after their own seq.
    const tablet = await connect(server, b, 'tablet', { lastInboxSeq: 0 });
    t.is(tablet.client.welcome?.resumed_after_inbox_seq, 0);
    t.true(await eventually(() => tablet.deliveries.length === N + 1, 10_000));
    t.deepEqual(tablet.deliveries.map((d) => d.inbox_seq), Array.from({ length: N + 1 }, (_, i) => i + 1));
    const watch = await connect(server, b, 'watch', { lastInboxSeq: 10 });
    t.true(await eventually(() => watch.deliveries.length === N + 1 - 10, 10_000));
    t.is(watch.deliveries[0]!.inbox_seq, 11);
    await sleep(200);
    t.is(watch.deliveries.length, N + 1 - 10);
    tablet.client.close();
    watch.client.close();
  } finally {
    await server.stop();
  }
});

test('cursor - an ack not yet flushed counts too: a reconnect at once resumes after it', async (t) => {
  const server = await startServer();
  try {
    const a = await newUser(server, 'a');
    const b = await newUser(server, 'b');
    const { channel_id } = await a.http.openDm(b.userId);
    await receiveAndAck(server, a, b, channel_id, 'phone', 5, 0);
    const phone = await connect(server, b, 'phone', { lastInboxSeq: 0 });
    t.is(phone.client.welcome?.resumed_after_inbox_seq, 5);
    await sleep(300);
    t.is(phone.deliveries.length, 0);
    phone.client.close();
  } finally {
    await server.stop();
  }
});

test('cursor - SIGTERM writes every cursor: after the restart a hello with seq 0 resumes exactly after the last ack', async (t) => {
  const first = await startServer();
  const a = await newUser(first, 'a');
  const b = await newUser(first, 'b');
  const { channel_id } = await a.http.openDm(b.userId);
  await receiveAndAck(first, a, b, channel_id, 'phone', 12, 0);
  t.is(await first.stop(), 0); // at once: the ack is still only in memory unless the flush ran
  const second = await startServer({ dataDir: first.dataDir });
  try {
    const phone = await connect(second, b, 'phone', { lastInboxSeq: 0 });
    t.is(phone.client.welcome?.resumed_after_inbox_seq, 12);
    await sleep(300);
    t.is(phone.deliveries.length, 0);
    phone.client.close();
  } finally {
    await second.stop();
  }
});

test('cursor - kill -9 forgets at most the acks of the last second: the replay starts no earlier than the last flushed cursor', async (t) => {
  const first = await startServer();
  const a = await newUser(first, 'a');
  const b = await newUser(first, 'b');
  const { channel_id } = await a.http.openDm(b.userId);
  await receiveAndAck(first, a, b, channel_id, 'phone', 10, 0);
  await sleep(PAST_FLUSH_MS); // cursor 10 is stored
  await receiveAndAck(first, a, b, channel_id, 'phone', 10, 10);
  await first.kill(); // cursor 20 may or may not be stored yet
  const second = await startServer({ dataDir: first.dataDir });
  try {
    const phone = await connect(second, b, 'phone', { lastInboxSeq: 0 });
    const resumed = phone.client.welcome!.resumed_after_inbox_seq;
    t.true(resumed >= 10 && resumed <= 20, `resumed after ${resumed}`);
    t.true(await eventually(() => phone.deliveries.length === 20 - resumed, 10_000));
    t.deepEqual(phone.deliveries.map((d) => d.inbox_seq), Array.from({ length: 20 - resumed }, (_, i) => resumed + 1 + i));
    phone.client.close();
  } finally {
    await second.stop();
  }
});
