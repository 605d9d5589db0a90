import { approximateSize } from './envelope-codec.ts';
import type { Envelope } from './transport.ts';

export interface QueueBounds {
  /** Most envelopes held at once. */
  readonly maxEnvelopes: number;
  /** Most approximate wire bytes held at once; one oversized envelope is still let into an empty queue. */
  readonly maxBytes: number;
}

/**
 * A bounded FIFO of envelopes waiting for one peer, handing them out in batches. The bound is
 * what turns a slow or unreachable peer into a BACKPRESSURE error at the sender instead of
 * unbounded memory growth.
 */
export class EnvelopeQueue {
  private items: Envelope[] = [];
  private sizes: number[] = [];
  private head = 0;
  private byteCount = 0;

  constructor(readonly bounds: QueueBounds) {}

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.byteCount;
  }

  /** Appends `env`, or returns false (and keeps nothing) when that would exceed the bound. */
  push(env: Envelope): boolean {
    const size = approximateSize(env);
    const length = this.length;
    if (length >= this.bounds.maxEnvelopes) return false;
    if (length > 0 && this.byteCount + size > this.bounds.maxBytes) return false;
    this.items.push(env);
    this.sizes.push(size);
    this.byteCount += size;
    return true;
  }

  /**
   * Removes and returns up to `maxCount` envelopes from the front, stopping before `maxBytes`
   * would be exceeded; always at least one when the queue is not empty.
   */
  takeBatch(maxCount: number, maxBytes: number): Envelope[] {
    const available = this.length;
    if (available === 0) return [];
    const start = this.head;
    let end = start;
    let bytes = 0;
    const limit = start + Math.min(available, Math.max(1, maxCount));
    while (end < limit) {
      const size = this.sizes[end]!;
      if (end > start && bytes + size > maxBytes) break;
      bytes += size;
      end++;
    }
    const batch = this.items.slice(start, end);
    this.head = end;
    this.byteCount -= bytes;
    this.compact();
    return batch;
  }

  clear(): void {
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.byteCount = 0;
  }

  /** Drops consumed slots once they are the larger part, keeping takeBatch O(batch) amortised. */
  private compact(): void {
    if (this.head === this.items.length) {
      this.clear();
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
