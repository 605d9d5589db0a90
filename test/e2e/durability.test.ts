import test from 'ava';
import { spawnSync } from 'node:child_process';
import WebSocket from 'ws';
import { connect, eventually, newUser, NodeWebSocket, startServer } from '../support/server.ts';
import { ParleyClient, ParleyHttp } from '../../client/index.ts';

test('durability - kill -9 right after send_ack: after restart the message is in history and the inbox, and seqs continue', async (t) => {
  const first = await startServer();
  const a = await newUser(first);
  const b = await newUser(first);
  const { channel_id } = await a.http.openDm(b.userId);
  const ac = await connect(first, a);
  const acks = [];
  for (let i = 0; i < 20; i++) acks.push(await ac.client.send(channel_id, `durable ${i}`));
  await first.kill(); // SIGKILL the moment the last ack arrived
  ac.client.close();

  const second = await startServer({ dataDir: first.dataDir });
  try {
    // Tokens stay valid: the signing secret lives in the data dir.
    const history = await new ParleyHttp(second.baseUrl, b.token).history(channel_id, { limit: 100 });
    t.deepEqual(
      history.messages.map((m) => m.message_id).reverse(),
      acks.map((x) => x.message_id),
    );
    const bc = await connect(second, b, 'fresh-device', { lastInboxSeq: 0 });
    t.true(await eventually(() => bc.deliveries.length === 20));
    t.deepEqual(bc.deliveries.map((d) => d.message.text), acks.map((_, i) => `durable ${i}`));
    const ac2 = await connect(second, a, 'a2');
    const next = await ac2.client.send(channel_id, 'after restart');
    t.is(next.channel_seq, 21, 'channel_seq continues without reuse');
    t.true(BigInt(next.message_id) > BigInt(acks[19]!.message_id));
    t.true(await eventually(() => bc.deliveries.length === 21));
    t.is(bc.deliveries[20]!.inbox_seq, 21, 'inbox_seq continues without reuse');
    bc.client.close();
    ac2.client.close();
  } finally {
    await second.stop();
  }
});

test('durability - kill -9 right after the acks of sends from three channels: the recipient\'s inbox has every acked message once, gap-free, and every seq a device saw keeps its message', async (t) => {
  const first = await startServer();
  const b = await newUser(first, 'rcpt');
  const senders = await Promise.all([0, 1, 2].map(() => newUser(first, 'snd')));
  const dms = await Promise.all(senders.map((s) => s.http.openDm(b.userId)));
  const seen = await connect(first, b, 'b1', { autoAck: false });
  const clients = await Promise.all(senders.map((s, i) => connect(first, s, `s${i}`)));
  // Interleaved: B's inbox needs a row each time the channel changes (actors/user/inbox.ts).
  const acked = (
    await Promise.all(
      clients.map(async (c, i) => {
        const out = [];
        for (let k = 0; k < 30; k++) out.push(await c.client.send(dms[i]!.channel_id, `from ${i} #${k}`));
        return out;
      }),
    )
  ).flat();
  await first.kill(); // SIGKILL the moment the last ack arrived, rows and deliveries in flight
  const before = new Map(seen.deliveries.map((d) => [d.inbox_seq, d.message.message_id]));
  seen.client.close();
  for (const c of clients) c.client.close();

  const second = await startServer({ dataDir: first.dataDir });
  try {
    const fresh = await connect(second, b, 'b2', { lastInboxSeq: 0, autoAck: false });
    t.true(await eventually(() => fresh.deliveries.length >= acked.length, 10_000), `got ${fresh.deliveries.length} of ${acked.length}`);
    await new Promise((r) => setTimeout(r, 300)); // nothing more may come
    const ids = fresh.deliveries.map((d) => d.message.message_id);
    t.is(ids.length, acked.length, 'each acked message once, nothing else');
    t.deepEqual([...ids].sort(), acked.map((a) => a.message_id).sort());
    t.deepEqual(fresh.deliveries.map((d) => d.inbox_seq), Array.from({ length: ids.length }, (_, k) => k + 1), 'inbox_seq gap-free from 1');
    for (const [seq, id] of before) t.is(fresh.deliveries[seq - 1]?.message.message_id, id, `inbox seq ${seq} kept its message across the crash`);
    // Per channel, inbox order is channel order.
    for (const dm of dms) {
      const seqs = fresh.deliveries.filter((d) => d.message.channel_id === dm.channel_id).map((d) => d.message.channel_seq);
      t.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    }
    // The device that saw some before the crash resumes after them: the rest, no gap, no repeat.
    const last = Math.max(0, ...before.keys());
    const resumed = await connect(second, b, 'b1', { lastInboxSeq: last, autoAck: false });
    t.true(await eventually(() => resumed.deliveries.length >= acked.length - last, 10_000));
    t.deepEqual(resumed.deliveries.map((d) => d.inbox_seq), Array.from({ length: acked.length - last }, (_, k) => last + k + 1));
    t.log(`b1 had seen ${before.size} of ${acked.length} before the kill`);
    fresh.client.close();
    resumed.client.close();
  } finally {
    await second.stop();
  }
});

test('lifecycle - SIGTERM: stop accepting, close sockets with 1001, flush, exit 0', async (t) => {
  const server = await startServer();
  const u = await newUser(server);
  const health = await fetch(`${server.baseUrl}/healthz`);
  t.is(health.status, 200);
  const c = await connect(server, u);
  const closeCode = new Promise<number>((resolve) => c.client.on('disconnect', (d) => resolve(d.code)));
  const code = await server.stop();
  t.is(await closeCode, 1001);
  t.is(code, 0);
  t.true(server.logs.some((l) => l.includes('"stopped"')));
  const refused = await fetch(`${server.baseUrl}/healthz`).then(
    () => false,
    () => true,
  );
  t.true(refused, 'no longer accepting');
});

test('sdk - a send made while the connection is down is delivered once after the reconnect', async (t) => {
  const server = await startServer();
  try {
    const a = await newUser(server);
    const b = await newUser(server);
    const { channel_id } = await a.http.openDm(b.userId);
    const bc = await connect(server, b);
    const client = new ParleyClient({ servers: [server.wsUrl], token: a.token, deviceId: 'flaky', WebSocket: NodeWebSocket, reconnect: true });
    await client.connect();
    const reconnected = new Promise<void>((resolve) => {
      let n = 0;
      client.on('welcome', () => ++n === 1 && resolve());
    });
    // Drop the socket from under the client, then send while it reconnects.
    (client as unknown as { ws: WebSocket }).ws.close(4000, 'test drop');
    const pending = client.send(channel_id, 'across a reconnect', 'same-id');
    await reconnected;
    const ack = await pending;
    t.is(ack.channel_seq, 1);
    t.true(await eventually(() => bc.deliveries.length === 1));
    await new Promise((r) => setTimeout(r, 200));
    t.is(bc.deliveries.length, 1);
    client.close();
    bc.client.close();
  } finally {
    await server.stop();
  }
});

test('sync - a long inbox is paged to a new device in order, with nothing missing', async (t) => {
  const server = await startServer({ flags: { 'send-rate': '100000', 'send-burst': '100000' } });
  try {
    const a = await newUser(server);
    const b = await newUser(server);
    const { channel_id } = await a.http.openDm(b.userId);
    const ac = await connect(server, a);
    const N = 1_200;
    await Promise.all(Array.from({ length: N }, (_, i) => ac.client.send(channel_id, `bulk ${i}`, `bulk-${i}`)));
    const bc = await connect(server, b, 'new', { lastInboxSeq: 0 });
    t.true(await eventually(() => bc.deliveries.length === N, 20_000));
    t.deepEqual(bc.deliveries.map((d) => d.inbox_seq), Array.from({ length: N }, (_, i) => i + 1));
    const page = await bc.client.sync(1_000, 50);
    t.is(page.deliveries.length, 50);
    t.is(page.deliveries[0]!.inbox_seq, 1_001);
    t.true(page.has_more);
    ac.client.close();
    bc.client.close();
  } finally {
    await server.stop();
  }
});

test('config - a bad setting stops the node at start with the setting named', (t) => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'bin/parleyd.ts', ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  const badPort = run(['--port', 'eighty']);
  t.is(badPort.status, 2);
  t.regex(badPort.stderr, /--port must be an integer/);
  const badEnv = run([], { PARLEY_SEND_RATE: '0' });
  t.is(badEnv.status, 2);
  t.regex(badEnv.stderr, /PARLEY_SEND_RATE must be at least 1/);
  const badEnum = run(['--durability', 'maybe']);
  t.regex(badEnum.stderr, /--durability must be one of fsync, os/);
});

test('gateway - refuses to start when uWebSockets.js fell back to its JavaScript implementation', (t) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/parleyd.ts', '--port', '0', '--data-dir', '/tmp/parley-fallback-test'], {
    env: { ...process.env, UWS_USE_FALLBACK: 'true' },
    encoding: 'utf8',
    timeout: 20_000,
  });
  t.not(r.status, 0);
  t.regex(r.stderr + r.stdout, /fell back to its JavaScript implementation/);
});
