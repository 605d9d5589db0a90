/**
 * chat.v1 bytes built by hand for the message path, where a message is encoded once and the same
 * bytes go to storage, to every recipient's socket and into history pages.
 *
 * It rests on two protobuf rules: fields may come in any order, and the concatenation of two
 * encodings of one message type is the encoding of their merge. So a stored message body (every
 * field of chat.v1.Message but channel_id and channel_seq) followed by those two fields is a whole
 * Message, and a frame is a few header bytes around a Message's bytes. test/proto checks every
 * builder here against the protobufjs codec.
 */
import type { Message } from './client-frames.ts';

/** Field numbers of chat.v1 (client.proto). */
const F = {
  message: { message_id: 1, channel_id: 2, sender_id: 3, client_msg_id: 4, text: 5, created_at_ms: 6, channel_seq: 7 },
  serverFrame: { ref: 1, delivery: 4, sync_result: 5, history_result: 6 },
  delivery: { inbox_seq: 1, message: 2 },
  list: { items: 1, has_more: 2 },
} as const;

const VARINT = 0;
const LEN = 2;

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** A writer into a buffer of known size. */
class Out {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(v: number): void {
    // Numbers here stay below 2^53; division keeps the bits above 2^32 that `>>>` would drop.
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.buf[this.pos++] = (field << 3) | wire;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  utf8(s: string, n: number): void {
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
  }
}

/** The size of a string field (tag, length, bytes), or 0 when the string is empty (proto3 default). */
function stringField(s: string): { size: number; n: number } {
  if (s.length === 0) return { size: 0, n: 0 };
  const n = Buffer.byteLength(s, 'utf8');
  return { size: 1 + varintSize(n) + n, n };
}

function writeString(o: Out, field: number, s: string, n: number): void {
  if (n === 0) return;
  o.tag(field, LEN);
  o.varint(n);
  o.utf8(s, n);
}

function lenFieldSize(n: number): number {
  return 1 + varintSize(n) + n;
}

function varintFieldSize(v: number): number {
  return v === 0 ? 0 : 1 + varintSize(v);
}

/** What a stored message holds: a chat.v1.Message without its channel_id and channel_seq. */
export type MessageBody = Pick<Message, 'message_id' | 'sender_id' | 'client_msg_id' | 'text' | 'created_at_ms'>;

/** The stored form of a message. */
export function encodeMessageBody(m: MessageBody): Uint8Array {
  const id = stringField(m.message_id);
  const sender = stringField(m.sender_id);
  const client = stringField(m.client_msg_id);
  const text = stringField(m.text);
  const o = new Out(id.size + sender.size + client.size + text.size + varintFieldSize(m.created_at_ms));
  writeString(o, F.message.message_id, m.message_id, id.n);
  writeString(o, F.message.sender_id, m.sender_id, sender.n);
  writeString(o, F.message.client_msg_id, m.client_msg_id, client.n);
  writeString(o, F.message.text, m.text, text.n);
  if (m.created_at_ms !== 0) {
    o.tag(F.message.created_at_ms, VARINT);
    o.varint(m.created_at_ms);
  }
  return o.buf;
}

/** A whole chat.v1.Message: a stored body followed by its channel_id and channel_seq. */
export function completeMessage(body: Uint8Array, channelId: string, channelSeq: number): Uint8Array {
  const channel = stringField(channelId);
  const o = new Out(body.byteLength + channel.size + varintFieldSize(channelSeq));
  o.bytes(body);
  writeString(o, F.message.channel_id, channelId, channel.n);
  if (channelSeq !== 0) {
    o.tag(F.message.channel_seq, VARINT);
    o.varint(channelSeq);
  }
  return o.buf;
}

function deliverySize(inboxSeq: number, message: Uint8Array): number {
  return varintFieldSize(inboxSeq) + lenFieldSize(message.byteLength);
}

function writeDelivery(o: Out, inboxSeq: number, message: Uint8Array): void {
  if (inboxSeq !== 0) {
    o.tag(F.delivery.inbox_seq, VARINT);
    o.varint(inboxSeq);
  }
  o.tag(F.delivery.message, LEN);
  o.varint(message.byteLength);
  o.bytes(message);
}

/** ServerFrame { ref: 0, delivery { inbox_seq, message } } around a whole Message's bytes. */
export function deliveryFrame(inboxSeq: number, message: Uint8Array): Uint8Array {
  const inner = deliverySize(inboxSeq, message);
  const o = new Out(lenFieldSize(inner));
  o.tag(F.serverFrame.delivery, LEN);
  o.varint(inner);
  writeDelivery(o, inboxSeq, message);
  return o.buf;
}

export interface DeliveryBytes {
  readonly inboxSeq: number;
  /** A whole chat.v1.Message. */
  readonly message: Uint8Array;
}

/** ServerFrame { ref, sync_result { deliveries, has_more } }. */
export function syncResultFrame(ref: number, deliveries: readonly DeliveryBytes[], hasMore: boolean): Uint8Array {
  const sizes = deliveries.map((d) => deliverySize(d.inboxSeq, d.message));
  const inner = sizes.reduce((a, n) => a + lenFieldSize(n), 0) + (hasMore ? 2 : 0);
  const o = new Out(varintFieldSize(ref) + lenFieldSize(inner));
  writeRef(o, ref);
  o.tag(F.serverFrame.sync_result, LEN);
  o.varint(inner);
  deliveries.forEach((d, i) => {
    o.tag(F.list.items, LEN);
    o.varint(sizes[i]!);
    writeDelivery(o, d.inboxSeq, d.message);
  });
  writeHasMore(o, hasMore);
  return o.buf;
}

/** ServerFrame { ref, history_result { messages, has_more } } from whole Messages' bytes. */
export function historyResultFrame(ref: number, messages: readonly Uint8Array[], hasMore: boolean): Uint8Array {
  const inner = messages.reduce((a, m) => a + lenFieldSize(m.byteLength), 0) + (hasMore ? 2 : 0);
  const o = new Out(varintFieldSize(ref) + lenFieldSize(inner));
  writeRef(o, ref);
  o.tag(F.serverFrame.history_result, LEN);
  o.varint(inner);
  for (const m of messages) {
    o.tag(F.list.items, LEN);
    o.varint(m.byteLength);
    o.bytes(m);
  }
  writeHasMore(o, hasMore);
  return o.buf;
}

function writeRef(o: Out, ref: number): void {
  if (ref === 0) return;
  o.tag(F.serverFrame.ref, VARINT);
  o.varint(ref);
}

function writeHasMore(o: Out, hasMore: boolean): void {
  if (!hasMore) return;
  o.tag(F.list.has_more, VARINT);
  o.varint(1);
}

/**
 * A whole Message's `created_at_ms` (0 when absent or unreadable), read without decoding: the
 * fields are walked, strings skipped by length. For the send-to-delivery histogram, which reads it
 * for every live delivery and so must not allocate.
 */
export function createdAtMsOf(message: Uint8Array): number {
  let pos = 0;
  while (pos < message.length) {
    const tag = readVarint(message, pos);
    if (tag < 0) return 0;
    pos = varintEnd;
    const wire = tag & 7;
    if (tag >>> 3 === F.message.created_at_ms && wire === VARINT) return Math.max(0, readVarint(message, pos));
    if (wire !== VARINT && wire !== LEN) return 0;
    const v = readVarint(message, pos);
    if (v < 0) return 0;
    pos = wire === LEN ? varintEnd + v : varintEnd;
  }
  return 0;
}

/** Where the varint readVarint read last ends: a module variable rather than a result object, so reading allocates nothing. */
let varintEnd = 0;

/** The varint at `pos` (-1 when the bytes end first), by multiplication: ms since 1970 pass 2^31, where bit shifts wrap. */
function readVarint(bytes: Uint8Array, pos: number): number {
  let v = 0;
  let mul = 1;
  while (pos < bytes.length) {
    const b = bytes[pos++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      varintEnd = pos;
      return v;
    }
    mul *= 128;
  }
  return -1;
}
