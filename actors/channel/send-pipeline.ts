import type { JournalEvent } from '../../runtime/storage/index.ts';
import { codeOf } from '../../runtime/errors.ts';
import type { SendAck } from '../../proto/client-frames.ts';
import { completeMessage } from '../../proto/message-bytes.ts';
import type { ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import { encodeStoredMessage, messageBytesOf } from '../stored-message.ts';
import { decodeMessage } from '../../proto/client-codec.ts';
import type { PublishedMessage } from '../user/user-messages.ts';

interface QueuedSend {
  readonly senderId: string;
  readonly clientMsgId: string;
  readonly text: string;
  readonly dedupKey: string;
  readonly resolve: (ack: SendAck) => void;
  readonly reject: (err: unknown) => void;
}

export interface SendPipelineOptions {
  readonly channelId: string;
  readonly pid: string;
  readonly epoch: number;
  readonly head: number;
  readonly lastMessageId: bigint;
  readonly deps: ChatDeps;
  /** Messages just made durable, in channel order: for the members. */
  readonly published: (messages: readonly PublishedMessage[]) => void;
  /** A write failed (fenced, or the store lost it): the channel must start over from storage. */
  readonly failed: (code: string) => void;
}

/**
 * The send path of one channel, one append per batch.
 *
 * Sends queue here during a mailbox run; `flush` (at the end of the run) hands all of them to the
 * store as one append, and while it is in flight the next run's sends queue behind it: the
 * channel has at most one append in flight, so batches grow with load by themselves and a refused
 * batch never leaves a later one holding the wrong seqs.
 *
 * Each send gets the next `channel_seq` and a message id above the previous one, and is stored
 * once, in its stored form (actors/stored-message.ts), with its dedup key `sender:client_msg_id`.
 * The store checks dedup keys inside the append (one check): a resend of a stored message comes
 * back as a duplicate, is answered with the stored message, and the rest of the batch is appended
 * again at the seqs that are then free. A resend of a send still queued or in flight joins it.
 *
 * The ack (SendAck) means: durable in the channel's history. Every member's inbox is derived from
 * that history (actors/user/inbox.ts), so the ack promises the member gets it, live or when it
 * next reads its inbox; the members are told once the append is durable.
 */
export class SendPipeline {
  private queue: QueuedSend[] = [];
  private inFlight = false;
  private broken = false;
  /** Sends queued or in flight, by dedup key: a resend meanwhile joins its original. */
  private readonly pending = new Map<string, Promise<SendAck>>();
  private lastMessageId: bigint;
  head: number;

  constructor(private readonly o: SendPipelineOptions) {
    this.head = o.head;
    this.lastMessageId = o.lastMessageId;
  }

  get idle(): boolean {
    return !this.inFlight && this.queue.length === 0;
  }

  /** The owner epoch this channel writes with, while no write of it failed. */
  get liveEpoch(): number | undefined {
    return this.broken ? undefined : this.o.epoch;
  }

  submit(senderId: string, clientMsgId: string, text: string): Promise<SendAck> {
    if (this.broken) return Promise.reject(reject(ChatCodes.UNAVAILABLE, 'channel is recovering from a failed write; retry'));
    const dedupKey = `${senderId}:${clientMsgId}`;
    const prior = this.pending.get(dedupKey);
    if (prior) return prior;
    const ack = new Promise<SendAck>((resolve, rejectSend) => {
      this.queue.push({ senderId, clientMsgId, text, dedupKey, resolve, reject: rejectSend });
    });
    // Only while unsettled: a later resend is the store's to answer (its dedup check), and a
    // channel of a busy node would otherwise hold thousands of settled promises for nothing.
    this.pending.set(dedupKey, ack);
    const forget = (): void => void this.pending.delete(dedupKey);
    ack.then(forget, forget);
    return ack;
  }

  flush(): void {
    if (this.inFlight || this.broken || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.append(batch);
  }

  private append(batch: QueuedSend[]): void {
    const events: JournalEvent[] = [];
    const bodies: Uint8Array[] = [];
    const acks: SendAck[] = [];
    const now = Date.now();
    let taken = 0;
    for (const s of batch) {
      let id: bigint;
      try {
        // The id before the seq: a refused id (no node number yet, its reservation running out)
        // must leave no hole in channel_seq. What it refuses now it refuses for the rest too.
        id = this.o.deps.ids.next(this.lastMessageId);
      } catch (err) {
        for (const rest of batch.slice(taken)) this.fail(rest, err);
        break;
      }
      this.lastMessageId = id;
      const seq = this.head + taken + 1;
      const messageId = id.toString();
      const body = encodeStoredMessage({ message_id: messageId, sender_id: s.senderId, client_msg_id: s.clientMsgId, text: s.text, created_at_ms: now });
      events.push({ seq, key: id, dedupKey: s.dedupKey, data: body });
      bodies.push(body);
      acks.push({ channel_id: this.o.channelId, client_msg_id: s.clientMsgId, message_id: messageId, channel_seq: seq, created_at_ms: now });
      taken++;
    }
    if (taken === 0) return;
    const sends = batch.slice(0, taken);
    this.inFlight = true;
    this.o.deps.store.journal.append(this.o.pid, this.o.epoch, events).then(
      (result) => {
        this.inFlight = false;
        if (result.ok) {
          this.head += taken;
          this.o.deps.metrics.messagesIn.add(taken);
          const published: PublishedMessage[] = [];
          for (let i = 0; i < taken; i++) {
            sends[i]!.resolve(acks[i]!);
            published.push({ seq: acks[i]!.channel_seq, senderId: sends[i]!.senderId, bytes: completeMessage(bodies[i]!, this.o.channelId, acks[i]!.channel_seq) });
          }
          this.o.published(published);
        } else {
          // Older messages sent again: answered as first stored; the others go again, first.
          const stored = new Map(result.duplicates.map((e) => [e.dedupKey!, e]));
          const again: QueuedSend[] = [];
          for (const s of sends) {
            const e = stored.get(s.dedupKey);
            if (e) s.resolve(ackOf(this.o.channelId, e));
            else again.push(s);
          }
          this.queue = [...again, ...this.queue];
        }
        this.flush();
      },
      (err: unknown) => {
        this.inFlight = false;
        this.broken = true;
        for (const s of [...sends, ...this.queue]) this.fail(s, err);
        this.queue = [];
        this.o.failed(codeOf(err));
      },
    );
  }

  private fail(s: QueuedSend, err: unknown): void {
    const code = codeOf(err);
    s.reject(code === ChatCodes.UNAVAILABLE ? err : reject(ChatCodes.UNAVAILABLE, `message could not be stored (${code}); retry`));
  }
}

function ackOf(channelId: string, e: JournalEvent): SendAck {
  const m = decodeMessage(messageBytesOf(channelId, e));
  return { channel_id: channelId, client_msg_id: m.client_msg_id, message_id: m.message_id, channel_seq: m.channel_seq, created_at_ms: m.created_at_ms };
}
