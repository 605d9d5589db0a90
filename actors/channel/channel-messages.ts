import type { Message, SendAck } from '../../proto/client-frames.ts';

/** Messages a channel actor handles, and what `ask` returns for each. */
export type ChannelMessage =
  /** Creates the channel if it does not exist yet; idempotent. Reply: void. */
  | { type: 'create'; kind: 'dm' | 'group'; name: string; creatorId: string; memberIds: string[] }
  /** Reply: SendAck, once the message is durable and in every member's inbox (or queued for retry). */
  | { type: 'send'; senderId: string; clientMsgId: string; text: string }
  /** Reply: { messages, has_more }, newest first. */
  | { type: 'history'; requesterId: string; beforeMessageId?: string; limit: number }
  /** Reply: void. */
  | { type: 'addMember'; actorId: string; userId: string }
  | { type: 'removeMember'; actorId: string; userId: string }
  /** Reply: ChannelInfo. */
  | { type: 'info'; requesterId: string }
  /** Reply: boolean: whether the user is a member. */
  | { type: 'isMember'; userId: string }
  /** Internal: an inbox append failed; keep it for retry. */
  | { type: 'fanoutFailed'; memberId: string; message: Message }
  /** Internal: retry members whose inbox append failed. */
  | { type: 'retryFanout' }
  /** Internal: a pipelined write failed; rebuild from storage (or stop, when fenced). */
  | { type: 'reload'; reason: string };

export interface ChannelInfo {
  channel_id: string;
  kind: 'dm' | 'group';
  name: string;
  member_ids: string[];
}

export type { Message, SendAck };
