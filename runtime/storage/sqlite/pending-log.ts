/**
 * Journal rows that are durable in the append log (`jlog`) but not yet moved into the indexed
 * `journal` table, held in memory and indexed by persistence id, seq and dedup key.
 *
 * Why the log: an append into `journal` dirties one B-tree page per index (primary key, dedup,
 * key), and appends to many actors touch as many different pages, so each group commit wrote
 * about 12 KB to the WAL per event (measured: ~100 µs of writer time per event, IO-bound). `jlog`
 * is a rowid table without indexes: an append only extends its last page. Rows are copied into
 * `journal` later, all logged rows of an actor at once so they share pages (see
 * sqlite-writer.ts), and deleted from `jlog` in id order once everything below is copied.
 *
 * The writer thread keeps this (without the rows' data), fed by its own appends and by tailing
 * `jlog` by id (rows of other processes), and trimmed below its smallest id. A row may be in both
 * tables for a while (copied, not yet deleted). Reading connections keep a smaller LogIndex
 * (log-index.ts) and take a pid's logged rows by it and only older ones from `journal`.
 * @internal
 */
export interface LogRow {
  readonly id: number;
  readonly pid: string;
  readonly seq: number;
  readonly k: string | null;
  readonly dedup: string | null;
  /** Bytes of data, kept apart so the writer can account for rows whose data it does not hold. */
  readonly size: number;
}

interface PerPid {
  /** By seq, ascending (appends arrive in seq order per pid), from `start` on. */
  rows: LogRow[];
  /** Rows before this were trimmed: an index, not shift(), so one busy actor's trim stays linear. */
  start: number;
  dedup: Map<string, LogRow> | undefined;
  /** The writer's bookkeeping: rows up to this seq are copied into `journal` already. */
  copiedSeq: number;
}

export class PendingLog {
  /** All rows in id order; trimmed from the front. */
  private fifo: LogRow[] = [];
  private head = 0;
  private readonly byPid = new Map<string, PerPid>();
  /** Highest id seen (ours or tailed). */
  lastId = 0;
  /** Data bytes of the rows held. */
  bytes = 0;

  get size(): number {
    return this.fifo.length - this.head;
  }

  /** Id of the oldest row held, or undefined when empty. */
  get oldestId(): number | undefined {
    return this.head < this.fifo.length ? this.fifo[this.head]!.id : undefined;
  }

  /** Id of the row `n` places after the oldest one held, if there are that many. */
  idAt(n: number): number | undefined {
    return this.fifo[this.head + n]?.id;
  }

  add(row: LogRow): void {
    if (row.id <= this.lastId) return; // already held
    this.lastId = row.id;
    this.bytes += row.size;
    this.fifo.push(row);
    let p = this.byPid.get(row.pid);
    if (!p) {
      p = { rows: [], start: 0, dedup: undefined, copiedSeq: 0 };
      this.byPid.set(row.pid, p);
    }
    p.rows.push(row);
    if (row.dedup !== null) (p.dedup ??= new Map()).set(row.dedup, row);
  }

  /**
   * Forgets rows with id < minId: they are in `journal` now. At most `maxRows` at a time; returns
   * whether it got there. (A move of 50,000 rows trimmed in one go held a reader's event loop for
   * 60 ms; a row left here a little longer is harmless, see read() in sqlite-store.ts.)
   */
  trimBelow(minId: number, maxRows = Infinity): boolean {
    let n = 0;
    while (this.head < this.fifo.length && this.fifo[this.head]!.id < minId) {
      if (n++ >= maxRows) return false;
      const row = this.fifo[this.head++]!;
      this.bytes -= row.size;
      const p = this.byPid.get(row.pid)!;
      // Rows of one pid leave in id order, which is seq order: always the first.
      p.rows[p.start++] = undefined as unknown as LogRow;
      if (row.dedup !== null) p.dedup?.delete(row.dedup);
      if (p.start === p.rows.length) this.byPid.delete(row.pid);
      else if (p.start > 1024 && p.start * 2 > p.rows.length) {
        p.rows = p.rows.slice(p.start);
        p.start = 0;
      }
    }
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  /** Rows in id order, oldest first, from the first with id >= fromId (do not add or trim while iterating). */
  *inIdOrder(fromId = 0): IterableIterator<LogRow> {
    let lo = this.head;
    let hi = this.fifo.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.fifo[mid]!.id < fromId) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.fifo.length; i++) yield this.fifo[i]!;
  }

  copiedSeq(pid: string): number {
    return this.byPid.get(pid)?.copiedSeq ?? 0;
  }

  markCopied(pid: string, seq: number): void {
    const p = this.byPid.get(pid);
    if (p) p.copiedSeq = Math.max(p.copiedSeq, seq);
  }

  maxSeq(pid: string): number {
    const rows = this.byPid.get(pid)?.rows;
    return rows ? rows[rows.length - 1]!.seq : 0;
  }

  /** Rows of `pid`, seq ascending (do not mutate). */
  rowsOf(pid: string): readonly LogRow[] {
    const p = this.byPid.get(pid);
    if (!p) return [];
    return p.start === 0 ? p.rows : p.rows.slice(p.start);
  }

  get(pid: string, seq: number): LogRow | undefined {
    const p = this.byPid.get(pid);
    if (!p) return undefined;
    const rows = p.rows;
    const row = rows[p.start + seq - rows[p.start]!.seq];
    if (row?.seq === seq) return row;
    let lo = p.start;
    let hi = rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = rows[mid]!.seq;
      if (s === seq) return rows[mid];
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  byDedup(pid: string, dedup: string): LogRow | undefined {
    return this.byPid.get(pid)?.dedup?.get(dedup);
  }
}
