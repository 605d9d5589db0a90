import { Redis } from 'ioredis';
import type { Logger } from '../log.ts';
import { InProcessPresenceDirectory, type PresenceDirectory, type PresenceState } from './presence-directory.ts';

export interface RedisPresenceOptions {
  readonly url: string;
  /** An online state not refreshed for this long reads as offline (its owner died). */
  readonly onlineTtlMs: number;
  readonly log: Logger;
  /** Key prefix, so several clusters can share one Redis. */
  readonly prefix?: string;
}

/**
 * The owner epoch check and the write in one step (Redis runs a script atomically): a write of an
 * epoch below `<p>epoch:<id>` is refused (0); otherwise the epoch is raised to it and the write
 * done (1). KEYS: epoch, then the script's own; ARGV[1]: the writer's epoch.
 */
const CLAIM = `local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = tonumber(ARGV[1])
if epoch < current then return 0 end
if epoch > current then redis.call('SET', KEYS[1], ARGV[1]) end
`;
/** KEYS: epoch, seen, on. ARGV: epoch, last active ms, '1' online / '0' offline, online TTL ms. */
const SET_SCRIPT = `${CLAIM}redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[4]) else redis.call('DEL', KEYS[3]) end
return 1`;
/** KEYS: epoch, on. ARGV: epoch, online TTL ms. */
const REFRESH_SCRIPT = `${CLAIM}redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1`;
/** KEYS: epoch. ARGV: epoch. */
const FENCE_SCRIPT = `${CLAIM}return 1`;

/** The scripts, as ioredis's defineCommand adds them (EVALSHA, loaded on first use). */
interface PresenceScripts {
  parleyPresenceSet(epochKey: string, seenKey: string, onKey: string, epoch: number, lastActiveAtMs: number, online: '1' | '0', ttlMs: number): Promise<number>;
  parleyPresenceRefresh(epochKey: string, onKey: string, epoch: number, ttlMs: number): Promise<number>;
  parleyPresenceFence(epochKey: string, epoch: number): Promise<number>;
}

/**
 * Presence in Redis: `<p>on:<id>` exists while the identity is online (with a TTL its owner
 * refreshes, so a crashed owner's users fall offline by themselves), `<p>seen:<id>` holds the
 * last-active time without expiry, and `<p>epoch:<id>` the newest owner epoch that wrote (every
 * write checks and raises it in one script, see CLAIM). A batch of identities is read with one MGET.
 *
 * Redis away: writes and reads fall back to an in-process directory (this node's view only) and
 * Redis is used again as soon as it answers; presence degrades, chat never waits on it. The
 * fence lives as long as Redis keeps its keys: after a restart without persistence the next
 * writer sets it again (a stale owner in that window is not caught here; the store's epochs
 * still fence everything it writes there).
 */
export class RedisPresenceDirectory implements PresenceDirectory {
  private readonly redis: Redis;
  private readonly scripts: PresenceScripts;
  private readonly fallback = new InProcessPresenceDirectory();
  private readonly prefix: string;
  private degraded = false;

  constructor(private readonly o: RedisPresenceOptions) {
    this.prefix = o.prefix ?? 'parley:presence:';
    this.redis = new Redis(o.url, {
      // Fail fast instead of queueing while Redis is away: the fallback answers meanwhile.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1_000,
      commandTimeout: 1_000,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
      lazyConnect: false,
    });
    this.redis.on('error', () => undefined); // reported through failed commands below
    this.redis.defineCommand('parleyPresenceSet', { numberOfKeys: 3, lua: SET_SCRIPT });
    this.redis.defineCommand('parleyPresenceRefresh', { numberOfKeys: 2, lua: REFRESH_SCRIPT });
    this.redis.defineCommand('parleyPresenceFence', { numberOfKeys: 1, lua: FENCE_SCRIPT });
    this.scripts = this.redis as unknown as PresenceScripts;
  }

  async set(userId: string, state: PresenceState, epoch: number): Promise<boolean> {
    const local = await this.fallback.set(userId, state, epoch);
    const done = await this.guard(() =>
      this.scripts.parleyPresenceSet(this.epochKey(userId), this.seenKey(userId), this.onKey(userId), epoch, state.lastActiveAtMs, state.online ? '1' : '0', this.o.onlineTtlMs),
    );
    return done === undefined ? local : done === 1;
  }

  async refresh(userId: string, epoch: number): Promise<boolean> {
    const done = await this.guard(() => this.scripts.parleyPresenceRefresh(this.epochKey(userId), this.onKey(userId), epoch, this.o.onlineTtlMs));
    // Nothing expires in the fallback: only the epoch check applies there.
    return done === undefined ? this.fallback.fence(userId, epoch) : done === 1;
  }

  async fence(userId: string, epoch: number): Promise<boolean> {
    const local = await this.fallback.fence(userId, epoch);
    const done = await this.guard(() => this.scripts.parleyPresenceFence(this.epochKey(userId), epoch));
    return done === undefined ? local : done === 1;
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>> {
    if (userIds.length === 0) return new Map();
    const keys = userIds.flatMap((id) => [this.onKey(id), this.seenKey(id)]);
    const values = await this.guard(() => this.redis.mget(keys));
    if (!values) return this.fallback.getMany(userIds);
    const out = new Map<string, PresenceState>();
    userIds.forEach((id, i) => out.set(id, { online: values[2 * i] !== null, lastActiveAtMs: Number(values[2 * i + 1] ?? 0) }));
    return out;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private async guard<T>(op: () => Promise<T>): Promise<T | undefined> {
    try {
      const r = await op();
      if (this.degraded) {
        this.degraded = false;
        this.o.log.info('redis presence recovered');
      }
      return r;
    } catch (err) {
      if (!this.degraded) {
        this.degraded = true;
        this.o.log.warn({ err: (err as Error).message }, 'redis unavailable; presence falls back to this node');
      }
      return undefined;
    }
  }

  private onKey(id: string): string {
    return `${this.prefix}on:${id}`;
  }

  private seenKey(id: string): string {
    return `${this.prefix}seen:${id}`;
  }

  private epochKey(id: string): string {
    return `${this.prefix}epoch:${id}`;
  }
}
