/**
 * Many clients that never read, each a member of a busy group, cost the server a bounded amount
 * of memory: every socket holds at most --session-max-unsent-bytes (or one frame), the rest waits
 * in the inboxes, and a reader that wakes up gets all of it in order. Real parleyd, real sockets;
 * more is sent to each reader than the kernel's buffers for its socket take (about 4 MB here).
 *
 * `npm test` runs 99 readers (one group); PARLEY_SLOW_FULL=1 runs 1,000 (eleven groups), the figure
 * in the issue: `PARLEY_SLOW_FULL=1 npx ava test/e2e/stuck-readers.test.ts --verbose`.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ParleyHttp } from '../../client/index.ts';
import { provisionUsers } from '../../bin/parleyctl.ts';
import { MAX_GROUP_MEMBERS } from '../../actors/tables.ts';
import { eventually, startServer } from '../support/server.ts';
import { metric, rssBytes, StalledReader, watchUnsentPeak } from '../support/stalled-reader.ts';

const FULL = process.env.PARLEY_SLOW_FULL === '1';
const READERS = FULL ? 1_000 : MAX_GROUP_MEMBERS - 1;
const CAP = 65_536;
const TEXT_CHARS = 16_000;
/** Per reader: 5 MB, past the ~4 MB the kernel buffers of one loopback socket take. */
const MESSAGES_PER_GROUP = 320;
/** Readers woken at the end and checked for every message, in order. */
const WOKEN = 5;
const MiB = 2 ** 20;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function inBatches<T, R>(items: readonly T[], size: number, each: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(each))));
  return out;
}

/** Polls a counter until it is at least `least` and unchanged for a second; whether it got there in time. */
async function steady(read: () => Promise<number | undefined>, least: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  let last = -1;
  while (Date.now() < end) {
    const n = (await read()) ?? 0;
    if (n >= least && n === last) return true;
    last = n;
    await sleep(1_000);
  }
  return false;
}

test(`stuck readers - ${READERS} clients that never read, each in a busy group, hold at most the cap or one frame each in the server; a woken one gets everything in order`, async (t) => {
  t.timeout(FULL ? 300_000 : 90_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-stuck-'));
  const usersFile = join(dataDir, 'users.jsonl');
  await provisionUsers({ dataDir, count: READERS + 1, prefix: 'stuck', out: usersFile, durability: 'os' });
  const users = readFileSync(usersFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { user_id: string; token: string });
  const [sender, ...readers] = users;
  const server = await startServer({ dataDir, flags: { 'send-rate': '100000', 'send-burst': '100000', durability: 'os', 'session-max-unsent-bytes': String(CAP) } });
  const sockets: StalledReader[] = [];
  try {
    const http = new ParleyHttp(server.baseUrl);
    http.setToken(sender!.token);
    const groups: string[] = [];
    for (let i = 0; i < readers.length; i += MAX_GROUP_MEMBERS - 1) {
      const members = readers.slice(i, i + MAX_GROUP_MEMBERS - 1).map((u) => u.user_id);
      groups.push((await http.createGroup(`stuck-${i}`, members)).channel_id);
    }
    const rssIdle = rssBytes(server.proc.pid!);
    sockets.push(...(await inBatches(readers, 50, (u) => StalledReader.open(server.wsUrl, u.token, { heartbeatMs: 5_000 }))));
    const rssConnected = rssBytes(server.proc.pid!);
    const peak = watchUnsentPeak(server.baseUrl, 100);

    const started = Date.now();
    const text = (g: number, i: number): string => `m${i}:g${g}:`.padEnd(TEXT_CHARS, 'x');
    await Promise.all(
      groups.map(async (channelId, g) => {
        for (let i = 0; i < MESSAGES_PER_GROUP; i++) await http.postMessage(channelId, `c${g}-${i}`, text(g, i));
      }),
    );
    const sendMs = Date.now() - started;
    // Until the fan-out has settled: the sessions fell behind (at least once each) and stopped.
    const settled = await steady(() => metric(server.baseUrl, 'parley_sessions_fell_behind_total'), readers.length, 60_000);
    const rssStalled = rssBytes(server.proc.pid!);
    const stalledPeak = peak.max;
    const behind = (await metric(server.baseUrl, 'parley_sessions_fell_behind_total')) ?? 0;
    t.true(settled, `the sessions fell behind (${behind} times for ${readers.length} readers) and the count settled`);
    t.true(sockets.every((s) => s.open), 'a reader that only does not read is not closed');

    // A few wake up: all of their group's messages, in order, each once.
    const woken = sockets.slice(0, WOKEN);
    for (const s of woken) s.resume();
    t.true(await eventually(() => woken.every((s) => s.deliveries.length >= MESSAGES_PER_GROUP), 60_000, 100), `woken readers got ${woken.map((s) => s.deliveries.length).join(', ')}`);
    await sleep(300);
    for (const s of woken) {
      t.deepEqual(s.deliveries.map((d) => d.inboxSeq), Array.from({ length: MESSAGES_PER_GROUP }, (_, i) => i + 1));
      t.deepEqual(s.deliveries.map((d) => Number(d.textHead.slice(1, d.textHead.indexOf(':')))), Array.from({ length: MESSAGES_PER_GROUP }, (_, i) => i));
    }
    const maxPeak = await peak.stop();
    const frame = Math.max(...woken.flatMap((s) => s.deliveries.map((d) => d.frameBytes)));
    t.true(maxPeak <= CAP + frame, `most unsent bytes one socket held: ${maxPeak}; bound ${CAP} + a frame (${frame})`);
    // What all the stuck sockets may hold together, plus the young generation's garbage of a
    // flood this size (--max-semi-space-size=64: up to 3 x 64 MiB) and the SQLite page cache.
    const growth = rssStalled - rssConnected;
    const allowed = readers.length * (CAP + frame) + 256 * MiB;
    t.true(growth <= allowed, `RSS grew ${(growth / MiB).toFixed(0)} MiB while ${readers.length} readers were stuck; allowed ${(allowed / MiB).toFixed(0)} MiB`);
    t.log(
      `${readers.length} stuck readers in ${groups.length} groups, ${MESSAGES_PER_GROUP} x ${TEXT_CHARS} chars each group (${((MESSAGES_PER_GROUP * TEXT_CHARS) / MiB).toFixed(1)} MiB per reader), sent in ${sendMs} ms; ` +
        `fell behind ${behind}x; peak unsent per socket ${maxPeak} B (while stuck ${stalledPeak}); ` +
        `parleyd RSS idle ${(rssIdle / MiB).toFixed(0)} MiB, ${readers.length} connected ${(rssConnected / MiB).toFixed(0)} MiB, stuck after the flood ${(rssStalled / MiB).toFixed(0)} MiB`,
    );
  } finally {
    for (const s of sockets) s.close();
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true }); // tens of MB of messages
  }
});
