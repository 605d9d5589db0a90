import { deserialize, serialize } from 'node:v8';
import { CodedError, Rejection, RuntimeCodes } from '../errors.ts';
import { Deadlines, type Deadline } from '../actor/deadlines.ts';
import type { Logger } from '../log.ts';
import type { ActorAddress, ActorSystem, RemoteRouter } from '../actor/index.ts';
import { TransportError } from '../transport/transport-error.ts';
import type { Envelope, Transport } from '../transport/transport.ts';
import { HashRing } from './hash-ring.ts';
import type { Member, MembershipProvider } from './membership.ts';

export interface ClusterRouterOptions {
  readonly nodeId: string;
  readonly system: ActorSystem;
  readonly membership: MembershipProvider;
  readonly transport: Transport;
  readonly log: Logger;
  /**
   * Actors that never move (they own a socket): the node they live on, read from their address.
   * Undefined for placed actors.
   */
  readonly pinnedNode?: (address: ActorAddress) => string | undefined;
  /** A message forwarded this many times without reaching its owner fails with UNAVAILABLE. */
  readonly maxHops?: number;
}

interface PendingAsk {
  readonly node: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly deadline: Deadline;
}

/** Fired after the ring changed: who left and who joined, by node id. */
export type MembershipChange = { readonly left: readonly string[]; readonly joined: readonly string[] };

const UNHEALTHY = '\u0000unhealthy';

/**
 * Routes actor messages across the cluster: placement by rendezvous hashing over the live
 * members, messages to other nodes as envelopes over the transport, asks matched to replies by
 * correlation id.
 *
 * - A node routes by its own view; a receiver whose view disagrees forwards (at most `maxHops`).
 *   Views converge within the membership lease TTL; in between, the store's owner epochs keep
 *   two activations from both writing, so a stale view costs a retry, never a duplicate.
 * - When the view changes, local activations this node no longer owns are passivated (they
 *   persist); the new owner activates them from storage on their next message.
 * - An ask to a node whose link broke fails at once with UNAVAILABLE, not at its timeout.
 * - A node that cannot renew its own membership stops serving: every message fails UNAVAILABLE
 *   and its activations are passivated, before its lease can lapse elsewhere.
 */
export class ClusterRouter implements RemoteRouter {
  private ring = new HashRing([]);
  private members = new Map<string, Member>();
  private readonly pending = new Map<number, PendingAsk>();
  private readonly deadlines = new Deadlines();
  private nextCorrelation = 1;
  private readonly maxHops: number;
  private readonly listeners: ((change: MembershipChange) => void)[] = [];
  private readonly linkListeners: ((node: string) => void)[] = [];
  private leaving = false;

  constructor(private readonly o: ClusterRouterOptions) {
    this.maxHops = o.maxHops ?? 3;
    o.transport.onEnvelope((env) => this.onEnvelope(env));
    o.transport.onPeerDown((node) => {
      this.failAsksTo(node, `link to node ${node} is down`);
      for (const l of this.linkListeners) l(node);
    });
    o.membership.onChange((members) => this.onMembers(members));
    o.membership.onSelfUnhealthy(() => void this.stopServing());
    this.onMembers(o.membership.members());
  }

  onMembershipChange(listener: (change: MembershipChange) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Called when the link to a node breaks: tells in flight on it may be lost (asks fail, a tell
   * has nobody to hear it). The application decides what is worth announcing again.
   */
  onLinkDown(listener: (node: string) => void): void {
    this.linkListeners.push(listener);
  }

  /** Live members, as this node sees them. */
  view(): readonly Member[] {
    return [...this.members.values()];
  }

  ownerOf(address: ActorAddress): string | undefined {
    const pinned = this.o.pinnedNode?.(address);
    if (pinned !== undefined) return pinned === this.o.nodeId ? undefined : pinned;
    if (this.ring.size > 0 && !this.leaving && !this.o.membership.selfHealthy()) return UNHEALTHY;
    const node = this.ring.ownerOf(`${address.kind}/${address.key}`);
    return node === undefined || node === this.o.nodeId ? undefined : node;
  }

  tell(node: string, address: ActorAddress, message: unknown): void {
    this.send(node, this.envelope('tell', address, 0, message));
  }

  ask(node: string, address: ActorAddress, message: unknown, timeoutMs: number): Promise<unknown> {
    const correlationId = this.nextCorrelation++;
    return new Promise((resolve, reject) => {
      const deadline = this.deadlines.add(timeoutMs, () => {
        this.pending.delete(correlationId);
        reject(new CodedError(RuntimeCodes.TIMEOUT, `ask to ${address.kind} on node ${node} timed out after ${timeoutMs} ms`));
      });
      this.pending.set(correlationId, { node, resolve, reject, deadline });
      try {
        this.send(node, this.envelope('ask', address, correlationId, message));
      } catch (err) {
        deadline.settle();
        this.pending.delete(correlationId);
        reject(err);
      }
    });
  }

  private envelope(kind: 'tell' | 'ask', address: ActorAddress, correlationId: number, message: unknown): Envelope {
    return {
      kind,
      targetKind: address.kind,
      targetKey: address.key,
      correlationId,
      hops: 0,
      payload: encodePayload(message),
      senderNode: this.o.nodeId,
    };
  }

  private send(node: string, env: Envelope): void {
    if (node === UNHEALTHY) throw new CodedError(RuntimeCodes.UNAVAILABLE, 'this node lost its cluster membership; retry on another node');
    const member = this.members.get(node);
    if (!member) throw new CodedError(RuntimeCodes.UNAVAILABLE, `node ${node} is not a live member`);
    try {
      this.o.transport.send(node, member.grpcAddress, env);
    } catch (err) {
      if (err instanceof TransportError && err.code === 'BACKPRESSURE') {
        throw new CodedError(RuntimeCodes.OVERLOADED, `link to node ${node} is saturated; retry later`, { cause: err });
      }
      throw new CodedError(RuntimeCodes.UNAVAILABLE, `cannot reach node ${node}`, { cause: err });
    }
  }

  private onEnvelope(env: Envelope): void {
    if (env.kind === 'reply' || env.kind === 'error') {
      const p = this.pending.get(env.correlationId);
      if (!p) return; // timed out already
      this.pending.delete(env.correlationId);
      p.deadline.settle();
      if (env.kind === 'reply') p.resolve(decodePayload(env.payload));
      else p.reject(remoteError(env));
      return;
    }
    const address = { kind: env.targetKind, key: env.targetKey };
    const reply =
      env.kind === 'ask'
        ? (error: unknown, value?: unknown) => this.replyTo(env, error, value)
        : undefined;
    const owner = this.ownerOf(address);
    if (owner !== undefined) {
      if (owner !== UNHEALTHY && env.hops < this.maxHops) {
        // Our view says someone else owns it (the sender's view is older or newer): pass it on.
        try {
          this.send(owner, { ...env, payload: env.payload.slice(), hops: env.hops + 1 });
          return;
        } catch (err) {
          reply?.(err);
          return;
        }
      }
      reply?.(new CodedError(RuntimeCodes.UNAVAILABLE, `no owner reachable for ${env.targetKind} after ${env.hops} hops; retry`));
      return;
    }
    let message: unknown;
    try {
      message = decodePayload(env.payload);
    } catch {
      reply?.(new CodedError('BAD_FRAME', 'undecodable actor message'));
      return;
    }
    try {
      this.o.system.deliverLocal(address, message, reply);
    } catch (err) {
      reply?.(err);
    }
  }

  private replyTo(env: Envelope, error: unknown, value?: unknown): void {
    const back: Envelope =
      error === undefined
        ? { kind: 'reply', targetKind: env.targetKind, targetKey: env.targetKey, correlationId: env.correlationId, hops: 0, payload: encodePayload(value), senderNode: this.o.nodeId }
        : {
            kind: 'error',
            targetKind: env.targetKind,
            targetKey: env.targetKey,
            correlationId: env.correlationId,
            hops: 0,
            payload: new Uint8Array(0),
            errorCode: error instanceof CodedError ? error.code : 'INTERNAL',
            errorMessage: error instanceof Error ? error.message : 'remote actor failed',
            senderNode: this.o.nodeId,
            ...(isRefusal(error) ? { errorRefusal: true } : {}),
          };
    try {
      this.send(env.senderNode, back);
    } catch (err) {
      this.o.log.debug({ node: env.senderNode, err }, 'reply not sent; the asker will time out');
    }
  }

  private onMembers(list: readonly Member[]): void {
    const before = new Set(this.members.keys());
    this.members = new Map(list.map((m) => [m.nodeId, m]));
    const left = [...before].filter((n) => !this.members.has(n));
    const joined = [...this.members.keys()].filter((n) => !before.has(n));
    if (left.length === 0 && joined.length === 0) return;
    this.ring = new HashRing([...this.members.keys()]);
    for (const n of left) {
      this.o.transport.dropPeer(n);
      this.failAsksTo(n, `node ${n} left the cluster`);
    }
    // Hand off what moved: the actor persists here and is activated from storage by its new owner.
    void this.o.system.passivateWhere((a) => this.o.pinnedNode?.(a) === undefined && this.ownerOf(a) !== undefined).then((n) => {
      if (n > 0) this.o.log.info({ handedOff: n, members: this.ring.size }, 'actors handed off after membership change');
    });
    this.o.log.info({ left, joined, members: [...this.members.keys()] }, 'cluster membership changed');
    for (const l of this.listeners) l({ left, joined });
  }

  private failAsksTo(node: string, why: string): void {
    for (const [id, p] of this.pending) {
      if (p.node !== node) continue;
      this.pending.delete(id);
      p.deadline.settle();
      p.reject(new CodedError(RuntimeCodes.UNAVAILABLE, why));
    }
  }

  /**
   * Called before leaving on purpose: from then on the view without us is the truth, so
   * messages that still arrive here are forwarded to the new owners instead of refused.
   */
  beginLeave(): void {
    this.leaving = true;
    this.ring = new HashRing([...this.members.keys()].filter((n) => n !== this.o.nodeId));
    void this.o.system.passivateWhere((a) => this.o.pinnedNode?.(a) === undefined);
  }

  /**
   * What this node hosts may already belong to someone else: passivate it. Until membership is
   * healthy again, `ownerOf` refuses every placed actor, so nothing reactivates here meanwhile.
   */
  async stopServing(): Promise<void> {
    this.o.log.error('cluster membership lost; passivating placed actors and refusing their messages');
    await this.o.system.passivateWhere((a) => this.o.pinnedNode?.(a) === undefined);
  }
}

/** Whether an error is an answer ("you may not", "no such thing") rather than a fault. */
function isRefusal(error: unknown): boolean {
  return error instanceof Rejection || (error instanceof CodedError && error.expected);
}

/**
 * The caller sees a remote error as it would a local one: a refusal stays a Rejection, a fault
 * stays a fault (not `expected`) with its code, so an actor that lets it through is restarted
 * and an HTTP edge logs it, as they would had the failing actor lived on this node.
 */
function remoteError(env: Envelope): CodedError {
  const code = env.errorCode || 'INTERNAL';
  const message = env.errorMessage || 'remote actor failed';
  return env.errorRefusal === true ? new Rejection(code, message) : new CodedError(code, message);
}

/**
 * Actor messages cross nodes in V8's structured-serialisation format: it keeps bytes (message
 * bodies built once, see proto/message-bytes.ts), bigints and Maps as they are, where JSON would
 * turn bytes into arrays of numbers. Every node of a cluster runs the same Node.js line.
 */
export function encodePayload(value: unknown): Uint8Array {
  return value === undefined ? new Uint8Array(0) : serialize(value);
}

export function decodePayload(bytes: Uint8Array): unknown {
  return bytes.length === 0 ? undefined : deserialize(bytes);
}
