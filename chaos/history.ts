/**
 * What a chaos run records, as the apps saw it: every send and its ack, every delivery the SDK
 * handed to an app, every connection going down and coming back, every presence state an app was
 * shown, plus each user's inbox and each channel's history read back at the end. The checker
 * (checker.ts) judges a History and nothing else, so it can be tested on crafted ones.
 *
 * Plain records (no Maps, no classes): a History can be written out as JSON (`--dump FILE`)
 * and checked again later.
 */

/** A device as its app knows it: the id survives client objects (a phone that comes back is the same device). */
export interface DeviceInfo {
  readonly device: string;
  readonly userId: string;
  /** The inbox_seq its stream started after (the first welcome's resume point; 0 for a new device). */
  readonly startAfterSeq: number;
}

export interface SendRecord {
  readonly device: string;
  readonly userId: string;
  readonly channelId: string;
  readonly clientMsgId: string;
  readonly startedAtMs: number;
  /** Codes of failed attempts, in order (each retried with the same client_msg_id). */
  readonly errors: string[];
  /** `node`: the node whose socket carried the ack. */
  ack?: { readonly messageId: string; readonly channelSeq: number; readonly atMs: number; readonly node?: string };
}

/** One delivery the SDK handed to the app (after its own de-duplication and hole filling). */
export interface DeliveryRecord {
  readonly device: string;
  readonly inboxSeq: number;
  readonly messageId: string;
  readonly channelId: string;
  readonly channelSeq: number;
  readonly senderId: string;
  readonly clientMsgId: string;
  readonly atMs: number;
}

export interface ConnectionRecord {
  readonly device: string;
  readonly kind: 'welcome' | 'down';
  readonly atMs: number;
  /** welcome: the node that served it. */
  readonly nodeId?: string;
  /** down: the app closed it on purpose (the device went away), so it is no outage. */
  readonly intended?: boolean;
  /** down: when the connection was last known good, if earlier than `atMs` (a watchdog found it dead). */
  readonly sinceMs?: number;
}

/** A presence state an app was shown: pushed by the server, or the answer to a query. */
export interface PresenceObservation {
  /** The observing device. */
  readonly observer: string;
  readonly subject: string;
  readonly online: boolean;
  readonly atMs: number;
  readonly via: 'push' | 'query';
}

/** What an observer must come to see after `fromMs`, within `withinMs` (a figure of the issue). */
export interface PresenceExpectation {
  readonly observer: string;
  readonly subject: string;
  readonly online: boolean;
  readonly fromMs: number;
  readonly withinMs: number;
  readonly why: string;
}

/**
 * A time in which `subject` has no device (it went at `goneSinceMs`): an observer that was already
 * shown it offline after it went, and is then shown it online between `fromMs` and `toMs`, saw a
 * stale write take effect. (Shown online before any offline is a late convergence instead, which
 * the expectations measure.)
 */
export interface OfflineWindow {
  readonly observer: string;
  readonly subject: string;
  readonly goneSinceMs: number;
  readonly fromMs: number;
  readonly toMs: number;
  readonly why: string;
}

export interface InboxEntry {
  readonly inboxSeq: number;
  readonly messageId: string;
  readonly channelId: string;
  readonly channelSeq: number;
}

export interface HistoryEntry {
  readonly channelSeq: number;
  readonly messageId: string;
  readonly senderId: string;
  readonly clientMsgId: string;
}

export interface History {
  readonly devices: readonly DeviceInfo[];
  /** channel id -> member user ids (fixed for the run). */
  readonly members: Readonly<Record<string, readonly string[]>>;
  readonly sends: readonly SendRecord[];
  readonly deliveries: readonly DeliveryRecord[];
  readonly connections: readonly ConnectionRecord[];
  readonly presence: readonly PresenceObservation[];
  readonly expectations: readonly PresenceExpectation[];
  readonly offlineWindows: readonly OfflineWindow[];
  /** user id -> the whole inbox, read with sync from 0 once the run settled. */
  readonly inboxes: Readonly<Record<string, readonly InboxEntry[]>>;
  /** channel id -> the whole history once the run settled, oldest first. */
  readonly histories: Readonly<Record<string, readonly HistoryEntry[]>>;
}
