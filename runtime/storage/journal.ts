/**
 * An append-only event log per persistence id (an actor identity such as "kind/key").
 *
 * - `seq` is gap-free per id, starting at 1; an append names the seqs it writes and is refused
 *   (SEQ_CONFLICT) unless its first is exactly the next one and the rest follow on.
 * - `acquire` hands out an ever-growing owner epoch per id. An append carries the epoch of the
 *   activation that writes it and is refused (FENCED) once a newer epoch was acquired: two
 *   activations of one actor can never both have a write acknowledged, whatever the clocks say.
 *   FENCED tells the activation to stop; like a timeout it does not say whether that append's
 *   events were kept (an engine may have written them before the new owner read its head, and
 *   then they are part of the journal for good), so a retry must carry the same dedup keys.
 * - `release` ends an epoch cleanly; an activation that ends without it (a crash) is fenced by
 *   the next acquire instead.
 * - An event may carry a `dedupKey`, unique per id. The check is part of the append: when any
 *   event's key is stored already, the append writes nothing and answers with the stored events
 *   (`duplicates`), so a writer learns of a retried request with no read of its own.
 * - An event may carry a numeric `key` that grows with `seq` (a time-sortable id, an offset);
 *   events can be paged newest-first by it, or found by the greatest key at or below a value.
 * - Event data is opaque bytes (the writer's own encoding); an append's promise resolves only
 *   once the write is durable, and an append is atomic: all of its events or none.
 */
export interface JournalEvent {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly key?: bigint;
  readonly dedupKey?: string;
}

export type AppendResult =
  | { readonly ok: true }
  /** Nothing was written: these stored events carry dedup keys of the append, in its order. */
  | { readonly ok: false; readonly duplicates: readonly JournalEvent[] };

export interface Snapshot {
  readonly seq: number;
  readonly data: Uint8Array;
}

export interface Journal {
  /** Claims ownership for a new activation; every older epoch is fenced from now on. */
  acquire(persistenceId: string, owner: string): Promise<number>;
  /**
   * The activation holding `epoch` ends cleanly (its appends are done, and it makes no more):
   * the next acquire, on any node, has nothing to fence. An engine may refuse later appends of
   * that epoch (FENCED). Only a cost saving: an engine that checks the epoch in every append
   * (SQLite) ignores it, and an activation that never releases (a crash) is fenced by the next
   * acquire instead (Cassandra: one revocation write). An epoch no longer the caller's is ignored.
   */
  release(persistenceId: string, epoch: number): Promise<void>;
  append(persistenceId: string, epoch: number, events: readonly JournalEvent[]): Promise<AppendResult>;
  /** Events with seq > afterSeq, oldest first. */
  read(persistenceId: string, afterSeq: number, limit: number): Promise<JournalEvent[]>;
  /** Events with key < beforeKey (all when undefined), newest first. */
  readBefore(persistenceId: string, beforeKey: bigint | undefined, limit: number): Promise<JournalEvent[]>;
  highestSeq(persistenceId: string): Promise<number>;
  saveSnapshot(persistenceId: string, epoch: number, snapshot: Snapshot): Promise<void>;
  loadSnapshot(persistenceId: string): Promise<Snapshot | undefined>;
}
