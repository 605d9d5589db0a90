/**
 * A lean codec for the few chat.v1 frames the load generator sends and reads, so the generator
 * spends its CPU on load rather than on building and walking protobufjs objects. Byte-for-byte
 * what proto/client-codec.ts produces for the same values (test/bench/parley-wire.test.ts checks
 * it against the real codec).
 *
 * ClientFrame: ref = 1 (varint), hello = 2, send = 3, ack = 4, heartbeat = 8, read = 9, typing = 10 (messages).
 * ServerFrame: ref = 1, welcome = 2, send_ack = 3, delivery = 4, presence = 7, error = 9,
 * read_receipt = 10, typing = 11.
 */
import { encodeClientFrame } from '../../proto/client-codec.ts';

export const ServerBody = { welcome: 2, send_ack: 3, delivery: 4, sync_result: 5, history_result: 6, presence: 7, presence_result: 8, error: 9, read_receipt: 10, typing: 11 } as const;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Decimal digits of a non-negative integer, written as ASCII. */
function digitCount(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function writeDigits(buf: Uint8Array, pos: number, n: number, count: number): number {
  for (let i = count - 1; i >= 0; i--) {
    buf[pos + i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + count;
}

export function encodeHello(token: string, deviceId: string, lastInboxSeq = 0): Uint8Array {
  return encodeClientFrame(0, 'hello', { token, device_id: deviceId, last_inbox_seq: lastInboxSeq });
}

/** `heartbeat {}` with ref 0 (written explicitly, as protobufjs does): field 8, length 0. */
export const HEARTBEAT_FRAME = new Uint8Array([0x08, 0x00, 0x42, 0x00]);

export function encodeAck(inboxSeq: number): Uint8Array {
  const inner = 1 + varintSize(inboxSeq);
  const buf = new Uint8Array(4 + inner);
  buf[0] = 0x08;
  buf[1] = 0x00;
  buf[2] = 0x22;
  buf[3] = inner;
  buf[4] = 0x08;
  writeVarint(buf, 5, inboxSeq);
  return buf;
}

/**
 * A `send` encoder for one channel and one text: per message only the ref and the decimal
 * client_msg_id change, so the rest is prepared once.
 */
export class SendEncoder {
  private readonly channel: Uint8Array;
  private readonly text: Uint8Array;

  constructor(channelId: string, text: string) {
    this.channel = Buffer.from(channelId, 'utf8');
    this.text = Buffer.from(text, 'utf8');
  }

  /** `send {channel_id, client_msg_id: String(id), text}` with ref = id. */
  encode(id: number): Buffer {
    const ch = this.channel.length;
    const tx = this.text.length;
    const digits = digitCount(id);
    const inner = 1 + varintSize(ch) + ch + 1 + 1 + digits + 1 + varintSize(tx) + tx;
    const total = 1 + varintSize(id) + 1 + varintSize(inner) + inner;
    const buf = Buffer.allocUnsafe(total);
    let p = 0;
    buf[p++] = 0x08;
    p = writeVarint(buf, p, id);
    buf[p++] = 0x1a;
    p = writeVarint(buf, p, inner);
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, ch);
    buf.set(this.channel, p);
    p += ch;
    buf[p++] = 0x12;
    buf[p++] = digits;
    p = writeDigits(buf, p, id, digits);
    buf[p++] = 0x1a;
    p = writeVarint(buf, p, tx);
    buf.set(this.text, p);
    return buf;
  }
}

/**
 * The group chatter of one channel (`--group-chatter`): `read {channel_id, channel_seq}` and
 * `typing {channel_id}`, both with ref 0 (they get an answer only when refused). The typing frame
 * never changes, so it is built once.
 */
export class ChatterEncoder {
  private readonly channel: Uint8Array;
  readonly typing: Buffer;

  constructor(channelId: string) {
    this.channel = Buffer.from(channelId, 'utf8');
    const ch = this.channel.length;
    const inner = 1 + varintSize(ch) + ch;
    const buf = Buffer.allocUnsafe(2 + 1 + varintSize(inner) + inner);
    let p = 0;
    buf[p++] = 0x08;
    buf[p++] = 0x00;
    buf[p++] = 0x52;
    p = writeVarint(buf, p, inner);
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, ch);
    buf.set(this.channel, p);
    this.typing = buf;
  }

  /** `read {channel_id, channel_seq: seq}` with ref 0. */
  read(seq: number): Buffer {
    const ch = this.channel.length;
    const inner = 1 + varintSize(ch) + ch + 1 + varintSize(seq);
    const buf = Buffer.allocUnsafe(2 + 1 + varintSize(inner) + inner);
    let p = 0;
    buf[p++] = 0x08;
    buf[p++] = 0x00;
    buf[p++] = 0x4a;
    p = writeVarint(buf, p, inner);
    buf[p++] = 0x0a;
    p = writeVarint(buf, p, ch);
    buf.set(this.channel, p);
    p += ch;
    buf[p++] = 0x10;
    writeVarint(buf, p, seq);
    return buf;
  }

  /** Whether `buf[off, off + len)` is this channel's id. */
  isChannel(buf: Uint8Array, off: number, len: number): boolean {
    const ch = this.channel;
    if (len !== ch.length) return false;
    for (let i = 0; i < len; i++) if (buf[off + i] !== ch[i]) return false;
    return true;
  }
}

/** What `scanServerFrame` found; reused across calls to avoid allocation. */
export interface ScannedFrame {
  ref: number;
  /** ServerFrame field number of the body (ServerBody), 0 when none. */
  body: number;
  /** delivery: inbox_seq. */
  inboxSeq: number;
  /** delivery: client_msg_id read as a decimal number (-1 when not all digits). */
  clientMsgId: number;
  /** delivery: the message's channel_seq. */
  channelSeq: number;
  /** delivery: where the message's channel_id lies in the scanned buffer (offset, length; -1 when absent). */
  channelOff: number;
  channelLen: number;
  /** error: code. */
  errorCode: string;
}

export function newScan(): ScannedFrame {
  return { ref: 0, body: 0, inboxSeq: 0, clientMsgId: -1, channelSeq: 0, channelOff: -1, channelLen: 0, errorCode: '' };
}

let pos = 0;

function readVarint(buf: Uint8Array): number {
  let result = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
  throw new Error('varint too long');
}

function skip(buf: Uint8Array, wire: number): void {
  if (wire === 0) readVarint(buf);
  else if (wire === 2) {
    const len = readVarint(buf); // not `pos += readVarint()`: that adds to the old pos
    pos += len;
  }
  else if (wire === 1) pos += 8;
  else if (wire === 5) pos += 4;
  else throw new Error(`unsupported wire type ${wire}`);
}

function scanMessage(buf: Uint8Array, end: number, out: ScannedFrame): void {
  while (pos < end) {
    const tag = readVarint(buf);
    if (tag === 0x22) {
      // client_msg_id
      const len = readVarint(buf);
      let n = 0;
      for (let i = 0; i < len; i++) {
        const c = buf[pos + i]! - 48;
        if (c < 0 || c > 9) {
          n = -1;
          break;
        }
        n = n * 10 + c;
      }
      out.clientMsgId = len === 0 ? -1 : n;
      pos += len;
    } else if (tag === 0x38) {
      // channel_seq
      out.channelSeq = readVarint(buf);
    } else if (tag === 0x12) {
      // channel_id
      const len = readVarint(buf);
      out.channelOff = pos;
      out.channelLen = len;
      pos += len;
    } else skip(buf, tag & 7);
  }
}

/** Reads ref, body kind and, for deliveries and errors, the fields the generator needs. */
export function scanServerFrame(buf: Uint8Array, out: ScannedFrame): ScannedFrame {
  out.ref = 0;
  out.body = 0;
  out.inboxSeq = 0;
  out.clientMsgId = -1;
  out.channelSeq = 0;
  out.channelOff = -1;
  out.channelLen = 0;
  out.errorCode = '';
  pos = 0;
  const end = buf.length;
  while (pos < end) {
    const tag = readVarint(buf);
    const field = tag >>> 3;
    if (tag === 0x08) {
      out.ref = readVarint(buf);
      continue;
    }
    if ((tag & 7) !== 2) {
      skip(buf, tag & 7);
      continue;
    }
    const len = readVarint(buf);
    const bodyEnd = pos + len;
    out.body = field;
    if (field === ServerBody.delivery) {
      while (pos < bodyEnd) {
        const t = readVarint(buf);
        if (t === 0x08) out.inboxSeq = readVarint(buf);
        else if (t === 0x12) {
          const mlen = readVarint(buf);
          scanMessage(buf, pos + mlen, out);
        } else skip(buf, t & 7);
      }
    } else if (field === ServerBody.error) {
      while (pos < bodyEnd) {
        const t = readVarint(buf);
        if (t === 0x0a) {
          const clen = readVarint(buf);
          out.errorCode = Buffer.from(buf.buffer, buf.byteOffset + pos, clen).toString('utf8');
          pos += clen;
        } else skip(buf, t & 7);
      }
    }
    pos = bodyEnd;
  }
  return out;
}
