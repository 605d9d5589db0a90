/**
 * Chat, built on the runtime: session actors (one per socket), user actors (inbox, device
 * cursors, presence) and channel actors (membership, order, fan-out), plus the HTTP API and
 * auth. Actors see interfaces only (Store, Connection, PresenceDirectory), never a concrete
 * engine or socket library.
 *
 * Guarantees (each tested in test/e2e):
 * - `send_ack` means the message is durable in the channel's history (one append per channel
 *   batch); it survives kill -9. Inboxes are derived from the histories (user/inbox.ts): every
 *   member gets it, and a user actor activated after a crash or a lost node checks its channels'
 *   heads before it answers.
 * - `channel_seq` is gap-free per channel, `inbox_seq` gap-free per user, message ids strictly
 *   increase within a channel; a resend with the same `client_msg_id` yields the first result.
 * - On one connection, deliveries arrive in inbox order without gaps or duplicates.
 * - Auth (auth/, tested in test/security): failed logins are counted per username for the whole
 *   cluster by login guard shards (auth/login-guard-actor.ts) and throttled before any password
 *   work; an unknown username answers like a wrong password; password hashing runs at most a
 *   few at a time, on low-priority threads of its own (auth/scrypt-threads.ts).
 *
 * @example
 * ```ts
 * const node = new ChatNode({ nodeId: 'n1', ids: new Snowflake(1), host: '127.0.0.1', port: 8080, store, signer, ... });
 * await node.start();
 * ```
 */
export { ChatNode, type ChatNodeOptions } from './chat-node.ts';
export { ChatCodes, httpStatusFor } from './errors.ts';
export { Snowflake } from './ids/snowflake.ts';
