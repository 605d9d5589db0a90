/**
 * The chaos checker on crafted histories: a clean run passes with every figure at zero, and each
 * kind of broken promise (a lost ack, a duplicate handed to an app or stored twice, a divergent
 * order, a hole) is counted exactly, as are reconnect times and presence convergence.
 */
import test from 'ava';
import { check, invariantsHold, percentiles, summaryLine } from '../../chaos/checker.ts';
import type { ConnectionRecord, DeliveryRecord, History, HistoryEntry, InboxEntry, SendRecord } from '../../chaos/history.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer U)[] ? U[] : T[K] extends Readonly<Record<string, readonly (infer V)[]>> ? Record<string, V[]> : T[K] };

/**
 * Users a and b in channel c; a has devices a1 and a2, b has b1. a sends m1 and m3, b sends m2,
 * all acked; everything arrives everywhere in order. Times: send i at 1000*i, ack +50, delivery +100.
 */
function cleanHistory(): Mutable<History> {
  const messages = [
    { id: 'm1', sender: 'a', cmid: 'a-1', seq: 1 },
    { id: 'm2', sender: 'b', cmid: 'b-1', seq: 2 },
    { id: 'm3', sender: 'a', cmid: 'a-2', seq: 3 },
  ];
  const sends: SendRecord[] = messages.map((m, i) => ({
    device: `${m.sender}1`,
    userId: m.sender,
    channelId: 'c',
    clientMsgId: m.cmid,
    startedAtMs: 1000 * (i + 1),
    errors: [],
    ack: { messageId: m.id, channelSeq: m.seq, atMs: 1000 * (i + 1) + 50 },
  }));
  const deliveries: DeliveryRecord[] = [];
  for (const device of ['a1', 'a2', 'b1']) {
    messages.forEach((m, i) =>
      deliveries.push({ device, inboxSeq: m.seq, messageId: m.id, channelId: 'c', channelSeq: m.seq, senderId: m.sender, clientMsgId: m.cmid, atMs: 1000 * (i + 1) + 100 }),
    );
  }
  const inbox: InboxEntry[] = messages.map((m) => ({ inboxSeq: m.seq, messageId: m.id, channelId: 'c', channelSeq: m.seq }));
  const history: HistoryEntry[] = messages.map((m) => ({ channelSeq: m.seq, messageId: m.id, senderId: m.sender, clientMsgId: m.cmid }));
  return {
    devices: [
      { device: 'a1', userId: 'a', startAfterSeq: 0 },
      { device: 'a2', userId: 'a', startAfterSeq: 0 },
      { device: 'b1', userId: 'b', startAfterSeq: 0 },
    ],
    members: { c: ['a', 'b'] },
    sends,
    deliveries,
    connections: ['a1', 'a2', 'b1'].map((device) => ({ device, kind: 'welcome' as const, atMs: 500, nodeId: 'n1' })),
    presence: [],
    expectations: [],
    offlineWindows: [],
    inboxes: { a: [...inbox], b: [...inbox] },
    histories: { c: history },
  };
}

function without<T>(xs: T[], pred: (x: T) => boolean): T[] {
  return xs.filter((x) => !pred(x));
}

test('checker - a clean history: every figure zero, invariants hold, the summary line as the contract says', (t) => {
  const r = check(cleanHistory());
  t.deepEqual([r.ackedLost, r.duplicates, r.orderViolations, r.gaps], [0, 0, 0, 0]);
  t.deepEqual(r.problems, []);
  t.true(invariantsHold(r));
  t.deepEqual(r.sends, { total: 3, acked: 3, unacked: 0 });
  t.is(r.sendAck.p99, 50);
  t.is(r.delivery.p99, 100);
  t.is(summaryLine(r), '0 acked lost, 0 duplicates, 0 order violations, 0 gaps, reconnect p99 0 ms');
  t.is(summaryLine(r, ['1 kills']), '0 acked lost, 0 duplicates, 0 order violations, 0 gaps, reconnect p99 0 ms, 1 kills');
});

test('checker - an acked message one device never got is lost once, and its stream ends short', (t) => {
  const h = cleanHistory();
  h.deliveries = without(h.deliveries, (d) => d.device === 'b1' && d.messageId === 'm3');
  const r = check(h);
  t.is(r.ackedLost, 1);
  t.is(r.gaps, 1, 'b1 ends at inbox_seq 2 of 3');
  t.false(invariantsHold(r));
  t.true(r.problems.some((p) => p.includes('never handed to b1')));
});

test('checker - an acked message missing from a member inbox, and from the history, still counts once', (t) => {
  const h = cleanHistory();
  h.inboxes.b = without(h.inboxes.b!, (e) => e.messageId === 'm2');
  h.histories.c = without(h.histories.c!, (e) => e.messageId === 'm2');
  h.deliveries = without(h.deliveries, (d) => d.messageId === 'm2');
  const r = check(h);
  t.is(r.ackedLost, 1);
  // Holes: history (seq 3 after 1), both inboxes' readers see b's inbox 3 after 1, and every device skipped 2.
  t.true(r.gaps >= 2);
});

test('checker - an unacknowledged message that never arrived is not a lost ack', (t) => {
  const h = cleanHistory();
  delete h.sends[2]!.ack;
  h.deliveries = without(h.deliveries, (d) => d.messageId === 'm3');
  h.inboxes.a = without(h.inboxes.a!, (e) => e.messageId === 'm3');
  h.inboxes.b = without(h.inboxes.b!, (e) => e.messageId === 'm3');
  h.histories.c = without(h.histories.c!, (e) => e.messageId === 'm3');
  const r = check(h);
  t.is(r.ackedLost, 0);
  t.deepEqual(r.sends, { total: 3, acked: 2, unacked: 1 });
  t.true(invariantsHold(r));
});

test('checker - a message handed to the same app twice is one duplicate', (t) => {
  const h = cleanHistory();
  const again = h.deliveries.find((d) => d.device === 'a2' && d.messageId === 'm2')!;
  h.deliveries.push({ ...again, atMs: again.atMs + 5_000 });
  const r = check(h);
  t.is(r.duplicates, 1);
  t.is(r.orderViolations, 0);
  t.is(r.gaps, 0);
});

test('checker - a resend stored as a second message (same client_msg_id) is a duplicate', (t) => {
  const h = cleanHistory();
  h.histories.c!.push({ channelSeq: 4, messageId: 'm4', senderId: 'a', clientMsgId: 'a-1' });
  for (const u of ['a', 'b']) h.inboxes[u]!.push({ inboxSeq: 4, messageId: 'm4', channelId: 'c', channelSeq: 4 });
  for (const device of ['a1', 'a2', 'b1']) h.deliveries.push({ device, inboxSeq: 4, messageId: 'm4', channelId: 'c', channelSeq: 4, senderId: 'a', clientMsgId: 'a-1', atMs: 9_000 });
  const r = check(h);
  t.is(r.duplicates, 1);
  t.true(r.problems.some((p) => p.includes('client_msg_id a|a-1 stored as m1, m4')));
});

test('checker - devices that disagree on what sits at a channel_seq diverge', (t) => {
  const h = cleanHistory();
  // a2 was handed m3 as channel seq 2 (and inbox seq 2) and m2 as 3: the order of c diverges from the other devices.
  h.deliveries = h.deliveries.map((d) => {
    if (d.device !== 'a2') return d;
    if (d.messageId === 'm2') return { ...d, inboxSeq: 3, channelSeq: 3 };
    if (d.messageId === 'm3') return { ...d, inboxSeq: 2, channelSeq: 2 };
    return d;
  });
  h.deliveries.sort((x, y) => (x.device === y.device ? x.inboxSeq - y.inboxSeq : 0));
  const r = check(h);
  t.is(r.ackedLost, 0);
  t.is(r.orderViolations, 4, 'each of the two messages: against the history and against the inbox');
});

test('checker - a device handing out a channel backwards is an order violation', (t) => {
  const h = cleanHistory();
  // b1 gets m2 at inbox 2 and m1 at inbox 3 with their true channel seqs: channel order broken on that device.
  h.deliveries = h.deliveries.map((d) => (d.device === 'b1' && d.messageId === 'm1' ? { ...d, inboxSeq: 2 } : d.device === 'b1' && d.messageId === 'm2' ? { ...d, inboxSeq: 1 } : d));
  h.deliveries.sort((x, y) => (x.device === y.device ? x.inboxSeq - y.inboxSeq : 0));
  h.inboxes.b = [
    { inboxSeq: 1, messageId: 'm2', channelId: 'c', channelSeq: 2 },
    { inboxSeq: 2, messageId: 'm1', channelId: 'c', channelSeq: 1 },
    { inboxSeq: 3, messageId: 'm3', channelId: 'c', channelSeq: 3 },
  ];
  const r = check(h);
  t.is(r.orderViolations, 2, 'once on b1, once in b’s inbox');
  t.is(r.gaps, 0);
});

test('checker - inbox_seq holes are counted once per hole, wherever they are', (t) => {
  const h = cleanHistory();
  h.inboxes.a = h.inboxes.a!.map((e) => (e.inboxSeq === 3 ? { ...e, inboxSeq: 5 } : e));
  h.deliveries = h.deliveries.map((d) => (d.device === 'a1' && d.inboxSeq === 3 ? { ...d, inboxSeq: 5 } : d));
  const r = check(h);
  // a's inbox jumps 2 -> 5; a1 jumps too; a2 was handed inbox_seq 3, which the inbox now says is nothing.
  t.is(r.gaps, 3, `a's inbox, a1, and a2 ending before the inbox head: ${r.problems.join(' | ')}`);
  t.is(r.ackedLost, 0);
});

test('checker - reconnect time runs from losing the connection (or the last good probe) to the next welcome; intended closes do not count; a device never back is stuck', (t) => {
  const h = cleanHistory();
  const c: ConnectionRecord[] = [
    { device: 'a1', kind: 'welcome', atMs: 0 },
    { device: 'a1', kind: 'down', atMs: 10_000 },
    { device: 'a1', kind: 'down', atMs: 10_300 }, // a failed attempt: still the same outage
    { device: 'a1', kind: 'welcome', atMs: 13_000 },
    { device: 'a2', kind: 'welcome', atMs: 0 },
    { device: 'a2', kind: 'down', atMs: 20_000, sinceMs: 16_000 }, // the watchdog found it dead
    { device: 'a2', kind: 'welcome', atMs: 21_000 },
    { device: 'b1', kind: 'welcome', atMs: 0 },
    { device: 'b1', kind: 'down', atMs: 5_000, intended: true },
    { device: 'b1', kind: 'welcome', atMs: 60_000 },
  ];
  h.connections = c;
  let r = check(h);
  t.deepEqual({ n: r.reconnect.n, p50: r.reconnect.p50, max: r.reconnect.max, stuck: r.reconnect.stuck }, { n: 2, p50: 3_000, max: 5_000, stuck: 0 });
  t.is(summaryLine(r), '0 acked lost, 0 duplicates, 0 order violations, 0 gaps, reconnect p99 5000 ms');
  h.connections = [...c, { device: 'a1', kind: 'down', atMs: 70_000 }];
  r = check(h);
  t.is(r.reconnect.stuck, 1);
  t.false(invariantsHold(r));
});

test('checker - presence: shown in time, late, never; an online shown inside an offline window, after an offline, is stale', (t) => {
  const h = cleanHistory();
  h.presence = [
    { observer: 'w1', subject: 'x', online: true, atMs: 1_000, via: 'push' },
    { observer: 'w1', subject: 'x', online: false, atMs: 6_000, via: 'push' },
    { observer: 'w1', subject: 'y', online: true, atMs: 1_000, via: 'push' },
    { observer: 'w1', subject: 'y', online: false, atMs: 20_000, via: 'push' },
    { observer: 'w1', subject: 'z', online: true, atMs: 1_000, via: 'push' },
    { observer: 'w1', subject: 'x', online: true, atMs: 31_000, via: 'query' },
  ];
  h.expectations = [
    { observer: 'w1', subject: 'x', online: false, fromMs: 2_000, withinMs: 8_000, why: 'x died with n3' },
    { observer: 'w1', subject: 'y', online: false, fromMs: 2_000, withinMs: 8_000, why: 'y died with n3' },
    { observer: 'w1', subject: 'z', online: false, fromMs: 2_000, withinMs: 8_000, why: 'z died with n3' },
    { observer: 'w1', subject: 'z', online: true, fromMs: 500, withinMs: 2_000, why: 'already online when it came back' },
  ];
  h.offlineWindows = [
    { observer: 'w1', subject: 'x', goneSinceMs: 2_000, fromMs: 25_000, toMs: 35_000, why: 'x has no device after the pause' },
    // z was never shown offline at all: a late convergence (counted above as never), not a stale write.
    { observer: 'w1', subject: 'z', goneSinceMs: 2_000, fromMs: 0, toMs: 35_000, why: 'z has no device after the pause' },
  ];
  const r = check(h);
  t.deepEqual(r.presence, { expectations: 4, late: 1, never: 1, p99Ms: 18_000, staleOnline: 1 });
  t.false(invariantsHold(r));
  t.is(r.problems.filter((p) => p.startsWith('stale online')).length, 1);
});

test('checker - percentiles are nearest-rank', (t) => {
  t.deepEqual(percentiles([]), { n: 0, p50: 0, p99: 0, max: 0 });
  const xs = Array.from({ length: 200 }, (_, i) => i + 1);
  t.deepEqual(percentiles(xs), { n: 200, p50: 100, p99: 198, max: 200 });
});
