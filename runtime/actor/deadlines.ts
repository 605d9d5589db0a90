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
  done = false;

  constructor(
    readonly atMs: number,
    private readonly expire: () => void,
  ) {}

  settle(): boolean {
    if (this.done) return false;
    this.done = true;
    return true;
  }

  fire(): void {
    if (this.done) return;
    this.done = true;
    this.expire();
  }
}

class Fifo {
  items: Entry[] = [];
  head = 0;
}

export class Deadlines {
  private readonly byLength = new Map<number, Fifo>();
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly resolutionMs = 20) {}

  /** Calls `expire` after `timeoutMs` unless the deadline is settled first. */
  add(timeoutMs: number, expire: () => void): Deadline {
    const entry = new Entry(Date.now() + timeoutMs, expire);
    let fifo = this.byLength.get(timeoutMs);
    if (!fifo) {
      fifo = new Fifo();
      this.byLength.set(timeoutMs, fifo);
    }
    fifo.items.push(entry);
    this.waiting++;
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.resolutionMs);
      this.timer.unref();
    }
    return entry;
  }

  /** Expires what is due and drops settled entries from the front. @internal exposed for tests */
  sweep(now = Date.now()): void {
    for (const [length, fifo] of this.byLength) {
      const items = fifo.items;
      while (fifo.head < items.length) {
        const e = items[fifo.head]!;
        if (!e.done && e.atMs > now) break;
        items[fifo.head++] = undefined as unknown as Entry;
        this.waiting--;
        e.fire();
      }
      if (fifo.head === items.length) this.byLength.delete(length);
      else if (fifo.head > 1024 && fifo.head * 2 > items.length) {
        fifo.items = items.slice(fifo.head);
        fifo.head = 0;
      }
    }
    if (this.waiting === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
