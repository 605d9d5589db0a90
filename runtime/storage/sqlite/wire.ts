/**
 * A small binary encoding for the messages between the SQLite store and its writer thread: one
 * growable buffer per batch, handed over (transferred, not copied) with postMessage. Event data
 * is bytes, so JSON would cost a base64 pass each way; a structured clone of an object graph
 * costs more than both.
 * @internal
 */
const DECODE = new TextDecoder();

export class WireWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }

  /** Integers up to 2^53 (seqs, epochs, ids). */
  num(v: number): this {
    this.room(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  i64(v: bigint): this {
    this.room(8);
    this.buf.writeBigInt64LE(v, this.pos);
    this.pos += 8;
    return this;
  }

  str(s: string): this {
    // At most 3 bytes per UTF-16 unit; the length is written once the size is known.
    this.room(4 + s.length * 3);
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4 + n;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.room(4 + b.byteLength);
    this.buf.writeUInt32LE(b.byteLength, this.pos);
    this.buf.set(b, this.pos + 4);
    this.pos += 4 + b.byteLength;
    return this;
  }

  /** The encoded bytes in an ArrayBuffer of their own (safe to transfer). */
  finish(): ArrayBuffer {
    const out = new ArrayBuffer(this.pos);
    new Uint8Array(out).set(this.buf.subarray(0, this.pos));
    return out;
  }
}

export class WireReader {
  private readonly view: DataView;
  private readonly bytesView: Uint8Array;
  private pos = 0;

  constructor(buffer: ArrayBuffer) {
    this.view = new DataView(buffer);
    this.bytesView = new Uint8Array(buffer);
  }

  u8(): number {
    return this.bytesView[this.pos++]!;
  }

  u32(): number {
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  num(): number {
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  i64(): bigint {
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  str(): string {
    const n = this.u32();
    const s = DECODE.decode(this.bytesView.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }

  /** A view into the message buffer (no copy): the buffer is this side's own after transfer. */
  bytes(): Uint8Array {
    const n = this.u32();
    const b = this.bytesView.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}
