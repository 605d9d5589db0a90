import type { Message, Presence } from '../../proto/client-frames.ts';

/** Messages a user actor handles. */
export type UserMessage =
  /**
   * From a channel: put this message in the inbox (idempotent per channel seq). Reply: { inbox_seq }.
   * `requireEvent`: the message may not be durable yet; the inbox entry is written only with it.
   */
  | { type: 'append'; message: Message; requireEvent?: boolean }
  /** From a channel: the user joined at this channel seq; earlier messages are not theirs. */
  | { type: 'joined'; channelId: string; atSeq: number }
  | { type: 'left'; channelId: string }
  /**
   * From a session after hello, or again (`reattach`) when its user actor may have moved. Reply:
   * { inbox_head_seq, cursor }: the durable head and the device's last ack (stored or not yet
   * flushed, at most the head; 0 on reattach).
   */
  | { type: 'connect'; deviceId: string; session: string; reattach?: boolean }
  | { type: 'disconnect'; deviceId: string; session: string; silent: boolean }
  /** From a session: the device is still there. */
  | { type: 'touch'; deviceId: string; session: string }
  | { type: 'ack'; deviceId: string; inboxSeq: number }
  /** From another user actor: a friend's presence changed. */
  | { type: 'presenceChanged'; presence: Presence }
  /** The friend list changed (someone added or removed us); reload it when next needed. */
  | { type: 'friendsChanged' }
  /** Reply: Presence[] of those ids the user may see (friends or channel co-members). */
  | { type: 'presenceQuery'; userIds: string[] }
  /** Reply: the inbox head seq. */
  | { type: 'head' }
  /** A node left the cluster: its sessions are gone, and so are our devices on it. */
  | { type: 'nodeDown'; nodeId: string }
  /** Internal: after a takeover, go offline unless a device re-registered meanwhile. */
  | { type: 'offlineCheck' }
  /** From the node's periodic sweep: expire devices whose session stopped touching. */
  | { type: 'expireDevices' }
  /** Internal: persist dirty device cursors. */
  | { type: 'flushCursors' }
  /** Internal: a pipelined write failed; rebuild from storage (or stop, when fenced). */
  | { type: 'reload'; reason: string };
