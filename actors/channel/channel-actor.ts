import type { Actor, ActorContext, ActorKind } from '../../runtime/actor/index.ts';
import { CodedError, codeOf } from '../../runtime/errors.ts';
import { ThrottledLog } from '../../runtime/log.ts';
import type { JournalEvent, KeyValueWrite } from '../../runtime/storage/index.ts';
import { channels, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, isRetryable, reject } from '../errors.ts';
import { Journals, MAX_GROUP_MEMBERS, Tables, type ChannelMeta, type StoredMessage } from '../tables.ts';
import { deferReply } from '../../runtime/actor/index.ts';
import type { ChannelInfo, ChannelMessage, Message, SendAck } from './channel-messages.ts';

const HISTORY_MAX = 100;
const FANOUT_RETRY_MS = 1_000;
const RECENT_SENDS = 1_024;

/**
 * One channel (a DM is a channel of two, a group one of at most 100): membership, message order,
 * fan-out. The journal is the history: `channel_seq` is the journal seq, so it is gap-free and
 * assigned by exactly one writer (the owner epoch fences any stale activation elsewhere).
 *
 * Send path: validate, assign seq and a time-sortable id greater than the previous one, append
 * durably (the dedup key sender:client_msg_id makes a resend return the first result), then ask
 * every member's user actor to put a reference in their inbox. The `send_ack` waits for those
 * inbox appends, so an acked message survives kill -9 in history and in every inbox; a member
 * whose append fails is retried in the background (and healed by the user actor's gap fill).
 */
class ChannelActor implements Actor<ChannelMessage> {
  private meta: ChannelMeta | undefined;
  private members = new Set<string>();
  private head = 0;
  private lastMessageId = 0n;
  private epoch = 0;
  private readonly pid: string;
  /** Member -> messages whose inbox append failed, in channel order. */
  private readonly pendingFanout = new Map<string, Message[]>();
  private readonly recent = new Map<string, Promise<Message>>();
  private broken = false;

  constructor(
    private readonly ctx: ActorContext<ChannelMessage>,
    private readonly deps: ChatDeps,
    /** Shared by all channels of the node, so an overload logs a line a second, not one per member. */
    private readonly fanoutLog: ThrottledLog,
  ) {
    this.pid = Journals.channel(ctx.address.key);
  }

  private get id(): string {
    return this.ctx.address.key;
  }

  async onActivate(): Promise<void> {
    const { kv, journal } = this.deps.store;
    const rawMeta = await kv.get(Tables.channel, this.id, 'meta');
    if (!rawMeta) return; // not created (yet): every request but `create` gets NOT_FOUND
    this.meta = JSON.parse(rawMeta) as ChannelMeta;
    await this.load();
    this.epoch = await journal.acquire(this.pid, this.deps.nodeId);
  }

  private async load(): Promise<void> {
    const { kv, journal } = this.deps.store;
    this.members = new Set((await kv.list(Tables.member, this.id)).map((r) => r.key));
    const [latest] = await journal.readBefore(this.pid, undefined, 1);
    this.head = await journal.highestSeq(this.pid);
    this.lastMessageId = latest?.key ?? 0n;
  }

  canPassivate(): boolean {
    return this.pendingFanout.size === 0;
  }

  receive(m: ChannelMessage): unknown {
    switch (m.type) {
      case 'create':
        return this.create(m.kind, m.name, m.creatorId, m.memberIds);
      case 'send':
        return this.send(m.senderId, m.clientMsgId, m.text);
      case 'history':
        return this.history(m.requesterId, m.beforeMessageId, m.limit);
      case 'addMember':
        return this.addMember(m.actorId, m.userId);
      case 'removeMember':
        return this.removeMember(m.actorId, m.userId);
      case 'info':
        this.requireMember(m.requesterId);
        return this.info();
      case 'isMember':
        return this.meta !== undefined && this.members.has(m.userId);
      case 'fanoutFailed': {
        const backlog = this.pendingFanout.get(m.memberId) ?? [];
        backlog.push(m.message);
        backlog.sort((a, b) => a.channel_seq - b.channel_seq);
        this.pendingFanout.set(m.memberId, backlog);
        if (!this.ctx.timers.has('retry')) this.ctx.timers.once('retry', FANOUT_RETRY_MS, { type: 'retryFanout' });
        return undefined;
      }
      case 'retryFanout':
        return this.retryFanout();
      case 'reload':
        if (m.reason === 'FENCED') {
          // Another activation owns this channel now: ours is stale. Stop; a later message
          // reaches whichever node owns it then.
          this.ctx.stop();
          return undefined;
        }
        // Any other failure: let the kernel rebuild this actor from what the store holds.
        throw new CodedError('RELOAD', `channel ${this.id} reloads after a failed write (${m.reason})`);
    }
  }

  private requireMeta(): ChannelMeta {
    if (!this.meta) throw reject(ChatCodes.NOT_FOUND, 'no such channel');
    return this.meta;
  }

  private requireMember(userId: string): ChannelMeta {
    const meta = this.requireMeta();
    if (!this.members.has(userId)) throw reject(ChatCodes.FORBIDDEN, 'not a member of this channel');
    return meta;
  }

  private info(): ChannelInfo {
    const meta = this.requireMeta();
    return { channel_id: this.id, kind: meta.kind, name: meta.name, member_ids: [...this.members].sort() };
  }

  private async create(kind: 'dm' | 'group', name: string, creatorId: string, memberIds: string[]): Promise<ChannelInfo> {
    if (this.meta) return this.info();
    const members = [...new Set([creatorId, ...memberIds])];
    if (members.length > MAX_GROUP_MEMBERS) throw reject(ChatCodes.GROUP_FULL, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    const meta: ChannelMeta = { kind, name, creator_id: creatorId, created_at_ms: Date.now() };
    const { kv, journal } = this.deps.store;
    await kv.write([
      // Members first, meta last: a channel without meta does not exist, so a crash midway
      // leaves nothing half-made visible.
      ...members.flatMap((u) => this.membershipWrites(u, 'put', kind)),
      { op: 'put', table: Tables.channel, partition: this.id, key: 'meta', value: JSON.stringify(meta) },
    ]);
    this.meta = meta;
    this.members = new Set(members);
    this.epoch = await journal.acquire(this.pid, this.deps.nodeId);
    return this.info();
  }

  /** The two rows of a membership: the channel's member list and the user's channel list. */
  private membershipWrites(userId: string, op: 'put' | 'delete', kind: 'dm' | 'group'): KeyValueWrite[] {
    const rows = [
      { table: Tables.member, partition: this.id, key: userId },
      { table: Tables.userChannel, partition: userId, key: this.id },
    ];
    const value = JSON.stringify({ joined_at_ms: Date.now(), kind });
    return rows.map((r) => (op === 'put' ? { op, ...r, value } : { op, ...r }));
  }

  private async addMember(actorId: string, userId: string): Promise<void> {
    const meta = this.requireMember(actorId);
    if (meta.kind === 'dm') throw reject(ChatCodes.FORBIDDEN, 'a direct message channel has exactly two members');
    if (this.members.has(userId)) return;
    if (this.members.size >= MAX_GROUP_MEMBERS) throw reject(ChatCodes.GROUP_FULL, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    await this.deps.store.kv.write(this.membershipWrites(userId, 'put', meta.kind));
    this.members.add(userId);
    users(this.deps, userId).tell({ type: 'joined', channelId: this.id, atSeq: this.head });
  }

  private async removeMember(actorId: string, userId: string): Promise<void> {
    const meta = this.requireMember(actorId);
    if (actorId !== userId && actorId !== meta.creator_id) throw reject(ChatCodes.FORBIDDEN, 'only the creator removes others');
    if (meta.kind === 'dm') throw reject(ChatCodes.FORBIDDEN, 'a direct message channel has exactly two members');
    if (!this.members.has(userId)) return;
    await this.deps.store.kv.write(this.membershipWrites(userId, 'delete', meta.kind));
    this.members.delete(userId);
    this.pendingFanout.delete(userId);
    users(this.deps, userId).tell({ type: 'left', channelId: this.id });
  }

  /**
   * Pipelined: the turn assigns seq and id and hands the append to the store, then ends; the
   * next send is assigned while this one commits (the store's group commit takes both). Appends
   * complete in submission order, so acks and fan-out follow channel order. A failed append
   * leaves `head` ahead of the store: the actor refuses further sends and rebuilds itself.
   */
  private async send(senderId: string, clientMsgId: string, text: string): Promise<unknown> {
    this.requireMember(senderId);
    if (this.broken) throw reject(ChatCodes.UNAVAILABLE, 'channel is recovering from a failed write; retry');
    const dedupKey = `${senderId}:${clientMsgId}`;
    let prior = this.recent.get(dedupKey);
    if (!prior) {
      const stored = await this.deps.store.journal.findByDedup(this.pid, dedupKey).catch((err: unknown) => {
        throw reject(ChatCodes.UNAVAILABLE, `message could not be stored (${codeOf(err)}); retry`);
      });
      if (stored) prior = Promise.resolve(messageFromEvent(this.id, stored));
    }
    if (prior) {
      // A resend: answer with the first result and fan out again; inbox appends are idempotent,
      // so this also heals a fan-out that a crash interrupted.
      return deferReply(prior.then((m) => this.fanoutAndAck(m, Promise.resolve(m), false)));
    }
    // The id first: it may be refused (no node number, reservation being renewed), and a refusal
    // must not leave a hole in channel_seq.
    const id = this.deps.ids.next(this.lastMessageId);
    const seq = ++this.head;
    this.lastMessageId = id;
    const stored: StoredMessage = { message_id: id.toString(), sender_id: senderId, client_msg_id: clientMsgId, text, created_at_ms: Date.now() };
    const message = toMessage(this.id, { seq, data: stored });
    const durable = this.deps.store.journal.append(this.pid, this.epoch, [{ seq, key: id, dedupKey, data: JSON.stringify(stored) }]).then((r) => {
      if (!r.ok) throw new CodedError('SEQ_CONFLICT', 'a concurrent writer stored this dedup key');
      return message;
    });
    this.remember(dedupKey, durable);
    durable.catch((err: unknown) => this.writeFailed(err));
    return deferReply(this.fanoutAndAck(message, durable, true));
  }

  /**
   * Puts the message in every member's inbox, then acks. With a store that applies this process's
   * writes in order (SQLite), members on this node are asked at once, before the message is
   * durable: their inbox appends require the message's event, land in the same group commit, and
   * are refused if it never made it. Members elsewhere are asked once it is durable, so no inbox
   * anywhere can reference a message that is not stored.
   */
  private async fanoutAndAck(message: Message, durable: Promise<Message>, early: boolean): Promise<SendAck> {
    const ordered = early && this.deps.store.journal.orderedWrites;
    const now: string[] = [];
    const later: string[] = [];
    for (const m of this.members) (ordered && this.deps.system.isLocal({ kind: 'user', key: m }) ? now : later).push(m);
    const first = now.map((m) => this.appendTo(m, message, true));
    try {
      await durable;
    } catch (err) {
      await Promise.all(first);
      throw reject(ChatCodes.UNAVAILABLE, `message could not be stored (${codeOf(err)}); retry`);
    }
    const results = await Promise.all([...first, ...later.map((m) => this.appendTo(m, message, false))]);
    const failed = results.reduce((a, b) => a + b, 0);
    // The ack promises every inbox has it. If one append failed, the message is stored and its
    // delivery retried in the background, but the sender hears "retry": its resend (same
    // client_msg_id) returns this same message once every inbox took it.
    if (failed > 0) throw reject(ChatCodes.UNAVAILABLE, `stored, but ${failed} inbox(es) not yet updated; retry with the same client_msg_id`);
    return {
      channel_id: this.id,
      client_msg_id: message.client_msg_id,
      message_id: message.message_id,
      channel_seq: message.channel_seq,
      created_at_ms: message.created_at_ms,
    };
  }

  /** Recent sends by dedup key, in flight or done, so a quick resend never races its original. */
  private remember(dedupKey: string, message: Promise<Message>): void {
    this.recent.set(dedupKey, message);
    message.catch(() => this.recent.delete(dedupKey));
    if (this.recent.size > RECENT_SENDS) this.recent.delete(this.recent.keys().next().value!);
  }

  private writeFailed(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.deps.log.warn({ channel: this.id, code: codeOf(err) }, 'channel write failed; rebuilding from storage');
    try {
      this.ctx.self.tell({ type: 'reload', reason: codeOf(err) });
    } catch {
      // Mailbox full: the next send sees `broken` and the reload request is retried then.
      this.broken = false;
    }
  }

  /**
   * Asks one member's user actor to append (asks to one actor queue in order, so members see
   * channel order). Resolves 1 if it failed: that append is retried here in the background, and
   * the user actor's gap fill heals anything still missing.
   */
  private async appendTo(memberId: string, message: Message, requireEvent: boolean): Promise<number> {
    try {
      await users(this.deps, memberId).ask({ type: 'append', message, requireEvent }, { timeoutMs: this.deps.timings.fanoutTimeoutMs });
      return 0;
    } catch (err) {
      if (codeOf(err) === 'REQUIREMENT_MISSING') return 1; // the message itself failed; the sender hears that
      this.fanoutLog.warn({ channel: this.id, member: memberId, code: codeOf(err) });
      // Recorded in a turn of this actor's own, so the backlog is only touched by handlers.
      try {
        this.ctx.self.tell({ type: 'fanoutFailed', memberId, message });
      } catch {
        // Our own mailbox is full: the sender's retry or the member's gap fill covers it.
      }
      return 1;
    }
  }

  private async retryFanout(): Promise<void> {
    for (const [memberId, backlog] of this.pendingFanout) {
      if (!this.members.has(memberId)) {
        this.pendingFanout.delete(memberId);
        continue;
      }
      while (backlog.length > 0) {
        try {
          await users(this.deps, memberId).ask({ type: 'append', message: backlog[0]! }, { timeoutMs: this.deps.timings.fanoutTimeoutMs });
          backlog.shift();
        } catch {
          break;
        }
      }
      if (backlog.length === 0) this.pendingFanout.delete(memberId);
    }
    if (this.pendingFanout.size > 0) this.ctx.timers.once('retry', FANOUT_RETRY_MS, { type: 'retryFanout' });
  }

  private async history(requesterId: string, beforeMessageId: string | undefined, limit: number): Promise<{ messages: Message[]; has_more: boolean }> {
    this.requireMember(requesterId);
    const n = Math.max(1, Math.min(HISTORY_MAX, Math.floor(limit) || 50));
    let before: bigint | undefined;
    if (beforeMessageId) {
      if (!/^\d{1,20}$/.test(beforeMessageId)) throw reject(ChatCodes.INVALID_ARGUMENT, 'before must be a message id');
      before = BigInt(beforeMessageId);
    }
    const rows = await this.deps.store.journal.readBefore(this.pid, before, n + 1);
    const messages = rows.slice(0, n).map((e) => toMessage(this.id, { seq: e.seq, data: JSON.parse(e.data) as StoredMessage }));
    return { messages, has_more: rows.length > n };
  }
}

export function toMessage(channelId: string, e: { seq: number; data: StoredMessage }): Message {
  return {
    message_id: e.data.message_id,
    channel_id: channelId,
    sender_id: e.data.sender_id,
    client_msg_id: e.data.client_msg_id,
    text: e.data.text,
    created_at_ms: e.data.created_at_ms,
    channel_seq: e.seq,
  };
}

export function messageFromEvent(channelId: string, e: JournalEvent): Message {
  return toMessage(channelId, { seq: e.seq, data: JSON.parse(e.data) as StoredMessage });
}

export function channelKind(deps: ChatDeps): ActorKind<ChannelMessage> {
  const fanoutLog = new ThrottledLog(deps.log, 'inbox append failed; will retry');
  return {
    name: 'channel',
    idleMs: 300_000,
    mailboxCapacity: 4096,
    create: (ctx) => new ChannelActor(ctx, deps, fanoutLog),
  };
}

export { channels };
