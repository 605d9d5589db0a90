import { CodedError, Rejection, RuntimeCodes } from '../errors.ts';
import type { Logger } from '../log.ts';
import { DeferredReply, type Actor, type ActorContext, type ActorKind, type DeactivationReason } from './actor.ts';
import type { ActorAddress } from './address.ts';
import type { ActorRef } from './actor-ref.ts';
import { Mailbox } from './mailbox.ts';
import { TimerSet } from './timers.ts';

/** A queued message and, for an ask, where its outcome goes. @internal */
export interface Envelope<M> {
  readonly message: M;
  readonly reply?: (error: unknown, value?: unknown) => void;
  /** Fired by the activation's own timer: it dies with the activation, never reaches a successor. */
  readonly timer?: true;
}

type State = 'idle' | 'activating' | 'active' | 'stopping' | 'stopped';

/** Who hears that an activation has stopped (the system). @internal */
export interface ActivationOwner {
  stopped(activation: Activation<unknown>): void;
}

/** Restarts allowed within the window before the activation gives up and stops. */
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 10_000;

/**
 * One live instance of one actor: its mailbox, its behaviour object and its timers.
 * The loop below is the only caller of `receive`, which is what makes handlers of one actor
 * strictly sequential even when they await.
 * @internal
 */
export class Activation<M> {
  readonly mailbox: Mailbox<Envelope<M>>;
  lastActiveMs = Date.now();
  private state: State = 'idle';
  private actor: Actor<M> | undefined;
  private running = false;
  private stopRequested = false;
  private timerSet: TimerSet<M> | undefined;
  private restarts: number[] | undefined;
  private stoppedPromise: Promise<void> | undefined;

  constructor(
    readonly address: ActorAddress,
    private readonly kind: ActorKind<M>,
    readonly self: ActorRef<M>,
    private readonly log: Logger,
    private readonly owner: ActivationOwner,
    /** A spawned actor's own factory; such an actor cannot be rebuilt from storage after a failure. */
    private readonly spawnedWith?: (context: ActorContext<M>) => Actor<M>,
    /** A successor waits, holding its messages, until its predecessor has persisted and gone. */
    private held = false,
  ) {
    this.mailbox = new Mailbox(kind.mailboxCapacity ?? 1024);
  }

  /** Activates now rather than on the first message (spawned actors). */
  start(): void {
    this.running = true;
    void this.loop();
  }

  /** Lets a held successor start. */
  resume(): void {
    this.held = false;
    if (this.mailbox.size > 0) this.schedule();
  }

  get isStopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  get isBusy(): boolean {
    return this.running || this.mailbox.size > 0;
  }

  /** Enqueues; `force` is for the actor's own timers, which must not be lost to a full mailbox. */
  enqueue(envelope: Envelope<M>, force = false): boolean {
    if (this.state === 'stopped') return false;
    const ok = force ? (this.mailbox.pushUnbounded(envelope), true) : this.mailbox.offer(envelope);
    if (ok) this.schedule();
    return ok;
  }

  canPassivate(): boolean {
    return this.state === 'active' && !this.isBusy && (this.actor?.canPassivate?.() ?? true);
  }

  /** Ends the activation after the message being handled; resolves once it is gone. */
  stop(reason: DeactivationReason): Promise<void> {
    if (this.stoppedPromise) return this.stoppedPromise;
    this.stopRequested = true;
    this.stoppedPromise = new Promise<void>((resolve) => {
      const finish = async (): Promise<void> => {
        this.state = 'stopping';
        this.timerSet?.cancelAll();
        try {
          if (this.actor) await this.actor.onDeactivate?.(reason);
        } catch (err) {
          this.log.error({ err, actor: this.address, reason }, 'actor deactivation failed');
        }
        this.state = 'stopped';
        this.actor = undefined;
        this.owner.stopped(this as Activation<unknown>);
        resolve();
      };
      if (this.running) this.afterTurn = finish;
      else void finish();
    });
    return this.stoppedPromise;
  }

  private afterTurn: (() => Promise<void>) | undefined;

  private schedule(): void {
    if (this.running || this.stopRequested || this.held) return;
    this.running = true;
    void this.loop();
  }

  /** Enqueues a message from one of this activation's timers. @internal */
  fireTimer(message: M): void {
    this.enqueue({ message, timer: true }, true);
  }

  /** The actor's timers, made on first use: most actors never set one. @internal */
  timers(): TimerSet<M> {
    return (this.timerSet ??= new TimerSet<M>(this));
  }

  private context(): ActorContext<M> {
    return new Context(this, this.log);
  }

  private async activate(): Promise<boolean> {
    this.state = 'activating';
    const context = this.context();
    const actor = this.spawnedWith ? this.spawnedWith(context) : this.kind.create(context);
    try {
      await actor.onActivate?.();
      this.actor = actor;
      this.state = 'active';
      return true;
    } catch (err) {
      this.log.error({ err, actor: this.address }, 'actor activation failed');
      const failure = new CodedError(RuntimeCodes.UNAVAILABLE, `actor ${this.address.kind} could not be activated`, { cause: err });
      for (const env of this.mailbox.drain()) env.reply?.(failure);
      this.state = 'idle';
      return false;
    }
  }

  private async loop(): Promise<void> {
    try {
      if (!this.actor) {
        if (!(await this.activate())) {
          void this.stop('failure');
          return;
        }
      }
      let env: Envelope<M> | undefined;
      while (!this.stopRequested && (env = this.mailbox.poll()) !== undefined) {
        this.lastActiveMs = Date.now();
        const pending = this.handle(env);
        if (pending) await pending;
      }
      if (!this.stopRequested) {
        const failed = this.flushActor();
        if (failed) await failed;
      }
    } finally {
      this.running = false;
      this.lastActiveMs = Date.now();
      const after = this.afterTurn;
      this.afterTurn = undefined;
      if (after) void after();
      else if (!this.stopRequested && this.mailbox.size > 0) this.schedule();
    }
  }

  /**
   * Runs one message. Returns a promise only when the handler did (or failed and the actor must
   * be rebuilt): a synchronous handler costs no microtask, which matters at a million messages.
   */
  private handle(env: Envelope<M>): Promise<void> | undefined {
    let result: unknown;
    try {
      result = this.actor!.receive(env.message);
    } catch (err) {
      return this.failed(env, err);
    }
    if (result instanceof Promise) {
      return result.then(
        (value: unknown) => this.settle(env, value),
        (err: unknown) => this.failed(env, err),
      );
    }
    this.settle(env, result);
    return undefined;
  }

  /** The actor's end-of-run hook; a throw there is a handler failure like any other. */
  private flushActor(): Promise<void> | undefined {
    const actor = this.actor;
    if (!actor?.flush) return undefined;
    try {
      actor.flush();
      return undefined;
    } catch (err) {
      this.log.error({ err, actor: this.address }, 'actor flush failed; restarting from persisted state');
      return this.restart();
    }
  }

  private settle(env: Envelope<M>, result: unknown): void {
    if (result instanceof DeferredReply) {
      const reply = env.reply;
      (result as DeferredReply<unknown>).promise.then(
        (value) => reply?.(undefined, value),
        (error: unknown) => reply?.(error),
      );
    } else {
      env.reply?.(undefined, result);
    }
  }

  private failed(env: Envelope<M>, err: unknown): Promise<void> | undefined {
    if (err instanceof Rejection || (err instanceof CodedError && err.expected)) {
      env.reply?.(err);
      return undefined;
    }
    this.log.error({ err, actor: this.address }, 'actor handler failed; restarting from persisted state');
    env.reply?.(err instanceof CodedError ? err : new CodedError(RuntimeCodes.ACTOR_FAILED, `actor ${this.address.kind} failed`, { cause: err }));
    return this.restart();
  }

  /** Drops the suspect in-memory state and rebuilds the actor from what it persisted. */
  private async restart(): Promise<void> {
    this.timerSet?.cancelAll();
    this.timerSet = undefined;
    this.actor = undefined;
    const now = Date.now();
    this.restarts = (this.restarts ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
    this.restarts.push(now);
    // A spawned actor (one given its instance, like a socket owner) cannot be rebuilt from storage.
    if (this.spawnedWith || this.restarts.length > MAX_RESTARTS) {
      this.log.error({ actor: this.address }, 'actor failed too often; stopping it');
      const failure = new CodedError(RuntimeCodes.ACTOR_FAILED, `actor ${this.address.kind} keeps failing`);
      for (const e of this.mailbox.drain()) e.reply?.(failure);
      void this.stop('failure');
      return;
    }
    if (!(await this.activate())) void this.stop('failure');
  }
}

/**
 * What an actor sees of its activation. A class rather than an object of closures: a node holds
 * a million of these, and per-instance closures cost about 56 bytes each.
 */
class Context<M> implements ActorContext<M> {
  constructor(
    private readonly activation: Activation<M>,
    readonly log: Logger,
  ) {}

  get address(): ActorAddress {
    return this.activation.address;
  }

  get self(): ActorRef<M> {
    return this.activation.self;
  }

  get timers(): TimerSet<M> {
    return this.activation.timers();
  }

  stop(): void {
    void this.activation.stop('stop');
  }
}
