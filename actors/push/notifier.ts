import { codeOf } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { JobLease, JobWorker } from '../../runtime/queue/index.ts';
import type { KeyValueStore } from '../../runtime/storage/index.ts';
import type { PushOutcome, PushPayload, PushProvider, PushTarget, WebPushSubscription } from '../../runtime/push/index.ts';
import type { ReadState } from '../channel/channel-messages.ts';
import { channels, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes } from '../errors.ts';
import { Tables, type UserProfile } from '../tables.ts';
import { notificationIdOf, type PushJob, type PushSent } from './push-jobs.ts';

/**
 * Where a user's push subscriptions come from (Web Push registrations, `PUT
 * /v1/devices/{device_id}/push`). The notifier reads them when it sends and removes one whose
 * push service answered `gone`.
 */
export interface SubscriptionSource {
  list(userId: string): Promise<readonly { readonly deviceId: string; readonly subscription: WebPushSubscription }[]>;
  remove(userId: string, deviceId: string, endpoint: string): Promise<void>;
}

/** No subscriptions: only providers that take every notification (the webhook) are used. */
export const NO_SUBSCRIPTIONS: SubscriptionSource = { list: () => Promise.resolve([]), remove: () => Promise.resolve() };

export interface NotifierOptions {
  readonly deps: ChatDeps;
  /**
   * A provider whose name is a subscription's `provider` ('webpush') gets that subscription;
   * every other provider (the webhook) gets every notification, with no subscription.
   */
  readonly providers: readonly PushProvider[];
  readonly subscriptions?: SubscriptionSource;
  /** Where the user actors queue jobs (the store's tables, or Redis): claims, retries and dead letters happen there. */
  readonly queue: JobWorker;
  readonly coalesceMs: number;
  readonly maxAttempts: number;
  /** First retry delay; each later one doubles, up to RETRY_CAP_MS, with jitter. */
  readonly retryBaseMs?: number;
  /** How often the queue is polled; default a fifth of the window, within 25..1000 ms. */
  readonly pollMs?: number;
  readonly log: Logger;
}

const RETRY_CAP_MS = 5 * 60_000;
/** Jobs one node sends at once. */
const IN_FLIGHT = 32;

/**
 * Sends queued push jobs (see push-jobs.ts and actors/user/push-decider.ts). One per node; every
 * node polls the queue, and a job is sent by whichever node's claim the queue grants (one holder
 * at a time, runtime/queue).
 *
 * A holder sends to every target not yet told, records the user's last sent job (Tables.pushSent)
 * and then finishes the job; a failure is deferred to its retry time or, out of attempts, buried
 * as a dead letter. A holder that dies mid-job (kill -9) leaves a lease that lapses; the next
 * holder skips the targets the dead one recorded as told (`mark`, written as each answer comes in
 * when there are several targets), and a job whose sent record landed is only finished. What is
 * not atomic with the far side is one target's answer and its record: that target can be told
 * twice after a crash in between (with the same `notification_id`, for the receiver to drop),
 * never zero times.
 */
export class Notifier {
  private readonly subs: SubscriptionSource;
  private readonly retryBaseMs: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(private readonly o: NotifierOptions) {
    this.subs = o.subscriptions ?? NO_SUBSCRIPTIONS;
    this.retryBaseMs = o.retryBaseMs ?? 1_000;
    this.pollMs = o.pollMs ?? Math.min(1_000, Math.max(25, Math.floor(o.coalesceMs / 5)));
  }

  private get kv(): KeyValueStore {
    return this.o.deps.store.kv;
  }

  private get queue(): JobWorker {
    return this.o.queue;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.scanning ??= this.scan()
        .catch((err: unknown) => this.o.log.warn({ code: codeOf(err), err }, 'push queue poll failed; next round retries'))
        .finally(() => (this.scanning = undefined));
    }, this.pollMs);
    this.timer.unref();
  }

  /** Stops polling and waits for the sends in flight (each ends its lease). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.scanning;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  /** Jobs queued as the queue last saw them: the push queue depth metric. */
  get queueDepth(): number {
    return this.queue.depth;
  }

  private async scan(): Promise<void> {
    const room = IN_FLIGHT - this.inFlight.size;
    if (this.stopped || room <= 0) return;
    for (const lease of await this.queue.claim(room)) {
      // Ours already (a lease of ours that lapsed while its send ran long): the running one ends it.
      if (this.inFlight.has(lease.id)) continue;
      const work = this.process(lease)
        .catch((err: unknown) => this.o.log.warn({ job: lease.id, code: codeOf(err), err }, 'push job step failed; its lease lapses and it is tried again'))
        .finally(() => this.inFlight.delete(lease.id));
      this.inFlight.set(lease.id, work);
    }
  }

  private async process(lease: JobLease): Promise<void> {
    const job = JSON.parse(lease.body) as PushJob;
    const sentRaw = await this.kv.get(Tables.pushSent, job.user_id, '');
    const sent = sentRaw === undefined ? undefined : (JSON.parse(sentRaw) as PushSent);
    // Sent already (its holder died between the record and the finish, or a late merge queued it
    // again after it was sent): only the finish is left.
    if (job.retried === undefined && sent && sent.first_seq >= job.first_seq) return this.queue.finish(lease);
    // At most one per window, whatever delayed the previous one (retries, a lapsed lease).
    if (job.retried === undefined && sent && sent.sent_ms + this.o.coalesceMs > Date.now()) return this.queue.defer(lease, sent.sent_ms + this.o.coalesceMs);
    await this.attempt(job, lease);
  }

  private async attempt(job: PushJob, lease: JobLease): Promise<void> {
    const done = new Set(lease.marks);
    let error: string | undefined;
    let final = false;
    // A channel that cannot answer now (its node is moving) is a retryable failure like any other.
    const built = await Promise.all([this.payloadOf(job), this.deviceIdsOf(job.user_id)]).catch((err: unknown) => {
      error = `could not build the notification: ${codeOf(err)}`;
      return undefined;
    });
    if (built) {
      const [payload, deviceIds] = built;
      const notificationId = notificationIdOf(job);
      const subs = this.o.providers.some((p) => isSubscriptionProvider(p)) ? await this.subs.list(job.user_id) : [];
      const sends: { key: string; provider: PushProvider; target: PushTarget; deviceId?: string }[] = [];
      for (const p of this.o.providers) {
        if (!isSubscriptionProvider(p)) sends.push({ key: p.name, provider: p, target: { userId: job.user_id, deviceIds, notificationId } });
      }
      for (const s of subs) {
        const p = this.o.providers.find((x) => x.name === s.subscription.provider);
        if (p) sends.push({ key: s.subscription.endpoint, provider: p, target: { userId: job.user_id, deviceIds: [s.deviceId], notificationId, subscription: s.subscription }, deviceId: s.deviceId });
      }
      const pending = sends.filter((s) => !done.has(s.key));
      // With several targets, each answer is recorded as it comes: a holder killed while a slow
      // one is pending leaves the quick ones told, not to be told again. With one, the finish is the record.
      const record = pending.length > 1;
      const outcomes = await Promise.all(
        pending.map(async (s) => {
          const outcome = await safeSend(s.provider, s.target, payload);
          if (record && (outcome.ok || outcome.gone)) await this.queue.mark(lease, s.key).catch(() => undefined);
          return { s, outcome };
        }),
      );
      for (const { s, outcome } of outcomes) {
        if (outcome.ok) done.add(s.key);
        else if (outcome.gone) {
          // Never retried: the subscription is dropped and the others still count.
          done.add(s.key);
          if (s.deviceId !== undefined && s.target.subscription) await this.subs.remove(job.user_id, s.deviceId, s.target.subscription.endpoint).catch(() => undefined);
        } else {
          error = `${s.provider.name}: ${outcome.error}`;
          if (!outcome.retryable) final = true;
        }
      }
    }
    if (error === undefined) {
      // The record first: a holder killed before the finish leaves a job the next one only finishes.
      const sent: PushSent = { first_seq: job.first_seq, sent_ms: Date.now() };
      await this.kv.write([{ op: 'put', table: Tables.pushSent, partition: job.user_id, key: '', value: JSON.stringify(sent) }]);
      return this.queue.finish(lease);
    }
    const attempts = lease.attempts + 1;
    if (final || attempts >= this.o.maxAttempts) {
      this.o.log.warn({ job: job.id, attempts, error }, 'push job dead-lettered');
      return this.queue.bury(lease, error);
    }
    await this.queue.defer(lease, Date.now() + backoff(this.retryBaseMs, attempts), error);
  }

  private async payloadOf(job: PushJob): Promise<PushPayload> {
    const [unread, senderName] = await Promise.all([this.unreadOf(job.user_id), this.nameOf(job.sender_id)]);
    return {
      type: 'message',
      channel_id: job.channel_id,
      message_id: job.message_id,
      sender_id: job.sender_id,
      sender_name: senderName,
      unread_count: unread,
      ...(job.text !== undefined ? { text: job.text } : {}),
    };
  }

  /** The `unread_count`s of GET /v1/channels, summed: each channel's actor counts by the read mark. */
  private async unreadOf(userId: string): Promise<number> {
    const deps = this.o.deps;
    const mine = await this.kv.list(Tables.userChannel, userId);
    const counts = await Promise.all(
      mine.map((r) =>
        channels(deps, r.key)
          .ask<ReadState>({ type: 'readState', userId }, { timeoutMs: deps.timings.fanoutTimeoutMs })
          .then((s) => s.unread_count)
          .catch((err: unknown) => {
            if (codeOf(err) === ChatCodes.FORBIDDEN) return 0; // left meanwhile
            throw err;
          }),
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  }

  private async nameOf(userId: string): Promise<string> {
    const raw = await this.kv.get(Tables.user, userId, 'profile');
    if (raw === undefined) return '';
    const p = JSON.parse(raw) as UserProfile;
    return p.display_name ?? p.username;
  }

  /** Every device the user has used (its cursor rows): none is online, or there would be no job. */
  private async deviceIdsOf(userId: string): Promise<string[]> {
    return (await this.kv.list(Tables.cursor, userId)).map((r) => r.key);
  }
}

function isSubscriptionProvider(p: PushProvider): boolean {
  return p.name === 'webpush';
}

/** A provider that throws broke its promise; treat it as a retryable failure, not a crash. */
async function safeSend(p: PushProvider, target: PushTarget, payload: PushPayload): Promise<PushOutcome> {
  try {
    return await p.send(target, payload);
  } catch (err) {
    return { ok: false, retryable: true, gone: false, error: `provider threw: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Exponential with full jitter over the upper half: base * 2^(n-1), capped, times 0.5..1. */
export function backoff(baseMs: number, attempt: number): number {
  const top = Math.min(RETRY_CAP_MS, baseMs * 2 ** Math.min(30, attempt - 1));
  return Math.round(top / 2 + Math.random() * (top / 2));
}
