import protobuf from 'protobufjs/light.js';
import { clientDescriptor } from './client-descriptor.ts';
import type { ClientBody, ClientBodyName, ClientFrame, ServerBody, ServerBodyName, ServerFrame } from './client-frames.ts';

// Seqs and times stay far below 2^53, so plain numbers beat Long objects on every frame.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

const root = protobuf.Root.fromJSON(clientDescriptor as unknown as protobuf.INamespace);
const ClientFrameType = root.lookupType('chat.v1.ClientFrame');
const ServerFrameType = root.lookupType('chat.v1.ServerFrame');

/** Raised for bytes that are not a valid frame; the server answers BAD_FRAME. */
export class FrameDecodeError extends Error {
  readonly code = 'BAD_FRAME';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FrameDecodeError';
  }
}

function decode<F>(type: protobuf.Type, bytes: Uint8Array): F {
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
  return decode<ClientFrame>(ClientFrameType, bytes);
}

export function encodeServerFrame<K extends ServerBodyName>(ref: number, body: K, value: ServerBody<K>): Uint8Array {
  return ServerFrameType.encode({ ref, [body]: value }).finish();
}

export function decodeServerFrame(bytes: Uint8Array): ServerFrame {
  return decode<ServerFrame>(ServerFrameType, bytes);
}
