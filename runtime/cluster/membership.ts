/** One node of the cluster as every other node sees it. */
export interface Member {
  nodeId: string;
  /** Where peers dial this node's inter-node transport (`host:port`). */
  grpcAddress: string;
  /** Where clients reach this node's WebSocket endpoint. */
  wsUrl: string;
  /** The node's own load figure (higher is busier); published at most once per second. */
  load: number;
  /** Wall-clock start time, so a restarted node with the same id is recognisably new. */
  startedAtMs: number;
}

/**
 * Who is in the cluster, and whether this node may still act as a member. A node that reads
 * `selfHealthy() === false` must stop serving what it owns: its registration may have lapsed
 * and another node may already be taking over.
 */
export interface MembershipProvider {
  /** Registers `self` (under a lease that is kept alive) and starts following the member set. */
  join(self: Member): Promise<void>;
  /** Records this node's load; published with throttling (at most once per second), never blocks. */
  setLoad(load: number): void;
  /** The current view sorted by node id, self included while registered. */
  members(): readonly Member[];
  /** Called with the whole new view after every change; returns an unsubscribe function. */
  onChange(listener: (members: readonly Member[]) => void): () => void;
  /**
   * False once our registration could not be renewed for long enough that it may have lapsed
   * (with a safety margin, before it actually can), and after `leave()`. Turns true again after
   * a successful renewal or re-registration.
   */
  selfHealthy(): boolean;
  /** Called on each transition to unhealthy (not on `leave()`); returns an unsubscribe function. */
  onSelfUnhealthy(listener: () => void): () => void;
  /** Deregisters at once (revoking the lease first, so peers see us go), then stops following. */
  leave(): Promise<void>;
}
