import type { KeyValueWrite } from '../key-value.ts';
import { WireReader, WireWriter } from './wire.ts';

/** Messages between the store facade and its writer thread. @internal */
export interface WireEvent {
  readonly seq: number;
  readonly data: Uint8Array;
  /** The event key in the journal's text form (see schema.ts encodeKey). */
  readonly k?: string;
  readonly dedup?: string;
}

export type WriteOp =
  | { readonly t: 'acquire'; readonly pid: string; readonly owner: string }
  | { readonly t: 'append'; readonly pid: string; readonly epoch: number; readonly events: readonly WireEvent[] }
  | { readonly t: 'snapshot'; readonly pid: string; readonly epoch: number; readonly seq: number; readonly data: Uint8Array }
  | { readonly t: 'kv'; readonly writes: readonly KeyValueWrite[] }
  | { readonly t: 'putIfAbsent'; readonly table: string; readonly partition: string; readonly key: string; readonly value: string };

export type WriteResult =
  | { readonly ok: true; readonly epoch?: number; readonly created?: boolean; readonly value?: string; /** An append's first row id in the append log. */ readonly logId?: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly duplicates?: readonly WireEvent[] };

export interface WriterRequest {
  readonly id: number;
  readonly ops: readonly WriteOp[];
}

/** Sent by the writer, once, when its WAL first passes `walCheckpointerAtBytes`. */
export const WAL_GROWING = 'wal-growing';

export type WriterResponse =
  /** `movedBelow`: every log row with a smaller id is in `journal` and gone from the log. */
  | { readonly id: number; readonly results: readonly WriteResult[]; readonly movedBelow: number }
  | { readonly id: number; readonly error: string };

export interface WriterInit {
  readonly path: string;
  readonly synchronous: 'FULL' | 'NORMAL';
  readonly logMove: LogMoveOptions;
  /**
   * WAL sizes: past the first the writer asks for the checkpointer thread (the message
   * WAL_GROWING; see sqlite-checkpointer.ts); past the second it checkpoints by itself, so that
   * the WAL restarts.
   */
  readonly walCheckpointerAtBytes: number;
  readonly walWriterCheckpointAtBytes: number;
}

export interface CheckpointerInit {
  readonly path: string;
  readonly synchronous: 'FULL' | 'NORMAL';
  /** How often to copy the WAL back into the database file. */
  readonly everyMs: number;
}

/** When the writer moves the append log into `journal` (see sqlite-writer.ts). */
export interface LogMoveOptions {
  /** Move once the log holds this many rows (down to half of it)... */
  readonly atRows: number;
  /** ...or this many bytes of event data (down to half of it). */
  readonly atBytes: number;
  /** Move everything once this long passed since the last move. */
  readonly afterMs: number;
  /** At most this many rows per move transaction (an append waits for at most one)... */
  readonly chunk: number;
  /** ...and no more actors once it has run this long. */
  readonly chunkMs: number;
}

// ---- Encoding (op and result tags are part of this file only: both threads load it)

const OP = { acquire: 1, append: 2, snapshot: 3, kv: 4, putIfAbsent: 5 } as const;
const HAS_KEY = 1;
const HAS_DEDUP = 2;

function writeEvent(w: WireWriter, e: WireEvent): void {
  w.num(e.seq).u8((e.k === undefined ? 0 : HAS_KEY) | (e.dedup === undefined ? 0 : HAS_DEDUP));
  if (e.k !== undefined) w.str(e.k);
  if (e.dedup !== undefined) w.str(e.dedup);
  w.bytes(e.data);
}

function readEvent(r: WireReader): WireEvent {
  const seq = r.num();
  const flags = r.u8();
  const k = flags & HAS_KEY ? r.str() : undefined;
  const dedup = flags & HAS_DEDUP ? r.str() : undefined;
  const data = r.bytes();
  return { seq, data, ...(k === undefined ? {} : { k }), ...(dedup === undefined ? {} : { dedup }) };
}

export function encodeRequest(req: WriterRequest): ArrayBuffer {
  const w = new WireWriter();
  w.u32(req.id).u32(req.ops.length);
  for (const op of req.ops) {
    switch (op.t) {
      case 'acquire':
        w.u8(OP.acquire).str(op.pid).str(op.owner);
        break;
      case 'append':
        w.u8(OP.append).str(op.pid).num(op.epoch).u32(op.events.length);
        for (const e of op.events) writeEvent(w, e);
        break;
      case 'snapshot':
        w.u8(OP.snapshot).str(op.pid).num(op.epoch).num(op.seq).bytes(op.data);
        break;
      case 'kv':
        w.u8(OP.kv).u32(op.writes.length);
        for (const x of op.writes) {
          w.u8(x.op === 'put' ? 1 : 0).str(x.table).str(x.partition).str(x.key);
          if (x.op === 'put') w.str(x.value);
        }
        break;
      case 'putIfAbsent':
        w.u8(OP.putIfAbsent).str(op.table).str(op.partition).str(op.key).str(op.value);
        break;
    }
  }
  return w.finish();
}

export function decodeRequest(buffer: ArrayBuffer): WriterRequest {
  const r = new WireReader(buffer);
  const id = r.u32();
  const n = r.u32();
  const ops: WriteOp[] = [];
  for (let i = 0; i < n; i++) {
    const tag = r.u8();
    switch (tag) {
      case OP.acquire:
        ops.push({ t: 'acquire', pid: r.str(), owner: r.str() });
        break;
      case OP.append: {
        const pid = r.str();
        const epoch = r.num();
        const count = r.u32();
        const events: WireEvent[] = [];
        for (let j = 0; j < count; j++) events.push(readEvent(r));
        ops.push({ t: 'append', pid, epoch, events });
        break;
      }
      case OP.snapshot:
        ops.push({ t: 'snapshot', pid: r.str(), epoch: r.num(), seq: r.num(), data: r.bytes() });
        break;
      case OP.kv: {
        const count = r.u32();
        const writes: KeyValueWrite[] = [];
        for (let j = 0; j < count; j++) {
          const put = r.u8() === 1;
          const table = r.str();
          const partition = r.str();
          const key = r.str();
          writes.push(put ? { op: 'put', table, partition, key, value: r.str() } : { op: 'delete', table, partition, key });
        }
        ops.push({ t: 'kv', writes });
        break;
      }
      case OP.putIfAbsent:
        ops.push({ t: 'putIfAbsent', table: r.str(), partition: r.str(), key: r.str(), value: r.str() });
        break;
      default:
        throw new Error(`unknown writer op ${tag}`);
    }
  }
  return { id, ops };
}

const RES = { ok: 0, epoch: 1, created: 2, logId: 3, refused: 4, duplicates: 5, batchError: 6 } as const;

export function encodeResponse(res: WriterResponse): ArrayBuffer {
  const w = new WireWriter(256);
  w.u32(res.id);
  if ('error' in res) return w.u8(RES.batchError).str(res.error).finish();
  w.u8(RES.ok).num(res.movedBelow).u32(res.results.length);
  for (const r of res.results) {
    if (!r.ok) {
      if (r.duplicates) {
        w.u8(RES.duplicates).u32(r.duplicates.length);
        for (const e of r.duplicates) writeEvent(w, e);
      } else {
        w.u8(RES.refused).str(r.code).str(r.message);
      }
    } else if (r.logId !== undefined) w.u8(RES.logId).num(r.logId);
    else if (r.epoch !== undefined) w.u8(RES.epoch).num(r.epoch);
    else if (r.created !== undefined) w.u8(RES.created).u8(r.created ? 1 : 0).str(r.value ?? '');
    else w.u8(RES.ok);
  }
  return w.finish();
}

export function decodeResponse(buffer: ArrayBuffer): WriterResponse {
  const r = new WireReader(buffer);
  const id = r.u32();
  if (r.u8() === RES.batchError) return { id, error: r.str() };
  const movedBelow = r.num();
  const n = r.u32();
  const results: WriteResult[] = [];
  for (let i = 0; i < n; i++) {
    const tag = r.u8();
    switch (tag) {
      case RES.ok:
        results.push({ ok: true });
        break;
      case RES.logId:
        results.push({ ok: true, logId: r.num() });
        break;
      case RES.epoch:
        results.push({ ok: true, epoch: r.num() });
        break;
      case RES.created: {
        const created = r.u8() === 1;
        results.push({ ok: true, created, value: r.str() });
        break;
      }
      case RES.refused:
        results.push({ ok: false, code: r.str(), message: r.str() });
        break;
      case RES.duplicates: {
        const count = r.u32();
        const duplicates: WireEvent[] = [];
        for (let j = 0; j < count; j++) duplicates.push(readEvent(r));
        results.push({ ok: false, code: 'DUPLICATE', message: 'already stored', duplicates });
        break;
      }
      default:
        throw new Error(`unknown writer result ${tag}`);
    }
  }
  return { id, results, movedBelow };
}
