import { deferReply, type Actor, type ActorContext, type ActorKind, type DeferredReply } from '../../runtime/actor/index.ts';
import { codeOf } from '../../runtime/errors.ts';
import type { Store } from '../../runtime/storage/index.ts';
import { channels, sessions, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import { lossesSoFar } from '../node-losses.ts';
import { Journals, MAX_BLOCKS, Tables } from '../tables.ts';
import { Blocks } from './blocks.ts';
import { Contacts } from './contacts.ts';
import { CURSOR_FLUSH_MS, Cursors } from './cursors.ts';
import { Devices, sessionNode } from './devices.ts';
import { Inbox, decodeRow, decodeSnapshot } from './inbox.ts';
import { InboxFeed, type InboxFeedOwner } from './inbox-feed.ts';
import type { Presence } from '../../proto/client-frames.ts';
import type { SessionMessage } from '../session/session-messages.ts';
import type { PublishedMessage, UserMessage } from './user-messages.ts';
import { UserPresence, type PresenceOwner } from './user-presence.ts';
import { PushDecider } from './push-decider.ts';

/**
 * One user: the inbox (gap-free `inbox_seq`, see inbox.ts), the connected devices and a cursor
 * per device, presence. A shell around small parts: the inbox and its feed, Devices, Cursors,
 * Contacts (friends, co-members), Blocks, UserPresence, and the node index below.
 *
 * Blocks: this actor is the one place that decides what reaches the user from someone they
 * block (nothing: no inbox entry, typing notice, read receipt or presence) and answers whether
 * the user blocks someone; it writes the user's blocks and tells the blocked user's actor and
 * the pair's DM channel before the HTTP call returns.
 *
 * Presence: online while at least one device is connected. Sessions report clean and silent
 * closes at once; devices whose session stopped touching (its node died) expire on a timer.
 */
class UserActor implements Actor<UserMessage>, InboxFeedOwner, PresenceOwner {
  private epoch = 0;
  /** The node-loss count as of the last check of every channel's head (see heal). */
  private checkedLoss = 0;
  readonly inbox = new Inbox();
  private readonly feed: InboxFeed;
  private readonly devices = new Devices();
  private readonly cursors: Cursors;
  private readonly contacts: Contacts;
  private readonly blocks: Blocks;
  private readonly presence: UserPresence;
  private readonly pushes: PushDecider;
  private failed = false;

  constructor(
    private readonly ctx: ActorContext<UserMessage>,
    private readonly deps: ChatDeps,
  ) {
    const id = ctx.address.key;
    this.cursors = new Cursors(id, deps.store.kv, deps.log);
    this.blocks = new Blocks(id, deps.store.kv);
    this.contacts = new Contacts(id, deps.store.kv, this.blocks);
    this.presence = new UserPresence(id, deps, this.contacts, this.blocks, this);
    this.feed = new InboxFeed(this);
    this.pushes = new PushDecider(id, deps.store.kv, deps.log, deps.push);
  }

  private get id(): string {
    return this.ctx.address.key;
  }

  // ---- PresenceOwner

  presenceEpoch(): number {
    return this.epoch;
  }

  presenceSuperseded(): void {
    if (this.failed) return;
    this.failed = true;
    // Stable text: the chaos suite counts these lines (chaos/README.md).
    this.deps.log.warn({ user: this.id, epoch: this.epoch }, 'stale presence write refused: a newer owner of this user exists; stopping this activation');
    this.ctx.stop();
  }

  // ---- InboxFeedOwner (the feed calls back through these)

  get userId(): string {
    return this.id;
  }

  get store(): Store {
    return this.deps.store;
  }

  inboxEpoch(): number {
    return this.epoch;
  }

  inboxCheckedLoss(): number {
    return this.checkedLoss;
  }

  inboxDelivered(firstInboxSeq: number, channelId: string, messages: readonly PublishedMessage[]): void {
    this.deliver(firstInboxSeq, channelId, messages);
  }

  inboxRefuses(senderId: string): boolean {
    return this.blocks.blocks(senderId);
  }

  inboxFiltering(): boolean {
    return this.blocks.filtering;
  }

  inboxFailed(err: unknown): void {
    this.failed = true;
    this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'inbox write failed; the user actor restarts from storage');
    this.ctx.stop();
  }

  /**
   * Rebuilds the inbox: the snapshot, the rows after it, then the open segment up to its
   * channel's head. If the previous activation did not end cleanly, or a node was lost since the
   * inbox was last checked, notifications may have been lost: every channel's head is checked.
   */
  async onActivate(): Promise<void> {
    const { journal } = this.deps.store;
    const pid = Journals.inbox(this.id);
    this.epoch = await journal.acquire(pid, this.deps.nodeId);
    // Before the inbox takes anything: messages of blocked senders must not get a place.
    await this.blocks.load();
    const losses = await lossesSoFar(this.deps.store);
    const snap = await journal.loadSnapshot(pid);
    const saved = snap && decodeSnapshot(snap.data);
    if (saved) this.inbox.restore(saved);
    for (;;) {
      const page = await journal.read(pid, this.inbox.rowSeq, 500);
      for (const e of page) this.inbox.apply(decodeRow(e), e.seq, 0);
      if (page.length < 500) break;
    }
    const open = this.inbox.open;
    if (open) {
      const head = await journal.highestSeq(Journals.channel(open.channelId));
      // Up to the first message of a blocked sender, if any: the feed skips it and takes the rest.
      const upTo = this.blocks.filtering ? await this.feed.acceptedUpTo(open.channelId, this.inbox.lastSeen.get(open.channelId) ?? open.from - 1, head) : head;
      this.inbox.extendOpenTo(upTo);
      if (upTo < head) this.feed.channelHead(open.channelId, head);
    }
    // Epochs grow by one per acquire: the one before ours saved a clean snapshot as it ended.
    const intact = saved?.clean === true && saved.epoch === this.epoch - 1 && saved.checkedLoss >= losses;
    // Not intact and not the first activation ever: the one before may still be running on a
    // node that cannot tell it lost its lease. Fence its presence writes before ours begin.
    if (!intact && this.epoch > 1) await this.presence.fence();
    if (!intact) await this.heal();
    this.checkedLoss = losses;
  }

  async onDeactivate(): Promise<void> {
    await this.cursors.flush();
    if (this.failed) return;
    await this.feed.saveSnapshot(true);
    // A clean end: the next activation, on this node or another, has no older writer to fence.
    await this.deps.store.journal.release(Journals.inbox(this.id), this.epoch);
  }

  canPassivate(): boolean {
    return this.devices.size === 0 && !this.cursors.pending && this.feed.idle && !this.pushes.busy;
  }

  receive(m: UserMessage): unknown {
    switch (m.type) {
      case 'published':
        this.feed.published(m.channelId, m.messages);
        return undefined;
      case 'channelHead':
        this.feed.channelHead(m.channelId, m.seq);
        return undefined;
      case 'joined':
        this.feed.joined(m.channelId, m.atSeq);
        this.contacts.channelsChanged();
        return undefined;
      case 'left':
        this.contacts.channelsChanged();
        return deferReply(this.feed.left(m.channelId, m.atSeq));
      case 'readInbox':
        return deferReply(this.feed.read(m.afterSeq, m.limit));
      case 'connect':
        return this.connect(m.deviceId, m.session, m.reattach ?? false);
      case 'disconnect':
        return this.disconnect(m.deviceId, m.session);
      case 'touch':
        return this.touch(m.deviceId, m.session);
      case 'ack':
        if (this.cursors.ack(m.deviceId, m.inboxSeq, this.inbox.head) && !this.ctx.timers.has('cursors')) {
          this.ctx.timers.once('cursors', CURSOR_FLUSH_MS, { type: 'flushCursors' });
        }
        this.pushes.received(Math.min(m.inboxSeq, this.inbox.head));
        return undefined;
      case 'mute':
        return this.pushes.mute(m.channelId, m.untilMs);
      case 'flushCursors':
        return this.cursors.flush();
      case 'presenceChanged':
        // A change sent just before a block took effect on the sender's side is dropped here.
        if (!this.blocks.hides(m.presence.user_id)) this.push({ type: 'presence', presence: m.presence });
        return undefined;
      case 'typing':
        if (!this.blocks.hides(m.notice.user_id)) this.push({ type: 'typing', notice: m.notice });
        return undefined;
      case 'readReceipt':
        if (!this.blocks.hides(m.receipt.user_id)) this.push({ type: 'readReceipt', receipt: m.receipt }, m.exceptSession);
        return undefined;
      case 'block':
        return this.block(m.userId);
      case 'unblock':
        return this.unblock(m.userId);
      case 'blockedByChanged':
        return this.blockedByChanged(m.userId, m.hidePresence);
      case 'blocking':
        return this.blocks.blockedAmong(m.userIds);
      case 'friendsChanged':
        this.contacts.friendsChanged();
        return undefined;
      case 'presenceQuery':
        return this.presence.query(m.userIds);
      case 'presenceResync':
        // In this turn, as at a reattach: a change recorded later reaches the session after it.
        return this.presence.sendSnapshot(m.session);
      case 'head':
        return this.inbox.head;
      case 'expireDevices':
        return this.expireDevices();
      case 'nodeDown':
        return this.nodeDown(m.nodeId);
      case 'offlineCheck':
        return this.offlineCheck();
    }
  }

  // ---- Inbox

  /**
   * New inbox entries go to every connected device, one message per session for the whole run.
   * With no device online (none connected, or every one silent past the presence timeout) this
   * is where push is decided, once per entry: the entries land here exactly once per activation,
   * in inbox order, and the device set cannot change during this turn.
   */
  private deliver(firstInboxSeq: number, channelId: string, messages: readonly PublishedMessage[]): void {
    if (this.deps.push && !this.devices.anyTouchedSince(Date.now() - this.deps.timings.presenceTimeoutMs)) this.pushes.offline(firstInboxSeq, channelId, messages);
    if (this.devices.size === 0) return;
    const bytes = messages.map((m) => m.bytes);
    this.push({ type: 'deliver', firstInboxSeq, messages: bytes });
  }

  /**
   * Checks every channel of the user for messages the inbox lacks (notifications lost with a
   * node); the feed reads them from the channels' histories.
   */
  private async heal(): Promise<void> {
    const { kv, journal } = this.deps.store;
    const rows = await kv.list(Tables.userChannel, this.id);
    const heads = await Promise.all(rows.map((r) => journal.highestSeq(Journals.channel(r.key))));
    rows.forEach((r, i) => {
      if (heads[i]! > (this.inbox.lastSeen.get(r.key) ?? 0)) this.feed.channelHead(r.key, heads[i]!);
    });
  }

  private push(message: SessionMessage, exceptSession?: string): void {
    for (const session of this.devices.sessions()) {
      if (session === exceptSession) continue;
      try {
        sessions(this.deps, session).tell(message);
      } catch (err) {
        // A session too far behind catches up from the inbox by itself; nothing is lost here.
        this.deps.log.debug({ user: this.id, code: codeOf(err) }, 'push to session skipped');
      }
    }
  }

  // ---- Blocks

  /**
   * Stored (with the friendship ended both ways), then in effect here at once; the open inbox
   * segment is closed (inbox-feed.ts closeOpen). The two stop seeing each other's presence: if
   * they did, both sides' devices are told the other is offline. Telling the other user's actor
   * and the DM channel happens after this turn (an ask from inside it could wait on an actor
   * that is asking us the same thing).
   */
  private async block(other: string): Promise<DeferredReply<void>> {
    const already = this.blocks.blocks(other);
    if (!already && this.blocks.count >= MAX_BLOCKS) throw reject(ChatCodes.BLOCK_LIST_FULL, `at most ${MAX_BLOCKS} users can be blocked at once`);
    const visible = !already && !this.blocks.hides(other) && ((await this.contacts.mutualFriends()).includes(other) || (await this.contacts.coMembers()).has(other));
    await this.blocks.add(other, Date.now());
    this.contacts.friendsChanged();
    await this.feed.closeOpen();
    if (visible) this.push({ type: 'presence', presence: hiddenPresence(other) });
    return deferReply(this.tellBlockChanged(other, visible));
  }

  private async unblock(other: string): Promise<DeferredReply<void>> {
    await this.blocks.remove(other);
    return deferReply(this.tellBlockChanged(other, false));
  }

  /** The other user's actor and the pair's DM channel reload the pair's blocks from the store. */
  private async tellBlockChanged(other: string, hidePresence: boolean): Promise<void> {
    const { kv } = this.deps.store;
    const timeoutMs = this.deps.timings.fanoutTimeoutMs;
    try {
      const dm = await kv.get(Tables.dm, [this.id, other].sort().join(':'), '');
      await Promise.all([
        users(this.deps, other).ask<void>({ type: 'blockedByChanged', userId: this.id, hidePresence }, { timeoutMs }),
        dm === undefined ? undefined : channels(this.deps, dm).ask<void>({ type: 'blocksChanged' }, { timeoutMs }),
      ]);
    } catch (err) {
      // Stored, and in effect here; a repeat of the request tells them again (it is idempotent).
      throw reject(ChatCodes.UNAVAILABLE, `the block is stored but could not be applied everywhere yet (${codeOf(err)}); retry`);
    }
  }

  private async blockedByChanged(other: string, hidePresence: boolean): Promise<void> {
    const on = await this.blocks.reloadFrom(other);
    this.contacts.friendsChanged();
    if (on && hidePresence) this.push({ type: 'presence', presence: hiddenPresence(other) });
  }

  // ---- Devices and presence

  private async connect(deviceId: string, session: string, reattach: boolean): Promise<{ inbox_head_seq: number; cursor: number }> {
    // Read while the device is registered; a reattaching session already has its resume point.
    const cursor = reattach ? undefined : this.cursors.cursorOf(deviceId);
    const wasOnline = this.devices.size > 0;
    const prior = this.devices.register(deviceId, session, Date.now());
    if (prior && prior.session !== session) {
      try {
        sessions(this.deps, prior.session).tell({ type: 'superseded' });
      } catch {
        // Its node is gone or unreachable: that session is dead anyway.
      }
    }
    if (prior?.session !== session) await this.indexNode(session, true);
    if (!wasOnline) await this.presence.transition(true);
    if (reattach && !prior) await this.presence.sendSnapshot(session);
    const head = this.inbox.head;
    return { inbox_head_seq: head, cursor: Math.min((await cursor) ?? 0, head) };
  }

  private async disconnect(deviceId: string, session: string): Promise<void> {
    if (!this.devices.remove(deviceId, session)) return; // a superseded session reporting late
    await this.indexNode(session, false);
    if (this.devices.size === 0) await this.presence.transition(false);
  }

  private touch(deviceId: string, session: string): Promise<void> | undefined {
    const d = this.devices.get(deviceId);
    if (!d) {
      // This activation does not know the device (it was rebuilt, moved or passivated while the
      // session lived on): have the session register again and catch up.
      try {
        sessions(this.deps, session).tell({ type: 'reattach' });
      } catch {
        // the next touch asks again
      }
      return undefined;
    }
    if (d.session !== session) return undefined;
    d.touchedMs = Date.now();
    // Only directories whose states expire refresh; the others cost no promise per touch.
    return this.deps.presence.refresh === undefined ? undefined : this.presence.refresh();
  }

  /**
   * Drops devices whose session stopped touching, or that `gone` names. Synchronous unless the
   * last device went: the node's sweep sends this to every user actor, so the common case
   * allocates no promise.
   */
  private expireDevices(gone?: (d: { session: string }) => boolean): Promise<void> | undefined {
    if (this.devices.size === 0) return undefined;
    const cutoff = Date.now() - (this.deps.timings.presenceTimeoutMs + this.deps.timings.touchIntervalMs);
    const removed = this.devices.expire(cutoff, gone);
    return removed && this.devices.size === 0 ? this.presence.transition(false) : undefined;
  }

  /**
   * A node died. Devices we knew on it are gone, and channel notifications it was sending us may
   * be lost: the inbox checks its channels' heads. If we were activated just now (our previous
   * activation died with that node) we know no devices at all: the sessions still alive elsewhere
   * re-register within moments, so give them a grace period, then go offline if none did.
   */
  private async nodeDown(nodeId: string): Promise<void> {
    await this.expireDevices((d) => sessionNode(d.session) === nodeId);
    await this.deps.deviceNodes.set(nodeId, this.id, false).catch(() => undefined);
    try {
      const losses = await lossesSoFar(this.deps.store);
      await this.heal();
      this.checkedLoss = losses;
    } catch (err) {
      this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'inbox check after a node loss failed; the next activation checks again');
    }
    if (this.devices.size === 0) {
      this.ctx.timers.once('offlineCheck', Math.max(500, this.deps.timings.touchIntervalMs), { type: 'offlineCheck' });
    }
  }

  private async offlineCheck(): Promise<void> {
    if (this.devices.size > 0) return;
    if (await this.presence.recordedOnline()) await this.presence.transition(false);
  }

  /** Which nodes host our devices, so a takeover can find us (see nodeDown). */
  private async indexNode(session: string, present: boolean): Promise<void> {
    const node = sessionNode(session);
    if (!present && this.devices.anyOn(node)) return;
    await this.deps.deviceNodes.set(node, this.id, present);
  }
}

/** How a user hidden by a block appears: offline, never seen (as a stranger would). */
function hiddenPresence(userId: string): Presence {
  return { user_id: userId, online: false, last_active_at_ms: 0 };
}

export function userKind(deps: ChatDeps): ActorKind<UserMessage> {
  return {
    name: 'user',
    idleMs: 120_000,
    mailboxCapacity: 4096,
    create: (ctx) => new UserActor(ctx, deps),
  };
}
