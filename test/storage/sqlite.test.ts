import test from 'ava';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CodedError } from '../../runtime/errors.ts';
import { silentLogger } from '../../runtime/log.ts';
import { SqliteStore } from '../../runtime/storage/sqlite/sqlite-store.ts';
import { StoreCodes } from '../../runtime/storage/store.ts';
import { runStoreContract, textual } from './contract.ts';

const dirs: string[] = [];
test.after.always(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function freshPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-sqlite-'));
  dirs.push(dir);
  return join(dir, 'parley.db');
}

runStoreContract('sqlite', async () => new SqliteStore({ path: freshPath(), log: silentLogger() }));
// Again with the append log moved into the journal table almost at once, one row per transaction:
// every contract holds whichever table an event sits in.
runStoreContract('sqlite, log moved at once', async () =>
  new SqliteStore({ path: freshPath(), log: silentLogger(), logMove: { atRows: 2, afterMs: 5, chunk: 1 } }),
);

function countRows(path: string, table: 'jlog' | 'journal'): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function waitFor(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('sqlite: reads see each event once while the append log moves into the journal, from either process', async (t) => {
  const path = freshPath();
  // Only `mover` stores move the log (soon after each append); A and B never do on their own.
  const mover = () => new SqliteStore({ path, log: silentLogger(), logMove: { atRows: 1_000_000, afterMs: 20, chunk: 7 } });
  const still = () => new SqliteStore({ path, log: silentLogger(), logMove: { atRows: 1_000_000, afterMs: 3_600_000, chunk: 7 } });
  const pid = 'channel/moving';
  const event = (seq: number) => ({ seq, data: `e${seq}`, key: BigInt(seq) * 10n, dedupKey: `d${seq}` });
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const first = mover();
  await textual(first.journal).append(pid, await textual(first.journal).acquire(pid, 'first'), range(1, 50).map(event));
  await waitFor('the first 50 moved', () => countRows(path, 'jlog') === 0);
  await first.close();
  const a = still();
  const b = still();
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const epoch = await textual(a.journal).acquire(pid, 'a');
  await textual(a.journal).append(pid, epoch, range(51, 100).map(event));
  t.is(countRows(path, 'jlog'), 50, 'seqs 51-100 are in the log, 1-50 in the journal');

  const check = async (store: SqliteStore, top: number, label: string) => {
    const seqs = (events: { seq: number }[]) => events.map((e) => e.seq);
    t.deepEqual(seqs(await textual(store.journal).read(pid, 0, 1_000)), range(1, top), `${label}: read all`);
    t.deepEqual(seqs(await textual(store.journal).read(pid, 45, 10)), range(46, 55), `${label}: read across the boundary`);
    t.deepEqual(seqs(await textual(store.journal).read(pid, 60, 5)), range(61, 65), `${label}: read in the log part`);
    t.deepEqual(seqs(await textual(store.journal).readBefore(pid, undefined, 3)), [top, top - 1, top - 2], `${label}: newest first`);
    t.deepEqual(seqs(await textual(store.journal).readBefore(pid, 530n, 6)), [52, 51, 50, 49, 48, 47], `${label}: page across the boundary`);
    t.is(await textual(store.journal).highestSeq(pid), top, `${label}: head`);
    t.deepEqual(await textual(store.journal).append(pid, 1, [{ ...event(top + 1), dedupKey: 'd20' }]).catch((e: CodedError) => e.code), 'FENCED', `${label}: a stale epoch hears FENCED first`);
    const again = await textual(store.journal).append(pid, epoch, [event(70)]).catch((err: unknown) => err);
    t.true(again instanceof CodedError || (typeof again === 'object' && again !== null && 'ok' in again), `${label}: repeat answered`);
  };
  await check(a, 100, 'writer process, mixed');
  await check(b, 100, 'other process, mixed');

  // B takes over: its head comes from rows A left in the log.
  const eb = await textual(b.journal).acquire(pid, 'b');
  await t.throwsAsync(textual(b.journal).append(pid, eb, [{ seq: 100, data: 'x' }]), { code: StoreCodes.SEQ_CONFLICT });
  const dup = await textual(b.journal).append(pid, eb, [event(70)]);
  t.deepEqual(dup, { ok: false, duplicates: [event(70)] }, 'a dedup key in the log is found by the other process');
  t.deepEqual(await textual(b.journal).append(pid, eb, [{ ...event(101), dedupKey: 'd20' }]), { ok: false, duplicates: [event(20)] }, 'and one in the journal');
  await textual(b.journal).append(pid, eb, [event(101)]);
  const last = mover();
  t.teardown(() => last.close());
  await waitFor('everything moved, by a third process', () => countRows(path, 'jlog') === 0);
  t.is(countRows(path, 'journal'), 101);
  await check(a, 101, 'writer process, moved');
  await check(b, 101, 'other process, moved');
});

const STORE_MODULE = fileURLToPath(new URL('../../runtime/storage/sqlite/sqlite-store.ts', import.meta.url));
const LOG_MODULE = fileURLToPath(new URL('../../runtime/log.ts', import.meta.url));

/**
 * The child appends one event at a time and prints a seq only after its promise resolved, i.e.
 * once the store called it durable. Plain CommonJS: the child gets tsx for the imports, not for
 * `-e`, and `--input-type=module` would leak into the store's writer worker through execArgv.
 */
const APPENDER = `(async () => {
  const { SqliteStore } = await import(process.env.STORE_MODULE);
  const { silentLogger } = await import(process.env.LOG_MODULE);
  const store = new SqliteStore({ path: process.env.DB_PATH, log: silentLogger() });
  const epoch = await store.journal.acquire('crash/victim', 'child');
  process.stdout.write('ready\\n');
  for (let seq = 1; seq <= 200; seq++) {
    await store.journal.append('crash/victim', epoch, [{ seq, data: Buffer.from('event-' + seq), key: BigInt(seq) * 1000n }]);
    process.stdout.write(seq + '\\n');
  }
  await store.close();
  process.stdout.write('done\\n');
})();`;

test('sqlite: every append acked before kill -9 is there after reopen', async (t) => {
  const path = freshPath();
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', APPENDER], {
    env: { ...process.env, STORE_MODULE, LOG_MODULE, DB_PATH: path },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: number[] = [];
  let buffered = '';
  const killAfter = 40;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) if (/^\d+$/.test(line)) acked.push(Number(line));
    // Killed from inside the handler: the child is mid-stream, with appends in flight.
    if (acked.length >= killAfter && child.exitCode === null && !child.killed) child.kill('SIGKILL');
  });
  const signal = await exited;
  t.is(signal, 'SIGKILL');
  t.true(acked.length >= killAfter);
  t.true(acked.length < 200, 'the kill landed before the child finished');

  const store = new SqliteStore({ path, log: silentLogger() });
  t.teardown(() => store.close());
  const stored = await textual(store.journal).read('crash/victim', 0, 1000);
  const seqs = stored.map((e) => e.seq);
  for (const seq of acked) t.true(seqs.includes(seq), `acked seq ${seq} survived`);
  // Whatever landed beyond the acks is still a gap-free prefix.
  t.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1));
  t.deepEqual(stored[0], { seq: 1, data: 'event-1', key: 1000n });
  // The log continues where it stopped, under a new owner.
  const epoch = await textual(store.journal).acquire('crash/victim', 'after-crash');
  await textual(store.journal).append('crash/victim', epoch, [{ seq: seqs.length + 1, data: 'after' }]);
  t.is(await textual(store.journal).highestSeq('crash/victim'), seqs.length + 1);
});

test('sqlite: a growing WAL is copied into the database file by the checkpointer while appends go on; nothing is lost', async (t) => {
  const path = freshPath();
  const store = new SqliteStore({ path, log: silentLogger() });
  const dbBytes = () => statSync(path).size;
  const before = dbBytes();
  const epoch = await textual(store.journal).acquire('big/one', 'test');
  const text = 'x'.repeat(20_000);
  // About 8 MB through the WAL, past the 4 MB at which the checkpointer starts. The writer never
  // checkpoints on its own below 128 MB of WAL, so only the checkpointer grows the file.
  const total = 400;
  for (let seq = 1; seq <= total; seq += 20) {
    await textual(store.journal).append('big/one', epoch, Array.from({ length: 20 }, (_, i) => ({ seq: seq + i, data: `${seq + i}:${text}` })));
  }
  const deadline = Date.now() + 15_000;
  while (dbBytes() < before + 4_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.true(dbBytes() >= before + 4_000_000, `the database file grew by ${dbBytes() - before} bytes`);
  await textual(store.journal).append('big/one', epoch, [{ seq: total + 1, data: 'after the checkpoint' }]);
  await store.close();

  const again = new SqliteStore({ path, log: silentLogger() });
  t.teardown(() => again.close());
  const events = await textual(again.journal).read('big/one', 0, 1000);
  t.deepEqual(events.map((e) => e.seq), Array.from({ length: total + 1 }, (_, i) => i + 1));
  t.is(events[total - 1]!.data, `${total}:${text}`);
  t.is(events[total]!.data, 'after the checkpoint');
});

test('sqlite: two stores on one file (two cluster processes) fence each other', async (t) => {
  const path = freshPath();
  const a = new SqliteStore({ path, log: silentLogger() });
  const b = new SqliteStore({ path, log: silentLogger() });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const pid = 'shared/actor';
  const ea = await textual(a.journal).acquire(pid, 'node-a');
  await textual(a.journal).append(pid, ea, [{ seq: 1, data: 'from a' }]);
  // B takes over. A's writer has cached A's epoch; it must notice B's commit and refuse.
  const eb = await textual(b.journal).acquire(pid, 'node-b');
  t.true(eb > ea);
  const refused = await t.throwsAsync(textual(a.journal).append(pid, ea, [{ seq: 2, data: 'stale a' }]), { instanceOf: CodedError });
  t.is(refused.code, StoreCodes.FENCED);
  await t.throwsAsync(textual(a.journal).saveSnapshot(pid, ea, { seq: 1, data: 'stale' }), { code: StoreCodes.FENCED });
  // B continues A's log without a gap, and A reads what B wrote.
  await textual(b.journal).append(pid, eb, [{ seq: 2, data: 'from b' }]);
  await t.throwsAsync(textual(b.journal).append(pid, eb, [{ seq: 2, data: 'again' }]), { code: StoreCodes.SEQ_CONFLICT });
  t.deepEqual((await textual(a.journal).read(pid, 0, 10)).map((e) => e.data), ['from a', 'from b']);
  t.is(await textual(a.journal).highestSeq(pid), 2);
  // And back: A re-acquires; B's cached head and epoch are now stale and must be revalidated.
  const ea2 = await textual(a.journal).acquire(pid, 'node-a');
  await textual(a.journal).append(pid, ea2, [{ seq: 3, data: 'a again' }]);
  await t.throwsAsync(textual(b.journal).append(pid, eb, [{ seq: 4, data: 'stale b' }]), { code: StoreCodes.FENCED });
  await t.throwsAsync(textual(a.journal).append(pid, ea2, [{ seq: 3, data: 'repeat' }]), { code: StoreCodes.SEQ_CONFLICT });
  t.is(await textual(b.journal).highestSeq(pid), 3);
});

test('sqlite - a multi-event append repeating a stored dedup key is answered alone; the rest of its group commit lands', async (t) => {
  const store = new SqliteStore({ path: freshPath(), log: silentLogger() });
  try {
    const journal = textual(store.journal);
    const e1 = await journal.acquire('a', 'n');
    const e2 = await journal.acquire('b', 'n');
    await journal.append('a', e1, [{ seq: 1, data: 'x', dedupKey: 'k' }]);
    const [multi, other] = await Promise.all([
      journal.append('a', e1, [
        { seq: 2, data: 'y', dedupKey: 'k' },
        { seq: 3, data: 'z' },
      ]),
      journal.append('b', e2, [{ seq: 1, data: 'w' }]),
    ]);
    t.deepEqual(multi, { ok: false, duplicates: [{ seq: 1, data: 'x', dedupKey: 'k' }] });
    t.deepEqual(other, { ok: true });
    t.is(await journal.highestSeq('a'), 1);
    t.is(await journal.highestSeq('b'), 1);
  } finally {
    await store.close();
  }
});
