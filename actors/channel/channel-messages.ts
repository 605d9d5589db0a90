import type { SendAck } from '../../proto/client-frames.ts';

/** Messages a channel actor handles, and what `ask` returns for each. */
export type ChannelMessage =
  /**
   * Creates the channel if it does not exist yet; idempotent. Reply: ChannelInfo. A DM is
   * FORBIDDEN to a creator the other member blocks (whether it exists yet or not).
   */
  | { type: 'create'; kind: 'dm' | 'group'; name: string; creatorId: string; memberIds: string[] }
  /**
   * Reply: SendAck, once the message is durable in the channel's history (every member then gets
   * it). FORBIDDEN in a DM while either member blocks the other.
   */
  | { type: 'send'; senderId: string; clientMsgId: string; text: string }
  /** Reply: HistoryPage, newest first. */
  | { type: 'history'; requesterId: string; beforeMessageId?: string; limit: number }
  /** Reply: void. */
  | { type: 'addMember'; actorId: string; userId: string }
  /** Reply: void, once the removed member's inbox takes nothing of this channel past the removal. */
  | { type: 'removeMember'; actorId: string; userId: string }
  /** Reply: ChannelInfo. */
  | { type: 'info'; requesterId: string }
  /**
   * A member is typing: the other members' devices are told, at most once per user per second.
   * Reply: void; FORBIDDEN for a non-member.
   */
  | { type: 'typing'; userId: string }
  /**
   * Moves a member's read mark forward (at most to the head); when it moved, every member's
   * devices but `session` get a receipt. Reply: void; FORBIDDEN for a non-member.
   */
  | { type: 'read'; userId: string; seq: number; session?: string }
  /** Reply: ReadState for a member. */
  | { type: 'readState'; userId: string }
  /** Reply: ChannelReads; FORBIDDEN for a non-member. */
  | { type: 'reads'; requesterId: string }
  /** Internal: send the typing notices that came due. */
  | { type: 'typingFlush' }
  /** Reply: boolean: whether the user is a member. */
  | { type: 'isMember'; userId: string }
  /**
   * Tells every member the channel's head, so that one that missed a notification (a link to its
   * node broke with it in flight) fills the gap from the history. Reply: void.
   */
  | { type: 'announce' }
  /**
   * From a user actor: one of this DM's members blocked or unblocked the other; reload the
   * pair's blocks from the store (a group ignores it). Reply: void.
   */
  | { type: 'blocksChanged' }
  /** Internal: announce the head again to members a notification could not reach. */
  | { type: 'retryNotify' };

export interface ChannelInfo {
  channel_id: string;
  kind: 'dm' | 'group';
  name: string;
  member_ids: string[];
}

/** A page of history: whole chat.v1.Message bytes, newest first (see actors/stored-message.ts). */
/** A member's place in a channel (GET /v1/channels). */
export interface ReadState {
  /** The channel's head channel_seq. */
  last_seq: number;
  /** The member's read mark. */
  last_read_seq: number;
  /** Messages after the mark sent by others. */
  unread_count: number;
}

export interface ChannelReads {
  reads: { user_id: string; channel_seq: number }[];
}

export interface HistoryPage {
  messages: Uint8Array[];
  has_more: boolean;
}

export type { SendAck };
