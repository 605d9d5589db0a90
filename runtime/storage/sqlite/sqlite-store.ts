import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CodedError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { AppendResult, Journal, JournalEvent, Snapshot } from '../journal.ts';
import type { KeyValueRecord, KeyValueStore, KeyValueWrite } from '../key-value.ts';
import { StoreCodes, type Store } from '../store.ts';
import { LogIndex, type LoggedRow } from './log-index.ts';
import { applySchema, decodeKey, encodeKey } from './schema.ts';
import { WAL_GROWING, decodeResponse, encodeRequest, type CheckpointerInit, type LogMoveOptions, type WireEvent, type WriteOp, type WriteResult, type WriterInit, type WriterResponse } from './writer-protocol.ts';

export interface SqliteStoreOptions {
  /** Database file; created with its directory when missing. */
  readonly path: string;
  /** 'fsync' survives power loss; 'os' survives a process kill only (the OS holds the WAL). */
  readonly durability?: 'fsync' | 'os';
  /** Upper bound on operations per group commit. */
  readonly maxBatch?: number;
  /** When the append log moves into the journal table (tests use small values). */
  readonly logMove?: Partial<LogMoveOptions>;
  readonly log: Logger;
}

interface Pending {
  readonly op: WriteOp;
  readonly resolve: (r: WriteResult) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * The store's threads (the writer, the checkpointer). Compiled (dist/, what `npm start` runs) each
 * is plain JavaScript next to this file. From source, a worker does not inherit the parent's
 * loader hooks on Node 20, so it registers tsx itself before importing its module. Dynamic
 * imports only: the eval'd bootstrap is CommonJS or ESM depending on the parent's --input-type.
 */
const COMPILED = import.meta.url.endsWith('.js');
const TSX_BOOTSTRAP = `
  import('node:worker_threads')
    .then(({ workerData }) => import(workerData.tsxApi).then((tsx) => { tsx.register(); return import(workerData.module); }));
`;

function startThread(name: 'sqlite-writer' | 'sqlite-checkpointer', init: WriterInit | CheckpointerInit): Worker {
  const module = new URL(`./${name}.${COMPILED ? 'js' : 'ts'}`, import.meta.url);
  if (COMPILED) return new Worker(module, { workerData: init, name });
  const workerData = { ...init, tsxApi: import.meta.resolve('tsx/esm/api'), module: module.href };
  return new Worker(TSX_BOOTSTRAP, { eval: true, workerData, name });
}

/**
 * How often the checkpointer copies the WAL into the database file; the WAL size at which it is
 * started (SQLite's own default checkpoint size), and the one at which the writer finishes a
 * checkpoint so that the WAL restarts (see sqlite-writer.ts). That last one stalls appends for a
 * database fsync (around 100 ms on the bench box), so it is rare: at 32 MB it came every few
 * seconds at 500 msg/s and held the bench's p99 near 90 ms; the WAL mostly restarts by itself.
 */
const CHECKPOINT_EVERY_MS = 200;
/** Moved log rows forgotten per event-loop turn (about 1 ms). */
const TRIM_ROWS_PER_TURN = 2_000;

/**
 * When the append log moves into the indexed journal (see sqlite-writer.ts). The longer rows wait,
 * the more rows of one actor share a B-tree page when they move, so the disk bytes per event fall
 * with the wait; memory bounds it: the writer holds the log's rows (without data) in its index,
 * here at most 32 MiB of data or 100,000 rows, whichever comes first; a reading process holds only
 * their seqs, ids and keys (log-index.ts).
 */
const LOG_MOVE: LogMoveOptions = { atRows: 100_000, atBytes: 32 * 1024 * 1024, afterMs: 30_000, chunk: 500, chunkMs: 2 };
const WAL_CHECKPOINTER_AT_BYTES = 4 * 1024 * 1024;
const WAL_WRITER_CHECKPOINT_AT_BYTES = 128 * 1024 * 1024;

/**
 * The embedded engine. Reads run on the calling thread against WAL snapshots (microseconds, and
 * they never wait for the writer). Writes queue here and go to one writer thread in batches: while
 * one batch commits, the next one fills, so the fsync cost is shared by everything that arrived
 * meanwhile (group commit) and every promise resolves only after its batch is durable.
 *
 * Journal events are durable once in the append log (`jlog`); the writer moves them into the
 * indexed `journal` later. Each read runs in one read transaction over `journal` plus this
 * connection's index of the log (tailed by id in that same snapshot), so it sees every event
 * exactly once wherever it sits.
 *
 * Several processes may open one file (nodes of a cluster on one box): SQLite serialises their
 * write transactions and the owner epochs in `owners` fence stale activations across processes.
 */
export class SqliteStore implements Store, Journal, KeyValueStore {
  readonly journal: Journal = this;
  readonly kv: KeyValueStore = this;
  readonly describe: string;
  private readonly db: Database.Database;
  private readonly worker: Worker;
  private readonly synchronous: 'FULL' | 'NORMAL';
  private checkpointer: Worker | undefined;
  private readonly maxBatch: number;
  private queue: Pending[] = [];
  private inFlight: Map<number, Pending[]> = new Map();
  private nextId = 1;
  private flushScheduled = false;
  private broken: Error | undefined;
  private closing: Promise<void> | undefined;
  private readonly stmts;
  private readonly pending = new LogIndex();
  private trimTarget = 0;
  private trimScheduled = false;
  private readonly dataVersion;
  private seenVersion = -1;

  constructor(private readonly options: SqliteStoreOptions) {
    mkdirSync(dirname(options.path), { recursive: true });
    this.describe = `sqlite:${options.path}`;
    this.maxBatch = options.maxBatch ?? 4096;
    this.db = new Database(options.path);
    applySchema(this.db);
    this.stmts = {
      read: this.db.prepare<[string, number, number], Row>('SELECT seq, k, dedup, data FROM journal WHERE pid = ? AND seq > ? ORDER BY seq LIMIT ?'),
      readBefore: this.db.prepare<[string, string, number], Row>(
        'SELECT seq, k, dedup, data FROM journal WHERE pid = ? AND k < ? AND k IS NOT NULL ORDER BY k DESC LIMIT ?',
      ),
      readLatest: this.db.prepare<[string, number], Row>('SELECT seq, k, dedup, data FROM journal WHERE pid = ? AND k IS NOT NULL ORDER BY k DESC LIMIT ?'),
      maxSeq: this.db.prepare<[string], { m: number | null }>('SELECT max(seq) AS m FROM journal WHERE pid = ?'),
      snapshot: this.db.prepare<[string], { seq: number; data: Buffer | string }>('SELECT seq, data FROM snapshots WHERE pid = ?'),
      kvGet: this.db.prepare<[string, string, string], { v: string }>('SELECT v FROM kv WHERE tbl = ? AND part = ? AND k = ?'),
      kvList: this.db.prepare<[string, string, number], { k: string; v: string }>('SELECT k, v FROM kv WHERE tbl = ? AND part = ? ORDER BY k LIMIT ?'),
      logBounds: this.db.prepare<[], { lo: number | null; hi: number | null }>('SELECT (SELECT min(id) FROM jlog) AS lo, (SELECT max(id) FROM jlog) AS hi'),
      logTail: this.db.prepare<[number], LoggedRow & { pid: string }>('SELECT id, pid, seq, k FROM jlog WHERE id > ? ORDER BY id'),
      logRow: this.db.prepare<[number], Pick<Row, 'dedup' | 'data'>>('SELECT dedup, data FROM jlog WHERE id = ?'),
      journalRow: this.db.prepare<[string, number], Row>('SELECT seq, k, dedup, data FROM journal WHERE pid = ? AND seq = ?'),
    };
    this.dataVersion = this.db.prepare<[], { data_version: number }>('PRAGMA data_version');
    this.synchronous = options.durability === 'os' ? 'NORMAL' : 'FULL';
    this.worker = startThread('sqlite-writer', {
      path: options.path,
      synchronous: this.synchronous,
      logMove: { ...LOG_MOVE, ...options.logMove },
      walCheckpointerAtBytes: WAL_CHECKPOINTER_AT_BYTES,
      walWriterCheckpointAtBytes: WAL_WRITER_CHECKPOINT_AT_BYTES,
    });
    this.worker.on('message', (res: string | ArrayBuffer) => {
      if (res === WAL_GROWING) this.startCheckpointer();
      else if (typeof res !== 'string') this.onResponse(decodeResponse(res));
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`sqlite writer exited with code ${code}`));
    });
  }

  // ---- Journal

  async acquire(persistenceId: string, owner: string): Promise<number> {
    const r = await this.submit({ t: 'acquire', pid: persistenceId, owner });
    return expectOk(r).epoch!;
  }

  /** Every append checks its epoch in its own transaction, so there is nothing to hand over. */
  async release(): Promise<void> {}

  async append(persistenceId: string, epoch: number, events: readonly JournalEvent[]): Promise<AppendResult> {
    const wire: WireEvent[] = events.map((e) => ({
      seq: e.seq,
      data: e.data,
      ...(e.key === undefined ? {} : { k: encodeKey(e.key) }),
      ...(e.dedupKey === undefined ? {} : { dedup: e.dedupKey }),
    }));
    const r = await this.submit({ t: 'append', pid: persistenceId, epoch, events: wire });
    if (!r.ok && r.duplicates) return { ok: false, duplicates: r.duplicates.map(fromWire) };
    expectOk(r);
    return { ok: true };
  }

  // A pid's rows in the log are its newest; `journal` may hold copies of some of them (copied,
  // not yet deleted from the log), so from `journal` only rows older than the logged ones count.

  async read(persistenceId: string, afterSeq: number, limit: number): Promise<JournalEvent[]> {
    return this.readRows(() => {
      const firstLogged = this.pending.firstSeq(persistenceId);
      const stored = afterSeq + 1 >= firstLogged ? [] : this.stmts.read.all(persistenceId, afterSeq, limit).filter((r) => r.seq < firstLogged);
      if (stored.length >= limit) return stored;
      return [...stored, ...this.loggedRows(persistenceId, this.pending.after(persistenceId, afterSeq, limit - stored.length))];
    });
  }

  async readBefore(persistenceId: string, beforeKey: bigint | undefined, limit: number): Promise<JournalEvent[]> {
    return this.readRows(() => {
      let before = beforeKey === undefined ? undefined : encodeKey(beforeKey);
      const logged = this.loggedRows(persistenceId, this.pending.keyedBefore(persistenceId, before, limit));
      if (logged.length >= limit) return logged;
      // Older than every logged row, so no row comes twice.
      const oldestLogged = this.pending.oldestKey(persistenceId);
      if (oldestLogged !== undefined && (before === undefined || oldestLogged < before)) before = oldestLogged;
      const rest = limit - logged.length;
      const stored = before === undefined ? this.stmts.readLatest.all(persistenceId, rest) : this.stmts.readBefore.all(persistenceId, before, rest);
      return [...logged, ...stored];
    });
  }

  async highestSeq(persistenceId: string): Promise<number> {
    this.ensureOpen();
    this.syncPending();
    return this.pending.maxSeq(persistenceId) || (this.stmts.maxSeq.get(persistenceId)?.m ?? 0);
  }

  async saveSnapshot(persistenceId: string, epoch: number, snapshot: Snapshot): Promise<void> {
    expectOk(await this.submit({ t: 'snapshot', pid: persistenceId, epoch, seq: snapshot.seq, data: snapshot.data }));
  }

  async loadSnapshot(persistenceId: string): Promise<Snapshot | undefined> {
    this.ensureOpen();
    const row = this.stmts.snapshot.get(persistenceId);
    return row ? { seq: row.seq, data: toBytes(row.data) } : undefined;
  }

  // ---- Key-value

  async get(table: string, partition: string, key: string): Promise<string | undefined> {
    this.ensureOpen();
    return this.stmts.kvGet.get(table, partition, key)?.v;
  }

  async list(table: string, partition: string, limit = 10_000): Promise<KeyValueRecord[]> {
    this.ensureOpen();
    return this.stmts.kvList.all(table, partition, limit).map((r) => ({ key: r.k, value: r.v }));
  }

  async write(writes: readonly KeyValueWrite[]): Promise<void> {
    if (writes.length === 0) return;
    expectOk(await this.submit({ t: 'kv', writes }));
  }

  async putIfAbsent(table: string, partition: string, key: string, value: string): Promise<{ created: boolean; value: string }> {
    const r = expectOk(await this.submit({ t: 'putIfAbsent', table, partition, key, value }));
    return { created: r.created!, value: r.value! };
  }

  // ---- Lifecycle

  close(): Promise<void> {
    this.closing ??= (async () => {
      const deadline = Date.now() + 10_000;
      while ((this.queue.length > 0 || this.inFlight.size > 0) && !this.broken && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
      if (this.checkpointer) await stopThread(this.checkpointer);
      await stopThread(this.worker);
      this.db.close();
    })();
    return this.closing;
  }

  // ---- Internals

  private submit(op: WriteOp): Promise<WriteResult> {
    if (this.broken) return Promise.reject(unavailable(this.broken));
    if (this.closing) return Promise.reject(new CodedError(StoreCodes.UNAVAILABLE, 'store is closing'));
    return new Promise<WriteResult>((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (this.inFlight.size === 0) this.scheduleFlush();
    });
  }

  /** Sends what queued up as one batch; called again as soon as the previous batch committed. */
  private flush(): void {
    if (this.inFlight.size > 0 || this.queue.length === 0 || this.broken) return;
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
    const id = this.nextId++;
    this.inFlight.set(id, batch);
    // One binary buffer, handed over rather than cloned (see writer-protocol.ts).
    const buffer = encodeRequest({ id, ops: batch.map((p) => p.op) });
    this.worker.postMessage(buffer, [buffer]);
  }

  private startCheckpointer(): void {
    if (this.checkpointer || this.closing) return;
    const t = startThread('sqlite-checkpointer', { path: this.options.path, synchronous: this.synchronous, everyMs: CHECKPOINT_EVERY_MS });
    // Not fatal: the writer keeps the WAL bounded without it, checkpointing by itself.
    t.on('message', (m: string) => {
      if (m !== 'closed') this.options.log.warn({ store: this.describe, reason: m }, 'sqlite checkpoint failed');
    });
    t.on('error', (err) => this.options.log.warn({ err, store: this.describe }, 'sqlite checkpointer stopped; the writer checkpoints by itself'));
    this.checkpointer = t;
  }

  private onResponse(res: WriterResponse): void {
    if (res.id === 0 && 'error' in res) {
      this.options.log.warn({ error: res.error }, 'sqlite log move failed; will retry');
      return;
    }
    const batch = this.inFlight.get(res.id);
    this.inFlight.delete(res.id);
    if (batch) {
      if ('error' in res) {
        this.options.log.error({ error: res.error, ops: batch.length }, 'sqlite batch failed');
        const err = new CodedError(StoreCodes.UNAVAILABLE, `storage write failed: ${res.error}`);
        for (const p of batch) p.reject(err);
      } else {
        this.learnAppended(batch, res.results);
        this.trimLog(res.movedBelow);
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(res.results[i]!);
      }
    }
    // Not at once: what the callbacks above submit in this turn joins the same batch.
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    this.options.log.error({ err }, 'sqlite writer failed; store unavailable');
    const e = unavailable(err);
    for (const batch of this.inFlight.values()) for (const p of batch) p.reject(e);
    for (const p of this.queue) p.reject(e);
    this.inFlight.clear();
    this.queue = [];
  }

  private ensureOpen(): void {
    if (this.broken) throw unavailable(this.broken);
  }

  /**
   * Our own appends enter the log index from the writer's answer (we hold their data already), so
   * a read normally finds nothing new to fetch. Only while ids follow on without a gap: rows of
   * another process in between are left for the next read's tail to fetch in id order.
   */
  private learnAppended(batch: readonly Pending[], results: readonly WriteResult[]): void {
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!.op;
      const r = results[i]!;
      if (op.t !== 'append' || !r.ok || r.logId === undefined) continue;
      if (r.logId <= this.pending.lastId) continue; // a read fetched them first
      if (r.logId !== this.pending.lastId + 1) return;
      op.events.forEach((e, j) => this.pending.add(r.logId! + j, op.pid, e.seq, e.k ?? null));
    }
  }

  /**
   * Before a read: fetches log rows this connection has not seen (another process's, or ours
   * before the writer's answer arrived) and forgets rows moved out of the log. No read
   * transaction is needed: rows leave the log only after they were copied into `journal`, and
   * rows appended after this point are simply not seen yet, as if the read had run a moment
   * earlier.
   */
  private syncPending(): void {
    // Changes only when another connection (our writer thread, another process) committed.
    const version = this.dataVersion.get()!.data_version;
    if (version === this.seenVersion) return;
    this.seenVersion = version;
    const { lo, hi } = this.stmts.logBounds.get()!;
    if (hi !== null && hi > this.pending.lastId) for (const row of this.stmts.logTail.iterate(this.pending.lastId)) this.pending.add(row.id, row.pid, row.seq, row.k);
    // Rows another process moved out: a pid's logged rows must stay its newest (see read()).
    this.trimLog(lo ?? this.pending.lastId + 1);
  }

  /** Forgets moved rows a few thousand per turn, so a big move never holds up the event loop. */
  private trimLog(below: number): void {
    if (below > this.trimTarget) this.trimTarget = below;
    if (this.trimScheduled) return;
    if (this.pending.trimBelow(this.trimTarget, TRIM_ROWS_PER_TURN)) return;
    this.trimScheduled = true;
    setImmediate(() => {
      this.trimScheduled = false;
      this.trimLog(this.trimTarget);
    });
  }

  /**
   * The stored rows behind logged ones, fetched by log id. A row the writer has moved and deleted
   * since this connection's index last looked is in `journal` already (it is deleted only after it
   * was copied, in an earlier commit), so that is where a miss is read.
   */
  private loggedRows(pid: string, logged: readonly LoggedRow[]): Row[] {
    return logged.map((r) => {
      const row = this.stmts.logRow.get(r.id);
      if (row) return { seq: r.seq, k: r.k, dedup: row.dedup, data: row.data };
      const moved = this.stmts.journalRow.get(pid, r.seq);
      if (!moved) throw new CodedError(StoreCodes.UNAVAILABLE, `journal row ${pid}#${r.seq} is in neither the log nor the journal`);
      return moved;
    });
  }

  private readRows(query: () => readonly Row[]): JournalEvent[] {
    this.ensureOpen();
    this.syncPending();
    return query().map((r) => fromWire({ seq: r.seq, data: toBytes(r.data), ...(r.k === null ? {} : { k: r.k }), ...(r.dedup === null ? {} : { dedup: r.dedup }) }));
  }
}

interface Row {
  readonly seq: number;
  readonly k: string | null;
  readonly dedup: string | null;
  /** A Buffer from SQLite (or a string, for rows written before data was binary), or a logged row's bytes. */
  readonly data: Uint8Array | string;
}

/** Rows written before event data was binary are TEXT (JSON): handed back as their UTF-8 bytes. */
function toBytes(data: Uint8Array | string): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** Asks a store thread to close its connection and end; terminates it after 5 s. */
function stopThread(worker: Worker): Promise<void> {
  if (worker.threadId === -1) return Promise.resolve(); // it ended already
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => void worker.terminate().then(() => resolve()), 5_000);
    worker.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    worker.postMessage('close');
  });
}

function fromWire(e: WireEvent): JournalEvent {
  const key = e.k === undefined ? undefined : decodeKey(e.k);
  return { seq: e.seq, data: e.data, ...(key === undefined ? {} : { key }), ...(e.dedup === undefined ? {} : { dedupKey: e.dedup }) };
}

function expectOk(r: WriteResult): Extract<WriteResult, { ok: true }> {
  if (r.ok) return r;
  throw new CodedError(r.code, r.message);
}

function unavailable(cause: Error): CodedError {
  return new CodedError(StoreCodes.UNAVAILABLE, 'storage is unavailable', { cause });
}
