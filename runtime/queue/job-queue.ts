/**
 * The seam of a durable, delayed job queue shared by the nodes of a cluster: producers queue jobs
 * due at a time, workers on any node claim due ones under a lease, and a job a worker gives up on
 * goes to a dead-letter list an operator can put back. Bodies are opaque strings: the queue knows
 * nothing of what a job does.
 *
 * What every implementation guarantees (test/queue/contract.ts holds each one to it):
 * - `put` and every end of a lease are durable when their promise resolves, and survive the
 *   process that made them being killed (kill -9) a moment later;
 * - a due job is held by one worker at a time: claimed by one, it is not handed to another until
 *   the holder ends the lease (`finish`, `defer`, `bury`) or the lease lapses (`leaseMs` after the
 *   claim), as it does when the holder dies; then another worker claims it, with what the dead
 *   holder recorded (`attempts`, `marks`);
 * - a job is never lost between its states: queued, held, waiting for a retry, dead, gone.
 */

/** A job as a producer queues it. */
export interface QueuedJob {
  /** Unique for good: a finished job's id is not reused (a late `put` of it queues it again). */
  readonly id: string;
  readonly body: string;
  /** Not claimed before this time (ms since the epoch). */
  readonly dueMs: number;
}

/** A due job one worker holds until it ends the lease or the lease lapses. */
export interface JobLease {
  readonly id: string;
  /** The body as it is when claimed (the latest `put`). */
  readonly body: string;
  /** Failed attempts recorded so far (`defer` with a failure, by this holder or an earlier one). */
  readonly attempts: number;
  /** What holders recorded with `mark`, a crashed one's included: work already done. */
  readonly marks: readonly string[];
  readonly lastError?: string;
  /** The implementation's handle on the claim (a lease-chain link, a stream entry). */
  readonly token: string;
}

/** A job a worker gave up on (`bury`). */
export interface DeadJob {
  readonly id: string;
  readonly body: string;
  readonly attempts: number;
  readonly marks: readonly string[];
  readonly lastError: string;
  readonly deadAtMs: number;
}

/** The producer's side. */
export interface JobQueue {
  /**
   * Queues job `id`, due at `dueMs`. If it is queued already, its body is replaced, and its due
   * time too until a worker first claims it (from then on its holders schedule it: `defer`);
   * attempts and marks stay, and a holder that has read it already works on what it read.
   */
  put(job: QueuedJob): Promise<void>;
  /** Removes a queued job; a worker holding it already is not stopped. No error if it is gone. */
  cancel(id: string): Promise<void>;
}

/** The worker's side. Every end of a lease is for the lease's holder only. */
export interface JobWorker {
  /** Claims up to `max` due jobs, each for `leaseMs`; none that another worker holds. */
  claim(max: number): Promise<JobLease[]>;
  /** Records part of the work as done, so that a later holder skips it. */
  mark(lease: JobLease, mark: string): Promise<void>;
  /**
   * Gives the job back, not to be claimed before `untilMs`. With `failure`, counts an attempt
   * and keeps the error (a retry); without, it only waits.
   */
  defer(lease: JobLease, untilMs: number, failure?: string): Promise<void>;
  /** Done: the job is removed. */
  finish(lease: JobLease): Promise<void>;
  /** Gives up: the job, with this last failure counted, moves to the dead letters. */
  bury(lease: JobLease, failure: string): Promise<void>;
  /** Jobs queued (waiting, due or held) as last seen by `claim`; an estimate for a gauge. */
  readonly depth: number;
}

/** The operator's side: what ran out of attempts. */
export interface DeadJobs {
  /** Oldest first. */
  dead(): Promise<DeadJob[]>;
  /**
   * Moves dead job `id` back to the queue as `as` (a fresh id and body are the caller's choice),
   * in one step, with its marks (work done stays done) and no attempts. False if no such job is dead.
   */
  revive(id: string, as: QueuedJob): Promise<boolean>;
}

/** One queue, all three sides, as a node or parleyctl opens it. */
export interface DurableJobQueue extends JobQueue, JobWorker, DeadJobs {
  close(): Promise<void>;
}
