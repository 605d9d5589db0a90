/**
 * A reading connection's index of the append log (`jlog`): for each persistence id, the seq, log
 * id and key of its logged rows, and nothing else. The data stays in SQLite and is fetched by log
 * id when a read needs it (a rowid lookup, microseconds).
 *
 * Why not the rows themselves: every appended event stays in the log for up to 100,000 rows or
 * 30 s (see sqlite-store.ts). Held as objects with their bytes, they all outlived the young
 * generation, so the heap's scavenges copied and promoted ~2 MB every 65 ms at 10,000 msg/s
 * (5-20 ms pauses, the bench's p99) and the process held 300 MB more. Here a row costs three
 * array slots and its key string; numbers in arrays are not objects, so the collector has almost
 * nothing to trace or copy.
 * @internal
 */
export interface LoggedRow {
  readonly id: number;
  readonly seq: number;
  readonly k: string | null;
}

interface PerPid {
  /** Parallel arrays, seq ascending (appends arrive in seq order per pid), from `start` on. */
  ids: number[];
  seqs: number[];
  keys: (string | null)[];
  /** Entries before this were trimmed: an index, not shift(), so one busy actor's trim stays linear. */
  start: number;
}

export class LogIndex {
  /** The pid of every held row, in id order; trimmed from the front. */
  private fifo: string[] = [];
  private head = 0;
  private readonly byPid = new Map<string, PerPid>();
  /** Highest id seen (ours or tailed). */
  lastId = 0;

  get size(): number {
    return this.fifo.length - this.head;
  }

  add(id: number, pid: string, seq: number, k: string | null): void {
    if (id <= this.lastId) return; // already held
    this.lastId = id;
    this.fifo.push(pid);
    let p = this.byPid.get(pid);
    if (!p) {
      p = { ids: [], seqs: [], keys: [], start: 0 };
      this.byPid.set(pid, p);
    }
    p.ids.push(id);
    p.seqs.push(seq);
    p.keys.push(k);
  }

  /**
   * Forgets rows with id < minId: they are in `journal` now. At most `maxRows` at a time; returns
   * whether it got there. The oldest row of the pid at the head of the fifo is the oldest row held,
   * since both are in id order.
   */
  trimBelow(minId: number, maxRows = Infinity): boolean {
    let n = 0;
    while (this.head < this.fifo.length) {
      const pid = this.fifo[this.head]!;
      const p = this.byPid.get(pid)!;
      if (p.ids[p.start]! >= minId) break;
      if (n++ >= maxRows) return false;
      this.head++;
      p.keys[p.start] = null;
      p.start++;
      if (p.start === p.ids.length) this.byPid.delete(pid);
      else if (p.start > 1024 && p.start * 2 > p.ids.length) {
        p.ids = p.ids.slice(p.start);
        p.seqs = p.seqs.slice(p.start);
        p.keys = p.keys.slice(p.start);
        p.start = 0;
      }
    }
    if (this.head > 4096 && this.head * 2 > this.fifo.length) {
      this.fifo = this.fifo.slice(this.head);
      this.head = 0;
    }
    return true;
  }

  maxSeq(pid: string): number {
    const p = this.byPid.get(pid);
    return p ? p.seqs[p.seqs.length - 1]! : 0;
  }

  /** Seq of the oldest logged row of `pid`, or Infinity. */
  firstSeq(pid: string): number {
    const p = this.byPid.get(pid);
    return p ? p.seqs[p.start]! : Infinity;
  }

  /** Logged rows of `pid` with seq > afterSeq, ascending, at most `limit`. */
  after(pid: string, afterSeq: number, limit: number): LoggedRow[] {
    const p = this.byPid.get(pid);
    if (!p) return [];
    const out: LoggedRow[] = [];
    for (let i = this.firstIndexAbove(p, afterSeq); i < p.ids.length && out.length < limit; i++) out.push(this.row(p, i));
    return out;
  }

  /** Logged rows of `pid` that have a key, key below `before` (all when undefined), newest first, at most `limit`. */
  keyedBefore(pid: string, before: string | undefined, limit: number): LoggedRow[] {
    const p = this.byPid.get(pid);
    if (!p) return [];
    const out: LoggedRow[] = [];
    for (let i = p.ids.length - 1; i >= p.start && out.length < limit; i--) {
      const k = p.keys[i];
      if (k !== null && k !== undefined && (before === undefined || k < before)) out.push(this.row(p, i));
    }
    return out;
  }

  /** Key of the oldest logged row of `pid` that has one. */
  oldestKey(pid: string): string | undefined {
    const p = this.byPid.get(pid);
    if (!p) return undefined;
    for (let i = p.start; i < p.keys.length; i++) if (p.keys[i] !== null) return p.keys[i]!;
    return undefined;
  }

  private row(p: PerPid, i: number): LoggedRow {
    return { id: p.ids[i]!, seq: p.seqs[i]!, k: p.keys[i]! };
  }

  private firstIndexAbove(p: PerPid, seq: number): number {
    let lo = p.start;
    let hi = p.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (p.seqs[mid]! <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
