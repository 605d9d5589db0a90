import type { ClientFrame, Presence, ReadReceipt, TypingNotice } from '../../proto/client-frames.ts';

/** Messages a session actor handles: frames from its socket and pushes from user actors. */
export type SessionMessage =
  | { type: 'frame'; frame: ClientFrame }
  /** Inbox entries firstInboxSeq.. in order: whole chat.v1.Message bytes, shared by every device. */
  | { type: 'deliver'; firstInboxSeq: number; messages: readonly Uint8Array[] }
  | { type: 'presence'; presence: Presence }
  /** Another member is typing in one of the user's channels. */
  | { type: 'typing'; notice: TypingNotice }
  /** A member of one of the user's channels (maybe the user, on another device) read up to a seq. */
  | { type: 'readReceipt'; receipt: ReadReceipt }
  /** Friends' current presence, after the user actor moved (one message, however many friends). */
  | { type: 'presenceSnapshot'; presences: readonly Presence[] }
  /** Another connection of the same device took over. */
  | { type: 'superseded' }
  /** The login whose token opened this session was logged out (on any node). */
  | { type: 'revoked' }
  /** The user's actor may have moved (membership changed): register again and catch up. */
  | { type: 'reattach' }
  /** Internal: push the next page of the inbox backlog. */
  | { type: 'catchUp' }
  | { type: 'drain' }
  | { type: 'closed'; silent: boolean };
