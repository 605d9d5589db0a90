/**
 * A client that stops reading costs the server at most --session-max-unsent-bytes (or one frame)
 * of memory, however much it is sent, and loses nothing: once it reads again it gets every
 * message once, in inbox order, gap-free, paged from its inbox. Real parleyd, real sockets: the
 * reader pauses its TCP socket, so the kernel's buffers fill first (more is sent than they hold)
 * and the rest is the server's to hold or not; its figures come from GET /metrics.
 */
import test from 'ava';
import { loadConfig } from '../../config/config.ts';
import { socketMaxUnsentBytes } from '../../actors/chat-node.ts';
import { connect, eventually, newUser, startServer, type ServerHandle } from '../support/server.ts';
import { metric, rssBytes, StalledReader, watchUnsentPeak } from '../support/stalled-reader.ts';

const CAP = 65_536;
/** Texts at the longest a send allows, so a few hundred outgrow every kernel buffer on the way. */
const TEXT_CHARS = 100_000;
const MESSAGES = 240;
const FLAGS = { 'send-rate': '10000', 'send-burst': '10000', 'auth-per-minute': '100000' };

const textOf = (i: number): string => `m${i}:`.padEnd(TEXT_CHARS, 'x');
const indexOf = (head: string): number => Number(head.slice(1, head.indexOf(':')));

let server: ServerHandle;

test.before(async () => {
  server = await startServer({ flags: FLAGS });
});

test.after.always(async () => {
  await server?.kill();
});

test.serial('slow consumers - a client that stops reading holds at most the cap or one frame in the server, then gets every message once, in order, gap-free', async (t) => {
  t.timeout(90_000);
  const [alice, bob, carol] = await Promise.all([newUser(server, 'a'), newUser(server, 'b'), newUser(server, 'c')]);
  await bob.http.addFriend(carol.userId);
  await carol.http.addFriend(bob.userId);
  const { channel_id } = await alice.http.openDm(bob.userId);
  const sender = await connect(server, alice, 'phone');
  const peak = watchUnsentPeak(server.baseUrl);
  const reader = await StalledReader.open(server.wsUrl, bob.token);
  const behindBefore = (await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0;
  const rssBefore = rssBytes(server.proc.pid!);

  // 24 MB to a reader that reads nothing, 8 sends in flight.
  const started = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < MESSAGES) {
        const i = next++;
        await sender.client.send(channel_id, textOf(i));
      }
    }),
  );
  const sendMs = Date.now() - started;
  // Carol comes and goes while Bob is not reading: presence he may miss, and must end up right.
  const c = await connect(server, carol, 'laptop');
  c.client.close();
  await eventually(() => sender.deliveries.length >= MESSAGES, 10_000);
  await new Promise((r) => setTimeout(r, 500));
  const rssStalled = rssBytes(server.proc.pid!);
  const behind = ((await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0) - behindBefore;
  const heldWhileStalled = peak.max;
  const gotWhileStalled = reader.deliveries.length;

  reader.resume();
  t.true(await eventually(() => reader.deliveries.length >= MESSAGES, 60_000, 50), `got ${reader.deliveries.length} of ${MESSAGES}`);
  await new Promise((r) => setTimeout(r, 300)); // anything extra (a duplicate) would arrive now
  const maxPeak = await peak.stop();
  const dropped = (await metric(server.baseUrl, 'parley_ephemeral_frames_dropped_total')) ?? 0;

  const seqs = reader.deliveries.map((d) => d.inboxSeq);
  t.deepEqual(seqs, Array.from({ length: MESSAGES }, (_, i) => i + 1), 'every inbox seq once, in order, no gap');
  t.deepEqual(reader.deliveries.map((d) => indexOf(d.textHead)), Array.from({ length: MESSAGES }, (_, i) => i), 'the messages in the order sent');
  t.true(reader.deliveries.every((d) => d.textLength === TEXT_CHARS));
  const largestFrame = Math.max(...reader.deliveries.map((d) => d.frameBytes));
  t.true(behind >= 1, 'the session fell behind: more was sent than the kernel buffers hold');
  t.true(gotWhileStalled < MESSAGES / 2, `the reader was really stalled (it had ${gotWhileStalled} before it read again)`);
  t.true(maxPeak <= CAP + largestFrame, `the server held at most ${maxPeak} unsent bytes for a socket; the bound is ${CAP} + one frame (${largestFrame})`);
  // Presence: whatever was dropped while Bob did not read, his last word on Carol is the truth.
  t.true(await eventually(() => reader.presences.filter((p) => p.user_id === carol.userId).at(-1)?.online === false, 5_000), 'carol is offline for bob after he caught up');
  t.log(
    `${MESSAGES} x ${TEXT_CHARS} chars sent in ${sendMs} ms; fell behind ${behind}x; ${gotWhileStalled} delivered while stalled; ` +
      `peak unsent ${maxPeak} B (while stalled ${heldWhileStalled}); ephemeral dropped ${dropped}; RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssStalled / 2 ** 20).toFixed(0)} MiB while stalled`,
  );
  reader.close();
  await sender.client.close();
});

test.serial('slow consumers - a client that reads in fits and starts while messages keep coming falls behind and catches up again and again, and gets each message once, in order', async (t) => {
  t.timeout(90_000);
  const [alice, bob] = await Promise.all([newUser(server, 'a'), newUser(server, 'b')]);
  const { channel_id } = await alice.http.openDm(bob.userId);
  const sender = await connect(server, alice, 'phone');
  const reader = await StalledReader.open(server.wsUrl, bob.token);
  const behindBefore = (await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0;
  const n = 200;
  // Reads for 30 ms of every 150: about what a phone on a poor link does.
  let reading = false;
  const toggler = setInterval(() => {
    reading = !reading;
    if (reading) reader.resume();
    else reader.pause();
  }, 75);
  const sizes = (i: number): number => [2_000, 40_000, TEXT_CHARS, 500][i % 4]!;
  try {
    for (let i = 0; i < n; i += 4) {
      await Promise.all([0, 1, 2, 3].map((k) => sender.client.send(channel_id, `m${i + k}:`.padEnd(sizes(i + k), 'y'))));
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    clearInterval(toggler);
  }
  reader.resume();
  t.true(await eventually(() => reader.deliveries.length >= n, 60_000, 50), `got ${reader.deliveries.length} of ${n}`);
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(reader.deliveries.map((d) => d.inboxSeq), Array.from({ length: n }, (_, i) => i + 1));
  t.deepEqual(reader.deliveries.map((d) => indexOf(d.textHead)), Array.from({ length: n }, (_, i) => i));
  t.deepEqual(reader.deliveries.map((d) => d.textLength), Array.from({ length: n }, (_, i) => sizes(i)));
  const behind = ((await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0) - behindBefore;
  t.true(behind >= 2, `fell behind and went live again more than once (${behind})`);
  t.log(`${n} messages (${((Array.from({ length: n }, (_, i) => sizes(i)).reduce((a, x) => a + x, 0)) / 2 ** 20).toFixed(1)} MiB) to a reader reading half the time: fell behind ${behind}x`);
  reader.close();
  await sender.client.close();
});

test.serial('slow consumers - a peer that asks and never reads is closed once it holds past the socket bound; answers are cut to the cap and say has_more', async (t) => {
  t.timeout(60_000);
  const [alice, bob] = await Promise.all([newUser(server, 'a'), newUser(server, 'b')]);
  const { channel_id } = await alice.http.openDm(bob.userId);
  const sender = await connect(server, alice, 'phone');
  const n = 60; // 6 MB of inbox
  for (let i = 0; i < n; i += 10) await Promise.all(Array.from({ length: Math.min(10, n - i) }, (_, k) => sender.client.send(channel_id, textOf(i + k))));
  await sender.client.close();

  // A reader that reads: one sync of 500 comes back cut to what fits the cap (one 100 kB entry).
  const live = await StalledReader.open(server.wsUrl, bob.token, { deviceId: 'reads', paused: false });
  const ref = live.sync(0, 500);
  t.true(await eventually(() => live.answers.has(ref), 10_000));
  const answer = live.answers.get(ref)!;
  t.is(answer.body, 'sync_result');
  if (answer.body === 'sync_result') {
    t.is(answer.sync_result.deliveries.length, 1, 'an answer holds at most the cap of messages, and at least one');
    t.true(answer.sync_result.has_more);
  }
  live.close();

  // One that asks again and again and reads nothing: closed past 4 caps and two frames.
  const closedBefore = (await metric(server.baseUrl, 'parley_sockets_closed_unread_total')) ?? 0;
  const dead = await StalledReader.open(server.wsUrl, bob.token, { deviceId: 'dead' });
  const bound = socketMaxUnsentBytes(CAP);
  for (let i = 0; i < 400 && dead.open; i++) {
    dead.sync(0, 500);
    await new Promise((r) => setTimeout(r, 5));
  }
  const code = await Promise.race([dead.closed, new Promise<'open'>((r) => setTimeout(() => r('open'), 10_000))]);
  t.not(code, 'open', `a peer that does not read is closed (bound ${bound} bytes)`);
  t.is((await metric(server.baseUrl, 'parley_sockets_closed_unread_total'))! - closedBefore, 1);
  t.true(server.logs.some((l) => l.includes('closing a socket whose peer does not read')));
  dead.close();
});

test('slow consumers - session_max_unsent_bytes: 4096 is the least, 268435456 the most; 0, negative, too small or too large are refused at start', async (t) => {
  t.is(loadConfig({}, {}).session_max_unsent_bytes, 65_536);
  t.is(loadConfig({ session_max_unsent_bytes: '4096' }, {}).session_max_unsent_bytes, 4_096);
  t.is(loadConfig({}, { PARLEY_SESSION_MAX_UNSENT_BYTES: '268435456' }).session_max_unsent_bytes, 268_435_456);
  for (const bad of ['4095', '0', '-1']) {
    t.throws(() => loadConfig({ session_max_unsent_bytes: bad }, {}), { message: new RegExp(`--session-max-unsent-bytes must be at least 4096 \\(below a few frames .*\\), got ${bad}`) });
  }
  t.throws(() => loadConfig({ session_max_unsent_bytes: '268435457' }, {}), { message: /--session-max-unsent-bytes must be at most 268435456/ });
  t.throws(() => loadConfig({ session_max_unsent_bytes: '64k' }, {}), { message: /--session-max-unsent-bytes must be an integer/ });
  // The socket bound at the most still fits uWS's 32-bit byte count.
  t.true(socketMaxUnsentBytes(268_435_456) < 2 ** 32);
  const err = await t.throwsAsync(startServer({ flags: { 'session-max-unsent-bytes': '0' } }));
  t.regex(err!.message, /exited with 2 before serving/);
  t.regex(err!.message, /--session-max-unsent-bytes must be at least 4096/);
});
