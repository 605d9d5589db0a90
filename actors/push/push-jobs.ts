import type { DeadJobs, QueuedJob } from '../../runtime/queue/index.ts';

/**
 * One notification to be: a user's offline inbox entries first_seq..last_seq, coalesced, told
 * once at or after `due_ms`. The latest entry's channel, message and sender are what it names;
 * the unread count is read when it is sent (so it is current, not as of the first entry).
 */
export interface PushJob {
  /** `<user id>:<first_seq>`; a dead letter retried gets `:r<n>` appended. Unique for good. */
  readonly id: string;
  readonly user_id: string;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly due_ms: number;
  readonly channel_id: string;
  readonly message_id: string;
  readonly sender_id: string;
  /** Only stored with --push-include-text: otherwise the text never reaches the queue. */
  readonly text?: string;
  /** Set on a dead letter put back by an operator: sent even if a later job went out meanwhile. */
  readonly retried?: number;
}

/** What `parleyctl push dead-letters` shows. */
export interface DeadLetter {
  readonly job: PushJob;
  readonly attempts: number;
  readonly last_error: string;
  readonly dead_at_ms: number;
}

/** The last job sent to a user (Tables.pushSent). */
export interface PushSent {
  readonly first_seq: number;
  readonly sent_ms: number;
}

/** The queue's name for push jobs (runtime/queue: tables `push_*`, Redis keys `parley:{push}:*`). */
export const PUSH_QUEUE = 'push';

/** A job as the queue takes it. */
export function queued(job: PushJob): QueuedJob {
  return { id: job.id, body: JSON.stringify(job), dueMs: job.due_ms };
}

/**
 * The notification's id, as receivers see it (`notification_id`): the job's, the same on every
 * attempt, on every node, and when an operator retries it as a dead letter.
 */
export function notificationIdOf(job: Pick<PushJob, 'id'>): string {
  return job.id.replace(/:r\d+$/, '');
}

export async function listDeadLetters(dead: DeadJobs): Promise<DeadLetter[]> {
  return (await dead.dead()).map((d) => ({ job: JSON.parse(d.body) as PushJob, attempts: d.attempts, last_error: d.lastError, dead_at_ms: d.deadAtMs }));
}

/**
 * Puts dead letters back in the queue, due now, with a fresh id (a fresh attempt count; the
 * targets told already stay told), in one step each so a letter is never both dead and queued.
 * Returns the ids retried.
 */
export async function retryDeadLetters(dead: DeadJobs, ids: readonly string[] | 'all', nowMs = Date.now()): Promise<string[]> {
  const letters = await listDeadLetters(dead);
  const chosen = ids === 'all' ? letters : letters.filter((d) => ids.includes(d.job.id));
  const retried: string[] = [];
  for (const d of chosen) {
    const n = (d.job.retried ?? 0) + 1;
    const job: PushJob = { ...d.job, id: `${notificationIdOf(d.job)}:r${n}`, due_ms: nowMs, retried: n };
    if (await dead.revive(d.job.id, queued(job))) retried.push(d.job.id);
  }
  return retried;
}
