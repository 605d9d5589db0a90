import type { Logger } from '../log.ts';
import type { ActorAddress } from './address.ts';
import type { ActorRef } from './actor-ref.ts';
import type { ActorTimers } from './timers.ts';

/** Why an activation ends; an actor may persist differently on shutdown than when idle. */
export type DeactivationReason = 'idle' | 'stop' | 'shutdown' | 'failure' | 'handoff';

/** What an actor may use while it is active. It holds no chat concept and no socket. */
export interface ActorContext<M> {
  readonly address: ActorAddress;
  readonly self: ActorRef<M>;
  readonly timers: ActorTimers<M>;
  readonly log: Logger;
  /** Ends this activation once the current message is handled. */
  stop(): void;
}

/**
 * One activation's behaviour. The kernel calls `receive` for one message at a time and waits for
 * a returned promise before the next, so a handler may `await` without another handler of the
 * same actor interleaving.
 *
 * `receive` returns the reply to an `ask` (ignored for a `tell`). A handler that wants its turn
 * to end before the reply is ready returns `deferReply(promise)`: the next message is handled
 * at once and the caller gets the promise's outcome.
 */
export interface Actor<M> {
  /** Loads persisted state. A throw here fails the queued messages; the next message retries. */
  onActivate?(): Promise<void> | void;
  receive(message: M): unknown;
  /**
   * Called once the mailbox is empty after a run of messages, before the actor waits for more:
   * where an actor hands over what its handlers batched (one store append for every send of the
   * run, say) rather than paying a round trip per message.
   */
  flush?(): void;
  /** Persists what must survive. Not called after a handler failure: that state is suspect. */
  onDeactivate?(reason: DeactivationReason): Promise<void> | void;
  /** An actor that still has work in the world (connected devices, pending retries) says no. */
  canPassivate?(): boolean;
}

export interface ActorKind<M> {
  readonly name: string;
  create(context: ActorContext<M>): Actor<M>;
  /** Passivate after this long without a message; Infinity never passivates. Default 120 s. */
  readonly idleMs?: number;
  /** Mailbox bound; beyond it senders get OVERLOADED. Default 1024. */
  readonly mailboxCapacity?: number;
  /**
   * Virtual actors are activated by their first message. Non-virtual ones exist only once spawned
   * (a session owns a socket that cannot be recreated); messages to a missing one are dropped.
   */
  readonly virtual?: boolean;
}

/** A reply that completes after the handler's turn has ended. */
export class DeferredReply<R> {
  constructor(readonly promise: Promise<R>) {}
}

export function deferReply<R>(promise: Promise<R>): DeferredReply<R> {
  return new DeferredReply(promise);
}
