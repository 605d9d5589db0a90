import { codeOf } from '../../runtime/errors.ts';
import type { PresenceState } from '../../runtime/presence/index.ts';
import type { Presence } from '../../proto/client-frames.ts';
import { sessions, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import type { Blocks } from './blocks.ts';
import type { Contacts } from './contacts.ts';

const MAX_PRESENCE_QUERY = 500;

/**
 * The user's presence as others see it: recorded in the presence directory on each transition,
 * pushed to online friends; group co-members ask instead (`query`). Best effort throughout:
 * chat keeps working while the directory is away, and clients can always ask.
 */
export class UserPresence {
  constructor(
    private readonly userId: string,
    private readonly deps: ChatDeps,
    private readonly contacts: Contacts,
    private readonly blocks: Blocks,
  ) {}

  /** Records the transition and tells the friends who are online. */
  async transition(online: boolean): Promise<void> {
    const presence: Presence = { user_id: this.userId, online, last_active_at_ms: Date.now() };
    try {
      await this.deps.presence.set(this.userId, { online, lastActiveAtMs: presence.last_active_at_ms });
      const friends = await this.contacts.mutualFriends();
      if (friends.length === 0) return;
      const states = await this.deps.presence.getMany(friends);
      for (const f of friends) {
        if (states.get(f)?.online) users(this.deps, f).tell({ type: 'presenceChanged', presence });
      }
    } catch (err) {
      this.deps.log.warn({ user: this.userId, code: codeOf(err) }, 'presence update failed');
    }
  }

  /**
   * A live session re-registers with an activation that did not know it: the previous one died or
   * moved, and friends' presence changes sent meanwhile went to it (or arrived here before the
   * device did) and were dropped. The device gets every friend's current state instead, read after
   * any such change was recorded, so it converges; later changes arrive after this turn.
   */
  async sendSnapshot(session: string): Promise<void> {
    try {
      const friends = await this.contacts.mutualFriends();
      if (friends.length === 0) return;
      const states = await this.deps.presence.getMany(friends);
      sessions(this.deps, session).tell({ type: 'presenceSnapshot', presences: friends.map((f) => presenceOf(f, states)) });
    } catch (err) {
      this.deps.log.warn({ user: this.userId, code: codeOf(err) }, 'presence snapshot not sent');
    }
  }

  /** Presence of those ids the user may see: friends and channel co-members. */
  async query(userIds: string[]): Promise<Presence[]> {
    if (userIds.length > MAX_PRESENCE_QUERY) throw reject(ChatCodes.INVALID_ARGUMENT, `at most ${MAX_PRESENCE_QUERY} user ids per query`);
    const friends = new Set(await this.contacts.mutualFriends());
    const wanted = [...new Set(userIds)];
    const needComembers = wanted.some((u) => u !== this.userId && !friends.has(u));
    const comembers = needComembers ? await this.contacts.coMembers() : new Set<string>();
    const allowed = wanted.filter((u) => u === this.userId || friends.has(u) || comembers.has(u));
    if (allowed.length < wanted.length) throw reject(ChatCodes.FORBIDDEN, 'presence is visible to friends and channel co-members only');
    // A co-member hidden by a block (either way) is shown offline, never seen: as to a stranger.
    const visible = allowed.filter((u) => !this.blocks.hides(u));
    const states = await this.deps.presence.getMany(visible);
    return allowed.map((u) => presenceOf(u, states));
  }

  /** Whether the directory says the user is online (after a takeover, before devices re-register). */
  async recordedOnline(): Promise<boolean> {
    return (await this.deps.presence.getMany([this.userId])).get(this.userId)?.online ?? false;
  }
}

/** A user's presence as clients see it; never seen means offline since the epoch. */
export function presenceOf(userId: string, states: ReadonlyMap<string, PresenceState>): Presence {
  const s = states.get(userId);
  return { user_id: userId, online: s?.online ?? false, last_active_at_ms: s?.lastActiveAtMs ?? 0 };
}
