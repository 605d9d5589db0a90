import protobuf from 'protobufjs/light.js';
import { clientDescriptor } from './client-descriptor.ts';
import { DepthGuard } from './frame-depth.ts';
import type { ClientBody, ClientBodyName, ClientFrame, Message, ServerBody, ServerBodyName, ServerFrame } from './client-frames.ts';

const root = protobuf.Root.fromJSON(clientDescriptor as unknown as protobuf.INamespace);
const ClientFrameType = root.lookupType('chat.v1.ClientFrame');
const ServerFrameType = root.lookupType('chat.v1.ServerFrame');
const MessageType = root.lookupType('chat.v1.Message');
/**
 * Each frame type's nesting bound, computed from the schema (ClientFrame: the frame and its body,
 * 2; ServerFrame: frame, SyncResult, Delivery, Message, 4) and checked before protobufjs decodes.
 */
const clientFrameDepth = new DepthGuard(ClientFrameType);
const serverFrameDepth = new DepthGuard(ServerFrameType);

/**
 * Raised for bytes that are not a valid frame: BAD_FRAME, or FRAME_TOO_DEEP for a frame that
 * nests deeper than its schema allows (refused before it is decoded). The server answers with
 * the code and closes the socket.
 */
export class FrameDecodeError extends Error {
  constructor(
    message: string,
    options?: { cause?: unknown },
    readonly code: 'BAD_FRAME' | 'FRAME_TOO_DEEP' = 'BAD_FRAME',
  ) {
    super(message, options);
    this.name = 'FrameDecodeError';
  }
}

/**
 * uint64 fields decode as Long objects when the `long` package is loaded (protobufjs's setting is
 * process-wide and other libraries, etcd3 among them, need it). Seqs and times stay far below
 * 2^53, so each frame's 64-bit fields are turned into plain numbers here, field by field.
 */
type Longish = number | { toNumber(): number };
const num = (v: unknown): number => (typeof v === 'number' ? v : v == null ? 0 : (v as Exclude<Longish, number>).toNumber());

interface Mutable {
  [k: string]: unknown;
}

function fixMessage(m: Mutable | null | undefined): void {
  if (!m) return;
  m.created_at_ms = num(m.created_at_ms);
  m.channel_seq = num(m.channel_seq);
}

function fixDelivery(d: Mutable | null | undefined): void {
  if (!d) return;
  d.inbox_seq = num(d.inbox_seq);
  fixMessage(d.message as Mutable);
}

function fixPresence(p: Mutable | null | undefined): void {
  if (p) p.last_active_at_ms = num(p.last_active_at_ms);
}

function numbersInClientFrame(f: Mutable): void {
  f.ref = num(f.ref);
  switch (f.body) {
    case 'hello':
      (f.hello as Mutable).last_inbox_seq = num((f.hello as Mutable).last_inbox_seq);
      break;
    case 'ack':
      (f.ack as Mutable).inbox_seq = num((f.ack as Mutable).inbox_seq);
      break;
    case 'sync':
      (f.sync as Mutable).after_inbox_seq = num((f.sync as Mutable).after_inbox_seq);
      break;
    case 'read':
      (f.read as Mutable).channel_seq = num((f.read as Mutable).channel_seq);
      break;
  }
}

function numbersInServerFrame(f: Mutable): void {
  f.ref = num(f.ref);
  switch (f.body) {
    case 'welcome':
      (f.welcome as Mutable).inbox_head_seq = num((f.welcome as Mutable).inbox_head_seq);
      (f.welcome as Mutable).resumed_after_inbox_seq = num((f.welcome as Mutable).resumed_after_inbox_seq);
      break;
    case 'send_ack':
      fixMessage(f.send_ack as Mutable);
      break;
    case 'delivery':
      fixDelivery(f.delivery as Mutable);
      break;
    case 'sync_result':
      for (const d of (f.sync_result as { deliveries: Mutable[] }).deliveries) fixDelivery(d);
      break;
    case 'history_result':
      for (const m of (f.history_result as { messages: Mutable[] }).messages) fixMessage(m);
      break;
    case 'presence':
      fixPresence(f.presence as Mutable);
      break;
    case 'read_receipt':
      (f.read_receipt as Mutable).channel_seq = num((f.read_receipt as Mutable).channel_seq);
      break;
    case 'presence_result':
      for (const p of (f.presence_result as { presences: Mutable[] }).presences) fixPresence(p);
      break;
  }
}

function decode<F>(type: protobuf.Type, depth: DepthGuard, bytes: Uint8Array): F {
  // Unreadable bytes are protobufjs's to refuse below, with the same BAD_FRAME.
  if (depth.check(bytes) === 'too_deep') throw new FrameDecodeError(`frame nests deeper than ${depth.maxDepth} levels`, undefined, 'FRAME_TOO_DEEP');
  let decoded: protobuf.Message & { body?: string };
  try {
    decoded = type.decode(bytes) as protobuf.Message & { body?: string };
  } catch (err) {
    throw new FrameDecodeError('frame is not valid protobuf', { cause: err });
  }
  if (!decoded.body) throw new FrameDecodeError('frame has no body');
  return decoded as unknown as F;
}

export function encodeClientFrame<K extends ClientBodyName>(ref: number, body: K, value: ClientBody<K>): Uint8Array {
  return ClientFrameType.encode({ ref, [body]: value }).finish();
}

export function decodeClientFrame(bytes: Uint8Array): ClientFrame {
  const f = decode<ClientFrame>(ClientFrameType, clientFrameDepth, bytes);
  numbersInClientFrame(f as unknown as Mutable);
  return f;
}

export function encodeServerFrame<K extends ServerBodyName>(ref: number, body: K, value: ServerBody<K>): Uint8Array {
  return ServerFrameType.encode({ ref, [body]: value }).finish();
}

export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  const f = decode<ServerFrame>(ServerFrameType, serverFrameDepth, bytes);
  numbersInServerFrame(f as unknown as Mutable);
  return f;
}

/** A chat.v1.Message from its bytes (see message-bytes.ts), with every field present. */
export function decodeMessage(bytes: Uint8Array): Message {
  let decoded: Mutable;
  try {
    decoded = MessageType.toObject(MessageType.decode(bytes), { defaults: true }) as Mutable;
  } catch (err) {
    throw new FrameDecodeError('bytes are not a valid chat.v1.Message', { cause: err });
  }
  fixMessage(decoded);
  return decoded as unknown as Message;
}
