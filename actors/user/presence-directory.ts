/**
 * Who is online, readable by any actor. The user actor owns each user's transitions and writes
 * here; readers (presence queries, fan-out) only read. The in-process directory serves one node;
 * a shared one (Redis) lets the answer survive a user actor moving between nodes.
 */
export interface PresenceState {
  readonly online: boolean;
  readonly lastActiveAtMs: number;
}

export interface PresenceDirectory {
  set(userId: string, state: PresenceState): Promise<void>;
  /** States of these users, in one round trip; users never seen are offline with time 0. */
  getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>>;
}

export class InProcessPresenceDirectory implements PresenceDirectory {
  private readonly states = new Map<string, PresenceState>();

  async set(userId: string, state: PresenceState): Promise<void> {
    this.states.set(userId, state);
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>> {
    const out = new Map<string, PresenceState>();
    for (const id of userIds) out.set(id, this.states.get(id) ?? { online: false, lastActiveAtMs: 0 });
    return out;
  }
}
