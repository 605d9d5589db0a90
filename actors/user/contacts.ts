import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';
import type { Blocks } from './blocks.ts';

const COMEMBER_CACHE_MS = 10_000;

/**
 * Who may see the user's presence: mutual friends (cached until the friend list changes) and
 * channel co-members (cached for a few seconds; membership changes reset it). Users hidden by a
 * block either way are never among the friends (blocking ends a friendship, but a request that
 * raced with the block could still have made one).
 */
export class Contacts {
  private friends: string[] | undefined;
  private comembers: { ids: Set<string>; atMs: number } | undefined;

  constructor(
    private readonly userId: string,
    private readonly kv: KeyValueStore,
    private readonly blocks: Blocks,
  ) {}

  friendsChanged(): void {
    this.friends = undefined;
  }

  channelsChanged(): void {
    this.comembers = undefined;
  }

  async mutualFriends(): Promise<string[]> {
    if (!this.friends) {
      const added = await this.kv.list(Tables.friend, this.userId);
      const back = await Promise.all(added.map((r) => this.kv.get(Tables.friend, r.key, this.userId)));
      this.friends = added.filter((_, i) => back[i] !== undefined).map((r) => r.key);
    }
    return this.friends.some((f) => this.blocks.hides(f)) ? this.friends.filter((f) => !this.blocks.hides(f)) : this.friends;
  }

  async coMembers(): Promise<Set<string>> {
    const now = Date.now();
    if (this.comembers && now - this.comembers.atMs < COMEMBER_CACHE_MS) return this.comembers.ids;
    const ids = new Set<string>();
    for (const ch of await this.kv.list(Tables.userChannel, this.userId)) {
      for (const m of await this.kv.list(Tables.member, ch.key)) ids.add(m.key);
    }
    this.comembers = { ids, atMs: now };
    return ids;
  }
}
