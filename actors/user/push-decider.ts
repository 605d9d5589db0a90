import { codeOf } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { JobQueue } from '../../runtime/queue/index.ts';
import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/index.ts';
import { decodeMessage } from '../../proto/client-codec.ts';
import { queued, type PushJob } from '../push/push-jobs.ts';
import { Tables, type MuteRow } from '../tables.ts';
import type { PublishedMessage } from './user-messages.ts';

/** How the user actor decides pushes (ChatDeps.push); absent: no notifier, no jobs. */
export interface PushSettings {
  /** At most one notification per user per this long; a job waits this long for more entries. */
  readonly coalesceMs: number;
  /** Whether the message text goes into the job (and so the notification). */
  readonly includeText: boolean;
  /** Where jobs go: the store's tables, or Redis with `--redis` (bin/node-assembly.ts chooses). */
  readonly queue: JobQueue;
}

/**
 * The user actor's half of push: it sees every inbox entry as it lands and knows whether a
 * device is online, so it alone decides, once per entry, whether the entry needs a push, and
 * writes that decision down (a job in the queue) before anything is sent. The notifier
 * (actors/push/notifier.ts), on any node, sends what is queued.
 *
 * Coalescing: the first offline entry opens a job due `coalesceMs` later; entries until then are
 * merged into it (one row rewrite each, no new job). Merging stops a little before the due time
 * (MERGE_GUARD), since a notifier on another node, by its own clock, may claim the job then; a
 * later entry opens the next job. The notifier keeps sent jobs a window apart (Tables.pushSent).
 *
 * Cancelling: a device that acks an inbox seq at or past the job's last entry has what the job
 * would announce: the job is deleted. If a notifier holds it already, it is sent anyway.
 *
 * The job goes to the queue and the open job to the store (Tables.pushOpen), side by side: a
 * crash between the two leaves either an open job whose next merge queues it, or a queued job
 * the next activation does not merge into (it opens another; the notifier still keeps them a
 * window apart). Neither loses a decision that was acknowledged as stored.
 *
 * Writes happen one at a time, in the order decisions were made; a failed write is logged and the
 * decision lost (the user is told at the next offline entry), never retried out of order.
 */
export class PushDecider {
  /** The job being filled, as stored in Tables.pushOpen; undefined when none. */
  private open: PushJob | undefined;
  private mutes = new Map<string, number>();
  private loaded = false;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly userId: string,
    private readonly kv: KeyValueStore,
    private readonly log: Logger,
    private readonly settings: PushSettings | undefined,
  ) {}

  /** Whether writes are still in flight (the actor stays active until they land). */
  get busy(): boolean {
    return this.pending > 0;
  }

  private pending = 0;

  /** Entries landed in the inbox (one channel, inbox seqs from `firstSeq`) while no device was online. */
  offline(firstSeq: number, channelId: string, messages: readonly PublishedMessage[]): void {
    const settings = this.settings;
    if (!settings) return;
    // The user's own messages (sent over HTTP, or from a device that went away since) need no telling.
    let last = messages.length - 1;
    while (last >= 0 && messages[last]!.senderId === this.userId) last--;
    if (last < 0) return;
    const lastSeq = firstSeq + last;
    const bytes = messages[last]!.bytes;
    this.serially(async () => {
      const now = Date.now();
      if ((this.mutes.get(channelId) ?? 0) > now) return;
      const m = decodeMessage(bytes);
      const latest = { last_seq: lastSeq, channel_id: channelId, message_id: m.message_id, sender_id: m.sender_id, ...(settings.includeText ? { text: m.text } : {}) };
      const guard = Math.min(250, settings.coalesceMs / 4);
      const job: PushJob =
        this.open && now < this.open.due_ms - guard
          ? { ...omitText(this.open), ...latest }
          : { id: `${this.userId}:${firstSeq}`, user_id: this.userId, first_seq: firstSeq, due_ms: now + settings.coalesceMs, ...latest };
      await Promise.all([settings.queue.put(queued(job)), this.kv.write([{ op: 'put', table: Tables.pushOpen, partition: this.userId, key: '', value: JSON.stringify(job) }])]);
      this.open = job;
    });
  }

  /** A device has every inbox entry up to `inboxSeq`: a job announcing nothing newer is not needed. */
  received(inboxSeq: number): void {
    const settings = this.settings;
    if (!settings) return;
    if (this.loaded && (!this.open || inboxSeq < this.open.last_seq)) return;
    this.serially(async () => {
      const job = this.open;
      if (!job || inboxSeq < job.last_seq) return;
      // A notifier that claims it later finds it gone; one that holds it already sends it.
      await Promise.all([settings.queue.cancel(job.id), this.kv.write([{ op: 'delete', table: Tables.pushOpen, partition: this.userId, key: '' }])]);
      this.open = undefined;
    });
  }

  /** Mutes a channel until `untilMs` (undefined: unmutes). Resolves once stored. */
  mute(channelId: string, untilMs: number | undefined): Promise<void> {
    return new Promise((resolve, reject) =>
      this.serially(async () => {
        const w: KeyValueWrite =
          untilMs === undefined
            ? { op: 'delete', table: Tables.mute, partition: this.userId, key: channelId }
            : { op: 'put', table: Tables.mute, partition: this.userId, key: channelId, value: JSON.stringify({ until_ms: untilMs } satisfies MuteRow) };
        await this.kv.write([w]);
        if (untilMs === undefined) this.mutes.delete(channelId);
        else this.mutes.set(channelId, untilMs);
      }, resolve, reject),
    );
  }

  private serially(work: () => Promise<void>, resolve?: () => void, reject?: (err: unknown) => void): void {
    this.pending++;
    this.tail = this.tail
      .then(() => this.load())
      .then(work)
      .then(
        () => resolve?.(),
        (err: unknown) => {
          if (reject) return reject(err);
          this.log.warn({ user: this.userId, code: codeOf(err), err }, 'push decision not stored; the next offline entry decides again');
        },
      )
      .finally(() => this.pending--);
  }

  /** Mutes and the open job, read once per activation, before the first decision. */
  private async load(): Promise<void> {
    if (this.loaded) return;
    const [mutes, open] = await Promise.all([this.kv.list(Tables.mute, this.userId), this.kv.get(Tables.pushOpen, this.userId, '')]);
    for (const r of mutes) this.mutes.set(r.key, (JSON.parse(r.value) as MuteRow).until_ms);
    this.open = open === undefined ? undefined : (JSON.parse(open) as PushJob);
    this.loaded = true;
  }
}

/** A merged job names the latest entry: an older entry's text must not stay behind. */
function omitText(job: PushJob): PushJob {
  if (job.text === undefined) return job;
  const { text: _text, ...rest } = job;
  return rest;
}
