/**
 * An append-only event log per persistence id (an actor identity such as "kind/key").
 *
 * - `seq` is gap-free per id, starting at 1; an append names the seq it writes and is refused
 *   (SEQ_CONFLICT) unless it is exactly the next one.
 * - `acquire` hands out an ever-growing owner epoch per id. An append carries the epoch of the
 *   activation that writes it and is refused (FENCED) once a newer epoch was acquired: two
 *   activations of one actor can never both write, whatever the clocks say.
 * - An event may carry a `dedupKey`, unique per id: appending it again returns the stored event
 *   instead (`duplicate`), which is what makes retried requests idempotent.
 * - An event may carry a numeric `key` that grows with `seq` (a time-sortable id); events can be
 *   paged newest-first by it.
 * - An append's promise resolves only once the write is durable.
 */
export interface JournalEvent {
  readonly seq: number;
  readonly data: string;
  readonly key?: bigint;
  readonly dedupKey?: string;
}

export type AppendResult =
  | { readonly ok: true }
  /** Only for a single-event append whose dedupKey was already stored. */
  | { readonly ok: false; readonly duplicate: JournalEvent };

/** A precondition: the append is applied only if this event is stored (same seq and key). */
export interface EventRef {
  readonly persistenceId: string;
  readonly seq: number;
  readonly key: bigint;
}

export interface AppendOptions {
  /** Refuse the append (REQUIREMENT_MISSING) unless this event is stored by the time it applies. */
  readonly requires?: EventRef;
}

export interface Snapshot {
  readonly seq: number;
  readonly data: string;
}

export interface Journal {
  /**
   * True when this process's appends are applied in submission order (one ordered writer, as in
   * SQLite): an append whose `requires` names an earlier, not yet durable append of this process
   * can then be submitted at once and lands in the same group commit. False (networked stores):
   * submit it only after the required event is durable.
   */
  readonly orderedWrites: boolean;
  /** Claims ownership for a new activation; every older epoch is fenced from now on. */
  acquire(persistenceId: string, owner: string): Promise<number>;
  append(persistenceId: string, epoch: number, events: readonly JournalEvent[], options?: AppendOptions): Promise<AppendResult>;
  /** Events with seq > afterSeq, oldest first. */
  read(persistenceId: string, afterSeq: number, limit: number): Promise<JournalEvent[]>;
  /** Events with key < beforeKey (all when undefined), newest first. */
  readBefore(persistenceId: string, beforeKey: bigint | undefined, limit: number): Promise<JournalEvent[]>;
  /** The events with these seqs, in seq order; missing ones are left out. */
  readSeqs(persistenceId: string, seqs: readonly number[]): Promise<JournalEvent[]>;
  highestSeq(persistenceId: string): Promise<number>;
  /** The event stored under this dedup key, if any. */
  findByDedup(persistenceId: string, dedupKey: string): Promise<JournalEvent | undefined>;
  saveSnapshot(persistenceId: string, epoch: number, snapshot: Snapshot): Promise<void>;
  loadSnapshot(persistenceId: string): Promise<Snapshot | undefined>;
}
