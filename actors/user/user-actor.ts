import { deferReply, type Actor, type ActorContext, type ActorKind } from '../../runtime/actor/index.ts';
import { CodedError, codeOf } from '../../runtime/errors.ts';
import type { PresenceState } from '../../runtime/presence/index.ts';
import type { Message, Presence } from '../../proto/client-frames.ts';
import { messageFromEvent } from '../channel/channel-actor.ts';
import { sessions, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import { Journals, Tables, type InboxRef } from '../tables.ts';
import type { UserMessage } from './user-messages.ts';

const SNAPSHOT_EVERY = 64;
/**
 * Device cursors are written at most this often per user. A hello resumes after the later of the
 * client's last_inbox_seq and the cursor (see connect), so a cursor lost in a crash (kill -9: up
 * to this long of acks) only replays entries the device already had; a clean stop flushes all.
 */
const CURSOR_FLUSH_MS = 1_000;
const COMEMBER_CACHE_MS = 10_000;
const MAX_PRESENCE_QUERY = 500;

interface Snapshot {
  readonly head: number;
  readonly lastSeen: [string, number][];
}

/** A device cursor row (Tables.cursor). */
interface StoredCursor {
  readonly inbox_seq: number;
  readonly updated_at_ms: number;
}

interface Device {
  session: string;
  touchedMs: number;
}

/**
 * One user: the inbox (gap-free `inbox_seq`), a cursor per device, presence and its timers.
 *
 * Inbox invariant: for each channel, entries appear in channel order, each at most once. The
 * actor remembers the last channel seq it took per channel (`lastSeen`, in snapshots and
 * rebuilt from the journal); a repeat is ignored and a jump ahead is filled from the channel's
 * history first, so a failed fan-out can delay a message but never lose or reorder it.
 *
 * Presence: online while at least one device is connected. Sessions report clean and silent
 * closes at once; devices whose session stopped touching (its node died) expire on a timer.
 */
class UserActor implements Actor<UserMessage> {
  private readonly pid: string;
  private epoch = 0;
  private head = 0;
  private snapshotSeq = 0;
  /** Per channel; absent until the user has a channel (an idle user's empty Map costs ~180 bytes). */
  private lastSeen: Map<string, number> | undefined;
  /** What the journal is known to hold: the snapshot is made of these, never of in-flight state. */
  private durableHead = 0;
  private durableSeen: Map<string, number> | undefined;
  private broken = false;
  private devices: Map<string, Device> | undefined;
  private dirtyCursors: Map<string, number> | undefined;
  private flushingCursors: Map<string, number> | undefined;
  private friends: string[] | undefined;
  private comembers: { ids: Set<string>; atMs: number } | undefined;

  constructor(
    private readonly ctx: ActorContext<UserMessage>,
    private readonly deps: ChatDeps,
  ) {
    this.pid = Journals.inbox(ctx.address.key);
  }

  private get id(): string {
    return this.ctx.address.key;
  }

  async onActivate(): Promise<void> {
    const { journal } = this.deps.store;
    this.epoch = await journal.acquire(this.pid, this.deps.nodeId);
    const snap = await journal.loadSnapshot(this.pid);
    if (snap) {
      const s = JSON.parse(snap.data) as Snapshot;
      this.head = s.head;
      this.snapshotSeq = snap.seq;
      if (s.lastSeen.length > 0) this.lastSeen = new Map(s.lastSeen);
    }
    // Replay what came after the snapshot; bounded by SNAPSHOT_EVERY in the normal case.
    for (;;) {
      const page = await journal.read(this.pid, this.head, 500);
      for (const e of page) {
        const ref = JSON.parse(e.data) as InboxRef;
        const seen = (this.lastSeen ??= new Map());
        seen.set(ref.c, Math.max(ref.s, seen.get(ref.c) ?? 0));
        this.head = e.seq;
      }
      if (page.length < 500) break;
    }
    this.durableHead = this.head;
    if (this.lastSeen) this.durableSeen = new Map(this.lastSeen);
  }

  async onDeactivate(): Promise<void> {
    await this.flushCursors();
    if (this.durableHead > this.snapshotSeq && !this.broken) await this.saveSnapshot();
  }

  canPassivate(): boolean {
    return (this.devices?.size ?? 0) === 0 && (this.dirtyCursors?.size ?? 0) === 0;
  }

  receive(m: UserMessage): unknown {
    switch (m.type) {
      case 'append':
        return this.append(m.message, m.requireEvent ?? false);
      case 'joined':
        (this.lastSeen ??= new Map()).set(m.channelId, m.atSeq);
        this.comembers = undefined;
        return undefined;
      case 'left':
        this.lastSeen?.delete(m.channelId);
        this.comembers = undefined;
        return undefined;
      case 'connect':
        return this.connect(m.deviceId, m.session, m.reattach ?? false);
      case 'disconnect':
        return this.disconnect(m.deviceId, m.session);
      case 'touch': {
        const d = this.devices?.get(m.deviceId);
        if (!d) {
          // This activation does not know the device (it was rebuilt, moved or passivated while
          // the session lived on): have the session register again and catch up.
          try {
            sessions(this.deps, m.session).tell({ type: 'reattach' });
          } catch {
            // the next touch asks again
          }
          return undefined;
        }
        if (d.session !== m.session) return undefined;
        d.touchedMs = Date.now();
        return this.deps.presence.refresh?.(this.id).catch(() => undefined);
      }
      case 'ack':
        return this.ack(m.deviceId, m.inboxSeq);
      case 'presenceChanged':
        this.push({ type: 'presence', presence: m.presence });
        return undefined;
      case 'friendsChanged':
        this.friends = undefined;
        return undefined;
      case 'presenceQuery':
        return this.presenceQuery(m.userIds);
      case 'head':
        return this.durableHead;
      case 'expireDevices':
        return this.expireDevices();
      case 'nodeDown':
        return this.nodeDown(m.nodeId);
      case 'offlineCheck':
        return this.offlineCheck();
      case 'reload':
        if (m.reason === 'FENCED') {
          this.ctx.stop(); // another activation owns this inbox now
          return undefined;
        }
        throw new CodedError('RELOAD', `inbox ${this.id} reloads after a failed write (${m.reason})`);
      case 'flushCursors':
        return this.flushCursors();
    }
  }

  // ---- Inbox

  /**
   * Pipelined like the channel's send: seqs are assigned in the turn and the append handed to
   * the store; deliveries are pushed and the reply sent once it is durable, in seq order. The
   * snapshot records only durable state (`durableHead`, `durableSeen`), so a failed write can
   * never leave a snapshot that claims entries the journal lacks.
   */
  private async append(message: Message, requireEvent: boolean): Promise<unknown> {
    if (this.broken) throw new CodedError('UNAVAILABLE', 'inbox is recovering from a failed write; retry');
    const channelId = message.channel_id;
    const last = this.lastSeen?.get(channelId);
    if (last !== undefined && message.channel_seq <= last) return { inbox_seq: 0 };
    let batch = [message];
    if (last !== undefined && message.channel_seq > last + 1) {
      const missing = await this.deps.store.journal.read(Journals.channel(channelId), last, message.channel_seq - last - 1);
      batch = [...missing.map((e) => messageFromEvent(channelId, e)), message];
    }
    const first = this.head + 1;
    this.head += batch.length;
    (this.lastSeen ??= new Map()).set(channelId, message.channel_seq);
    const write = this.deps.store.journal.append(
      this.pid,
      this.epoch,
      batch.map((msg, i) => ({ seq: first + i, data: JSON.stringify({ c: channelId, s: msg.channel_seq } satisfies InboxRef) })),
      requireEvent ? { requires: { persistenceId: Journals.channel(channelId), seq: message.channel_seq, key: BigInt(message.message_id) } } : undefined,
    );
    write.catch((err: unknown) => this.writeFailed(err));
    return deferReply(
      write.then(() => {
        this.durableHead = first + batch.length - 1;
        (this.durableSeen ??= new Map()).set(channelId, message.channel_seq);
        batch.forEach((msg, i) => this.push({ type: 'delivery', inboxSeq: first + i, message: msg }));
        if (this.durableHead - this.snapshotSeq >= SNAPSHOT_EVERY) {
          this.saveSnapshot().catch((err: unknown) => this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'inbox snapshot failed'));
        }
        return { inbox_seq: this.durableHead };
      }),
    );
  }

  private writeFailed(err: unknown): void {
    if (this.broken) return;
    this.broken = true;
    this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'inbox write failed; rebuilding from storage');
    try {
      this.ctx.self.tell({ type: 'reload', reason: codeOf(err) });
    } catch {
      this.broken = false;
    }
  }

  private async saveSnapshot(): Promise<void> {
    const seq = this.durableHead;
    const data: Snapshot = { head: seq, lastSeen: [...(this.durableSeen ?? [])] };
    await this.deps.store.journal.saveSnapshot(this.pid, this.epoch, { seq, data: JSON.stringify(data) });
    this.snapshotSeq = Math.max(this.snapshotSeq, seq);
  }

  private push(message: { type: 'delivery'; inboxSeq: number; message: Message } | { type: 'presence'; presence: Presence }): void {
    if (!this.devices) return;
    for (const d of this.devices.values()) {
      try {
        sessions(this.deps, d.session).tell(message);
      } catch (err) {
        // A session too far behind catches up from the inbox by itself; nothing is lost here.
        this.deps.log.debug({ user: this.id, code: codeOf(err) }, 'push to session skipped');
      }
    }
  }

  // ---- Devices and presence

  private async connect(deviceId: string, session: string, reattach: boolean): Promise<{ inbox_head_seq: number; cursor: number }> {
    // Read while the device is registered; a reattaching session already has its resume point.
    const cursor = reattach ? undefined : this.cursorOf(deviceId);
    this.devices ??= new Map();
    const prior = this.devices.get(deviceId);
    if (prior && prior.session !== session) {
      try {
        sessions(this.deps, prior.session).tell({ type: 'superseded' });
      } catch {
        // Its node is gone or unreachable: that session is dead anyway.
      }
    }
    const wasOnline = this.devices.size > 0;
    this.devices.set(deviceId, { session, touchedMs: Date.now() });
    if (prior?.session !== session) await this.indexNode(session, true);
    if (!wasOnline) await this.transition(true);
    if (reattach && !prior) await this.sendPresenceSnapshot(session);
    return { inbox_head_seq: this.durableHead, cursor: Math.min((await cursor) ?? 0, this.durableHead) };
  }

  /**
   * A live session re-registers with an activation that did not know it: the previous one died or
   * moved, and friends' presence changes sent meanwhile went to it (or arrived here before the
   * device did) and were dropped. The device gets every friend's current state instead, read after
   * any such change was recorded, so it converges; later changes arrive after this turn.
   */
  private async sendPresenceSnapshot(session: string): Promise<void> {
    try {
      const friends = await this.mutualFriends();
      if (friends.length === 0) return;
      const states = await this.deps.presence.getMany(friends);
      sessions(this.deps, session).tell({ type: 'presenceSnapshot', presences: friends.map((f) => presenceOf(f, states)) });
    } catch (err) {
      // Best effort like every presence push: the client can still ask (presence_query).
      this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'presence snapshot not sent');
    }
  }

  private async disconnect(deviceId: string, session: string): Promise<void> {
    const d = this.devices?.get(deviceId);
    if (!d || d.session !== session) return; // a superseded session reporting late
    this.devices!.delete(deviceId);
    await this.indexNode(session, false);
    if (this.devices!.size === 0) await this.wentOffline();
  }

  /**
   * Drops devices whose session stopped touching, or that `gone` names. Synchronous unless the
   * last device went: the node's sweep sends this to every user actor, so the common case
   * allocates no promise.
   */
  private expireDevices(gone?: (d: Device) => boolean): Promise<void> | undefined {
    if (!this.devices) return undefined;
    const cutoff = Date.now() - (this.deps.timings.presenceTimeoutMs + this.deps.timings.touchIntervalMs);
    let removed = false;
    for (const [id, d] of this.devices) {
      if (d.touchedMs < cutoff || gone?.(d)) {
        this.devices.delete(id);
        removed = true;
      }
    }
    return removed && this.devices.size === 0 ? this.wentOffline() : undefined;
  }

  /**
   * A node died. Devices we knew on it are gone. If we were activated just now (our previous
   * activation died with that node) we know no devices at all: the sessions still alive elsewhere
   * re-register within moments, so give them a grace period, then go offline if none did.
   */
  private async nodeDown(nodeId: string): Promise<void> {
    await this.expireDevices((d) => sessionNode(d.session) === nodeId);
    await this.deps.store.kv.write([{ op: 'delete', table: Tables.presenceNode, partition: nodeId, key: this.id }]).catch(() => undefined);
    if ((this.devices?.size ?? 0) === 0) {
      this.ctx.timers.once('offlineCheck', Math.max(500, this.deps.timings.touchIntervalMs), { type: 'offlineCheck' });
    }
  }

  private async offlineCheck(): Promise<void> {
    if ((this.devices?.size ?? 0) > 0) return;
    const state = (await this.deps.presence.getMany([this.id])).get(this.id);
    if (state?.online) await this.transition(false);
  }

  /** Cluster only: which nodes host our devices, so a takeover can find us (see nodeDown). */
  private async indexNode(session: string, present: boolean): Promise<void> {
    if (!this.deps.clustered) return;
    const node = sessionNode(session);
    if (!present && [...(this.devices?.values() ?? [])].some((d) => sessionNode(d.session) === node)) return;
    await this.deps.store.kv.write([
      present
        ? { op: 'put', table: Tables.presenceNode, partition: node, key: this.id, value: '1' }
        : { op: 'delete', table: Tables.presenceNode, partition: node, key: this.id },
    ]);
  }

  private async wentOffline(): Promise<void> {
    this.devices = undefined;
    await this.transition(false);
  }

  /** Records the transition and tells the friends who are online; group members ask instead. */
  private async transition(online: boolean): Promise<void> {
    const presence: Presence = { user_id: this.id, online, last_active_at_ms: Date.now() };
    try {
      await this.deps.presence.set(this.id, { online, lastActiveAtMs: presence.last_active_at_ms });
      const friends = await this.mutualFriends();
      if (friends.length === 0) return;
      const states = await this.deps.presence.getMany(friends);
      for (const f of friends) {
        if (states.get(f)?.online) users(this.deps, f).tell({ type: 'presenceChanged', presence });
      }
    } catch (err) {
      // Presence is best effort: chat must keep working when its directory is away.
      this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'presence update failed');
    }
  }

  private async mutualFriends(): Promise<string[]> {
    if (this.friends) return this.friends;
    const { kv } = this.deps.store;
    const added = await kv.list(Tables.friend, this.id);
    const back = await Promise.all(added.map((r) => kv.get(Tables.friend, r.key, this.id)));
    this.friends = added.filter((_, i) => back[i] !== undefined).map((r) => r.key);
    return this.friends;
  }

  private async coMembers(): Promise<Set<string>> {
    const now = Date.now();
    if (this.comembers && now - this.comembers.atMs < COMEMBER_CACHE_MS) return this.comembers.ids;
    const { kv } = this.deps.store;
    const ids = new Set<string>();
    for (const ch of await kv.list(Tables.userChannel, this.id)) {
      for (const m of await kv.list(Tables.member, ch.key)) ids.add(m.key);
    }
    this.comembers = { ids, atMs: now };
    return ids;
  }

  private async presenceQuery(userIds: string[]): Promise<Presence[]> {
    if (userIds.length > MAX_PRESENCE_QUERY) throw reject(ChatCodes.INVALID_ARGUMENT, `at most ${MAX_PRESENCE_QUERY} user ids per query`);
    const friends = new Set(await this.mutualFriends());
    const wanted = [...new Set(userIds)];
    const needComembers = wanted.some((u) => u !== this.id && !friends.has(u));
    const comembers = needComembers ? await this.coMembers() : new Set<string>();
    const allowed = wanted.filter((u) => u === this.id || friends.has(u) || comembers.has(u));
    if (allowed.length < wanted.length) throw reject(ChatCodes.FORBIDDEN, 'presence is visible to friends and channel co-members only');
    const states = await this.deps.presence.getMany(allowed);
    return allowed.map((u) => presenceOf(u, states));
  }

  // ---- Cursors

  /**
   * Where the device last acked: the newest of what is waiting to be flushed, what is being
   * flushed and what is stored. Advisory like the cursor itself: if the store cannot be read, the
   * session resumes from the client's own last_inbox_seq (more replay, never a loss).
   */
  private async cursorOf(deviceId: string): Promise<number> {
    const pending = Math.max(this.dirtyCursors?.get(deviceId) ?? 0, this.flushingCursors?.get(deviceId) ?? 0);
    try {
      const raw = await this.deps.store.kv.get(Tables.cursor, this.id, deviceId);
      const stored = raw ? (JSON.parse(raw) as StoredCursor).inbox_seq : 0;
      return Math.max(pending, Number.isSafeInteger(stored) ? stored : 0);
    } catch (err) {
      this.deps.log.warn({ user: this.id, code: codeOf(err) }, 'device cursor not read; resuming from the client\'s seq');
      return pending;
    }
  }

  private ack(deviceId: string, inboxSeq: number): void {
    if (!Number.isSafeInteger(inboxSeq) || inboxSeq < 0) return;
    this.dirtyCursors ??= new Map();
    this.dirtyCursors.set(deviceId, Math.min(Math.max(inboxSeq, this.dirtyCursors.get(deviceId) ?? 0), this.head));
    // A lagging cursor costs a replay, never a loss (see CURSOR_FLUSH_MS), so cursors are
    // written at most once a second per user rather than once per ack.
    if (!this.ctx.timers.has('cursors')) this.ctx.timers.once('cursors', CURSOR_FLUSH_MS, { type: 'flushCursors' });
  }

  private async flushCursors(): Promise<void> {
    const dirty = this.dirtyCursors;
    if (!dirty || dirty.size === 0) return;
    this.dirtyCursors = undefined;
    // Kept until written, so a connect meanwhile still sees these acks (see cursorOf).
    this.flushingCursors = dirty;
    const now = Date.now();
    try {
      await this.deps.store.kv.write(
        [...dirty].map(([device, seq]) => ({
          op: 'put' as const,
          table: Tables.cursor,
          partition: this.id,
          key: device,
          value: JSON.stringify({ inbox_seq: seq, updated_at_ms: now } satisfies StoredCursor),
        })),
      );
    } finally {
      if (this.flushingCursors === dirty) this.flushingCursors = undefined;
    }
  }
}

/** Session keys are `<node id>.<connection number>`. */
/** A user's presence as clients see it; never seen means offline since the epoch. */
function presenceOf(userId: string, states: ReadonlyMap<string, PresenceState>): Presence {
  const s = states.get(userId);
  return { user_id: userId, online: s?.online ?? false, last_active_at_ms: s?.lastActiveAtMs ?? 0 };
}

function sessionNode(sessionKey: string): string {
  return sessionKey.slice(0, sessionKey.lastIndexOf('.'));
}

export function userKind(deps: ChatDeps): ActorKind<UserMessage> {
  return {
    name: 'user',
    idleMs: 120_000,
    mailboxCapacity: 4096,
    create: (ctx) => new UserActor(ctx, deps),
  };
}
