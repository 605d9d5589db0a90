/**
 * Wire formats. `client.proto` (package chat.v1) is the contract with every client; the
 * checked-in descriptor lets browsers and React Native decode without a .proto parser.
 *
 * Guarantees: decoding never throws anything but `FrameDecodeError`: code FRAME_TOO_DEEP for a
 * frame nesting deeper than its schema (ClientFrame 2 levels, ServerFrame 4), refused by a scan
 * of the wire bytes before protobufjs decodes it (frame-depth.ts), BAD_FRAME for anything else
 * that is not a frame.
 *
 * @example
 * ```ts
 * const bytes = encodeClientFrame(1, 'send', { channel_id, client_msg_id: 'c1', text: 'hi' });
 * const frame = decodeClientFrame(bytes); // { ref: 1, body: 'send', send: {...} }
 * ```
 */
export * from './client-frames.ts';
export { decodeClientFrame, decodeMessage, decodeServerFrame, encodeClientFrame, encodeServerFrame, FrameDecodeError } from './client-codec.ts';
export { completeMessage, deliveryFrame, encodeMessageBody, historyResultFrame, syncResultFrame, type DeliveryBytes, type MessageBody } from './message-bytes.ts';
