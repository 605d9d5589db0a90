/**
 * Who is online, readable from any node. One owner (an actor) writes each identity's
 * transitions; everyone else only reads. The in-process directory serves one node; a shared one
 * (the store, or Redis) lets the answer survive the owner moving between nodes.
 *
 * Writes are fenced by the owner epoch (the one the owner's store `acquire` handed out): a write
 * whose epoch is older than one the directory already took is refused, so an owner that was
 * superseded while it could not tell (its node paused or cut off past its lease) cannot make an
 * identity look online, or offline, after its successor wrote. Epochs only grow per identity.
 */
export interface PresenceState {
  readonly online: boolean;
  readonly lastActiveAtMs: number;
}

export interface PresenceDirectory {
  /**
   * Records a transition by the owner of `epoch`. Resolves false, writing nothing, when a newer
   * owner already wrote or fenced: the caller is stale and must stop acting as the owner.
   */
  set(userId: string, state: PresenceState, epoch: number): Promise<boolean>;
  /** States of these users, in one round trip; users never seen are offline with time 0. */
  getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>>;
  /**
   * The owner is alive and the identity still online: directories whose online states expire
   * (Redis) extend them. Called at most every few seconds per identity. False: the caller is
   * stale (as for `set`).
   */
  refresh?(userId: string, epoch: number): Promise<boolean>;
  /**
   * A new owner whose predecessor may still be running (it did not end cleanly) claims the
   * identity before anything else: from now on writes of older epochs are refused. The state is
   * left as it is. False: an even newer owner exists, so the caller is stale.
   */
  fence(userId: string, epoch: number): Promise<boolean>;
}

/** Epochs and states in a Map; also the fallback of directories whose backend is away. */
export class InProcessPresenceDirectory implements PresenceDirectory {
  private readonly states = new Map<string, PresenceState>();
  private readonly epochs = new Map<string, number>();

  async set(userId: string, state: PresenceState, epoch: number): Promise<boolean> {
    if (!this.claim(userId, epoch)) return false;
    this.states.set(userId, state);
    return true;
  }

  async fence(userId: string, epoch: number): Promise<boolean> {
    return this.claim(userId, epoch);
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>> {
    const out = new Map<string, PresenceState>();
    for (const id of userIds) out.set(id, this.states.get(id) ?? { online: false, lastActiveAtMs: 0 });
    return out;
  }

  /** Takes `epoch` as the newest unless a newer one was taken; false then. */
  private claim(userId: string, epoch: number): boolean {
    const current = this.epochs.get(userId) ?? 0;
    if (epoch < current) return false;
    if (epoch > current) this.epochs.set(userId, epoch);
    return true;
  }
}
