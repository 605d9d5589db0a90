import { CodedError, RuntimeCodes, codeOf } from '../../runtime/errors.ts';
import type { PresenceState } from '../../runtime/presence/index.ts';
import type { Presence } from '../../proto/client-frames.ts';
import { sessions, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import type { Blocks } from './blocks.ts';
import type { Contacts } from './contacts.ts';

const MAX_PRESENCE_QUERY = 500;

/** The activation presence is written for: its owner epoch, and what to do once it is stale. */
export interface PresenceOwner {
  /** The owner epoch the user's store acquire gave this activation. */
  presenceEpoch(): number;
  /** The directory refused a write: a newer owner of the user exists, this activation must end. */
  presenceSuperseded(): void;
}

/**
 * The user's presence as others see it: recorded in the presence directory on each transition,
 * pushed to online friends; group co-members ask instead (`query`). Best effort throughout:
 * chat keeps working while the directory is away, and clients can always ask.
 *
 * Every write carries the activation's owner epoch, and the directory refuses one older than a
 * write or fence it already took (runtime/presence): an activation on a node that was paused past
 * its lease, and resumed, finds its writes refused and stops, instead of publishing "online" for
 * a user whose devices are gone (or "offline" for one who reconnected elsewhere).
 */
export class UserPresence {
  constructor(
    private readonly userId: string,
    private readonly deps: ChatDeps,
    private readonly contacts: Contacts,
    private readonly blocks: Blocks,
    private readonly owner: PresenceOwner,
  ) {}

  /**
   * Claims the user's presence for this activation before it writes anything: called when the
   * previous activation did not end cleanly, so it may still be running somewhere. Throws FENCED
   * when an even newer activation claimed it already.
   */
  async fence(): Promise<void> {
    if (!(await this.deps.presence.fence(this.userId, this.owner.presenceEpoch()))) {
      throw new CodedError(RuntimeCodes.FENCED, `a newer owner of user ${this.userId} claimed its presence`);
    }
  }

  /** The user is still online (a device touched): directories with expiring states extend it. */
  async refresh(): Promise<void> {
    try {
      if ((await this.deps.presence.refresh?.(this.userId, this.owner.presenceEpoch())) === false) this.owner.presenceSuperseded();
    } catch {
      // The next touch refreshes again; the TTL spans several touches.
    }
  }

  /** Records the transition and tells the friends who are online. */
  async transition(online: boolean): Promise<void> {
    const presence: Presence = { user_id: this.userId, online, last_active_at_ms: Date.now() };
    try {
      if (!(await this.deps.presence.set(this.userId, { online, lastActiveAtMs: presence.last_active_at_ms }, this.owner.presenceEpoch()))) {
        this.owner.presenceSuperseded();
        return;
      }
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
