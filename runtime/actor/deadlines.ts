/**
 * Timeouts for asks, without a timer each. An ask on the message path would otherwise create and
 * clear one `setTimeout` per message (a timer object, a heap insert and a removal); here an ask
 * costs one small object in a FIFO. Deadlines of one timeout length arrive in time order, so a FIFO
 * per length is sorted by itself, and one interval timer, running only while something waits,
 * expires the heads. Expiry is late by at most the resolution, which ask timeouts (seconds)
 * do not notice.
 * @internal
 */
export interface Deadline {
  /** Marks the deadline as met: it will not fire. */
  settle(): boolean;
}

class Entry implements Deadline {
  constructor(
    readonly id: number,
    private readonly owner: Deadlines,
    readonly expire: () => void,
  ) {}

  settle(): boolean {
    return this.owner.settle(this.id);
  }
}

/**
 * Ids and due times of one timeout length, in time order. Numbers, not the entries: a settled
 * entry (nearly all of them) must not stay reachable until its time comes, or every ask's closure
 * outlives the young generation and is promoted (at 10,000 msg/s that was megabytes a second).
 */
class Fifo {
  ids: number[] = [];
  due: number[] = [];
  head = 0;
}

export class Deadlines {
  private readonly byLength = new Map<number, Fifo>();
  /** Deadlines not yet settled or fired. */
  private readonly live = new Map<number, Entry>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly resolutionMs = 20) {}

  /** Calls `expire` after `timeoutMs` unless the deadline is settled first. */
  add(timeoutMs: number, expire: () => void): Deadline {
    const entry = new Entry(this.nextId++, this, expire);
    let fifo = this.byLength.get(timeoutMs);
    if (!fifo) {
      fifo = new Fifo();
      this.byLength.set(timeoutMs, fifo);
    }
    fifo.ids.push(entry.id);
    fifo.due.push(Date.now() + timeoutMs);
    this.live.set(entry.id, entry);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.resolutionMs);
      this.timer.unref();
    }
    return entry;
  }

  /** @internal called by an entry: true the first time, when it had neither fired nor been settled. */
  settle(id: number): boolean {
    return this.live.delete(id);
  }

  /** Expires what is due and drops settled entries from the front. @internal exposed for tests */
  sweep(now = Date.now()): void {
    for (const [length, fifo] of this.byLength) {
      const { ids, due } = fifo;
      while (fifo.head < ids.length) {
        const entry = this.live.get(ids[fifo.head]!);
        if (entry && due[fifo.head]! > now) break;
        fifo.head++;
        if (!entry) continue;
        this.live.delete(entry.id);
        entry.expire();
      }
      if (fifo.head === ids.length) this.byLength.delete(length);
      else if (fifo.head > 1024 && fifo.head * 2 > ids.length) {
        fifo.ids = ids.slice(fifo.head);
        fifo.due = due.slice(fifo.head);
        fifo.head = 0;
      }
    }
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.byLength.clear();
    }
  }
}
