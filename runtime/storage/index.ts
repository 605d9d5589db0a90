/**
 * Storage for actors, with no idea what they store: a journal of binary events per actor
 * identity (with owner epochs that fence a stale activation, and dedup keys answered inside the
 * append, for idempotent requests) and a small key-value store. Engines: SQLite (embedded default) and, behind the same interfaces,
 * networked ones. Every engine passes the contract suite in test/storage/.
 *
 * Guarantees: a write's promise resolves only once it is durable; appends are gap-free per
 * identity; an epoch older than the newest `acquire` can no longer write.
 *
 * SQLite layout: an append is durable once its rows are in an index-free append log (one fsync
 * per group commit, bytes proportional to the events); the writer thread later copies each
 * actor's logged rows into the indexed journal together (once the log holds 100,000 rows or
 * 32 MiB, or after 30 s), so one B-tree page takes many events, in transactions of at most ~2 ms
 * between group commits. Batches cross to the writer thread as one binary buffer each. Checkpoints (WAL back into the file)
 * run on a third thread, started once the WAL passes 4 MB, never inside a commit. Reads merge
 * log and journal, from any process sharing the file (see sqlite/pending-log.ts and sqlite/log-index.ts).
 *
 * @example
 * ```ts
 * const store = openStore('sqlite:/tmp/x/parley.db', { log });
 * const epoch = await store.journal.acquire('counter/a', 'node-1');
 * await store.journal.append('counter/a', epoch, [{ seq: 1, data: new TextEncoder().encode('one') }]);
 * ```
 */
export type { AppendResult, Journal, JournalEvent, Snapshot } from './journal.ts';
export type { KeyValueRecord, KeyValueStore, KeyValueWrite } from './key-value.ts';
export { StoreCodes, type Store } from './store.ts';
export { openStore } from './open-store.ts';
