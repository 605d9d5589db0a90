/**
 * 64-bit time-sortable ids: 41 bits of milliseconds since 2024-01-01, 10 bits of node, 12 bits of
 * sequence within the millisecond (4096 ids/ms/node). Unique across nodes with distinct node
 * numbers; sortable by creation time across nodes up to clock skew.
 *
 * In a cluster a node number is not owned for ever: it is claimed, may be lost with the node's
 * lease, and the next holder of the same number must never repeat an id of the previous one.
 * Three knobs make that hold without trusting any clock (bin/node-assembly.ts wires them to the
 * claim in etcd):
 * - unbound (`new Snowflake()`): no number yet, every `next()` is refused;
 * - `bind(node, floorMs)`: every id from then on carries a time above `floorMs`, the previous
 *   holder's last reservation plus the reuse gap;
 * - `setCeiling(ms)`: no id carries a time above the reservation this node has published; an id
 *   that would (the clock or a predecessor ran past it) is refused with UNAVAILABLE and the
 *   `onCeiling` listener is asked for more, so the previous holder's ids, all at or below its last
 *   reservation, and the next holder's, all above it plus the gap, can never meet.
 */
import { reject, ChatCodes } from '../errors.ts';

const EPOCH_MS = 1_704_067_200_000n;
const NODE_BITS = 10n;
const SEQ_BITS = 12n;
const MAX_SEQ = (1n << SEQ_BITS) - 1n;
const TIME_SHIFT = NODE_BITS + SEQ_BITS;

export class Snowflake {
  private lastMs = 0n;
  private seq = 0n;
  private nodeBits: bigint | undefined;
  /** Highest ms (since EPOCH) an id may carry; undefined: no limit (a single node). */
  private ceiling: bigint | undefined;
  private ceilingListener: ((neededMs: number) => void) | undefined;

  /** `node` 0..1023; omitted: unbound until `bind()`. */
  constructor(node?: number) {
    if (node !== undefined) this.bind(node, 0);
  }

  /** The node number in use; undefined while unbound. */
  get node(): number | undefined {
    return this.nodeBits === undefined ? undefined : Number(this.nodeBits);
  }

  /** The highest time (ms since the Unix epoch) any id of this generator carries so far. */
  get highWaterMs(): number {
    return Number(this.lastMs + EPOCH_MS);
  }

  /**
   * Use `node` from now on, with every later id timed above `floorMs` (Unix ms): the previous
   * holder of the number never went past it. Time still only moves forward: ids of this
   * generator keep growing across a re-bind.
   */
  bind(node: number, floorMs: number): void {
    if (!Number.isInteger(node) || node < 0 || node > 1023) throw new RangeError(`snowflake node must be 0..1023, got ${node}`);
    if (!Number.isSafeInteger(floorMs) || floorMs < 0) throw new RangeError(`floorMs must be a non-negative integer, got ${floorMs}`);
    this.nodeBits = BigInt(node);
    const floor = BigInt(floorMs) - EPOCH_MS;
    if (floor >= this.lastMs) {
      // seq at its maximum: an id in the floor's own millisecond would not be above it.
      this.lastMs = floor;
      this.seq = MAX_SEQ;
    }
  }

  /** Ids may carry times up to `ms` (Unix ms), the reservation published for this number. Never lowers it. */
  setCeiling(ms: number): void {
    const c = BigInt(ms) - EPOCH_MS;
    if (this.ceiling === undefined || c > this.ceiling) this.ceiling = c;
  }

  /** Called with the time (Unix ms) an id needed when the ceiling refused it. */
  onCeiling(listener: (neededMs: number) => void): void {
    this.ceilingListener = listener;
  }

  /**
   * The next id, strictly greater than `after` when given: an actor that moved from a node whose
   * clock ran ahead still hands out increasing ids within its channel. Refused (UNAVAILABLE,
   * nothing consumed) while unbound or when the id would pass the ceiling.
   */
  next(after?: bigint): bigint {
    const node = this.nodeBits;
    if (node === undefined) throw reject(ChatCodes.UNAVAILABLE, 'this node has no message-id node number yet; retry');
    let ms = BigInt(Date.now()) - EPOCH_MS;
    if (ms < this.lastMs) ms = this.lastMs; // the wall clock stepped back: hold time still
    let seq = 0n;
    if (ms === this.lastMs) {
      seq = this.seq + 1n;
      if (seq > MAX_SEQ) {
        ms++; // borrow from the next millisecond rather than spin
        seq = 0n;
      }
    }
    if (after !== undefined && ((ms << TIME_SHIFT) | (node << SEQ_BITS) | seq) <= after) {
      // Re-base just past the predecessor's millisecond, so later ids of this node keep growing too.
      ms = (after >> TIME_SHIFT) + 1n;
      seq = 0n;
    }
    if (this.ceiling !== undefined && ms > this.ceiling) {
      this.ceilingListener?.(Number(ms + EPOCH_MS));
      throw reject(ChatCodes.UNAVAILABLE, 'message ids are past this node\'s reservation while it renews it; retry');
    }
    this.lastMs = ms;
    this.seq = seq;
    return (ms << TIME_SHIFT) | (node << SEQ_BITS) | seq;
  }

  static timeOf(id: bigint): number {
    return Number((id >> TIME_SHIFT) + EPOCH_MS);
  }
}
