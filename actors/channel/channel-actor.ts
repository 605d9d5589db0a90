import { deferReply, type Actor, type ActorContext, type ActorKind } from '../../runtime/actor/index.ts';
import { codeOf } from '../../runtime/errors.ts';
import { ThrottledLog } from '../../runtime/log.ts';
import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/index.ts';
import { channels, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import { messageBytesOf, messageOf } from '../stored-message.ts';
import { Journals, MAX_GROUP_MEMBERS, Tables, type ChannelMeta, type MembershipRow } from '../tables.ts';
import type { ChannelInfo, ChannelMessage, HistoryPage, ReadState } from './channel-messages.ts';
import { SendPipeline } from './send-pipeline.ts';
import { TypingThrottle } from './typing-throttle.ts';
import { ReadMarks } from './read-marks.ts';
import type { UserMessage } from '../user/user-messages.ts';
import type { ReadReceipt, TypingNotice } from '../../proto/client-frames.ts';

const HISTORY_MAX = 100;
const NOTIFY_RETRY_MS = 1_000;
/** How far back unread messages are told apart by sender (see readState). */
const UNREAD_SCAN = 10_000;

/**
 * One channel (a DM is a channel of two, a group one of at most 100): membership, message order,
 * history. The journal is the history: `channel_seq` is the journal seq, gap-free, assigned by
 * exactly one writer (the owner epoch fences any stale activation elsewhere).
 *
 * Sending is the send pipeline's (send-pipeline.ts): every send of a mailbox run goes to the store
 * as one append, the ack means "durable in the history", and the committed messages are told to
 * every member's user actor, which puts them in the inbox (actors/user). Nothing per member is
 * written here: a member that misses the notification finds the message by its channel seq.
 */
class ChannelActor implements Actor<ChannelMessage> {
  private meta: ChannelMeta | undefined;
  private members = new Set<string>();
  private readonly pid: string;
  private sends: SendPipeline | undefined;
  /** Members a notification could not reach (mailbox full, link down): told the head again later. */
  private readonly unnotified = new Set<string>();
  private typingThrottle: TypingThrottle | undefined;
  private marks: ReadMarks | undefined;
  /**
   * A DM's members who block the other one; sends are refused both ways while it has any. Loaded
   * with the channel, reloaded when a member's user actor says the pair's blocks changed.
   */
  private dmBlockers: Set<string> | undefined;
  /** Per member, the unread count as of a head, for a mark (see readState). */
  private unreadCounts: Map<string, { mark: number; head: number; unread: number }> | undefined;

  constructor(
    private readonly ctx: ActorContext<ChannelMessage>,
    private readonly deps: ChatDeps,
    /** Shared by all channels of the node, so an overload logs a line a second, not one per member. */
    private readonly notifyLog: ThrottledLog,
  ) {
    this.pid = Journals.channel(ctx.address.key);
  }

  private get id(): string {
    return this.ctx.address.key;
  }

  async onActivate(): Promise<void> {
    const { kv } = this.deps.store;
    const rawMeta = await kv.get(Tables.channel, this.id, 'meta');
    if (!rawMeta) return; // not created (yet): every request but `create` gets NOT_FOUND
    this.meta = JSON.parse(rawMeta) as ChannelMeta;
    this.members = new Set((await kv.list(Tables.member, this.id)).map((r) => r.key));
    if (this.meta.kind === 'dm') this.dmBlockers = await dmBlockersOf(kv, [...this.members]);
    this.sends = await this.openPipeline();
  }

  private async openPipeline(): Promise<SendPipeline> {
    const { journal } = this.deps.store;
    // Ownership first: what an older activation was still writing is settled by the acquire
    // (included, or hidden for good), so the head read after it is the one to append after.
    const epoch = await journal.acquire(this.pid, this.deps.nodeId);
    const [latest] = await journal.readBefore(this.pid, undefined, 1);
    const head = await journal.highestSeq(this.pid);
    return new SendPipeline({
      channelId: this.id,
      pid: this.pid,
      epoch,
      head,
      lastMessageId: latest?.key ?? 0n,
      deps: this.deps,
      published: (messages) => this.notify(this.members, { type: 'published', channelId: this.id, messages }),
      failed: (code) => {
        // Fenced: another activation owns the channel now. Anything else: the store refused or
        // lost a write, and what the head is now is for a fresh activation to read.
        this.deps.log.warn({ channel: this.id, code }, 'channel write failed; the channel restarts from storage');
        this.ctx.stop();
      },
    });
  }

  canPassivate(): boolean {
    return (this.sends?.idle ?? true) && this.unnotified.size === 0;
  }

  async onDeactivate(): Promise<void> {
    // A clean end: the next activation, on this node or another, has no older writer to fence.
    const epoch = this.sends?.liveEpoch;
    if (epoch !== undefined) await this.deps.store.journal.release(this.pid, epoch);
  }

  receive(m: ChannelMessage): unknown {
    // No such channel: whatever this is gets NOT_FOUND (or nothing), and the activation ends with
    // it instead of idling for idleMs. Any authenticated client may name channel ids at will
    // (history, read, typing, send), and an activation kept per made-up id would let one socket
    // pin memory without bound; what queued behind this message goes to a fresh activation.
    if (!this.meta && m.type !== 'create') this.ctx.stop();
    switch (m.type) {
      case 'create':
        return this.create(m.kind, m.name, m.creatorId, m.memberIds);
      case 'send':
        this.requireMember(m.senderId);
        if (this.dmBlockers) this.refuseBlocked(m.senderId);
        return deferReply(this.sends!.submit(m.senderId, m.clientMsgId, m.text));
      case 'history':
        return this.history(m.requesterId, m.beforeMessageId, m.limit);
      case 'addMember':
        return this.addMember(m.actorId, m.userId);
      case 'removeMember':
        return this.removeMember(m.actorId, m.userId);
      case 'info':
        this.requireMember(m.requesterId);
        return this.info();
      case 'typing':
        this.requireMember(m.userId);
        (this.typingThrottle ??= new TypingThrottle(this.id)).typed(m.userId, (notice) => this.tellTyping(notice));
        this.scheduleTypingFlush();
        return undefined;
      case 'read':
        this.requireMember(m.userId);
        return deferReply(this.read(m.userId, m.seq, m.session));
      case 'readState':
        this.requireMember(m.userId);
        return deferReply(this.readState(m.userId));
      case 'reads':
        this.requireMember(m.requesterId);
        return deferReply(this.readMarks.all().then((all) => ({ reads: all.filter(([u]) => this.members.has(u)).map(([u, s]) => ({ user_id: u, channel_seq: s })) })));
      case 'typingFlush':
        this.typingThrottle?.flush((notice) => this.tellTyping(notice));
        this.scheduleTypingFlush();
        return undefined;
      case 'isMember':
        return this.meta !== undefined && this.members.has(m.userId);
      case 'blocksChanged':
        return this.reloadBlocks();
      case 'announce':
        if (this.sends) this.notify(this.members, { type: 'channelHead', channelId: this.id, seq: this.sends.head });
        return undefined;
      case 'retryNotify': {
        const retry = [...this.unnotified].filter((u) => this.members.has(u));
        this.unnotified.clear();
        if (this.sends) this.notify(retry, { type: 'channelHead', channelId: this.id, seq: this.sends.head });
        return undefined;
      }
    }
  }

  /** Hands what the run's sends queued to the store, as one append. */
  flush(): void {
    this.sends?.flush();
  }

  /**
   * Tells each member; one that cannot be told now (its mailbox is full, its node unreachable) is
   * told the head later, from which its user actor reads what it missed.
   */
  private notify(to: Iterable<string>, message: UserMessage): void {
    for (const member of to) {
      try {
        users(this.deps, member).tell(message);
      } catch (err) {
        this.notifyLog.warn({ channel: this.id, member, code: codeOf(err) });
        this.unnotified.add(member);
      }
    }
    if (this.unnotified.size > 0 && !this.ctx.timers.has('retryNotify')) this.ctx.timers.once('retryNotify', NOTIFY_RETRY_MS, { type: 'retryNotify' });
  }

  private get readMarks(): ReadMarks {
    return (this.marks ??= new ReadMarks(this.id, this.deps.store.kv));
  }

  private async read(userId: string, seq: number, exceptSession: string | undefined): Promise<void> {
    const at = Math.min(seq, this.sends?.head ?? 0);
    if (!(await this.readMarks.advance(userId, at))) return;
    const receipt: ReadReceipt = { channel_id: this.id, user_id: userId, channel_seq: at };
    // A receipt a busy member misses is still in GET /v1/channels/{id}/reads.
    this.tellEphemeral(this.members, { type: 'readReceipt', receipt, ...(exceptSession ? { exceptSession } : {}) });
  }

  /**
   * Unread = messages after the mark sent by others, counted from the history: exactly for the
   * last UNREAD_SCAN messages, and every message older than those counts as unread. A member's
   * count is kept between calls, so the next one reads only what came since (while the mark
   * stays where it was).
   */
  private async readState(userId: string): Promise<ReadState> {
    const head = this.sends?.head ?? 0;
    const mark = Math.min(await this.readMarks.of(userId), head);
    const known = this.unreadCounts?.get(userId);
    const fromKnown = known !== undefined && known.mark === mark && known.head <= head;
    let from = fromKnown ? known.head : Math.max(mark, head - UNREAD_SCAN);
    let unread = fromKnown ? known.unread : from - mark;
    while (from < head) {
      const page = await this.deps.store.journal.read(this.pid, from, Math.min(500, head - from));
      if (page.length === 0) break;
      for (const e of page) if (messageOf(this.id, e).sender_id !== userId) unread++;
      from = page[page.length - 1]!.seq;
    }
    (this.unreadCounts ??= new Map()).set(userId, { mark, head: from, unread });
    return { last_seq: head, last_read_seq: mark, unread_count: unread };
  }

  /** A typing notice to every other member; one a busy member misses is followed within a second. */
  private tellTyping(notice: TypingNotice): void {
    this.tellEphemeral([...this.members].filter((m) => m !== notice.user_id), { type: 'typing', notice });
  }

  /** Tells members something nothing depends on: unlike notify, a member that cannot take it now is not told again. */
  private tellEphemeral(to: Iterable<string>, message: UserMessage): void {
    for (const member of to) {
      try {
        users(this.deps, member).tell(message);
      } catch {
        // Ephemeral by design (see the callers).
      }
    }
  }

  private scheduleTypingFlush(): void {
    const inMs = this.typingThrottle?.nextFlushInMs;
    if (inMs !== undefined && !this.ctx.timers.has('typingFlush')) this.ctx.timers.once('typingFlush', inMs, { type: 'typingFlush' });
  }

  private requireMeta(): ChannelMeta {
    if (!this.meta) throw reject(ChatCodes.NOT_FOUND, 'no such channel');
    return this.meta;
  }

  /**
   * A channel that does not exist is refused like one the user is not in (FORBIDDEN alike), so
   * the answer tells no one which channel ids exist.
   */
  private requireMember(userId: string): ChannelMeta {
    if (!this.meta || !this.members.has(userId)) throw reject(ChatCodes.FORBIDDEN, 'not a member of this channel');
    return this.meta;
  }

  /** The one check of a DM send while either member blocks the other. */
  private refuseBlocked(senderId: string): void {
    if (this.dmBlockers!.has(senderId)) throw reject(ChatCodes.FORBIDDEN, 'you have blocked this user; unblock them to send');
    throw reject(ChatCodes.FORBIDDEN, 'this user does not accept your messages');
  }

  private async reloadBlocks(): Promise<void> {
    if (this.meta?.kind !== 'dm') return; // not created (it loads them when it is) or a group
    this.dmBlockers = await dmBlockersOf(this.deps.store.kv, [...this.members]);
  }

  private info(): ChannelInfo {
    const meta = this.requireMeta();
    return { channel_id: this.id, kind: meta.kind, name: meta.name, member_ids: [...this.members].sort() };
  }

  private async create(kind: 'dm' | 'group', name: string, creatorId: string, memberIds: string[]): Promise<ChannelInfo> {
    const members = [...new Set([creatorId, ...memberIds])];
    // Opening a DM: refused to the one the other blocks; the blocker may open it (to read it).
    const blockers = this.meta ? this.dmBlockers : kind === 'dm' ? await dmBlockersOf(this.deps.store.kv, members) : undefined;
    if (blockers && [...blockers].some((b) => b !== creatorId)) throw reject(ChatCodes.FORBIDDEN, 'this user does not accept your messages');
    if (this.meta) return this.info();
    if (members.length > MAX_GROUP_MEMBERS) throw reject(ChatCodes.GROUP_FULL, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    const meta: ChannelMeta = { kind, name, creator_id: creatorId, created_at_ms: Date.now() };
    await this.deps.store.kv.write([
      // Members first, meta last: a channel without meta does not exist, so a crash midway
      // leaves nothing half-made visible.
      ...members.flatMap((u) => this.membershipWrites(u, 'put', kind, 0)),
      { op: 'put', table: Tables.channel, partition: this.id, key: 'meta', value: JSON.stringify(meta) },
    ]);
    this.meta = meta;
    this.members = new Set(members);
    this.dmBlockers = blockers;
    this.sends = await this.openPipeline();
    return this.info();
  }

  /** The two rows of a membership: the channel's member list and the user's channel list. */
  private membershipWrites(userId: string, op: 'put' | 'delete', kind: 'dm' | 'group', atSeq: number): KeyValueWrite[] {
    const rows = [
      { table: Tables.member, partition: this.id, key: userId },
      { table: Tables.userChannel, partition: userId, key: this.id },
    ];
    const value = JSON.stringify({ joined_at_ms: Date.now(), kind, at_seq: atSeq } satisfies MembershipRow);
    return rows.map((r) => (op === 'put' ? { op, ...r, value } : { op, ...r }));
  }

  private async addMember(actorId: string, userId: string): Promise<void> {
    const meta = this.requireMember(actorId);
    if (meta.kind === 'dm') throw reject(ChatCodes.FORBIDDEN, 'a direct message channel has exactly two members');
    if (this.members.has(userId)) return;
    if (this.members.size >= MAX_GROUP_MEMBERS) throw reject(ChatCodes.GROUP_FULL, `a group has at most ${MAX_GROUP_MEMBERS} members`);
    // Messages up to the head as of now are not the new member's; the row says so durably, for
    // a user actor that rebuilds its inbox (see actors/user/inbox.ts).
    const atSeq = this.sends!.head;
    await this.deps.store.kv.write(this.membershipWrites(userId, 'put', meta.kind, atSeq));
    this.members.add(userId);
    this.notify([userId], { type: 'joined', channelId: this.id, atSeq });
  }

  /**
   * The member stops being told of new messages at once; then its user actor closes this channel
   * in its inbox at the head as of now, durably, before the membership rows go: an inbox rebuilt
   * after a crash must never take messages sent after the removal.
   */
  private async removeMember(actorId: string, userId: string): Promise<void> {
    const meta = this.requireMember(actorId);
    if (actorId !== userId && actorId !== meta.creator_id) throw reject(ChatCodes.FORBIDDEN, 'only the creator removes others');
    if (meta.kind === 'dm') throw reject(ChatCodes.FORBIDDEN, 'a direct message channel has exactly two members');
    if (!this.members.has(userId)) return;
    this.members.delete(userId);
    try {
      await users(this.deps, userId).ask({ type: 'left', channelId: this.id, atSeq: this.sends!.head }, { timeoutMs: this.deps.timings.fanoutTimeoutMs });
      await this.deps.store.kv.write(this.membershipWrites(userId, 'delete', meta.kind, 0));
    } catch (err) {
      this.members.add(userId);
      throw reject(ChatCodes.UNAVAILABLE, `the member could not be removed now (${codeOf(err)}); retry`);
    }
    this.unnotified.delete(userId);
  }

  private async history(requesterId: string, beforeMessageId: string | undefined, limit: number): Promise<HistoryPage> {
    this.requireMember(requesterId);
    const n = Math.max(1, Math.min(HISTORY_MAX, Math.floor(limit) || 50));
    let before: bigint | undefined;
    if (beforeMessageId) {
      if (!/^\d{1,20}$/.test(beforeMessageId)) throw reject(ChatCodes.INVALID_ARGUMENT, 'before must be a message id');
      before = BigInt(beforeMessageId);
    }
    const rows = await this.deps.store.journal.readBefore(this.pid, before, n + 1);
    return { messages: rows.slice(0, n).map((e) => messageBytesOf(this.id, e)), has_more: rows.length > n };
  }
}

/** Members of a DM who block the other one; undefined when neither does. */
async function dmBlockersOf(kv: KeyValueStore, members: readonly string[]): Promise<Set<string> | undefined> {
  const [x, y] = members;
  if (x === undefined || y === undefined) return undefined;
  const [xy, yx] = await Promise.all([kv.get(Tables.block, x, y), kv.get(Tables.block, y, x)]);
  const blockers = [...(xy === undefined ? [] : [x]), ...(yx === undefined ? [] : [y])];
  return blockers.length > 0 ? new Set(blockers) : undefined;
}

export function channelKind(deps: ChatDeps): ActorKind<ChannelMessage> {
  const notifyLog = new ThrottledLog(deps.log, 'member not notified; will announce the head again');
  return {
    name: 'channel',
    idleMs: 300_000,
    mailboxCapacity: 4096,
    create: (ctx) => new ChannelActor(ctx, deps, notifyLog),
  };
}

export { channels };
