/**
 * Presence directories: who is online and since when, readable from any node, written only by
 * each identity's owner. In-process (one node), in the shared store (a cluster without Redis),
 * or in Redis (TTL'd online states, batch reads in one MGET, in-process fallback while away).
 *
 * @example
 * ```ts
 * const presence = new RedisPresenceDirectory({ url: 'redis://127.0.0.1:6379', onlineTtlMs: 40_000, log });
 * await presence.set('u1', { online: true, lastActiveAtMs: Date.now() });
 * (await presence.getMany(['u1', 'u2'])).get('u1'); // { online: true, ... }
 * ```
 */
export { InProcessPresenceDirectory, type PresenceDirectory, type PresenceState } from './presence-directory.ts';
export { KvPresenceDirectory } from './kv-presence-directory.ts';
export { RedisPresenceDirectory, type RedisPresenceOptions } from './redis-presence-directory.ts';
