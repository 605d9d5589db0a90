/**
 * Presence directories: who is online and since when, readable from any node, written only by
 * each identity's owner. In-process (one node), in the shared store (a cluster without Redis),
 * or in Redis (TTL'd online states, batch reads in one MGET, in-process fallback while away).
 *
 * Guarantee: writes are fenced by the writer's owner epoch. Once an owner of epoch e wrote or
 * fenced, a write of an older epoch is refused (`false`) and changes nothing, so an owner that was
 * superseded without knowing it (paused or cut off past its lease) cannot publish a stale state.
 *
 * @example
 * ```ts
 * const presence = new RedisPresenceDirectory({ url: 'redis://127.0.0.1:6379', onlineTtlMs: 40_000, log });
 * await presence.set('u1', { online: true, lastActiveAtMs: Date.now() }, 3); // true
 * await presence.fence('u1', 4);                                              // a successor took over
 * await presence.set('u1', { online: true, lastActiveAtMs: Date.now() }, 3); // false: stale owner
 * (await presence.getMany(['u1', 'u2'])).get('u1'); // { online: true, ... } as epoch 3 last wrote it
 * ```
 */
export { InProcessPresenceDirectory, type PresenceDirectory, type PresenceState } from './presence-directory.ts';
export { KvPresenceDirectory } from './kv-presence-directory.ts';
export { RedisPresenceDirectory, type RedisPresenceOptions } from './redis-presence-directory.ts';
