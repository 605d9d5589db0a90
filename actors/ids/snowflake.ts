/**
 * 64-bit time-sortable ids: 41 bits of milliseconds since 2024-01-01, 10 bits of node, 12 bits of
 * sequence within the millisecond (4096 ids/ms/node). Unique across nodes with distinct node
 * numbers; sortable by creation time across nodes up to clock skew.
 */
const EPOCH_MS = 1_704_067_200_000n;
const NODE_BITS = 10n;
const SEQ_BITS = 12n;
const MAX_SEQ = (1n << SEQ_BITS) - 1n;

export class Snowflake {
  private lastMs = 0n;
  private seq = 0n;
  private readonly node: bigint;

  constructor(node: number) {
    if (!Number.isInteger(node) || node < 0 || node > 1023) throw new RangeError(`snowflake node must be 0..1023, got ${node}`);
    this.node = BigInt(node);
  }

  /**
   * The next id, strictly greater than `after` when given: an actor that moved from a node whose
   * clock ran ahead still hands out increasing ids within its channel.
   */
  next(after?: bigint): bigint {
    let ms = BigInt(Date.now()) - EPOCH_MS;
    if (ms < this.lastMs) ms = this.lastMs; // the wall clock stepped back: hold time still
    if (ms === this.lastMs) {
      this.seq++;
      if (this.seq > MAX_SEQ) {
        ms = this.lastMs + 1n; // borrow from the next millisecond rather than spin
        this.seq = 0n;
      }
    } else {
      this.seq = 0n;
    }
    this.lastMs = ms;
    const id = (ms << (NODE_BITS + SEQ_BITS)) | (this.node << SEQ_BITS) | this.seq;
    if (after !== undefined && id <= after) {
      // Re-base on the predecessor's time so later ids of this node keep growing too.
      this.lastMs = after >> (NODE_BITS + SEQ_BITS);
      this.seq = MAX_SEQ;
      return this.next(after);
    }
    return id;
  }

  static timeOf(id: bigint): number {
    return Number((id >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS);
  }
}
