/**
 * A client that stops reading costs the server at most --session-max-unsent-bytes (or one frame)
 * of memory, however much it is sent, and loses nothing: once it reads again it gets every
 * message once, in inbox order, gap-free, paged from its inbox. Real parleyd, real sockets: the
 * reader pauses its TCP socket, so the kernel's buffers fill first (more is sent than they hold)
 * and the rest is the server's to hold or not; its figures come from GET /metrics.
 */
import test, { type ExecutionContext } from 'ava';
import { rmSync } from 'node:fs';
import { loadConfig } from '../../config/config.ts';
import { socketMaxUnsentBytes } from '../../actors/chat-node.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { metric, rssBytes, StalledReader, watchUnsentPeak } from '../support/stalled-reader.ts';

const CAP = 65_536;
/** Texts at the longest a send allows, so a few hundred outgrow every kernel buffer on the way. */
const TEXT_CHARS = 100_000;
const MESSAGES = 240;
const FLAGS = { 'send-rate': '10000', 'send-burst': '10000', 'auth-per-minute': '100000' };

const textOf = (i: number): string => `m${i}:`.padEnd(TEXT_CHARS, 'x');
const indexOf = (head: string): number => Number(head.slice(1, head.indexOf(':')));

let server: ServerHandle;

/** Alice (an SDK client, device 'phone') and Bob in a DM. */
async function dm(): Promise<{ bob: TestUser; channelId: string; sender: Awaited<ReturnType<typeof connect>> }> {
  const [alice, bob] = await Promise.all([newUser(server, 'a'), newUser(server, 'b')]);
  const { channel_id } = await alice.http.openDm(bob.userId);
  return { bob, channelId: channel_id, sender: await connect(server, alice, 'phone') };
}

/** Every inbox seq 1..n once, in order, carrying message i (its text starting `m<i>:`). */
function assertAllInOrder(t: ExecutionContext, reader: StalledReader, n: number): void {
  t.deepEqual(reader.deliveries.map((d) => d.inboxSeq), Array.from({ length: n }, (_, i) => i + 1), 'every inbox seq once, in order, no gap');
  t.deepEqual(reader.deliveries.map((d) => indexOf(d.textHead)), Array.from({ length: n }, (_, i) => i), 'the messages in the order sent');
}

test.before(async () => {
  server = await startServer({ flags: FLAGS });
});

test.after.always(async () => {
  await server?.kill();
  if (server) rmSync(server.dataDir, { recursive: true, force: true }); // tens of MB of messages
});

test.serial('slow consumers - a client that stops reading holds at most the cap or one frame in the server, then gets every message once, in order, gap-free', async (t) => {
  t.timeout(90_000);
  const [{ bob, channelId: channel_id, sender }, carol] = await Promise.all([dm(), newUser(server, 'c')]);
  await bob.http.addFriend(carol.userId);
  await carol.http.addFriend(bob.userId);
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
  await eventually(() => sender.deliveries.length >= MESSAGES, 10_000);
  await new Promise((r) => setTimeout(r, 500));
  const rssStalled = rssBytes(server.proc.pid!);
  const behind = ((await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0) - behindBefore;
  const heldWhileStalled = peak.max;
  const gotWhileStalled = reader.deliveries.length;

  // Carol comes and goes while Bob is not reading. Answers he does not read (syncs, each cut to
  // one 100 kB entry) put his socket over the cap first, so her presence is dropped for sure; the
  // only socket written to now is his (the server's peak says when it holds past the cap).
  const droppedBefore = (await metric(server.baseUrl, 'parley_ephemeral_frames_dropped_total')) ?? 0;
  const syncRefs: number[] = [];
  for (let i = 0; i < 40; i++) {
    const at = Date.now();
    syncRefs.push(reader.sync(0, 500));
    await new Promise((r) => setTimeout(r, 200));
    if (peak.maxSince(at) > CAP) break;
  }
  const c = await connect(server, carol, 'laptop');
  c.client.close();
  await new Promise((r) => setTimeout(r, 300));
  const heldWithAnswers = peak.max;

  const resumedAt = Date.now();
  reader.resume();
  t.true(await eventually(() => reader.deliveries.length >= MESSAGES, 60_000, 50), `got ${reader.deliveries.length} of ${MESSAGES}`);
  await new Promise((r) => setTimeout(r, 300)); // anything extra (a duplicate) would arrive now
  // The answers leave the socket within moments of the resume; from then on it is the catch-up.
  const catchUpPeak = peak.maxSince(resumedAt + 500);
  await peak.stop();
  const dropped = ((await metric(server.baseUrl, 'parley_ephemeral_frames_dropped_total')) ?? 0) - droppedBefore;

  assertAllInOrder(t, reader, MESSAGES);
  t.true(reader.deliveries.every((d) => d.textLength === TEXT_CHARS));
  const largestFrame = Math.max(...reader.deliveries.map((d) => d.frameBytes));
  t.true(behind >= 1, 'the session fell behind: more was sent than the kernel buffers hold');
  t.true(gotWhileStalled < MESSAGES / 2, `the reader was really stalled (it had ${gotWhileStalled} before it read again)`);
  t.true(heldWhileStalled <= CAP + largestFrame, `flooded, the server held at most ${heldWhileStalled} unsent bytes for a socket; the bound is ${CAP} + one frame (${largestFrame})`);
  t.true(catchUpPeak <= CAP + largestFrame, `catching up, at most ${catchUpPeak}`);
  t.true(heldWithAnswers <= socketMaxUnsentBytes(CAP), `with the unread answers on top, ${heldWithAnswers}: past the cap, under the socket bound`);
  // Presence: dropped while Bob did not read, sent again whole once he caught up.
  t.true(dropped >= 1, 'presence frames were dropped for the stalled reader');
  t.true(await eventually(() => reader.presences.filter((p) => p.user_id === carol.userId).at(-1)?.online === false, 5_000), 'carol is offline for bob after he caught up');
  t.true(syncRefs.every((ref) => reader.answers.get(ref)?.body === 'sync_result'), `the ${syncRefs.length} unread answers arrived once he read`);
  t.log(
    `${MESSAGES} x ${TEXT_CHARS} chars sent in ${sendMs} ms; fell behind ${behind}x; ${gotWhileStalled} delivered while stalled; ` +
      `peak unsent bytes for a socket: flooded ${heldWhileStalled}, with ${syncRefs.length} unread answers ${heldWithAnswers}, catching up ${catchUpPeak}; ephemeral dropped ${dropped}; RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssStalled / 2 ** 20).toFixed(0)} MiB while stalled`,
  );
  reader.close();
  await sender.client.close();
});

test.serial('slow consumers - a client that reads in fits and starts while messages keep coming falls behind and catches up again and again, and gets each message once, in order', async (t) => {
  t.timeout(90_000);
  const { bob, channelId: channel_id, sender } = await dm();
  const reader = await StalledReader.open(server.wsUrl, bob.token);
  const behindBefore = (await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0;
  const n = 200;
  // Reads for 75 ms of every 150, as a phone on a poor link might.
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
  assertAllInOrder(t, reader, n);
  t.deepEqual(reader.deliveries.map((d) => d.textLength), Array.from({ length: n }, (_, i) => sizes(i)));
  const behind = ((await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0) - behindBefore;
  t.true(behind >= 2, `fell behind and went live again more than once (${behind})`);
  t.log(`${n} messages (${((Array.from({ length: n }, (_, i) => sizes(i)).reduce((a, x) => a + x, 0)) / 2 ** 20).toFixed(1)} MiB) to a reader reading half the time: fell behind ${behind}x`);
  reader.close();
  await sender.client.close();
});

test.serial('slow consumers - a peer that asks and never reads is closed once it holds past the socket bound; answers are cut to the cap and say has_more', async (t) => {
  t.timeout(60_000);
  const { bob, channelId: channel_id, sender } = await dm();
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
