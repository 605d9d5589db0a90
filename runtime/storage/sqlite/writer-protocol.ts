import type { KeyValueWrite } from '../key-value.ts';

/** Messages between the store facade and its writer thread. @internal */
export interface WireEvent {
  readonly seq: number;
  readonly data: string;
  readonly k?: string;
  readonly dedup?: string;
}

export type WriteOp =
  | { readonly t: 'acquire'; readonly pid: string; readonly owner: string }
  | {
      readonly t: 'append';
      readonly pid: string;
      readonly epoch: number;
      readonly events: readonly WireEvent[];
      /** Precondition: [pid, seq, key] must be stored. */
      readonly requires?: readonly [string, number, string];
    }
  | { readonly t: 'snapshot'; readonly pid: string; readonly epoch: number; readonly seq: number; readonly data: string }
  | { readonly t: 'kv'; readonly writes: readonly KeyValueWrite[] }
  | { readonly t: 'putIfAbsent'; readonly table: string; readonly partition: string; readonly key: string; readonly value: string };

export type WriteResult =
  /** `logId`: an append's first row id in the append log (its events have consecutive ids). */
  | { readonly ok: true; readonly epoch?: number; readonly created?: boolean; readonly value?: string; readonly logId?: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly duplicate?: WireEvent };

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
  /** Move once the log holds this many rows (down to half of it). */
  readonly atRows: number;
  /** Move everything once this long passed since the last move. */
  readonly afterMs: number;
  /** At most this many rows per move transaction (an append waits for at most one)... */
  readonly chunk: number;
  /** ...and no more actors once it has run this long. */
  readonly chunkMs: number;
}
