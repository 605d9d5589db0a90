/** Schedules `fn` after `ms`; returns a cancel function. Injected so tests control time. */
export type Scheduler = (fn: () => void, ms: number) => () => void;

export const timerScheduler: Scheduler = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref?.();
  return () => clearTimeout(t);
};

/**
 * Runs an action at most once per interval, however often it is requested, and always runs it
 * once more after the last request. The action reads the latest state when it runs, so a burst
 * of requests costs one run with the final value, never a stale one.
 */
export class Throttle {
  private lastRunMs = Number.NEGATIVE_INFINITY;
  private cancelPending: (() => void) | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly action: () => void,
    private readonly now: () => number = () => performance.now(),
    private readonly schedule: Scheduler = timerScheduler,
  ) {}

  request(): void {
    if (this.cancelPending !== undefined) return;
    const wait = this.lastRunMs + this.intervalMs - this.now();
    if (wait <= 0) {
      this.run();
    } else {
      this.cancelPending = this.schedule(() => {
        this.cancelPending = undefined;
        this.run();
      }, wait);
    }
  }

  cancel(): void {
    this.cancelPending?.();
    this.cancelPending = undefined;
  }

  private run(): void {
    this.lastRunMs = this.now();
    this.action();
  }
}
