/**
 * The writer thread of the SQLite store. Every batch the facade posts is one transaction and one
 * fsync: that is the group commit. Running here rather than on the event loop keeps the fsync
 * from stalling sockets while it waits on the disk.
 * @internal
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { applySchema } from './schema.ts';
import type { WireEvent, WriteOp, WriteResult, WriterInit, WriterRequest, WriterResponse } from './writer-protocol.ts';

const init = workerData as WriterInit;
const db = new Database(init.path);
applySchema(db);
db.pragma(`synchronous = ${init.synchronous}`);

const q = {
  ownerEpoch: db.prepare<[string], { epoch: number }>('SELECT epoch FROM owners WHERE pid = ?'),
  upsertOwner: db.prepare<[string, string]>(
    'INSERT INTO owners (pid, epoch, owner) VALUES (?, 1, ?) ON CONFLICT (pid) DO UPDATE SET epoch = epoch + 1, owner = excluded.owner',
  ),
  maxSeq: db.prepare<[string], { m: number | null }>('SELECT max(seq) AS m FROM journal WHERE pid = ?'),
  byDedup: db.prepare<[string, string], { seq: number; k: string | null; dedup: string | null; data: string }>(
    'SELECT seq, k, dedup, data FROM journal WHERE pid = ? AND dedup = ?',
  ),
  hasEvent: db.prepare<[string, number, string], { one: number }>('SELECT 1 AS one FROM journal WHERE pid = ? AND seq = ? AND k = ?'),
  insertEvent: db.prepare<[string, number, string | null, string | null, string]>(
    'INSERT INTO journal (pid, seq, k, dedup, data) VALUES (?, ?, ?, ?, ?)',
  ),
  putSnapshot: db.prepare<[string, number, string]>(
    'INSERT INTO snapshots (pid, seq, data) VALUES (?, ?, ?) ON CONFLICT (pid) DO UPDATE SET seq = excluded.seq, data = excluded.data WHERE excluded.seq >= snapshots.seq',
  ),
  kvPut: db.prepare<[string, string, string, string]>(
    'INSERT INTO kv (tbl, part, k, v) VALUES (?, ?, ?, ?) ON CONFLICT (tbl, part, k) DO UPDATE SET v = excluded.v',
  ),
  kvDelete: db.prepare<[string, string, string]>('DELETE FROM kv WHERE tbl = ? AND part = ? AND k = ?'),
  kvGet: db.prepare<[string, string, string], { v: string }>('SELECT v FROM kv WHERE tbl = ? AND part = ? AND k = ?'),
  kvInsert: db.prepare<[string, string, string, string]>('INSERT INTO kv (tbl, part, k, v) VALUES (?, ?, ?, ?)'),
};

/**
 * Owner epochs and journal heads, cached between batches. Valid only while no other connection
 * committed: `data_version` changes exactly when one did (another node process sharing the
 * file), and then the caches are dropped. Our own writes keep them current.
 */
const epochs = new Map<string, number>();
const heads = new Map<string, number>();
const dataVersion = db.prepare<[], { data_version: number }>('PRAGMA data_version');
let seenVersion = -1;
const CACHE_LIMIT = 200_000;

function revalidateCaches(): void {
  const v = dataVersion.get()!.data_version;
  if (v !== seenVersion || epochs.size > CACHE_LIMIT || heads.size > CACHE_LIMIT) {
    epochs.clear();
    heads.clear();
    seenVersion = v;
  }
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
    h = q.maxSeq.get(pid)?.m ?? 0;
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
      if (op.requires && !q.hasEvent.get(op.requires[0], op.requires[1], op.requires[2])) {
        return { ok: false, code: 'REQUIREMENT_MISSING', message: `${op.requires[0]} has no event ${op.requires[1]} with that key` };
      }
      if (op.events.length === 1 && op.events[0]!.dedup !== undefined) {
        const prior = q.byDedup.get(op.pid, op.events[0]!.dedup);
        if (prior) {
          const duplicate: WireEvent = { seq: prior.seq, data: prior.data, ...(prior.k === null ? {} : { k: prior.k }), dedup: op.events[0]!.dedup };
          return { ok: false, code: 'DUPLICATE', message: 'already stored', duplicate };
        }
      }
      if (op.events.length > 1) {
        // Checked here rather than left to the unique index: a constraint error would abort the
        // whole group commit, failing every unrelated append in the batch.
        for (const e of op.events) {
          if (e.dedup !== undefined && q.byDedup.get(op.pid, e.dedup)) {
            return { ok: false, code: 'SEQ_CONFLICT', message: `${op.pid}: dedup key of seq ${e.seq} is already stored` };
          }
        }
      }
      let expected = headOf(op.pid) + 1;
      for (const e of op.events) {
        if (e.seq !== expected) {
          return { ok: false, code: 'SEQ_CONFLICT', message: `${op.pid}: expected seq ${expected}, got ${e.seq}` };
        }
        expected++;
      }
      for (const e of op.events) q.insertEvent.run(op.pid, e.seq, e.k ?? null, e.dedup ?? null, e.data);
      heads.set(op.pid, expected - 1);
      return { ok: true };
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

parentPort!.on('message', (req: WriterRequest | 'close') => {
  if (req === 'close') {
    db.close();
    parentPort!.postMessage('closed');
    parentPort!.close(); // lets the thread end, so close() does not wait for its timeout
    return;
  }
  let res: WriterResponse;
  try {
    res = { id: req.id, results: runBatch.immediate(req.ops) };
    // Our own commit moved data_version too; take it as seen so the caches survive.
    seenVersion = dataVersion.get()!.data_version;
  } catch (err) {
    // A rolled-back batch may have advanced cached heads it never wrote.
    epochs.clear();
    heads.clear();
    res = { id: req.id, error: err instanceof Error ? `${(err as { code?: string }).code ?? 'ERROR'}: ${err.message}` : String(err) };
  }
  parentPort!.postMessage(res);
});
