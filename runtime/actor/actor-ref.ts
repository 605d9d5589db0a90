import type { ActorAddress } from './address.ts';

export interface AskOptions {
  /** Rejects with TIMEOUT after this long. Default: the system's ask timeout. */
  readonly timeoutMs?: number;
}

/**
 * A handle on an actor by address. Its API is the same whether the actor is on this node or
 * another: `tell` is fire-and-forget, `ask` resolves with the handler's return value or rejects
 * with a CodedError (OVERLOADED, TIMEOUT, UNAVAILABLE, the handler's Rejection code, ...).
 */
export interface ActorRef<M> {
  readonly address: ActorAddress;
  /** Throws OVERLOADED when the target's mailbox is full. */
  tell(message: M): void;
  ask<R>(message: M, options?: AskOptions): Promise<R>;
}
