import type { Presence, ReadReceipt, TypingNotice } from '../../proto/client-frames.ts';
import type { DeliveryBytes } from '../../proto/message-bytes.ts';

/** A message a channel made durable, as its members' user actors get it. */
export interface PublishedMessage {
  readonly seq: number;
  readonly senderId: string;
  /** The whole chat.v1.Message, encoded once by the channel and shared by every recipient. */
  readonly bytes: Uint8Array;
}

/** Messages a user actor handles. */
export type UserMessage =
  /** From a channel: messages with consecutive channel seqs, durable. Goes into the inbox. */
  | { type: 'published'; channelId: string; messages: readonly PublishedMessage[] }
  /** From a channel: its head, for a member that may have missed a notification. */
  | { type: 'channelHead'; channelId: string; seq: number }
  /** From a channel: the user joined at this channel seq; earlier messages are not theirs. */
  | { type: 'joined'; channelId: string; atSeq: number }
  /** From a channel (ask): the user was removed at this seq. Reply: void, once the inbox is closed there durably. */
  | { type: 'left'; channelId: string; atSeq: number }
  /** From a session (ask): inbox entries after a seq. Reply: DeliveryBytes[]. */
  | { type: 'readInbox'; afterSeq: number; limit: number }
  /**
   * From a session after hello, or again (`reattach`) when its user actor may have moved. Reply:
   * { inbox_head_seq, cursor }.
   */
  | { type: 'connect'; deviceId: string; session: string; reattach?: boolean }
  | { type: 'disconnect'; deviceId: string; session: string; silent: boolean }
  /** From a session: the device is still there. */
  | { type: 'touch'; deviceId: string; session: string }
  | { type: 'ack'; deviceId: string; inboxSeq: number }
  /** From a channel: another member is typing there (to this user's devices; never stored). */
  | { type: 'typing'; notice: TypingNotice }
  /** From a channel: a member's read mark moved; to every device but `exceptSession` (the reader's own). */
  | { type: 'readReceipt'; receipt: ReadReceipt; exceptSession?: string }
  /** From another user actor: a friend's presence changed. */
  | { type: 'presenceChanged'; presence: Presence }
  /** The friend list changed (someone added or removed us); reload it when next needed. */
  | { type: 'friendsChanged' }
  /**
   * From the HTTP API (ask): the user blocks `userId`. Reply: void, once stored and the other
   * user's actor and their DM channel (if any) know; BLOCK_LIST_FULL past MAX_BLOCKS. Repeating
   * it is harmless (and tells them again).
   */
  | { type: 'block'; userId: string }
  /** From the HTTP API (ask): the user unblocks `userId`. Reply: void, once stored and told. */
  | { type: 'unblock'; userId: string }
  /**
   * From another user's actor (ask): `userId` blocked or unblocked this user; reload that pair.
   * `hidePresence`: the two saw each other's presence, so this user's devices are told
   * `userId` is offline now. Reply: void.
   */
  | { type: 'blockedByChanged'; userId: string; hidePresence: boolean }
  /** Reply: string[], those of `userIds` this user blocks. */
  | { type: 'blocking'; userIds: string[] }
  /**
   * From a session that dropped presence frames for a client that did not read, once it caught
   * up: every friend's current presence to that session again.
   */
  | { type: 'presenceResync'; session: string }
  /** Reply: Presence[] of those ids the user may see (friends or channel co-members). */
  | { type: 'presenceQuery'; userIds: string[] }
  /** Reply: the inbox head seq. */
  | { type: 'head' }
  /** A node left the cluster: its sessions are gone, and so are our devices on it; notifications from it may be lost. */
  | { type: 'nodeDown'; nodeId: string }
  /** Internal: after a takeover, go offline unless a device re-registered meanwhile. */
  | { type: 'offlineCheck' }
  /** From the node's periodic sweep: expire devices whose session stopped touching. */
  | { type: 'expireDevices' }
  /**
   * From the HTTP API (ask), for a member of the channel: no push for its messages until
   * `untilMs` (undefined: unmute). Reply: void, once stored.
   */
  | { type: 'mute'; channelId: string; untilMs: number | undefined }
  /** Internal: persist dirty device cursors. */
  | { type: 'flushCursors' };

export type { DeliveryBytes };
