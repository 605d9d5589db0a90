import { CodedError, RuntimeCodes } from '../errors.ts';

export interface WorkGateLimits {
  /** Jobs running at once. */
  readonly concurrency: number;
  /**
   * A job is refused at once (OVERLOADED) when the jobs ahead of it would make it wait longer
   * than this, going by how long recent jobs took: better a quick "retry later" than an answer
   * after the client gave up.
   */
  readonly maxWaitMs: number;
  /** Jobs waiting at most, whatever they cost (a bound on memory before any has been timed). */
  readonly maxWaiting: number;
  /** What the jobs are, for the refusal: "too many {what} queued on this node". */
  readonly what: string;
}

/**
 * Runs costly jobs (password hashing) at most `concurrency` at a time, first come first served,
 * and refuses the ones that would wait too long. Why: scrypt runs on libuv's thread pool (4
 * threads by default), which file system calls and DNS also need, and each hash keeps a core busy
 * for a few hundred milliseconds; unbounded, a flood of logins takes every pool thread and every
 * core from the rest of the node. Bounded, it takes `concurrency` of them and queues the rest.
 *
 * @example
 * const gate = new WorkGate({ concurrency: 1, maxWaitMs: 5_000, maxWaiting: 1_000, what: 'password checks' });
 * const key = await gate.run(() => derive(password, salt)); // OVERLOADED when it would wait > 5 s
 */
export class WorkGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Moving average of a job's duration, ms (0 until one has finished). */
  private averageMs = 0;

  constructor(private readonly limits: WorkGateLimits) {
    if (!(Number.isInteger(limits.concurrency) && limits.concurrency >= 1)) throw new RangeError(`concurrency must be a positive integer, got ${limits.concurrency}`);
  }

  /** Jobs waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      const expectedWaitMs = ((this.waiting.length + 1) * this.averageMs) / this.limits.concurrency;
      if (this.waiting.length >= this.limits.maxWaiting || expectedWaitMs > this.limits.maxWaitMs) {
        throw new CodedError(RuntimeCodes.OVERLOADED, `too many ${this.limits.what} queued on this node; retry shortly`, { expected: true });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    const startedMs = performance.now();
    try {
      return await job();
    } finally {
      const tookMs = performance.now() - startedMs;
      this.averageMs = this.averageMs === 0 ? tookMs : this.averageMs * 0.8 + tookMs * 0.2;
      // The slot passes straight to the next waiter, so `running` never dips and lets a newcomer cut in.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
