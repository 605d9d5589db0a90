/**
 * The writer thread of the SQLite store. Every batch the facade posts is one transaction and one
 * fsync: that is the group commit. Running here rather than on the event loop keeps the fsync
 * from stalling sockets while it waits on the disk.
 *
 * Appends go to the append log (`jlog`, see pending-log.ts) and are moved into `journal` in
 * chunks between batches, so a commit writes about the bytes of its events instead of a B-tree
 * page per index per actor.
 * @internal
 */
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { PendingLog, type LogRow } from './pending-log.ts';
import { applySchema } from './schema.ts';
import { WAL_GROWING, decodeRequest, encodeResponse, type WireEvent, type WriteOp, type WriteResult, type WriterInit, type WriterResponse } from './writer-protocol.ts';

const init = workerData as WriterInit;
const db = new Database(init.path);
applySchema(db);
db.pragma(`synchronous = ${init.synchronous}`);
// Checkpoints run on the checkpointer thread, not inside our commits (sqlite-checkpointer.ts):
// the store starts it once the WAL grows (a store with little traffic never needs the thread).
// When the WAL restarts from its beginning, a file grown past half the size at which this thread
// checkpoints is cut back to that (so the size check below does not fire again and again); a
// smaller file keeps its blocks, so commits overwrite them instead of growing a file (a growth
// is a metadata change the next fsync has to write as well).
db.pragma('wal_autocheckpoint = 0');
// A log move inserts each actor's rows at its place in `journal` and its two indexes: pages all
// over the file, more than SQLite's default 2 MiB cache holds. 64 MiB keeps the recent ones. A
// move chunk meant to take 2 ms still takes 5-11 ms at 10,000 msg/s (inserts into big indexes),
// and an append waits for at most one.
db.pragma('cache_size = -65536');
db.pragma(`journal_size_limit = ${Math.floor(init.walWriterCheckpointAtBytes / 2)}`);

const q = {
  ownerEpoch: db.prepare<[string], { epoch: number }>('SELECT epoch FROM owners WHERE pid = ?'),
  upsertOwner: db.prepare<[string, string]>(
    'INSERT INTO owners (pid, epoch, owner) VALUES (?, 1, ?) ON CONFLICT (pid) DO UPDATE SET epoch = epoch + 1, owner = excluded.owner',
  ),
  maxSeq: db.prepare<[string], { m: number | null }>('SELECT max(seq) AS m FROM journal WHERE pid = ?'),
  byDedup: db.prepare<[string, string], { seq: number; k: string | null; data: Buffer | string }>('SELECT seq, k, data FROM journal WHERE pid = ? AND dedup = ?'),
  logInsert: db.prepare<[string, number, string | null, string | null, Uint8Array]>('INSERT INTO jlog (pid, seq, k, dedup, data) VALUES (?, ?, ?, ?, ?)'),
  logBounds: db.prepare<[], { lo: number | null; hi: number | null }>('SELECT (SELECT min(id) FROM jlog) AS lo, (SELECT max(id) FROM jlog) AS hi'),
  // Without data: the writer checks seqs and dedup keys; data is read back only for a duplicate.
  logTail: db.prepare<[number], LogRow>('SELECT id, pid, seq, k, dedup, length(data) AS size FROM jlog WHERE id > ? ORDER BY id'),
  logData: db.prepare<[number], { data: Buffer | string }>('SELECT data FROM jlog WHERE id = ?'),
  copyToJournal: db.prepare<[number]>('INSERT OR IGNORE INTO journal (pid, seq, k, dedup, data) SELECT pid, seq, k, dedup, data FROM jlog WHERE id = ?'),
  dropFromLog: db.prepare<[number]>('DELETE FROM jlog WHERE id < ?'),
  putSnapshot: db.prepare<[string, number, Uint8Array]>(
    'INSERT INTO snapshots (pid, seq, data) VALUES (?, ?, ?) ON CONFLICT (pid) DO UPDATE SET seq = excluded.seq, data = excluded.data WHERE excluded.seq >= snapshots.seq',
  ),
  kvPut: db.prepare<[string, string, string, string]>(
    'INSERT INTO kv (tbl, part, k, v) VALUES (?, ?, ?, ?) ON CONFLICT (tbl, part, k) DO UPDATE SET v = excluded.v',
  ),
  kvDelete: db.prepare<[string, string, string]>('DELETE FROM kv WHERE tbl = ? AND part = ? AND k = ?'),
  kvGet: db.prepare<[string, string, string], { v: string }>('SELECT v FROM kv WHERE tbl = ? AND part = ? AND k = ?'),
  kvInsert: db.prepare<[string, string, string, string]>('INSERT INTO kv (tbl, part, k, v) VALUES (?, ?, ?, ?)'),
};

/** SQLite hands back BLOBs as Buffers; rows written before data was binary hold TEXT. */
function toBytes(data: Buffer | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/**
 * Owner epochs and journal heads, cached between batches. Valid only while no other connection
 * committed: `data_version` changes exactly when one did (another node process sharing the
 * file), and then the caches are dropped. Our own writes keep them current.
 */
const epochs = new Map<string, number>();
const heads = new Map<string, number>();
let pending = new PendingLog();
const dataVersion = db.prepare<[], { data_version: number }>('PRAGMA data_version');
let seenVersion = -1;
const CACHE_LIMIT = 200_000;

/** Called inside each write transaction, before any check: the caches then match the file. */
function revalidateCaches(): void {
  // data_version moves only for commits of other connections, never for our own.
  const v = dataVersion.get()!.data_version;
  if (v !== seenVersion || epochs.size > CACHE_LIMIT || heads.size > CACHE_LIMIT) {
    epochs.clear();
    heads.clear();
    seenVersion = v;
    syncPending();
  }
}

/** Takes in rows other processes appended to the log and forgets rows anyone moved out of it. */
function syncPending(): void {
  const { lo, hi } = q.logBounds.get()!;
  if (hi !== null && hi > pending.lastId) for (const row of q.logTail.iterate(pending.lastId)) pending.add(row);
  pending.trimBelow(lo ?? pending.lastId + 1);
}

/** The stored event with this dedup key, if any: in the log (not yet moved) or in the journal. */
function findDedup(pid: string, dedup: string): WireEvent | undefined {
  const row = pending.byDedup(pid, dedup);
  const found = row ? { seq: row.seq, k: row.k, data: q.logData.get(row.id)?.data ?? '' } : q.byDedup.get(pid, dedup);
  if (!found) return undefined;
  return { seq: found.seq, data: toBytes(found.data), ...(found.k === null ? {} : { k: found.k }), dedup };
}

function currentEpoch(pid: string): number | undefined {
  let e = epochs.get(pid);
  if (e === undefined) {
    e = q.ownerEpoch.get(pid)?.epoch;
    if (e !== undefined) epochs.set(pid, e);
  }
  return e;
}

function headOf(pid: string): number {
  let h = heads.get(pid);
  if (h === undefined) {
    h = pending.maxSeq(pid) || (q.maxSeq.get(pid)?.m ?? 0);
    heads.set(pid, h);
  }
  return h;
}

function fenced(pid: string, epoch: number): WriteResult | undefined {
  const current = currentEpoch(pid);
  if (current !== epoch) {
    return { ok: false, code: 'FENCED', message: `epoch ${epoch} of ${pid} is no longer the owner (now ${current ?? 'none'})` };
  }
  return undefined;
}

function apply(op: WriteOp): WriteResult {
  switch (op.t) {
    case 'acquire': {
      q.upsertOwner.run(op.pid, op.owner);
      const epoch = q.ownerEpoch.get(op.pid)!.epoch;
      epochs.set(op.pid, epoch);
      return { ok: true, epoch };
    }
    case 'append': {
      const refused = fenced(op.pid, op.epoch);
      if (refused) return refused;
      // Checked before the seqs: a retried request names the seq its first attempt took. And here
      // rather than left to the unique index, whose error would abort the whole group commit.
      let duplicates: WireEvent[] | undefined;
      for (const e of op.events) {
        const prior = e.dedup === undefined ? undefined : findDedup(op.pid, e.dedup);
        if (prior) (duplicates ??= []).push(prior);
      }
      if (duplicates) return { ok: false, code: 'DUPLICATE', message: 'already stored', duplicates };
      if (op.events.length > 1) {
        const keys = new Set<string>();
        for (const e of op.events) {
          if (e.dedup === undefined) continue;
          if (keys.has(e.dedup)) return { ok: false, code: 'INVALID_ARGUMENT', message: `${op.pid}: dedup key ${e.dedup} twice in one append` };
          keys.add(e.dedup);
        }
      }
      let expected = headOf(op.pid) + 1;
      for (const e of op.events) {
        if (e.seq !== expected) {
          return { ok: false, code: 'SEQ_CONFLICT', message: `${op.pid}: expected seq ${expected}, got ${e.seq}` };
        }
        expected++;
      }
      let logId = 0;
      for (const e of op.events) {
        const k = e.k ?? null;
        const dedup = e.dedup ?? null;
        const id = Number(q.logInsert.run(op.pid, e.seq, k, dedup, e.data).lastInsertRowid);
        pending.add({ id, pid: op.pid, seq: e.seq, k, dedup, size: e.data.byteLength });
        logId ||= id;
      }
      heads.set(op.pid, expected - 1);
      return { ok: true, logId };
    }
    case 'snapshot': {
      const refused = fenced(op.pid, op.epoch);
      if (refused) return refused;
      q.putSnapshot.run(op.pid, op.seq, op.data);
      return { ok: true };
    }
    case 'kv': {
      for (const w of op.writes) {
        if (w.op === 'put') q.kvPut.run(w.table, w.partition, w.key, w.value);
        else q.kvDelete.run(w.table, w.partition, w.key);
      }
      return { ok: true };
    }
    case 'putIfAbsent': {
      const prior = q.kvGet.get(op.table, op.partition, op.key);
      if (prior) return { ok: true, created: false, value: prior.v };
      q.kvInsert.run(op.table, op.partition, op.key, op.value);
      return { ok: true, created: true, value: op.value };
    }
  }
}

// Each op checks before it writes, so a refused op writes nothing and the batch commits the rest.
const runBatch = db.transaction((ops: readonly WriteOp[]) => {
  revalidateCaches();
  return ops.map(apply);
});

/**
 * Moving the log into `journal`, between batches, in transactions of about APPLY_CHUNK rows (an
 * append waits for at most one). Walking the log from its oldest row, each actor met is copied
 * whole (all its logged rows, which then share B-tree pages: the longer rows wait in the log, the
 * fewer pages per row), then everything below the first row not copied is deleted from the log.
 * Due once the log holds APPLY_AT rows or APPLY_AT_BYTES of data (then moved down to half of
 * what it holds) or APPLY_AFTER_MS passed since the last move (then moved completely). The
 * longer rows wait, the more rows of one actor share a page when they move: the disk bytes per
 * event fall with the wait, which is bounded by the memory the readers' log indexes may take.
 */
const { atRows: APPLY_AT, atBytes: APPLY_AT_BYTES, afterMs: APPLY_AFTER_MS, chunk: APPLY_CHUNK, chunkMs: APPLY_CHUNK_MS } = init.logMove;
let applyTarget = -1;
let lastApplyMs = Date.now();
let applyScheduled = false;
let closed = false;

/**
 * Log rows deleted per move transaction: a delete costs about 1 µs a row, and one delete of a
 * whole move (50,000 rows) held the writer, and every append behind it, for 53 ms.
 */
const DROP_CHUNK = 2_000;
/** Every log row with a smaller id is in `journal` already (copied, maybe not yet deleted). */
let copiedBelow = 0;

/**
 * Copies actors' logged rows, oldest first, for about one chunk of rows or time; returns the id
 * below which every row is copied. An actor met in the walk is copied from its oldest uncopied
 * row on, and may be cut off mid-way when time is up (an actor with 100 logged rows took ~2 ms,
 * so whole actors made chunks of 5-11 ms): its remaining rows are newer than the row the walk
 * stopped at, which the next chunk meets again.
 */
function copyChunk(): number {
  const t0 = performance.now();
  let copied = 0;
  const full = (): boolean => copied >= APPLY_CHUNK || (copied > 0 && (copied & 15) === 0 && performance.now() - t0 >= APPLY_CHUNK_MS);
  // Rows below copiedBelow are copied: the walk starts after them, not at the oldest row.
  for (const row of pending.inIdOrder(copiedBelow)) {
    const done = pending.copiedSeq(row.pid);
    if (row.seq <= done) continue;
    if (full()) return row.id;
    const rows = pending.rowsOf(row.pid);
    let last = done;
    for (const r of rows) {
      if (r.seq <= done) continue;
      q.copyToJournal.run(r.id);
      copied++;
      last = r.seq;
      if (full()) break;
    }
    pending.markCopied(row.pid, last);
    if (last < rows[rows.length - 1]!.seq) return row.id;
  }
  return pending.lastId + 1;
}

/** One move transaction: copies a chunk once the copied rows are gone from the log, then deletes a chunk. */
const moveChunk = db.transaction((): void => {
  revalidateCaches();
  if (copiedBelow <= (pending.oldestId ?? Infinity)) copiedBelow = copyChunk();
  const below = Math.min(copiedBelow, pending.idAt(DROP_CHUNK) ?? Infinity);
  q.dropFromLog.run(below);
  pending.trimBelow(below);
});

function scheduleApply(): void {
  if (applyScheduled || closed) return;
  if (applyTarget < 0) {
    if (pending.size >= APPLY_AT || pending.bytes >= APPLY_AT_BYTES) applyTarget = Math.floor(pending.size / 2);
    else if (pending.size > 0 && Date.now() - lastApplyMs >= APPLY_AFTER_MS) applyTarget = 0;
    else return;
  }
  applyScheduled = true;
  setImmediate(applyChunk);
}

function applyChunk(): void {
  applyScheduled = false;
  if (closed) return;
  try {
    if (pending.size > applyTarget) {
      // A move needs no fsync of its own: lost to a power cut, it rolls back whole and the rows
      // are still in the log. The next append batch's fsync makes it durable along the way.
      db.pragma('synchronous = NORMAL');
      try {
        moveChunk.immediate();
      } finally {
        db.pragma(`synchronous = ${init.synchronous}`);
      }
    }
  } catch (err) {
    // Left in the log, where reads still find it; the copy marks may be wrong now, so start over.
    pending = new PendingLog();
    copiedBelow = 0;
    seenVersion = -1;
    reply({ id: 0, error: `log move failed: ${err instanceof Error ? err.message : String(err)}` });
    applyTarget = -1;
    return;
  }
  if (pending.size > applyTarget) {
    applyScheduled = true;
    setImmediate(applyChunk);
  } else {
    applyTarget = -1;
    lastApplyMs = Date.now();
  }
}

// Idle nodes move their log too.
setInterval(scheduleApply, APPLY_AFTER_MS).unref();

// Asks for the checkpointer once the WAL grows. The WAL restarts only when a write begins with
// every frame copied back, which under steady appends the checkpointer never sees (frames keep
// arriving behind it): past the second size this thread copies the few frames left itself, so
// its next transaction restarts the WAL (over the same blocks). Without the checkpointer it
// copies everything here: slower, but the WAL stays bounded.
let askedForCheckpointer = false;
setInterval(() => {
  if (closed) return;
  try {
    const size = statSync(`${init.path}-wal`, { throwIfNoEntry: false })?.size ?? 0;
    if (size > init.walCheckpointerAtBytes && !askedForCheckpointer) {
      askedForCheckpointer = true;
      parentPort!.postMessage(WAL_GROWING);
    }
    if (size > init.walWriterCheckpointAtBytes) db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or gone: the next round tries again.
  }
}, 500).unref();
syncPending();

/** Requests and responses travel as binary buffers, handed over rather than copied (writer-protocol.ts). */
function reply(res: WriterResponse): void {
  const buffer = encodeResponse(res);
  parentPort!.postMessage(buffer, [buffer]);
}

parentPort!.on('message', (raw: string | ArrayBuffer) => {
  if (raw === 'close') {
    closed = true;
    db.close();
    parentPort!.postMessage('closed');
    parentPort!.close(); // lets the thread end, so close() does not wait for its timeout
    return;
  }
  if (typeof raw === 'string') return;
  const req = decodeRequest(raw);
  let res: WriterResponse;
  try {
    const results = runBatch.immediate(req.ops);
    res = { id: req.id, results, movedBelow: pending.oldestId ?? pending.lastId + 1 };
  } catch (err) {
    // A rolled-back batch may have advanced cached heads and logged rows it never wrote.
    epochs.clear();
    heads.clear();
    pending = new PendingLog();
    copiedBelow = 0;
    seenVersion = -1;
    res = { id: req.id, error: err instanceof Error ? `${(err as { code?: string }).code ?? 'ERROR'}: ${err.message}` : String(err) };
  }
  reply(res);
  scheduleApply();
});
