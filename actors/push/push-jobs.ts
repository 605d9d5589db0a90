import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/index.ts';
import { PUSH_SHARDS, Tables, pushShard } from '../tables.ts';

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

/**
 * One link of a job's lease chain (Tables.pushClaim). The holder owns the job until `until_ms`;
 * after a retryable failure it moves `until_ms` to the next attempt's time, so the next claim
 * (by any node) is also the retry. `attempts` and `done_targets` carry over from link to link.
 */
export interface PushClaim {
  readonly owner: string;
  readonly until_ms: number;
  readonly attempts: number;
  /** Targets already told ('webhook', or a subscription endpoint): a retry skips them. */
  readonly done_targets: readonly string[];
  readonly last_error?: string;
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

/** Claim keys sort as numbers. */
export const claimKey = (n: number): string => String(n).padStart(8, '0');

export function jobRow(job: PushJob): KeyValueWrite {
  return { op: 'put', table: Tables.pushQueue, partition: pushShard(job.user_id), key: job.id, value: JSON.stringify(job) };
}

export function dropJob(job: Pick<PushJob, 'id' | 'user_id'>): KeyValueWrite {
  return { op: 'delete', table: Tables.pushQueue, partition: pushShard(job.user_id), key: job.id };
}

export async function listDeadLetters(kv: KeyValueStore): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for (let s = 0; s < PUSH_SHARDS; s++) {
    for (const r of await kv.list(Tables.pushDead, `s${s}`)) out.push(JSON.parse(r.value) as DeadLetter);
  }
  return out.sort((a, b) => a.dead_at_ms - b.dead_at_ms || a.job.id.localeCompare(b.job.id));
}

/**
 * Puts dead letters back in the queue, due now, with a fresh id (a fresh lease chain and attempt
 * count), in one write each so a letter is never both dead and queued. Returns the ids retried.
 */
export async function retryDeadLetters(kv: KeyValueStore, ids: readonly string[] | 'all', nowMs = Date.now()): Promise<string[]> {
  const letters = await listDeadLetters(kv);
  const chosen = ids === 'all' ? letters : letters.filter((d) => ids.includes(d.job.id));
  for (const d of chosen) {
    const retried = (d.job.retried ?? 0) + 1;
    const base = d.job.id.replace(/:r\d+$/, '');
    const job: PushJob = { ...d.job, id: `${base}:r${retried}`, due_ms: nowMs, retried };
    await kv.write([jobRow(job), { op: 'delete', table: Tables.pushDead, partition: pushShard(d.job.user_id), key: d.job.id }]);
  }
  return chosen.map((d) => d.job.id);
}
