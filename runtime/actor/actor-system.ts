import { CodedError, RuntimeCodes } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Actor, ActorContext, ActorKind } from './actor.ts';
import { addressId, type ActorAddress } from './address.ts';
import type { ActorRef, AskOptions } from './actor-ref.ts';
import { Activation, type Envelope } from './activation.ts';
import { Deadlines } from './deadlines.ts';

/**
 * Sends to actors that live on another node. The actor system asks it first for every message;
 * `ownerOf` returning undefined means "here". Installed by the cluster layer, absent on one node.
 */
export interface RemoteRouter {
  ownerOf(address: ActorAddress): string | undefined;
  tell(node: string, address: ActorAddress, message: unknown): void;
  ask(node: string, address: ActorAddress, message: unknown, timeoutMs: number): Promise<unknown>;
}

export interface ActorSystemOptions {
  readonly log: Logger;
  /** Default for `ask` without a timeout. */
  readonly askTimeoutMs?: number;
  /** How often idle activations are looked for. */
  readonly sweepIntervalMs?: number;
}

/**
 * Hosts activations on this node. Addresses, not instances, are what callers hold: the first
 * message to a virtual actor activates it; an idle one is passivated by a periodic sweep (one
 * timer for the whole node, not one per actor, so a million idle actors cost no timers).
 */
export class ActorSystem {
  readonly log: Logger;
  readonly askTimeoutMs: number;
  private readonly kinds = new Map<string, ActorKind<unknown>>();
  private readonly activations = new Map<string, Activation<unknown>>();
  private readonly sweeper: NodeJS.Timeout;
  private remote: RemoteRouter | undefined;
  private closed = false;
  private readonly deadlines = new Deadlines();

  constructor(options: ActorSystemOptions) {
    this.log = options.log;
    this.askTimeoutMs = options.askTimeoutMs ?? 5_000;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 1_000);
    this.sweeper.unref();
  }

  register<M>(kind: ActorKind<M>): void {
    if (this.kinds.has(kind.name)) throw new CodedError(RuntimeCodes.CONFIG, `actor kind ${kind.name} registered twice`);
    this.kinds.set(kind.name, kind as ActorKind<unknown>);
  }

  setRemoteRouter(router: RemoteRouter | undefined): void {
    this.remote = router;
  }

  ref<M>(kind: string, key: string): ActorRef<M> {
    return new Ref<M>(this, { kind, key });
  }

  /** Starts a non-virtual actor with its own factory (for example one that owns a socket). */
  spawn<M>(kind: string, key: string, create: (context: ActorContext<M>) => Actor<M>): ActorRef<M> {
    const k = this.kindOf(kind);
    const address = { kind, key };
    const id = addressId(address);
    if (this.activations.has(id)) throw new CodedError(RuntimeCodes.CONFIG, `actor ${id} already exists`);
    const self = this.ref<M>(kind, key);
    const activation = new Activation<M>(address, k as ActorKind<M>, self, this.log, this, create);
    this.activations.set(id, activation as Activation<unknown>);
    activation.start();
    return self;
  }

  /** Number of live activations, by kind when given. */
  count(kind?: string): number {
    if (kind === undefined) return this.activations.size;
    let n = 0;
    for (const a of this.activations.values()) if (a.address.kind === kind) n++;
    return n;
  }

  /**
   * Per kind: live activations, messages queued now, and the deepest mailbox since the last call
   * (which resets it). One walk over the activations, for a metrics scrape, never the hot path.
   */
  stats(): Map<string, { active: number; queued: number; peak: number }> {
    const out = new Map<string, { active: number; queued: number; peak: number }>();
    for (const name of this.kinds.keys()) out.set(name, { active: 0, queued: 0, peak: 0 });
    for (const a of this.activations.values()) {
      const s = out.get(a.address.kind)!;
      s.active++;
      s.queued += a.mailbox.size;
      s.peak = Math.max(s.peak, a.mailbox.takePeak());
    }
    return out;
  }

  /** Whether messages to this address are handled on this node (by placement, not activation). */
  isLocal(address: ActorAddress): boolean {
    return this.remote?.ownerOf(address) === undefined;
  }

  isActive(address: ActorAddress): boolean {
    return this.activations.has(addressId(address));
  }

  /** Delivers locally, ignoring placement: the entry point for messages that arrived from another node. */
  deliverLocal(address: ActorAddress, message: unknown, reply?: (error: unknown, value?: unknown) => void): void {
    const activation = this.activationFor(address);
    if (!activation) {
      reply?.(new CodedError(RuntimeCodes.STOPPED, `no actor ${address.kind} with that key on this node`));
      return;
    }
    if (!activation.enqueue({ message, ...(reply ? { reply } : {}) })) {
      reply?.(new CodedError(RuntimeCodes.OVERLOADED, `actor ${address.kind} is overloaded; retry later`));
    }
  }

  /** @internal used by refs */
  tell(address: ActorAddress, message: unknown): void {
    const owner = this.remote?.ownerOf(address);
    if (owner !== undefined) return this.remote!.tell(owner, address, message);
    const activation = this.activationFor(address);
    if (!activation) {
      this.log.debug({ actor: address }, 'message to a stopped actor dropped');
      return;
    }
    if (!activation.enqueue({ message })) {
      throw new CodedError(RuntimeCodes.OVERLOADED, `actor ${address.kind} is overloaded; retry later`);
    }
  }

  /** @internal used by refs */
  ask<R>(address: ActorAddress, message: unknown, options?: AskOptions): Promise<R> {
    const timeoutMs = options?.timeoutMs ?? this.askTimeoutMs;
    const owner = this.remote?.ownerOf(address);
    if (owner !== undefined) return this.remote!.ask(owner, address, message, timeoutMs) as Promise<R>;
    return new Promise<R>((resolve, reject) => {
      const deadline = this.deadlines.add(timeoutMs, () => reject(new CodedError(RuntimeCodes.TIMEOUT, `ask to ${address.kind} timed out after ${timeoutMs} ms`)));
      const reply = (error: unknown, value?: unknown): void => {
        if (!deadline.settle()) return;
        if (error !== undefined) reject(error);
        else resolve(value as R);
      };
      try {
        this.deliverLocal(address, message, reply);
      } catch (err) {
        reply(err); // an unknown kind: fail now rather than at the timeout
      }
    });
  }

  /** Ends one activation (after its current message); resolves once it has persisted and gone. */
  async stop(address: ActorAddress): Promise<void> {
    await this.activations.get(addressId(address))?.stop('stop');
  }

  /** Passivates every activation (persisting state), then refuses new work. */
  async shutdown(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.all([...this.activations.values()].map((a) => a.stop('shutdown')));
  }

  /** Tells every local activation of `kind` (for node-wide events such as a peer leaving). */
  broadcast(kind: string, message: unknown): number {
    let n = 0;
    for (const a of this.activations.values()) {
      if (a.address.kind === kind && !a.isStopping && a.enqueue({ message })) n++;
    }
    return n;
  }

  /** Passivates the local activations matching `predicate` (ownership moved elsewhere). */
  async passivateWhere(predicate: (address: ActorAddress) => boolean): Promise<number> {
    const victims = [...this.activations.values()].filter((a) => predicate(a.address));
    await Promise.all(victims.map((a) => a.stop('handoff')));
    return victims.length;
  }

  private kindOf(name: string): ActorKind<unknown> {
    const k = this.kinds.get(name);
    if (!k) throw new CodedError(RuntimeCodes.UNKNOWN_KIND, `no actor kind named ${name}`);
    return k;
  }

  private activationFor(address: ActorAddress): Activation<unknown> | undefined {
    const id = addressId(address);
    const current = this.activations.get(id);
    if (current && !current.isStopping) return current;
    const waiting = this.pending.get(id);
    if (waiting) return waiting;
    const kind = this.kindOf(address.kind);
    if (kind.virtual === false || this.closed) return undefined;
    // While a predecessor is still persisting, its successor queues messages but does not load
    // state: loading before the predecessor's last write would read stale state.
    const successor = this.newActivation(address, kind, current !== undefined);
    if (current) this.pending.set(id, successor);
    else this.activations.set(id, successor);
    return successor;
  }

  private newActivation(address: ActorAddress, kind: ActorKind<unknown>, held: boolean): Activation<unknown> {
    return new Activation<unknown>(address, kind, this.ref(address.kind, address.key), this.log, this, undefined, held);
  }

  private readonly pending = new Map<string, Activation<unknown>>();

  /** @internal called by an activation once it has gone */
  stopped(activation: Activation<unknown>): void {
    const id = addressId(activation.address);
    if (this.activations.get(id) === activation) this.activations.delete(id);
    // Timer messages belong to the activation that set the timers: a successor must not get them.
    const orphans = activation.mailbox.drain().filter((env) => !env.timer);
    let successor = this.pending.get(id);
    this.pending.delete(id);
    if (successor && this.closed) {
      // Shutting down: a successor that was waiting for this passivation never starts.
      orphans.push(...successor.mailbox.drain());
      successor = undefined;
    }
    const kind = this.kinds.get(activation.address.kind);
    if (!successor && orphans.length > 0 && !this.closed && kind?.virtual !== false) {
      successor = this.newActivation(activation.address, kind!, true);
    }
    if (successor) {
      // Messages the predecessor accepted but never handled go first, keeping sender order.
      successor.mailbox.prepend(orphans);
      this.activations.set(id, successor);
      successor.resume();
      return;
    }
    const gone = new CodedError(RuntimeCodes.STOPPED, `actor ${activation.address.kind} stopped`);
    for (const env of orphans) env.reply?.(gone);
  }

  private sweep(): void {
    const now = Date.now();
    for (const activation of this.activations.values()) {
      const idleMs = this.kinds.get(activation.address.kind)?.idleMs ?? 120_000;
      if (idleMs === Infinity || now - activation.lastActiveMs < idleMs) continue;
      if (activation.canPassivate()) void activation.stop('idle');
    }
  }
}

class Ref<M> implements ActorRef<M> {
  constructor(
    private readonly system: ActorSystem,
    readonly address: ActorAddress,
  ) {}

  tell(message: M): void {
    this.system.tell(this.address, message);
  }

  ask<R>(message: M, options?: AskOptions): Promise<R> {
    return this.system.ask<R>(this.address, message, options);
  }
}

export type { Envelope };
