import test from 'ava';
import { Inbox, decodeRow, decodeSnapshot, encodeRow, encodeSnapshot, piecesOf, segmentsOfRows, type InboxRow } from '../../actors/user/inbox.ts';

/** Inbox seq -> "channel:seq" for seqs 1..head, from pieces (what a reader would read). */
function mapping(inbox: Inbox): string[] {
  const out: string[] = [];
  for (const p of inbox.piecesInMemory(0, inbox.head) ?? []) for (let i = 0; i < p.count; i++) out.push(`${p.channelId}:${p.from + i}`);
  return out;
}

test('inbox - messages that extend the open segment need no row; another channel does', (t) => {
  const inbox = new Inbox();
  t.is(inbox.tryExtend('a', 1, 1), undefined, 'nothing is open yet');
  inbox.apply(inbox.rowFor([{ channelId: 'a', from: 1, count: 2 }]), 1, 2);
  t.is(inbox.head, 2);
  t.is(inbox.tryExtend('a', 3, 3), 3, 'the next three of the open channel go at 3..5');
  t.is(inbox.head, 5);
  t.is(inbox.tryExtend('a', 7, 1), undefined, 'a gap is not an extension');
  t.is(inbox.tryExtend('b', 1, 1), undefined, 'another channel needs a row');
  const row = inbox.rowFor([{ channelId: 'b', from: 1, count: 1 }, { channelId: 'a', from: 6, count: 2 }]);
  t.deepEqual(row, { start: 6, segments: [{ channelId: 'b', from: 1, count: 1 }, { channelId: 'a', from: 6 }] });
  inbox.apply(row, 2, 2);
  t.is(inbox.head, 8);
  t.is(inbox.tryExtend('a', 8, 1), 9, 'a is open again after b');
  t.deepEqual(mapping(inbox), ['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'b:1', 'a:6', 'a:7', 'a:8']);
  t.deepEqual([...inbox.lastSeen], [['a', 8], ['b', 1]]);
});

test('inbox - a closing row ends the open segment; nothing extends until a new row', (t) => {
  const inbox = new Inbox();
  inbox.apply(inbox.rowFor([{ channelId: 'g', from: 4, count: 3 }]), 1, 3);
  inbox.apply(inbox.closingRow(), 2, 0);
  t.is(inbox.head, 3);
  t.is(inbox.open, undefined);
  t.is(inbox.tryExtend('g', 7, 1), undefined);
  t.deepEqual(mapping(inbox), ['g:4', 'g:5', 'g:6']);
});

test('inbox - rebuilt from a snapshot and the rows after it, the open segment reaching its channel head, every seq keeps its message', (t) => {
  const live = new Inbox();
  const rows: InboxRow[] = [];
  const write = (runs: { channelId: string; from: number; count: number }[]) => {
    const row = live.rowFor(runs);
    rows.push(row);
    live.apply(row, rows.length, runs[runs.length - 1]!.count);
  };
  write([{ channelId: 'a', from: 1, count: 2 }]);
  live.tryExtend('a', 3, 1);
  write([{ channelId: 'b', from: 1, count: 1 }]);
  const snapshot = decodeSnapshot(encodeSnapshot({ ...live.state(), epoch: 3, clean: true, checkedLoss: 1 }));
  live.tryExtend('b', 2, 2);
  write([{ channelId: 'a', from: 4, count: 1 }, { channelId: 'c', from: 10, count: 2 }]);
  live.tryExtend('c', 12, 1); // taken before a crash: c's head is 12 at least

  const rebuilt = new Inbox();
  rebuilt.restore(snapshot);
  for (const [i, row] of rows.entries()) if (i + 1 > snapshot.rowSeq) rebuilt.apply(decodeRow({ seq: i + 1, key: BigInt(row.start), data: encodeRow(row) }), i + 1, 0);
  rebuilt.extendOpenTo(14); // c went on to 14 meanwhile: 13 and 14 are new seqs, nobody saw them
  // What a reader gets: older seqs from the rows in the journal, recent ones from memory.
  const fromRows = piecesOf(segmentsOfRows(rows, rebuilt.head), 0, rebuilt.head, rebuilt.head).flatMap((p) => Array.from({ length: p.count }, (_, i) => `${p.channelId}:${p.from + i}`));
  t.deepEqual(fromRows.slice(0, live.head), mapping(live));
  t.deepEqual(fromRows.slice(live.head), ['c:13', 'c:14']);
  t.is(rebuilt.piecesInMemory(0, 100), undefined, 'seqs before memory are read from the journal');
  t.deepEqual(rebuilt.piecesInMemory(8, 100), [{ channelId: 'c', from: 11, start: 9, count: 4 }]);
  t.is(rebuilt.head, live.head + 2);
  t.is(rebuilt.lastSeen.get('b'), 3);
  t.is(rebuilt.lastSeen.get('a'), 4);
});

test('inbox - reads from rows: open segments end where the next row starts, the last at the head; pieces cut to the range', (t) => {
  const rows: InboxRow[] = [
    { start: 1, segments: [{ channelId: 'a', from: 1 }] },
    { start: 4, segments: [{ channelId: 'b', from: 7, count: 2 }, { channelId: 'a', from: 4 }] },
  ];
  const segments = segmentsOfRows(rows, 9);
  t.deepEqual(segments.map((s) => [s.channelId, s.from, s.start, s.count]), [
    ['a', 1, 1, 3],
    ['b', 7, 4, 2],
    ['a', 4, 6, 4],
  ]);
  t.deepEqual(piecesOf(segments, 2, 7, 9), [
    { channelId: 'a', from: 3, start: 3, count: 1 },
    { channelId: 'b', from: 7, start: 4, count: 2 },
    { channelId: 'a', from: 4, start: 6, count: 2 },
  ]);
  t.deepEqual(piecesOf(segments, 9, 20, 9), []);
});

test('inbox - rows round-trip, and rows from before segments (JSON, one message at seq = row seq) read as one-message segments', (t) => {
  const row: InboxRow = { start: 2 ** 40, segments: [{ channelId: 'dm-ü', from: 300, count: 129 }, { channelId: 'g-1', from: 1 }] };
  t.deepEqual(decodeRow({ seq: 9, key: BigInt(row.start), data: encodeRow(row) }), row);
  t.deepEqual(decodeRow({ seq: 9, key: 10n, data: encodeRow({ start: 10, segments: [] }) }), { start: 10, segments: [] });
  t.deepEqual(decodeRow({ seq: 17, data: Buffer.from('{"c":"dm-x","s":4}') }), { start: 17, segments: [{ channelId: 'dm-x', from: 4, count: 1 }] });
  const legacy = decodeSnapshot(Buffer.from('{"head":64,"lastSeen":[["dm-x",30]]}'));
  t.deepEqual(legacy, { rowSeq: 64, open: undefined, closedHead: 64, lastSeen: [['dm-x', 30]], epoch: 0, clean: false, checkedLoss: 0 });
});
