/**
 * The checkpointer thread of the SQLite store: copies committed WAL pages back into the database
 * file on a connection of its own, so that the writer thread never runs a checkpoint inside a
 * commit. A checkpoint fsyncs the database file and takes tens of milliseconds; inside a commit it
 * held up every append of that group commit and of the ones queued behind it.
 *
 * PASSIVE checkpoints wait for nobody: appends keep going to the WAL while pages are copied, and
 * pages still needed by a reader's snapshot stay for the next round. The writer copies the last
 * few frames itself now and then, so that the WAL restarts (see sqlite-writer.ts); without this
 * thread it copies everything, so a dead checkpointer costs speed, never space without bound.
 * @internal
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import type { CheckpointerInit } from './writer-protocol.ts';

const init = workerData as CheckpointerInit;
const db = new Database(init.path);
db.pragma('busy_timeout = 10000');
db.pragma(`synchronous = ${init.synchronous}`);
// This connection never writes, so it must not try to checkpoint on close either (the writer's
// and the facade's connections do that when the last one closes).
db.pragma('wal_autocheckpoint = 0');

let reportedAt = -Infinity;
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    // Another process sharing the file is checkpointing (one-box cluster): its copy serves us too.
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return;
    // The next round tries again, and the writer bounds the WAL meanwhile; say so once a minute.
    if (Date.now() - reportedAt < 60_000) return;
    reportedAt = Date.now();
    parentPort!.postMessage(`checkpoint failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}, init.everyMs);

parentPort!.on('message', (raw: string) => {
  if (raw !== 'close') return;
  clearInterval(timer);
  db.close();
  parentPort!.postMessage('closed');
  parentPort!.close();
});
