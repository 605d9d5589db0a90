/**
 * The storage contract: what every engine behind `Store` must do, written once and run against
 * each engine (sqlite.test.ts, cassandra.test.ts). An engine passes this suite or it is not an
 * engine. Tests use fresh persistence ids, tables and partitions of their own, so they also hold
 * when a harness hands out one shared database for several tests.
 */
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { CodedError } from '../../runtime/errors.ts';
import type { Journal, JournalEvent } from '../../runtime/storage/journal.ts';
import { openStore } from '../../runtime/storage/open-store.ts';
import { StoreCodes, type Store } from '../../runtime/storage/store.ts';
import { silentLogger } from '../../runtime/log.ts';

export interface StoreContractOptions {
  /**
   * Opens a fresh store object on the data a closed one wrote (the durability test). Defaults to
   * `openStore(store.describe)`, which works for engines whose description is their URL.
   */
  readonly reopen?: (closed: Store) => Promise<Store>;
}

/** A value above 2^53: a double cannot tell it from its neighbours, so only exact 64-bit handling passes. */
const BIG_KEY = 7234567890123456789n;

function uniqueId(prefix: string): string {
  return `${prefix}/${randomUUID()}`;
}

/** An event as these tests write and compare it: data as text (the journal stores its UTF-8 bytes). */
export interface TextEvent {
  readonly seq: number;
  readonly data: string;
  readonly key?: bigint;
  readonly dedupKey?: string;
}

type TextAppendResult = { readonly ok: true } | { readonly ok: false; readonly duplicates: readonly TextEvent[] };

/**
 * The journal with text data, so that expectations read as text; the bytes are exactly the
 * UTF-8 of the text both ways (a separate test holds arbitrary bytes to the journal itself).
 */
export interface TextJournal extends Omit<Journal, 'append' | 'read' | 'readBefore' | 'saveSnapshot' | 'loadSnapshot'> {
  append(pid: string, epoch: number, events: readonly TextEvent[]): Promise<TextAppendResult>;
  read(pid: string, afterSeq: number, limit: number): Promise<TextEvent[]>;
  readBefore(pid: string, beforeKey: bigint | undefined, limit: number): Promise<TextEvent[]>;
  saveSnapshot(pid: string, epoch: number, snapshot: { seq: number; data: string }): Promise<void>;
  loadSnapshot(pid: string): Promise<{ seq: number; data: string } | undefined>;
}

const toText = (e: JournalEvent): TextEvent => ({ ...e, data: Buffer.from(e.data).toString('utf8') });
const toBytes = (e: TextEvent): JournalEvent => ({ ...e, data: Buffer.from(e.data, 'utf8') });

export function textual(j: Journal): TextJournal {
  return {
    acquire: (pid, owner) => j.acquire(pid, owner),
    release: (pid, epoch) => j.release(pid, epoch),
    highestSeq: (pid) => j.highestSeq(pid),
    append: async (pid, epoch, evs) => {
      const r = await j.append(pid, epoch, evs.map(toBytes));
      return r.ok ? r : { ok: false, duplicates: r.duplicates.map(toText) };
    },
    read: async (pid, after, limit) => (await j.read(pid, after, limit)).map(toText),
    readBefore: async (pid, before, limit) => (await j.readBefore(pid, before, limit)).map(toText),
    saveSnapshot: (pid, epoch, snap) => j.saveSnapshot(pid, epoch, { seq: snap.seq, data: Buffer.from(snap.data, 'utf8') }),
    loadSnapshot: async (pid) => {
      const snap = await j.loadSnapshot(pid);
      return snap && { seq: snap.seq, data: Buffer.from(snap.data).toString('utf8') };
    },
  };
}

function events(from: number, count: number, make: (seq: number) => Partial<TextEvent> = () => ({})): TextEvent[] {
  return Array.from({ length: count }, (_, i) => ({ seq: from + i, data: `{"n":${from + i}}`, ...make(from + i) }));
}

/** The events with these seqs, as a read finds them (the journal has no lookup by seq list). */
async function seqsPresent(journal: TextJournal, pid: string, seqs: readonly number[]): Promise<number[]> {
  const all = await journal.read(pid, 0, 100_000);
  return all.map((e) => e.seq).filter((s) => seqs.includes(s));
}

async function rejectsWith(t: ExecutionContext, promise: Promise<unknown>, code: string): Promise<void> {
  await t.throwsAsync(promise, { instanceOf: CodedError, code });
}

export function runStoreContract(name: string, open: () => Promise<Store>, options: StoreContractOptions = {}): void {
  const title = (what: string): string => `store contract (${name}) - ${what}`;
  const reopen = options.reopen ?? ((closed: Store) => openStore(closed.describe, { log: silentLogger() }));

  /** Opens a store that is closed when the test ends, whatever the outcome (its journal with text data). */
  async function storeFor(t: ExecutionContext): Promise<{ journal: TextJournal; kv: Store['kv']; raw: Store }> {
    const store = await open();
    t.teardown(() => store.close());
    return { journal: textual(store.journal), kv: store.kv, raw: store };
  }

  // ---- Ownership and fencing

  test(title('acquire hands out epochs that grow'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const e1 = await journal.acquire(pid, 'node-a');
    const e2 = await journal.acquire(pid, 'node-a');
    const e3 = await journal.acquire(pid, 'node-b');
    t.true(e1 >= 1);
    t.true(e2 > e1);
    t.true(e3 > e2);
    // Epochs are per id: a fresh id starts over rather than sharing a counter.
    t.true((await journal.acquire(uniqueId('c'), 'node-a')) >= 1);
  });

  test(title('concurrent acquires of one id all get distinct epochs'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epochs = await Promise.all(Array.from({ length: 20 }, (_, i) => journal.acquire(pid, `node-${i}`)));
    t.is(new Set(epochs).size, 20);
    // Whoever acquired last holds the highest epoch; only it can write.
    const newest = Math.max(...epochs);
    await journal.append(pid, newest, events(1, 1));
    for (const e of epochs.filter((x) => x !== newest)) await rejectsWith(t, journal.append(pid, e, events(2, 1)), StoreCodes.FENCED);
    t.is(await journal.highestSeq(pid), 1);
  });

  test(title('append before any acquire is FENCED'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    await rejectsWith(t, journal.append(pid, 1, events(1, 1)), StoreCodes.FENCED);
    t.is(await journal.highestSeq(pid), 0);
  });

  test(title('append with a stale epoch is FENCED and writes nothing'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const old = await journal.acquire(pid, 'node-a');
    await journal.append(pid, old, events(1, 2));
    // Another owner takes over: the old activation must not write another event, ever.
    const current = await journal.acquire(pid, 'node-b');
    await rejectsWith(t, journal.append(pid, old, events(3, 1)), StoreCodes.FENCED);
    await rejectsWith(t, journal.append(pid, old, events(3, 3)), StoreCodes.FENCED);
    t.is(await journal.highestSeq(pid), 2);
    t.deepEqual(await seqsPresent(journal, pid, [3]), []);
    // An epoch from the future (never handed out) is no better.
    await rejectsWith(t, journal.append(pid, current + 1, events(3, 1)), StoreCodes.FENCED);
    await journal.append(pid, current, events(3, 1));
    t.deepEqual((await journal.read(pid, 0, 10)).map((e) => e.seq), [1, 2, 3]);
  });

  test(title('a stale epoch stays FENCED after a third acquire'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const e1 = await journal.acquire(pid, 'node-a');
    const e2 = await journal.acquire(pid, 'node-b');
    await journal.append(pid, e2, events(1, 1));
    const e3 = await journal.acquire(pid, 'node-a');
    await rejectsWith(t, journal.append(pid, e1, events(2, 1)), StoreCodes.FENCED);
    await rejectsWith(t, journal.append(pid, e2, events(2, 1)), StoreCodes.FENCED);
    await journal.append(pid, e3, events(2, 1));
    t.is(await journal.highestSeq(pid), 2);
  });

  // ---- Sequence numbers

  test(title('append refuses a gap with SEQ_CONFLICT'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    await rejectsWith(t, journal.append(pid, epoch, events(2, 1)), StoreCodes.SEQ_CONFLICT);
    t.is(await journal.highestSeq(pid), 0);
    await journal.append(pid, epoch, events(1, 3));
    await rejectsWith(t, journal.append(pid, epoch, events(5, 1)), StoreCodes.SEQ_CONFLICT);
    t.is(await journal.highestSeq(pid), 3);
    t.deepEqual(await seqsPresent(journal, pid, [5]), []);
  });

  test(title('append refuses a repeated seq with SEQ_CONFLICT and keeps the first'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    await journal.append(pid, epoch, [{ seq: 1, data: 'first' }]);
    await journal.append(pid, epoch, [{ seq: 2, data: 'second' }]);
    await rejectsWith(t, journal.append(pid, epoch, [{ seq: 2, data: 'again' }]), StoreCodes.SEQ_CONFLICT);
    await rejectsWith(t, journal.append(pid, epoch, [{ seq: 1, data: 'again' }]), StoreCodes.SEQ_CONFLICT);
    t.deepEqual((await journal.read(pid, 0, 10)).map((e) => e.data), ['first', 'second']);
  });

  test(title('concurrent appends of the same seq: exactly one lands'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => journal.append(pid, epoch, [{ seq: 1, data: `w${i}` }])));
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    t.is(won.length, 1);
    for (const o of outcomes) if (o.status === 'rejected') t.is((o.reason as CodedError).code, StoreCodes.SEQ_CONFLICT);
    const stored = await journal.read(pid, 0, 10);
    t.is(stored.length, 1);
  });

  test(title('a multi-event append is atomic'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    await journal.append(pid, epoch, events(1, 3));
    // The first two would fit; the third leaves a gap, so none may be written.
    await rejectsWith(t, journal.append(pid, epoch, [...events(4, 2), ...events(7, 1)]), StoreCodes.SEQ_CONFLICT);
    t.is(await journal.highestSeq(pid), 3);
    t.deepEqual(await seqsPresent(journal, pid, [4, 5, 7]), []);
    await journal.append(pid, epoch, events(4, 3));
    t.deepEqual((await journal.read(pid, 0, 100)).map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
  });

  // ---- Dedup keys

  test(title('a duplicate dedupKey returns the stored event and writes nothing'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    t.deepEqual(await journal.append(pid, epoch, [{ seq: 1, data: 'original', key: 100n, dedupKey: 'req-1' }]), { ok: true });
    const again = await journal.append(pid, epoch, [{ seq: 2, data: 'retry', key: 200n, dedupKey: 'req-1' }]);
    t.deepEqual(again, { ok: false, duplicates: [{ seq: 1, data: 'original', key: 100n, dedupKey: 'req-1' }] });
    t.is(await journal.highestSeq(pid), 1);
    // A retry that reuses the original seq is answered the same way, not with SEQ_CONFLICT.
    const retried = await journal.append(pid, epoch, [{ seq: 1, data: 'retry', key: 100n, dedupKey: 'req-1' }]);
    t.deepEqual(retried, { ok: false, duplicates: [{ seq: 1, data: 'original', key: 100n, dedupKey: 'req-1' }] });
    // Another key is a new event, and dedup keys are per id.
    t.deepEqual(await journal.append(pid, epoch, [{ seq: 2, data: 'next', dedupKey: 'req-2' }]), { ok: true });
    const other = uniqueId('c');
    const otherEpoch = await journal.acquire(other, 'node-a');
    t.deepEqual(await journal.append(other, otherEpoch, [{ seq: 1, data: 'elsewhere', dedupKey: 'req-1' }]), { ok: true });
    t.deepEqual((await journal.read(pid, 0, 10)).map((e) => e.data), ['original', 'next']);
  });

  test(title('an append with several duplicates among new events writes none of them and names every duplicate, in order'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    await journal.append(pid, epoch, [
      { seq: 1, data: 'a', dedupKey: 'k-a' },
      { seq: 2, data: 'plain' },
      { seq: 3, data: 'b', key: BIG_KEY, dedupKey: 'k-b' },
    ]);
    const batch = [
      { seq: 4, data: 'new-1', dedupKey: 'k-new-1' },
      { seq: 5, data: 'b again', dedupKey: 'k-b' },
      { seq: 6, data: 'no key' },
      { seq: 7, data: 'a again', dedupKey: 'k-a' },
    ];
    t.deepEqual(await journal.append(pid, epoch, batch), {
      ok: false,
      duplicates: [
        { seq: 3, data: 'b', key: BIG_KEY, dedupKey: 'k-b' },
        { seq: 1, data: 'a', dedupKey: 'k-a' },
      ],
    });
    t.is(await journal.highestSeq(pid), 3);
    // The new ones go in at the seqs that are free, and their keys were not left claimed.
    t.deepEqual(await journal.append(pid, epoch, [{ seq: 4, data: 'new-1', dedupKey: 'k-new-1' }, { seq: 5, data: 'no key' }]), { ok: true });
    t.deepEqual((await journal.read(pid, 3, 10)).map((e) => e.data), ['new-1', 'no key']);
  });

  test(title('a duplicate dedupKey across an owner change is still answered from the journal'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const e1 = await journal.acquire(pid, 'node-a');
    await journal.append(pid, e1, [{ seq: 1, data: 'original', dedupKey: 'req-1' }]);
    const e2 = await journal.acquire(pid, 'node-b');
    const again = await journal.append(pid, e2, [{ seq: 2, data: 'retry', dedupKey: 'req-1' }]);
    t.deepEqual(again, { ok: false, duplicates: [{ seq: 1, data: 'original', dedupKey: 'req-1' }] });
    t.is(await journal.highestSeq(pid), 1);
  });

  test(title('a stale owner is told it is fenced before it is told of a duplicate'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const e1 = await journal.acquire(pid, 'node-a');
    await journal.append(pid, e1, [{ seq: 1, data: 'original', dedupKey: 'req-1' }]);
    await journal.acquire(pid, 'node-b');
    await rejectsWith(t, journal.append(pid, e1, [{ seq: 2, data: 'retry', dedupKey: 'req-1' }]), StoreCodes.FENCED);
  });

  test(title('event data is bytes, stored exactly: zero bytes, invalid UTF-8, empty'), async (t) => {
    const { raw } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await raw.journal.acquire(pid, 'node-a');
    const datas = [new Uint8Array([0, 1, 2, 255, 0xc3, 0x28, 0]), new Uint8Array(0), Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff)];
    await raw.journal.append(pid, epoch, datas.map((data, i) => ({ seq: i + 1, data, key: BigInt(i + 1) })));
    const back = await raw.journal.read(pid, 0, 10);
    t.deepEqual(back.map((e) => [...e.data]), datas.map((d) => [...d]));
    t.deepEqual((await raw.journal.readBefore(pid, undefined, 1)).map((e) => [...e.data]), [[...datas[2]!]]);
    await raw.journal.saveSnapshot(pid, epoch, { seq: 3, data: datas[0]! });
    t.deepEqual([...(await raw.journal.loadSnapshot(pid))!.data], [...datas[0]!]);
  });

  // ---- Reads

  test(title('read returns events after a seq, oldest first, in pages'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    // Several appends of different sizes, so engines that bucket or batch are crossed at odd points.
    await journal.append(pid, epoch, events(1, 1));
    await journal.append(pid, epoch, events(2, 9));
    await journal.append(pid, epoch, events(11, 15, (s) => ({ key: BigInt(s) * 10n, dedupKey: `d${s}` })));
    t.deepEqual((await journal.read(pid, 0, 10)).map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    t.deepEqual((await journal.read(pid, 10, 10)).map((e) => e.seq), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    t.deepEqual((await journal.read(pid, 20, 10)).map((e) => e.seq), [21, 22, 23, 24, 25]);
    t.deepEqual(await journal.read(pid, 25, 10), []);
    t.deepEqual((await journal.read(pid, 3, 2)).map((e) => e.seq), [4, 5]);
    t.deepEqual(await journal.read(pid, 12, 1), [{ seq: 13, data: '{"n":13}', key: 130n, dedupKey: 'd13' }]);
    t.deepEqual(await journal.read(pid, 0, 1), [{ seq: 1, data: '{"n":1}' }]);
    t.is((await journal.read(pid, 0, 1000)).length, 25);
    t.deepEqual(await journal.read(uniqueId('c'), 0, 10), []);
  });

  test(title('readBefore pages newest first by key'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    // Keys whose digit counts differ (9 < 10 < 100) catch text ordering posing as numeric.
    const keys = [1n, 2n, 9n, 10n, 11n, 99n, 100n, 101n, 999n, 1000n, 5_000n, 10_000n, 123_456n, 1_000_000n, 9_999_999n, 10_000_000n];
    for (const [i, key] of keys.entries()) await journal.append(pid, epoch, [{ seq: i + 1, data: `k${key}`, key }]);
    // Events without a key are not part of key order.
    await journal.append(pid, epoch, [{ seq: keys.length + 1, data: 'no key' }]);
    const pages: bigint[][] = [];
    let before: bigint | undefined;
    for (;;) {
      const page = await journal.readBefore(pid, before, 5);
      if (page.length === 0) break;
      pages.push(page.map((e) => e.key!));
      before = page[page.length - 1]!.key;
    }
    t.deepEqual(pages.flat(), [...keys].reverse());
    t.deepEqual(pages.map((p) => p.length), [5, 5, 5, 1]);
    t.deepEqual((await journal.readBefore(pid, 100n, 3)).map((e) => e.key), [99n, 11n, 10n]);
    t.deepEqual((await journal.readBefore(pid, 1n, 3)), []);
    t.deepEqual(await journal.readBefore(pid, 10n, 1), [{ seq: 3, data: 'k9', key: 9n }]);
    t.deepEqual(await journal.readBefore(uniqueId('c'), undefined, 3), []);
  });

  test(title('readBefore compares 64-bit keys above 2^53 exactly'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    // Neighbours above 2^53 collapse to one double; the largest is near the top of int64.
    const keys = [2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, BIG_KEY - 1n, BIG_KEY, BIG_KEY + 1n, 9_223_372_036_854_775_806n];
    await journal.append(pid, epoch, keys.map((key, i) => ({ seq: i + 1, data: `k${key}`, key })));
    const all = await journal.readBefore(pid, undefined, 100);
    t.deepEqual(all.map((e) => e.key), [...keys].reverse());
    t.deepEqual(all.map((e) => e.data), [...keys].reverse().map((k) => `k${k}`));
    t.deepEqual((await journal.readBefore(pid, BIG_KEY + 1n, 2)).map((e) => e.key), [BIG_KEY, BIG_KEY - 1n]);
    t.deepEqual((await journal.readBefore(pid, BIG_KEY, 1)).map((e) => e.key), [BIG_KEY - 1n]);
    t.deepEqual((await journal.readBefore(pid, 2n ** 53n + 1n, 5)).map((e) => e.key), [2n ** 53n, 2n ** 53n - 1n]);
    t.deepEqual(await journal.read(pid, 4, 1), [{ seq: 5, data: `k${BIG_KEY}`, key: BIG_KEY }]);
  });

  test(title('highestSeq follows appends'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    t.is(await journal.highestSeq(pid), 0);
    const epoch = await journal.acquire(pid, 'node-a');
    t.is(await journal.highestSeq(pid), 0);
    await journal.append(pid, epoch, events(1, 1));
    t.is(await journal.highestSeq(pid), 1);
    await journal.append(pid, epoch, events(2, 22));
    t.is(await journal.highestSeq(pid), 23);
  });

  // ---- Snapshots

  test(title('snapshots are fenced by epoch and load returns the latest'), async (t) => {
    const { journal } = await storeFor(t);
    const pid = uniqueId('c');
    t.is(await journal.loadSnapshot(pid), undefined);
    const old = await journal.acquire(pid, 'node-a');
    await journal.append(pid, old, events(1, 10));
    await journal.saveSnapshot(pid, old, { seq: 5, data: 'at-5' });
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 5, data: 'at-5' });
    await journal.saveSnapshot(pid, old, { seq: 10, data: 'at-10' });
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 10, data: 'at-10' });
    const current = await journal.acquire(pid, 'node-b');
    await rejectsWith(t, journal.saveSnapshot(pid, old, { seq: 10, data: 'stale' }), StoreCodes.FENCED);
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 10, data: 'at-10' });
    // An older snapshot arriving late never replaces a newer one.
    await journal.saveSnapshot(pid, current, { seq: 7, data: 'at-7' });
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 10, data: 'at-10' });
    await journal.saveSnapshot(pid, current, { seq: 10, data: 'at-10-again' });
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 10, data: 'at-10-again' });
  });

  // ---- Key-value

  test(title('kv get, write put and delete'), async (t) => {
    const { kv } = await storeFor(t);
    const table = `t${randomUUID().slice(0, 8)}`;
    t.is(await kv.get(table, 'p', 'a'), undefined);
    await kv.write([
      { op: 'put', table, partition: 'p', key: 'a', value: '1' },
      { op: 'put', table, partition: 'p', key: 'b', value: '2' },
      { op: 'put', table, partition: 'q', key: 'a', value: 'other partition' },
    ]);
    t.is(await kv.get(table, 'p', 'a'), '1');
    t.is(await kv.get(table, 'p', 'b'), '2');
    t.is(await kv.get(table, 'q', 'a'), 'other partition');
    t.is(await kv.get(`${table}x`, 'p', 'a'), undefined);
    await kv.write([
      { op: 'put', table, partition: 'p', key: 'a', value: '1b' },
      { op: 'delete', table, partition: 'p', key: 'b' },
      { op: 'delete', table, partition: 'p', key: 'never-there' },
    ]);
    t.is(await kv.get(table, 'p', 'a'), '1b');
    t.is(await kv.get(table, 'p', 'b'), undefined);
    await kv.write([]);
    // Within one write, a later op on the same key wins.
    await kv.write([
      { op: 'put', table, partition: 'p', key: 'c', value: 'x' },
      { op: 'delete', table, partition: 'p', key: 'c' },
      { op: 'delete', table, partition: 'p', key: 'd' },
      { op: 'put', table, partition: 'p', key: 'd', value: 'y' },
    ]);
    t.is(await kv.get(table, 'p', 'c'), undefined);
    t.is(await kv.get(table, 'p', 'd'), 'y');
  });

  test(title('kv list is ordered by key and honours the limit'), async (t) => {
    const { kv } = await storeFor(t);
    const table = `t${randomUUID().slice(0, 8)}`;
    const keys = ['m', 'a', 'z', 'b', 'aa', 'B', '0', 'user:10', 'user:9'];
    await kv.write(keys.map((key) => ({ op: 'put' as const, table, partition: 'p', key, value: `v-${key}` })));
    await kv.write([{ op: 'put', table, partition: 'other', key: 'x', value: 'x' }]);
    const sorted = [...keys].sort();
    t.deepEqual(await kv.list(table, 'p'), sorted.map((key) => ({ key, value: `v-${key}` })));
    t.deepEqual((await kv.list(table, 'p', 3)).map((r) => r.key), sorted.slice(0, 3));
    t.deepEqual(await kv.list(table, 'empty'), []);
  });

  test(title('kv putIfAbsent reports created versus existing'), async (t) => {
    const { kv } = await storeFor(t);
    const table = `t${randomUUID().slice(0, 8)}`;
    t.deepEqual(await kv.putIfAbsent(table, 'p', 'k', 'first'), { created: true, value: 'first' });
    t.deepEqual(await kv.putIfAbsent(table, 'p', 'k', 'second'), { created: false, value: 'first' });
    t.is(await kv.get(table, 'p', 'k'), 'first');
    await kv.write([{ op: 'delete', table, partition: 'p', key: 'k' }]);
    t.deepEqual(await kv.putIfAbsent(table, 'p', 'k', 'third'), { created: true, value: 'third' });
  });

  test(title('kv putIfAbsent from 20 concurrent callers creates exactly once'), async (t) => {
    const { kv } = await storeFor(t);
    const table = `t${randomUUID().slice(0, 8)}`;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => kv.putIfAbsent(table, 'p', 'claim', `caller-${i}`)));
    const created = results.filter((r) => r.created);
    t.is(created.length, 1);
    const winner = created[0]!.value;
    for (const r of results) t.is(r.value, winner);
    t.is(await kv.get(table, 'p', 'claim'), winner);
  });

  // ---- Durability and size

  test(title('what was written before close is read by a fresh open'), async (t) => {
    const first = await open();
    const pid = uniqueId('c');
    const table = `t${randomUUID().slice(0, 8)}`;
    let second: Store | undefined;
    try {
      const firstJournal = textual(first.journal);
      const epoch = await firstJournal.acquire(pid, 'node-a');
      await firstJournal.append(pid, epoch, events(1, 5, (s) => ({ key: BIG_KEY + BigInt(s), dedupKey: `d${s}` })));
      await firstJournal.saveSnapshot(pid, epoch, { seq: 4, data: 'snap' });
      await first.kv.write([{ op: 'put', table, partition: 'p', key: 'k', value: 'v' }]);
      await first.kv.putIfAbsent(table, 'p', 'once', 'claimed');
    } finally {
      await first.close();
    }
    second = await reopen(first);
    t.teardown(() => second!.close());
    const journal = textual(second.journal);
    const { kv } = second;
    t.is(await journal.highestSeq(pid), 5);
    t.deepEqual(await journal.read(pid, 0, 10), events(1, 5, (s) => ({ key: BIG_KEY + BigInt(s), dedupKey: `d${s}` })));
    t.deepEqual(await journal.loadSnapshot(pid), { seq: 4, data: 'snap' });
    t.is(await kv.get(table, 'p', 'k'), 'v');
    t.deepEqual(await kv.putIfAbsent(table, 'p', 'once', 'late'), { created: false, value: 'claimed' });
    // The epoch counter survived too: a new owner fences everything handed out before.
    const next = await journal.acquire(pid, 'node-b');
    t.true(next > 1);
    await journal.append(pid, next, events(6, 1));
    t.deepEqual(await journal.append(pid, next, [{ seq: 7, data: 'dup', dedupKey: 'd2' }]), {
      ok: false,
      duplicates: [{ seq: 2, data: '{"n":2}', key: BIG_KEY + 2n, dedupKey: 'd2' }],
    });
  });

  test(title('a 400 KB value round-trips'), async (t) => {
    const { journal, kv } = await storeFor(t);
    // Not one repeated character, so an engine that compresses still moves real bytes.
    const big = Array.from({ length: 400 * 1024 / 16 }, (_, i) => (i * 2654435761 >>> 0).toString(16).padStart(16, '.')).join('');
    t.is(big.length, 400 * 1024);
    const pid = uniqueId('c');
    const epoch = await journal.acquire(pid, 'node-a');
    await journal.append(pid, epoch, [{ seq: 1, data: big, key: 1n }]);
    t.is((await journal.read(pid, 0, 1))[0]!.data, big);
    t.is((await journal.readBefore(pid, undefined, 1))[0]!.data, big);
    await journal.saveSnapshot(pid, epoch, { seq: 1, data: big });
    t.is((await journal.loadSnapshot(pid))!.data, big);
    const table = `t${randomUUID().slice(0, 8)}`;
    await kv.write([{ op: 'put', table, partition: 'p', key: 'big', value: big }]);
    t.is(await kv.get(table, 'p', 'big'), big);
    t.deepEqual(await kv.putIfAbsent(table, 'p', 'big2', big), { created: true, value: big });
  });
}
