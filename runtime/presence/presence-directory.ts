/**
 * Who is online, readable from any node. One owner (an actor) writes each identity's
 * transitions; everyone else only reads. The in-process directory serves one node; a shared one
 * (the store, or Redis) lets the answer survive the owner moving between nodes.
 */
export interface PresenceState {
  readonly online: boolean;
  readonly lastActiveAtMs: number;
}

export interface PresenceDirectory {
  set(userId: string, state: PresenceState): Promise<void>;
  /** States of these users, in one round trip; users never seen are offline with time 0. */
  getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>>;
  /**
   * The owner is alive and the identity still online: directories whose online states expire
   * (Redis) extend them. Called at most every few seconds per identity.
   */
  refresh?(userId: string): Promise<void>;
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
