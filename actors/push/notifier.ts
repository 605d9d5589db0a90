import { randomUUID } from 'node:crypto';
import { codeOf } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/index.ts';
import type { PushOutcome, PushPayload, PushProvider, PushTarget, WebPushSubscription } from '../../runtime/push/index.ts';
import type { ReadState } from '../channel/channel-messages.ts';
import { channels, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes } from '../errors.ts';
import { PUSH_SHARDS, Tables, pushShard, type UserProfile } from '../tables.ts';
import { claimKey, dropJob, type DeadLetter, type PushClaim, type PushJob, type PushSent } from './push-jobs.ts';

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
  readonly coalesceMs: number;
  readonly maxAttempts: number;
  /** First retry delay; each later one doubles, up to RETRY_CAP_MS, with jitter. */
  readonly retryBaseMs?: number;
  /** How long a claim holds a job: past every provider's timeout, so a live holder never loses it mid-send. */
  readonly leaseMs?: number;
  /** How often the queue is scanned; default a fifth of the window, within 25..1000 ms. */
  readonly pollMs?: number;
  readonly log: Logger;
}

const RETRY_CAP_MS = 5 * 60_000;
/** Jobs one node sends at once. */
const IN_FLIGHT = 32;
/** Jobs read per queue partition per scan. */
const SCAN_PAGE = 500;

/**
 * Sends queued push jobs (see push-jobs.ts and actors/user/push-decider.ts). One per node; every
 * node scans every queue partition, and a job is sent by whoever claims it.
 *
 * The claim protocol (Tables.pushClaim, one lease chain per job): claim n is created with
 * putIfAbsent, so of two nodes racing for it one wins; claim n+1 may be tried only once claim n's
 * `until_ms` has passed. The holder sends, then in one write records the user's last sent job
 * (Tables.pushSent) and deletes the job and its chain. A holder that dies mid-send (kill -9)
 * leaves a claim that lapses after `leaseMs`; the next claim sends again, skipping the targets
 * the dead one had recorded as done. Between a target's answer and its record there is no
 * atomicity with the far side: that one target can be told twice after a crash, never zero times.
 *
 * Every step re-checks the store, never memory, so a restarted node, or another one, takes over.
 */
export class Notifier {
  private readonly owner = `${randomUUID()}`;
  private readonly subs: SubscriptionSource;
  private readonly retryBaseMs: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly inFlight = new Map<string, Promise<void>>();
  private lastDepth = 0;
  private stopped = false;

  constructor(private readonly o: NotifierOptions) {
    this.subs = o.subscriptions ?? NO_SUBSCRIPTIONS;
    this.retryBaseMs = o.retryBaseMs ?? 1_000;
    this.leaseMs = o.leaseMs ?? 30_000;
    this.pollMs = o.pollMs ?? Math.min(1_000, Math.max(25, Math.floor(o.coalesceMs / 5)));
  }

  private get kv(): KeyValueStore {
    return this.o.deps.store.kv;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.scanning ??= this.scan()
        .catch((err: unknown) => this.o.log.warn({ code: codeOf(err), err }, 'push queue scan failed; next round retries'))
        .finally(() => (this.scanning = undefined));
    }, this.pollMs);
    this.timer.unref();
  }

  /** Stops scanning and waits for the sends in flight (their claims are released by their records). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.scanning;
    await Promise.allSettled([...this.inFlight.values()]);
  }


  /** Jobs seen queued at the last scan (at most SCAN_PAGE per shard read): the push queue depth metric. */
  get queueDepth(): number {
    return this.lastDepth;
  }

  private async scan(): Promise<void> {
    const now = Date.now();
    let depth = 0;
    for (let s = 0; s < PUSH_SHARDS && !this.stopped; s++) {
      const rows = await this.kv.list(Tables.pushQueue, `s${s}`, SCAN_PAGE);
      depth += rows.length;
      if (!this.take(rows, now)) break;
    }
    this.lastDepth = depth;
  }

  /** Starts the due jobs of one page; false once the node has all the sends in flight it takes. */
  private take(rows: readonly { key: string; value: string }[], now: number): boolean {
    for (const r of rows) {
      if (this.stopped || this.inFlight.size >= IN_FLIGHT) return false;
      if (this.inFlight.has(r.key)) continue;
      const job = JSON.parse(r.value) as PushJob;
      if (job.due_ms > now) continue;
      const work = this.process(job)
        .catch((err: unknown) => this.o.log.warn({ job: job.id, code: codeOf(err), err }, 'push job step failed; its lease lapses and it is tried again'))
        .finally(() => this.inFlight.delete(job.id));
      this.inFlight.set(job.id, work);
    }
    return true;
  }

  private async process(job: PushJob): Promise<void> {
    const kv = this.kv;
    const sentRaw = await kv.get(Tables.pushSent, job.user_id, '');
    const sent = sentRaw === undefined ? undefined : (JSON.parse(sentRaw) as PushSent);
    const chain = await kv.list(Tables.pushClaim, job.id);
    // Sent already (the holder died between its record and the row's delete, or a merge rewrote
    // the row after it was sent): only the cleanup is left.
    if (job.retried === undefined && sent && sent.first_seq >= job.first_seq) return this.finish(job, chain.map((c) => c.key), []);
    const last = chain[chain.length - 1];
    const prev = last === undefined ? undefined : (JSON.parse(last.value) as PushClaim);
    const now = Date.now();
    if (prev && prev.until_ms > now) return; // held, or waiting for its next attempt
    const n = last === undefined ? 1 : Number(last.key) + 1;
    const mine: PushClaim = { owner: this.owner, until_ms: now + this.leaseMs, attempts: prev?.attempts ?? 0, done_targets: prev?.done_targets ?? [] };
    const { created } = await kv.putIfAbsent(Tables.pushClaim, job.id, claimKey(n), JSON.stringify(mine));
    if (!created) return; // another node won this link
    const keys = [...chain.map((c) => c.key), claimKey(n)];
    // Re-read under the claim: the user's actor may have cancelled it or merged more into it.
    const raw = await kv.get(Tables.pushQueue, pushShard(job.user_id), job.id);
    if (raw === undefined) return this.finish(job, keys, [], false);
    const current = JSON.parse(raw) as PushJob;
    // At most one per window, whatever delayed the previous one (retries, a lapsed lease).
    if (current.retried === undefined && sent && sent.sent_ms + this.o.coalesceMs > now) {
      await this.hold(job, n, { ...mine, until_ms: sent.sent_ms + this.o.coalesceMs });
      return;
    }
    await this.attempt(current, n, mine, keys);
  }

  private async attempt(job: PushJob, n: number, claim: PushClaim, keys: string[]): Promise<void> {
    const done = new Set(claim.done_targets);
    let error: string | undefined;
    let final = false;
    // A channel that cannot answer now (its node is moving) is a retryable failure like any other.
    const built = await Promise.all([this.payloadOf(job), this.deviceIdsOf(job.user_id)]).catch((err: unknown) => {
      error = `could not build the notification: ${codeOf(err)}`;
      return undefined;
    });
    if (built) {
      const [payload, deviceIds] = built;
      const subs = this.o.providers.some((p) => isSubscriptionProvider(p)) ? await this.subs.list(job.user_id) : [];
      const sends: { key: string; provider: PushProvider; target: PushTarget; deviceId?: string }[] = [];
      for (const p of this.o.providers) {
        if (!isSubscriptionProvider(p)) sends.push({ key: p.name, provider: p, target: { userId: job.user_id, deviceIds } });
      }
      for (const s of subs) {
        const p = this.o.providers.find((x) => x.name === s.subscription.provider);
        if (p) sends.push({ key: s.subscription.endpoint, provider: p, target: { userId: job.user_id, deviceIds: [s.deviceId], subscription: s.subscription }, deviceId: s.deviceId });
      }
      const outcomes = await Promise.all(sends.filter((s) => !done.has(s.key)).map(async (s) => ({ s, outcome: await safeSend(s.provider, s.target, payload) })));
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
      const sent: PushSent = { first_seq: job.first_seq, sent_ms: Date.now() };
      return this.finish(job, keys, [{ op: 'put', table: Tables.pushSent, partition: job.user_id, key: '', value: JSON.stringify(sent) }]);
    }
    const attempts = claim.attempts + 1;
    if (final || attempts >= this.o.maxAttempts) {
      const dead: DeadLetter = { job, attempts, last_error: error, dead_at_ms: Date.now() };
      this.o.log.warn({ job: job.id, attempts, error }, 'push job dead-lettered');
      return this.finish(job, keys, [{ op: 'put', table: Tables.pushDead, partition: pushShard(job.user_id), key: job.id, value: JSON.stringify(dead) }]);
    }
    const delay = backoff(this.retryBaseMs, attempts);
    await this.hold(job, n, { ...claim, until_ms: Date.now() + delay, attempts, done_targets: [...done], last_error: error });
  }

  /** Rewrites our own claim link: the job is ours (or nobody's) until `until_ms`. */
  private async hold(job: PushJob, n: number, claim: PushClaim): Promise<void> {
    await this.kv.write([{ op: 'put', table: Tables.pushClaim, partition: job.id, key: claimKey(n), value: JSON.stringify(claim) }]);
  }

  /** Removes the job and its chain, with `also` in the same write. `dropRow`: false when it is gone already. */
  private async finish(job: PushJob, claimKeys: readonly string[], also: KeyValueWrite[], dropRow = true): Promise<void> {
    const writes: KeyValueWrite[] = [...also, ...claimKeys.map((k): KeyValueWrite => ({ op: 'delete', table: Tables.pushClaim, partition: job.id, key: k }))];
    if (dropRow) writes.push(dropJob(job));
    await this.kv.write(writes);
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
