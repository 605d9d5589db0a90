/**
 * Timers owned by one activation. A firing timer enqueues a message into the actor's own
 * mailbox, so timer work obeys one-message-at-a-time like everything else. All timers are
 * cancelled when the activation stops or restarts, so a stopped actor never wakes up.
 */
export interface ActorTimers<M> {
  /** Schedules `message` once after `delayMs`, replacing any timer of the same name. */
  once(name: string, delayMs: number, message: M): void;
  /** Schedules `message` every `intervalMs`, replacing any timer of the same name. */
  every(name: string, intervalMs: number, message: M): void;
  cancel(name: string): void;
  has(name: string): boolean;
}

/** Where a firing timer's message goes (the activation). @internal */
export interface TimerTarget<M> {
  fireTimer(message: M): void;
}

/** @internal */
export class TimerSet<M> implements ActorTimers<M> {
  private timers: Map<string, NodeJS.Timeout> | undefined;

  constructor(private readonly target: TimerTarget<M>) {}

  private fire(message: M): void {
    this.target.fireTimer(message);
  }

  once(name: string, delayMs: number, message: M): void {
    this.cancel(name);
    const t = setTimeout(() => {
      this.timers?.delete(name);
      this.fire(message);
    }, delayMs);
    t.unref();
    (this.timers ??= new Map()).set(name, t);
  }

  every(name: string, intervalMs: number, message: M): void {
    this.cancel(name);
    const t = setInterval(() => this.fire(message), intervalMs);
    t.unref();
    (this.timers ??= new Map()).set(name, t);
  }

  cancel(name: string): void {
    const t = this.timers?.get(name);
    if (t) {
      clearTimeout(t);
      this.timers!.delete(name);
    }
  }

  has(name: string): boolean {
    return this.timers?.has(name) ?? false;
  }

  cancelAll(): void {
    if (!this.timers) return;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers = undefined;
  }
}
