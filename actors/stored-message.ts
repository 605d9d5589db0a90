/**
 * The stored form of a chat message (the data of a channel journal event, see tables.ts): the
 * chat.v1.Message fields other than channel_id and channel_seq, protobuf-encoded
 * (proto/message-bytes.ts). The journal row already names the channel and its seq is the
 * channel_seq, so neither is stored twice; appending them to the stored bytes gives the Message
 * that goes to sockets and history pages as is, never decoded and encoded again.
 *
 * Rows written before messages were stored as protobuf hold JSON; they read the same way.
 */
import type { JournalEvent } from '../runtime/storage/index.ts';
import { decodeMessage } from '../proto/client-codec.ts';
import type { Message } from '../proto/client-frames.ts';
import { completeMessage, encodeMessageBody, type MessageBody } from '../proto/message-bytes.ts';

export type { MessageBody };

export const encodeStoredMessage = encodeMessageBody;

const OPEN_BRACE = 0x7b;

/** A stored body, whichever form the row has (a protobuf body never starts with `{`: field 15 does not exist). */
function storedBody(data: Uint8Array): Uint8Array {
  if (data[0] !== OPEN_BRACE) return data;
  const legacy = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as MessageBody;
  return encodeMessageBody(legacy);
}

/** The whole chat.v1.Message of a channel journal event, as bytes. */
export function messageBytesOf(channelId: string, e: JournalEvent): Uint8Array {
  return completeMessage(storedBody(e.data), channelId, e.seq);
}

/** The same, decoded (the JSON API's form). */
export function messageOf(channelId: string, e: JournalEvent): Message {
  return decodeMessage(messageBytesOf(channelId, e));
}
