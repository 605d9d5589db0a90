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
 * Presence in Redis: `<p>on:<id>` exists while the identity is online (with a TTL its owner
 * refreshes, so a crashed owner's users fall offline by themselves) and `<p>seen:<id>` holds the
 * last-active time without expiry. A batch of identities is read with one MGET.
 *
 * Redis away: writes and reads fall back to an in-process directory (this node's view only) and
 * Redis is used again as soon as it answers; presence degrades, chat never waits on it.
 */
export class RedisPresenceDirectory implements PresenceDirectory {
  private readonly redis: Redis;
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
  }

  async set(userId: string, state: PresenceState): Promise<void> {
    await this.fallback.set(userId, state);
    await this.guard(async () => {
      const multi = this.redis.multi().set(this.seenKey(userId), String(state.lastActiveAtMs));
      if (state.online) multi.set(this.onKey(userId), '1', 'PX', this.o.onlineTtlMs);
      else multi.del(this.onKey(userId));
      await multi.exec();
    });
  }

  async refresh(userId: string): Promise<void> {
    await this.guard(async () => {
      await this.redis.set(this.onKey(userId), '1', 'PX', this.o.onlineTtlMs);
    });
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
}
