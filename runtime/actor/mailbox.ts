/**
 * A bounded FIFO. `offer` refuses instead of growing: the caller turns that into OVERLOADED,
 * so a flood of messages costs the sender an error, not the node its memory.
 *
 * Storage is a ring whose size is a power of two: it doubles when full and is kept when the
 * mailbox empties, so a busy actor's steady stream allocates nothing. (A plain array reset to `[]`
 * whenever the actor caught up allocated a fresh backing store per turn, attached to a long-lived
 * actor: the young generation had to copy and promote each one, about a quarter of everything
 * promoted at 10,000 msg/s.) An actor that never gets a message holds no ring at all.
 * @internal
 */
const NONE: never[] = [];

export class Mailbox<T> {
  private ring: (T | undefined)[] = NONE;
  private head = 0;
  private count = 0;
  /** Deepest the mailbox has been since the last `takePeak` (one compare per message). */
  private peak = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** The deepest the mailbox has been since the last call; starts again from its depth now. */
  takePeak(): number {
    const p = Math.max(this.peak, this.count);
    this.peak = this.count;
    return p;
  }

  offer(item: T): boolean {
    if (this.count >= this.capacity) return false;
    this.put(item);
    return true;
  }

  /** Appends past the bound: for the owner's own timer messages, which must not be lost. */
  pushUnbounded(item: T): void {
    this.put(item);
  }

  /** Puts items before the queued ones: messages a predecessor activation never handled. */
  prepend(items: readonly T[]): void {
    if (items.length === 0) return;
    this.refill([...items, ...this.drain()]);
  }

  poll(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.ring[this.head] as T;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) & (this.ring.length - 1);
    this.count--;
    return item;
  }

  /** Everything queued, in order; the mailbox is empty and lets go of its ring. */
  drain(): T[] {
    const rest: T[] = new Array<T>(this.count);
    for (let i = 0; i < this.count; i++) rest[i] = this.ring[(this.head + i) & (this.ring.length - 1)] as T;
    this.ring = NONE;
    this.head = 0;
    this.count = 0;
    return rest;
  }

  private put(item: T): void {
    if (this.count === this.ring.length) this.refill(this.drain(), 1);
    this.ring[(this.head + this.count) & (this.ring.length - 1)] = item;
    if (++this.count > this.peak) this.peak = this.count;
  }

  /** A ring holding `items` in order with room for `extra` more (all power-of-two sizes, at least 8). */
  private refill(items: readonly T[], extra = 0): void {
    let size = 8;
    while (size < items.length + extra) size *= 2;
    const ring = new Array<T | undefined>(size).fill(undefined);
    for (let i = 0; i < items.length; i++) ring[i] = items[i];
    this.ring = ring;
    this.head = 0;
    this.count = items.length;
  }
}
