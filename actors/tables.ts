/**
 * Where chat keeps its records in the runtime's generic storage. One place, so a reader can see
 * the whole layout: journals (event logs) per actor, and key-value tables (table, partition, key).
 */
export const Journals = {
  /**
   * A channel's history: seq = channel_seq, key = message_id, dedup = sender:client_msg_id, data =
   * the stored message (stored-message.ts).
   */
  channel: (channelId: string) => `channel/${channelId}`,
  /**
   * A user's inbox: rows of segments that reference channel messages, never copy them; key = the
   * inbox seq of the row's first entry (actors/user/inbox.ts).
   */
  inbox: (userId: string) => `inbox/${userId}`,
  /**
   * Node losses (a crash, a node that left without handing off), one event each: its seq is a
   * counter that user actors compare with the one they last checked their inboxes at, since a
   * lost node may have taken channel notifications with it (actors/user/user-actor.ts heal).
   */
  losses: 'cluster/losses',
} as const;

export const Tables = {
  /** username -> user id (partition = username, key ''). Unique by putIfAbsent. */
  username: 'username',
  /**
   * Failed logins a login guard shard carried over a hand-off or shutdown: partition = the shard,
   * key '', value [[username, FailureRecord], ...] (actors/auth/login-guard-actor.ts).
   */
  loginFailures: 'login_failures',
  /** user id -> profile (key 'profile'). */
  user: 'user',
  /** user -> users they added (partition = user, key = other). Friends = both directions. */
  friend: 'friend',
  /**
   * user -> users they block (partition = blocker, key = blocked, value {at_ms}). Written by the
   * blocker's user actor only, which holds the set in memory (actors/user/blocks.ts).
   */
  block: 'block',
  /** The same blocks the other way (partition = blocked, key = blocker), written with them, for the blocked user's actor. */
  blockedBy: 'blocked_by',
  /** sorted user pair -> DM channel id. */
  dm: 'dm',
  /** channel -> meta (key 'meta'). */
  channel: 'channel',
  /** channel -> members (key = user id). */
  member: 'member',
  /** user -> channels they are in (key = channel id). */
  userChannel: 'user_channel',
  /** channel -> read marks (key = user id, value = the channel_seq read up to). */
  readMark: 'read_mark',
  /** user -> device cursors (key = device id). */
  cursor: 'cursor',
  /** node -> users with a device connected there (cluster only), for takeover after a crash. */
  presenceNode: 'presence_node',
  /** node id -> 'running' while it serves, 'stopped' after a clean stop (key ''). */
  nodeState: 'node_state',
  /**
   * Logged-out login sessions (token sid): partition = the UTC day (ms / 86,400,000) of until_ms,
   * when the row may be forgotten; key = sid; value {sub, until_ms, at_ms}. See auth/revocations.ts.
   */
  revokedSession: 'revoked_session',
  /** The same logouts by when they happened: partition = at_ms / 10,000; key = sid; value {until_ms}. Kept a minute. */
  revocationFeed: 'revocation_feed',
  /**
   * Web Push subscriptions (actors/push/push-subscriptions.ts): partition = user; key = a hash of
   * (device id, endpoint), so a late removal of an old endpoint never deletes a newer one of the
   * same device; value {device_id, endpoint, keys: {p256dh, auth}, at_ms}.
   */
  pushSubscription: 'push_subscription',
  /** The cluster's VAPID key pair (partition '', key 'keys'), created once by putIfAbsent (actors/push/vapid-keys.ts). */
  pushVapid: 'push_vapid',
  /** user -> muted channels (key = channel id, value {until_ms}); written by the user's actor only. */
  mute: 'mute',
  /** user -> the job the user's actor is filling now (key ''); see actors/user/push-decider.ts. */
  pushOpen: 'push_open',
  /** user -> the last job sent (key '', value {first_seq, sent_ms}): a job is never sent twice, and one window apart. */
  pushSent: 'push_sent',
  // The push queue itself (jobs, claims, dead letters) is runtime/queue's: tables push_queue,
  // push_claim and push_dead in the store, or Redis keys parley:{push}:* with --redis.
} as const;

/** A channel muted for push until `until_ms` (Tables.mute). */
export interface MuteRow {
  readonly until_ms: number;
}

/** The longest a channel can be muted at once: a year (366 days, so a leap year fits). */
export const MAX_MUTE_MS = 366 * 86_400_000;

export interface UserProfile {
  readonly username: string;
  readonly password_hash: string;
  readonly created_at_ms: number;
  /** Shown instead of the username where set (PATCH /v1/users/me); absent: the username. */
  readonly display_name?: string;
  /** Set by `parleyctl users disable`: no login, every token refused (actors/api/admin-api.ts). */
  readonly disabled_at_ms?: number;
}

/** What anyone signed in may see of a user (GET /v1/users). */
export interface PublicProfile {
  readonly user_id: string;
  readonly username: string;
  readonly display_name: string;
}

export interface ChannelMeta {
  readonly kind: 'dm' | 'group';
  readonly name: string;
  readonly creator_id: string;
  readonly created_at_ms: number;
}

/**
 * A membership row (Tables.member and Tables.userChannel). `at_seq`: the channel's head when the
 * user joined; the user's inbox takes only messages after it (actors/user/inbox.ts). Rows from
 * before it was recorded lack it: 0, the whole history.
 */
export interface MembershipRow {
  readonly joined_at_ms: number;
  readonly kind: 'dm' | 'group';
  readonly at_seq?: number;
}

/** A device cursor row (Tables.cursor): the last inbox seq the device acked. */
export interface StoredCursor {
  readonly inbox_seq: number;
  readonly updated_at_ms: number;
}

export const MAX_GROUP_MEMBERS = 100;
/** Users one user may block at once; the set is held in memory by its user actor. */
export const MAX_BLOCKS = 1_000;
export const MAX_TEXT_CODE_POINTS = 100_000;
/** Longest client_msg_id, channel_id and device_id, in UTF-16 units. */
export const MAX_CLIENT_ID = 128;

/**
 * The largest body of a valid send over HTTP, in any valid JSON encoding: a code point of text
 * takes at most 12 bytes (an astral one as an escaped pair, `\uD83D\uDE00`, which is what
 * Python's `json.dumps` writes), a UTF-16 unit of client_msg_id at most 6 (`\u0041`), and 1 KiB
 * covers the keys (escaped too), the punctuation and some whitespace. A body cap below this
 * refuses texts the text limit admits, so the config refuses such a cap.
 */
export const MAX_SEND_JSON_BYTES = MAX_TEXT_CODE_POINTS * 12 + MAX_CLIENT_ID * 6 + 1024;

/**
 * The largest WebSocket frame of a valid send (protobuf): text in UTF-8 at most 4 bytes a code
 * point, each id at most 3 bytes a UTF-16 unit, and 64 bytes for the ref, tags and lengths.
 */
export const MAX_SEND_FRAME_BYTES = MAX_TEXT_CODE_POINTS * 4 + 2 * MAX_CLIENT_ID * 3 + 64;
