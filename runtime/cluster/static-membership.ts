import { MemberView, encodeMember, validateMember } from './member-view.ts';
import type { Member, MembershipProvider } from './membership.ts';
import { MembershipError } from './membership-error.ts';

/**
 * An in-process stand-in for the registry: the members of one cluster whose nodes all live in
 * this process. Single-node deployments use a private one implicitly; tests share one between
 * several `StaticMembership`s to build a cluster without etcd.
 */
export class StaticCluster {
  private readonly records = new Map<string, string>();
  private revision = 0;
  private readonly subscribers = new Set<StaticMembership>();

  /** Registered members, sorted by node id. */
  members(): readonly Member[] {
    const view = new MemberView();
    view.replace(this.snapshot(), this.revision);
    return view.list();
  }

  /** @internal */
  put(member: Member): void {
    this.records.set(member.nodeId, encodeMember(member));
    this.publish();
  }

  /** @internal */
  remove(nodeId: string): void {
    if (this.records.delete(nodeId)) this.publish();
  }

  /** @internal */
  subscribe(m: StaticMembership): () => void {
    this.subscribers.add(m);
    return () => this.subscribers.delete(m);
  }

  /** @internal */
  snapshot(): { nodeId: string; value: string }[] {
    return [...this.records].map(([nodeId, value]) => ({ nodeId, value }));
  }

  /** @internal */
  get currentRevision(): number {
    return this.revision;
  }

  private publish(): void {
    this.revision++;
    for (const s of [...this.subscribers]) s.refresh();
  }
}

/**
 * Membership without a registry. Changes are seen by every member of the same StaticCluster
 * synchronously, load is published immediately (there is nothing to protect from write
 * load), and health only changes through `leave()` or the test hook `simulateLeaseLoss()`.
 */
export class StaticMembership implements MembershipProvider {
  private readonly cluster: StaticCluster;
  private readonly view = new MemberView();
  private readonly changeListeners = new Set<(members: readonly Member[]) => void>();
  private readonly unhealthyListeners = new Set<() => void>();
  private self: Member | undefined;
  private state: 'new' | 'joined' | 'left' = 'new';
  private healthy = false;
  private unsubscribe: (() => void) | undefined;

  constructor(cluster: StaticCluster = new StaticCluster()) {
    this.cluster = cluster;
  }

  async join(self: Member): Promise<void> {
    if (this.state !== 'new') throw new MembershipError('ALREADY_JOINED', `join() called in state ${this.state}`);
    validateMember(self);
    this.self = { ...self };
    this.state = 'joined';
    this.healthy = true;
    this.unsubscribe = this.cluster.subscribe(this);
    this.cluster.put(this.self);
  }

  setLoad(load: number): void {
    if (!Number.isFinite(load)) throw new MembershipError('INVALID_MEMBER', `load must be finite, got ${load}`);
    if (this.self === undefined) return;
    this.self.load = load;
    if (this.state === 'joined' && this.healthy) this.cluster.put(this.self);
  }

  members(): readonly Member[] {
    return this.view.list();
  }

  onChange(listener: (members: readonly Member[]) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  selfHealthy(): boolean {
    return this.state === 'joined' && this.healthy;
  }

  onSelfUnhealthy(listener: () => void): () => void {
    this.unhealthyListeners.add(listener);
    return () => this.unhealthyListeners.delete(listener);
  }

  async leave(): Promise<void> {
    if (this.state !== 'joined') {
      this.state = 'left';
      return;
    }
    this.cluster.remove(this.self!.nodeId);
    this.state = 'left';
    this.healthy = false;
    this.unsubscribe?.();
    this.view.clear();
    this.changeListeners.clear();
    this.unhealthyListeners.clear();
  }

  /**
   * Test hook: behaves as if our lease lapsed (our record disappears for everyone and we turn
   * unhealthy). `simulateLeaseRegained()` undoes it.
   */
  simulateLeaseLoss(): void {
    if (this.state !== 'joined' || !this.healthy) return;
    this.healthy = false;
    for (const listener of [...this.unhealthyListeners]) listener();
    this.cluster.remove(this.self!.nodeId);
  }

  /** Test hook: re-registers after `simulateLeaseLoss()`. */
  simulateLeaseRegained(): void {
    if (this.state !== 'joined' || this.healthy) return;
    this.healthy = true;
    this.cluster.put(this.self!);
  }

  /** @internal Called by the StaticCluster after every change. */
  refresh(): void {
    if (this.view.replace(this.cluster.snapshot(), this.cluster.currentRevision)) {
      const members = this.view.list();
      for (const listener of [...this.changeListeners]) listener(members);
    }
  }
}
