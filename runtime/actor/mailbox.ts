/**
 * A bounded FIFO. `offer` refuses instead of growing: the caller turns that into OVERLOADED,
 * so a flood of messages costs the sender an error, not the node its memory.
 *
 * Storage is a plain array with a moving head, compacted only once half of it is consumed, so a
 * steady stream costs amortised O(1) per message and an idle mailbox costs one empty array.
 * @internal
 */
export class Mailbox<T> {
  private items: T[] = [];
  private head = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  offer(item: T): boolean {
    if (this.size >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  /** Appends past the bound: for the owner's own timer messages, which must not be lost. */
  pushUnbounded(item: T): void {
    this.items.push(item);
  }

  /** Puts items before the queued ones: messages a predecessor activation never handled. */
  prepend(items: readonly T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }

  poll(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as T;
    (this.items as (T | undefined)[])[this.head] = undefined;
    this.head++;
    if (this.head >= this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  drain(): T[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }
}
