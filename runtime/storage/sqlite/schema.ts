import type BetterSqlite3 from 'better-sqlite3';

/**
 * The SQLite layout. Applied idempotently by whoever opens the file first; `user_version`
 * records the migration level so later versions can add steps without guessing.
 * @internal
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS journal (
     pid TEXT NOT NULL, seq INTEGER NOT NULL, k TEXT, dedup TEXT, data TEXT NOT NULL,
     PRIMARY KEY (pid, seq)) WITHOUT ROWID;
   CREATE UNIQUE INDEX IF NOT EXISTS journal_dedup ON journal (pid, dedup) WHERE dedup IS NOT NULL;
   CREATE INDEX IF NOT EXISTS journal_key ON journal (pid, k) WHERE k IS NOT NULL;
   CREATE TABLE IF NOT EXISTS owners (pid TEXT PRIMARY KEY, epoch INTEGER NOT NULL, owner TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS snapshots (pid TEXT PRIMARY KEY, seq INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS kv (tbl TEXT NOT NULL, part TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL,
     PRIMARY KEY (tbl, part, k)) WITHOUT ROWID;`,
  // The append log: events land here first (sequential pages) and move into `journal` in bulk;
  // AUTOINCREMENT so that ids are never reused once the log was emptied (readers tail by id).
  `CREATE TABLE IF NOT EXISTS jlog (id INTEGER PRIMARY KEY AUTOINCREMENT, pid TEXT NOT NULL, seq INTEGER NOT NULL, k TEXT, dedup TEXT, data TEXT NOT NULL);`,
];

export function applySchema(db: BetterSqlite3.Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

/** Event keys are 64-bit; stored as fixed-width text so that text order is numeric order. */
export function encodeKey(key: bigint): string {
  return key.toString().padStart(20, '0');
}

export function decodeKey(text: string | null): bigint | undefined {
  return text === null ? undefined : BigInt(text);
}
