/**
 * The actor kernel: virtual actors addressed by (kind, key), knowing nothing of what they model.
 *
 * Guarantees:
 * - one message at a time per actor, also across `await`s inside a handler;
 * - a virtual actor is activated by its first message and passivated after `idleMs` without one
 *   (unless it says it cannot be, via `canPassivate`); its successor loads state only after the
 *   predecessor's `onDeactivate` has finished;
 * - bounded mailboxes: a full one refuses with OVERLOADED rather than growing;
 * - a handler that throws (anything but a `Rejection`) does not take the node down: the caller gets
 *   the error, the log gets the failure, and the actor is rebuilt from its persisted state;
 * - timers belong to an activation and die with it;
 * - `ActorRef` has the same API whether the target is here or, through a `RemoteRouter`, elsewhere.
 *
 * @example
 * ```ts
 * const system = new ActorSystem({ log });
 * system.register<{ n: number }>({
 *   name: 'counter',
 *   create: () => { let total = 0; return { receive: (m) => (total += m.n) }; },
 * });
 * const counter = system.ref<{ n: number }>('counter', 'a');
 * counter.tell({ n: 1 });
 * await counter.ask<number>({ n: 2 }); // 3
 * ```
 */
export { ActorSystem, type ActorSystemOptions, type RemoteRouter } from './actor-system.ts';
export { deferReply, DeferredReply, type Actor, type ActorContext, type ActorKind, type DeactivationReason } from './actor.ts';
export type { ActorRef, AskOptions } from './actor-ref.ts';
export { addressId, type ActorAddress } from './address.ts';
export type { ActorTimers } from './timers.ts';
