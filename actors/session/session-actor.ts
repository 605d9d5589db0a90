import type { Actor, ActorContext, ActorKind } from '../../runtime/actor/index.ts';
import { codeOf } from '../../runtime/errors.ts';
import type { Connection } from '../../runtime/gateway/index.ts';
import { encodeServerFrame } from '../../proto/client-codec.ts';
import { createdAtMsOf, deliveryFrame, historyResultFrame, syncResultFrame, type DeliveryBytes } from '../../proto/message-bytes.ts';
import type { ChannelMessage, HistoryPage } from '../channel/channel-messages.ts';
import type { ClientFrame, Message, SendAck, ServerBody, ServerBodyName } from '../../proto/client-frames.ts';
import type { Revocations } from '../auth/revocations.ts';
import type { TokenSigner } from '../auth/tokens.ts';
import { channels, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import type { SendAllowance } from '../limits/send-allowance.ts';
import { MAX_CLIENT_ID, MAX_TEXT_CODE_POINTS } from '../tables.ts';
import type { SessionMessage } from './session-messages.ts';

/** Close codes this endpoint uses besides the standard ones. */
export const CloseCodes = {
  GOING_AWAY: 1001,
  POLICY: 1008,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  INTERNAL_ERROR: 1011,
  SUPERSEDED: 4001,
} as const;

export interface SessionSettings {
  readonly signer: TokenSigner;
  /** Logged-out logins: refused at hello, and a session of one closed when it is logged out. */
  readonly revocations: Revocations;
  /** The node's send admission, shared with the HTTP API (per-user rate, node-wide in-flight bound). */
  readonly allowance: SendAllowance;
  /**
   * Bytes of frames the socket may hold unsent in this process (--session-max-unsent-bytes):
   * past it the session stops pushing live deliveries and pages them from the inbox once the
   * client has read, and drops presence, typing and read receipts. At least one frame always
   * goes into an empty buffer, so a session holds at most this or one frame, whichever is more,
   * plus the answers to the client's own requests.
   */
  readonly maxUnsentBytes: number;
  /** Most inbox entries read per page while catching up (fewer when they are large). */
  readonly catchUpPage: number;
  /** Called once when the session actor stops, for the node's count of live sessions. */
  readonly sessionEnded: () => void;
}

const MAX_SYNC = 500;
/** What a delivery frame is assumed to weigh before the session has seen any. */
const FIRST_FRAME_ESTIMATE = 1024;

/**
 * One WebSocket connection. Owns the socket (through the gateway's Connection, never a socket
 * library) and is never moved between nodes.
 *
 * Delivery invariant, per connection: inbox entries go out in inbox_seq order, each once, starting
 * after the client's `last_inbox_seq`. Live pushes are sent only when they are exactly the next
 * seq and fit under `maxUnsentBytes`; anything else (a gap, a client that does not read, the
 * backlog after hello) switches to paging from the durable inbox: `lastSent` is where the client
 * is, live pushes are dropped meanwhile (they are in the inbox), and a page is read only once the
 * socket holds at most half the bound, sized to what fits, and sent only as far as it fits. So a
 * client that stops reading pins at most the bound (or one frame) here however much it is sent,
 * and gets everything, in order, once it reads again.
 *
 * Presence, typing and read receipts that do not fit are dropped: they are of the moment, and
 * presence is sent whole again (a snapshot from the user actor) once the client has caught up.
 */
class SessionActor implements Actor<SessionMessage> {
  private phase: 'new' | 'authenticating' | 'ready' | 'closed' = 'new';
  private userId = '';
  /** The login (token sid) this session was opened with; a logout of it closes the session. */
  private sid = '';
  private deviceId = '';
  private lastSent = 0;
  private catchingUp = false;
  /** Catch-up waits for the client to read (a drain) before its next page. */
  private parked = false;
  /** A notifyDrain is pending. */
  private drainAsked = false;
  /** A presence frame was dropped: the client's view is stale until a snapshot reaches it. */
  private presenceStale = false;
  /** A running average of delivery frame sizes, to size catch-up pages in bytes. */
  private frameBytes = FIRST_FRAME_ESTIMATE;
  private lastTouchMs = 0;

  constructor(
    private readonly ctx: ActorContext<SessionMessage>,
    private readonly deps: ChatDeps,
    private readonly conn: Connection,
    private readonly settings: SessionSettings,
  ) {}

  private get key(): string {
    return this.ctx.address.key;
  }

  receive(m: SessionMessage): unknown {
    if (this.phase === 'closed') {
      // Refused or failed before it was ready: nothing to tell the user actor, but the actor must
      // still end with its socket, or every refused hello would leave one behind for good.
      if (m.type === 'closed') this.ctx.stop();
      return undefined;
    }
    switch (m.type) {
      case 'frame':
        return this.onFrame(m.frame);
      case 'deliver':
        return this.onDeliver(m.firstInboxSeq, m.messages);
      case 'presence':
        this.presence(m.presence);
        return undefined;
      case 'typing':
        this.ephemeral('typing', m.notice);
        return undefined;
      case 'readReceipt':
        this.ephemeral('read_receipt', m.receipt);
        return undefined;
      case 'presenceSnapshot':
        for (const p of m.presences) this.presence(p);
        return undefined;
      case 'superseded':
        this.conn.close(CloseCodes.SUPERSEDED, 'another connection of this device took over');
        return undefined;
      case 'revoked':
        // Logged out: say so, close (1008: the SDK does not retry it) and let the device go now,
        // so presence turns offline at once rather than after the socket's close event.
        this.error(0, ChatCodes.UNAUTHENTICATED, 'logged out: this login session was revoked');
        this.conn.close(CloseCodes.POLICY, ChatCodes.UNAUTHENTICATED);
        this.onClosed(false);
        return undefined;
      case 'catchUp':
        return this.catchUp();
      case 'reattach':
        return this.reattach();
      case 'drain':
        this.drainAsked = false;
        if (this.parked) {
          this.parked = false;
          return this.catchUp();
        }
        if (!this.catchingUp) this.resyncPresence();
        return undefined;
      case 'closed':
        return this.onClosed(m.silent);
    }
  }

  private write<K extends ServerBodyName>(ref: number, body: K, value: ServerBody<K>): void {
    this.conn.send(encodeServerFrame(ref, body, value));
  }

  /**
   * Whether a frame of `bytes` may join the `held` bytes the socket holds unsent: under the
   * bound, or alone in an empty buffer (a frame larger than the bound must still get through).
   */
  private fits(held: number, bytes: number): boolean {
    return held === 0 || held + bytes <= this.settings.maxUnsentBytes;
  }

  /**
   * How many leading entries of an answer (sync, history) to send: as many as hold at most the
   * cap of message bytes, and at least one. The client asks on (`has_more`), so an answer never
   * pins more than a live push may, and a slow reader's few answers stay under the socket bound.
   */
  private leadingWithinCap<T>(items: readonly T[], bytesOf: (item: T) => number): number {
    let n = 0;
    for (let total = 0; n < items.length; n++) {
      total += bytesOf(items[n]!);
      if (n > 0 && total > this.settings.maxUnsentBytes) break;
    }
    return n;
  }

  /** Presence, typing, a read receipt: sent if it fits, else dropped (false). */
  private ephemeral<K extends 'presence' | 'typing' | 'read_receipt'>(body: K, value: ServerBody<K>): boolean {
    const frame = encodeServerFrame(0, body, value);
    if (!this.fits(this.conn.bufferedAmount(), frame.byteLength)) {
      this.deps.metrics.ephemeralDropped.add();
      this.askDrain();
      return false;
    }
    this.conn.send(frame);
    return true;
  }

  private presence(p: ServerBody<'presence'>): void {
    if (!this.ephemeral('presence', p)) this.presenceStale = true;
  }

  /** After presence frames were dropped: every friend's state again, from the user actor. */
  private resyncPresence(): void {
    if (!this.presenceStale || this.phase !== 'ready') return;
    this.presenceStale = false;
    try {
      users(this.deps, this.userId).tell({ type: 'presenceResync', session: this.key });
    } catch {
      this.presenceStale = true; // the next drain asks again
    }
  }

  /** One `drain` message once the socket holds at most half the bound. */
  private askDrain(): void {
    if (this.drainAsked) return;
    this.drainAsked = true;
    this.conn.notifyDrain(this.settings.maxUnsentBytes >> 1);
  }

  private noteFrame(bytes: number): void {
    this.frameBytes += (bytes - this.frameBytes) / 8;
  }

  private error(ref: number, code: string, message: string): void {
    this.write(ref, 'error', { code, message });
  }

  /** Answers with the error, then closes: for frames that make the connection unusable. */
  private refuse(ref: number, code: string, message: string): void {
    this.error(ref, code, message);
    this.conn.close(CloseCodes.POLICY, code);
    this.phase = 'closed';
  }

  private onFrame(frame: ClientFrame): unknown {
    if (this.phase !== 'ready') {
      if (frame.body === 'hello' && this.phase === 'new') return this.hello(frame.ref, frame.hello.token, frame.hello.device_id, frame.hello.last_inbox_seq);
      this.refuse(frame.ref, ChatCodes.UNAUTHENTICATED, 'the first frame must be hello');
      return undefined;
    }
    switch (frame.body) {
      case 'hello':
        this.error(frame.ref, ChatCodes.INVALID_ARGUMENT, 'already authenticated');
        return undefined;
      case 'heartbeat':
        this.touch();
        return undefined;
      case 'send':
        return this.send(frame.ref, frame.send.channel_id, frame.send.client_msg_id, frame.send.text);
      case 'ack':
        try {
          users(this.deps, this.userId).tell({ type: 'ack', deviceId: this.deviceId, inboxSeq: frame.ack.inbox_seq });
        } catch {
          // Cursors are advisory; the next ack carries a higher seq anyway.
        }
        return undefined;
      case 'sync':
        return this.reply(frame.ref, async () => {
          const limit = clamp(frame.sync.limit, 1, MAX_SYNC, 100);
          const deliveries = await this.readInbox(frame.sync.after_inbox_seq, limit + 1);
          const n = this.leadingWithinCap(deliveries.slice(0, limit), (d) => d.message.byteLength);
          this.conn.send(syncResultFrame(frame.ref, deliveries.slice(0, n), deliveries.length > n));
        });
      case 'history':
        return this.reply(frame.ref, async () => {
          const h = frame.history;
          const page = await channels(this.deps, h.channel_id).ask<HistoryPage>({
            type: 'history',
            requesterId: this.userId,
            ...(h.before_message_id ? { beforeMessageId: h.before_message_id } : {}),
            limit: h.limit || 50,
          });
          const n = this.leadingWithinCap(page.messages, (m) => m.byteLength);
          this.conn.send(historyResultFrame(frame.ref, page.messages.slice(0, n), page.has_more || n < page.messages.length));
        });
      case 'read':
        return this.tellChannel(frame.ref, frame.read.channel_id, { type: 'read', userId: this.userId, seq: frame.read.channel_seq, session: this.key });
      case 'typing':
        return this.tellChannel(frame.ref, frame.typing.channel_id, { type: 'typing', userId: this.userId });
      case 'presence_query':
        return this.reply(frame.ref, async () => {
          const presences = await users(this.deps, this.userId).ask<ServerBody<'presence'>[]>({ type: 'presenceQuery', userIds: frame.presence_query.user_ids });
          this.write(frame.ref, 'presence_result', { presences });
        });
    }
  }

  /**
   * A frame that gets no answer when it works (read, typing): asked rather than told, so that a
   * refusal (a bad channel id, not a member) reaches the client by the frame's ref.
   */
  private tellChannel(ref: number, channelId: string, message: ChannelMessage): void {
    this.reply(ref, async () => {
      validateChannelId(channelId);
      await channels(this.deps, channelId).ask<void>(message);
    });
  }

  /** Runs a request outside this actor's turn (reads and asks do not block pushes) and reports failures by ref. */
  private reply(ref: number, work: () => Promise<void>): void {
    work().catch((err: unknown) => {
      if (this.phase !== 'closed') this.error(ref, codeOf(err), err instanceof Error ? err.message : 'request failed');
    });
  }

  private async hello(ref: number, token: string, deviceId: string, lastInboxSeq: number): Promise<void> {
    const claims = this.settings.signer.verify(token);
    if (!claims) return this.refuse(ref, ChatCodes.UNAUTHENTICATED, 'invalid or expired token');
    if (this.settings.revocations.refuses(claims)) return this.refuse(ref, ChatCodes.UNAUTHENTICATED, 'logged out or disabled: this token was revoked');
    if (!deviceId || deviceId.length > MAX_CLIENT_ID) return this.refuse(ref, ChatCodes.INVALID_ARGUMENT, `device_id must be 1-${MAX_CLIENT_ID} characters`);
    this.phase = 'authenticating';
    // Tracked in the same turn as the check above: a logout applied after it finds this session.
    this.sid = claims.sid;
    this.settings.revocations.track(this.sid, this.key, claims.sub);
    this.userId = claims.sub;
    this.deviceId = deviceId;
    let head: number;
    let cursor: number;
    try {
      ({ inbox_head_seq: head, cursor } = await users(this.deps, this.userId).ask<{ inbox_head_seq: number; cursor: number }>({ type: 'connect', deviceId, session: this.key }));
    } catch (err) {
      // Transient (the user actor is moving or its node is gone): tell the client to come back
      // (1013 Try Again Later), not 1008, which the SDK rightly treats as final.
      const code = codeOf(err) === 'OVERLOADED' ? ChatCodes.OVERLOADED : ChatCodes.UNAVAILABLE;
      this.error(ref, code, 'could not open the session; retry');
      this.conn.close(CloseCodes.TRY_AGAIN_LATER, code);
      this.phase = 'closed';
      return;
    }
    if (this.phase !== 'authenticating') return; // closed while we waited
    this.phase = 'ready';
    this.lastTouchMs = Date.now();
    // Resume after what this device acked last, even if the client says less (it keeps no seq, or
    // lost it): replaying what the device has seen only costs it and us. Older entries stay
    // readable with sync.
    this.lastSent = Math.min(Math.max(lastInboxSeq, cursor), head);
    this.write(ref, 'welcome', {
      user_id: this.userId,
      device_id: deviceId,
      inbox_head_seq: head,
      heartbeat_interval_ms: this.deps.timings.heartbeatIntervalMs,
      node_id: this.deps.nodeId,
      resumed_after_inbox_seq: this.lastSent,
    });
    if (this.lastSent < head) this.startCatchUp();
  }

  /**
   * A new activation of our user actor knows nothing of this device: tell it again, and catch up
   * on anything appended while the old one could not push to us.
   */
  private async reattach(): Promise<void> {
    if (this.phase !== 'ready') return;
    try {
      const { inbox_head_seq: head } = await users(this.deps, this.userId).ask<{ inbox_head_seq: number; cursor: number }>({
        type: 'connect',
        deviceId: this.deviceId,
        session: this.key,
        reattach: true,
      });
      if (head > this.lastSent) this.startCatchUp();
    } catch (err) {
      this.deps.log.warn({ session: this.key, code: codeOf(err) }, 'reattach failed; retrying');
      this.ctx.timers.once('reattach', 1_000, { type: 'reattach' });
    }
  }

  private touch(): void {
    const now = Date.now();
    if (now - this.lastTouchMs < this.deps.timings.touchIntervalMs) return;
    this.lastTouchMs = now;
    try {
      users(this.deps, this.userId).tell({ type: 'touch', deviceId: this.deviceId, session: this.key });
    } catch {
      // An overloaded user actor misses one touch; the next heartbeat sends another.
    }
  }

  private send(ref: number, channelId: string, clientMsgId: string, text: string): void {
    try {
      validateSend(channelId, clientMsgId, text);
    } catch (err) {
      return this.error(ref, codeOf(err), (err as Error).message);
    }
    this.reply(ref, () =>
      this.settings.allowance.admit(this.userId, async () => {
        const ack = await channels(this.deps, channelId).ask<SendAck>(
          { type: 'send', senderId: this.userId, clientMsgId, text },
          { timeoutMs: this.deps.timings.fanoutTimeoutMs * 2 },
        );
        this.write(ref, 'send_ack', ack);
      }),
    );
  }

  private onDeliver(first: number, messages: readonly Uint8Array[]): void {
    if (this.phase !== 'ready' || first + messages.length - 1 <= this.lastSent) return;
    if (this.catchingUp || first > this.lastSent + 1) {
      // Dropped: durable in the inbox, where the catch-up reads it. Its size still tells how
      // large the pages may be.
      this.noteFrame(messages[messages.length - 1]!.byteLength);
      return this.startCatchUp();
    }
    const m = this.deps.metrics;
    const now = Date.now();
    let held = this.conn.bufferedAmount();
    for (let i = this.lastSent + 1 - first; i < messages.length; i++) {
      const frame = deliveryFrame(first + i, messages[i]!);
      this.noteFrame(frame.byteLength);
      if (!this.fits(held, frame.byteLength)) {
        // The client is not reading as fast as it is sent to: from here it is fed from the
        // inbox, a page at a time as it reads, and what is not sent now waits there.
        m.sessionsBehind.add();
        return this.startCatchUp();
      }
      held += frame.byteLength;
      this.conn.send(frame);
      this.lastSent = first + i;
      const at = createdAtMsOf(messages[i]!);
      if (at > 0) m.sendToDelivery.observe(Math.max(0, now - at) / 1000);
      m.messagesOut.add();
    }
  }

  /** Inbox entries after a seq, from the user actor (which knows where each one is). */
  private readInbox(afterSeq: number, limit: number): Promise<DeliveryBytes[]> {
    return users(this.deps, this.userId).ask<DeliveryBytes[]>({ type: 'readInbox', afterSeq, limit });
  }

  private startCatchUp(): void {
    if (this.catchingUp) return;
    this.catchingUp = true;
    this.ctx.self.tell({ type: 'catchUp' });
  }

  /**
   * Sends one page of the backlog per turn, so pushes and frames interleave with a long replay.
   * A page is read only while the socket holds at most half the bound, and holds about as many
   * entries as fit in the rest: a client that does not read costs no reads, and one that reads
   * slowly costs reads of about what it takes.
   */
  private async catchUp(): Promise<void> {
    if (this.phase !== 'ready' || !this.catchingUp) return;
    const max = this.settings.maxUnsentBytes;
    const held = this.conn.bufferedAmount();
    if (held > max >> 1) return this.park();
    const page = Math.max(1, Math.min(this.settings.catchUpPage, Math.ceil((max - held) / this.frameBytes)));
    let deliveries;
    try {
      deliveries = await this.readInbox(this.lastSent, page);
    } catch (err) {
      this.deps.log.warn({ session: this.key, code: codeOf(err) }, 'inbox read failed; retrying');
      this.ctx.timers.once('catchUp', 500, { type: 'catchUp' });
      return;
    }
    if (this.phase !== 'ready') return;
    let unsent = this.conn.bufferedAmount();
    for (const d of deliveries) {
      if (d.inboxSeq !== this.lastSent + 1) break;
      const frame = deliveryFrame(d.inboxSeq, d.message);
      this.noteFrame(frame.byteLength);
      // The rest of the page is read again after the drain: holding it here would pin it.
      if (!this.fits(unsent, frame.byteLength)) return this.park();
      unsent += frame.byteLength;
      this.conn.send(frame);
      this.lastSent = d.inboxSeq;
    }
    if (deliveries.length < page) {
      this.catchingUp = false;
      this.resyncPresence();
    } else this.ctx.self.tell({ type: 'catchUp' });
  }

  /** Catch-up resumes when the client has read (the socket holds at most half the bound). */
  private park(): void {
    this.parked = true;
    this.askDrain();
  }

  /** Also reached when the session is stopped without its 'closed' message (mailbox full). */
  onDeactivate(): void {
    this.settings.sessionEnded();
    if (this.sid) this.settings.revocations.untrack(this.sid, this.key, this.userId);
    if (this.phase !== 'closed') {
      // Stopped by a failure or a shutdown while the socket is open: never leave a socket that
      // nothing reads; the client reconnects and resumes.
      this.conn.close(CloseCodes.INTERNAL_ERROR, 'session ended; reconnect');
      this.onClosed(true);
    }
  }

  private onClosed(silent: boolean): void {
    const wasReady = this.phase === 'ready' || this.phase === 'authenticating';
    this.phase = 'closed';
    if (wasReady) {
      try {
        users(this.deps, this.userId).tell({ type: 'disconnect', deviceId: this.deviceId, session: this.key, silent });
      } catch (err) {
        // The device then expires by the user actor's timer instead.
        this.deps.log.warn({ session: this.key, code: codeOf(err) }, 'disconnect not delivered');
      }
    }
    this.ctx.stop();
  }
}

function clamp(n: number, min: number, max: number, fallback: number): number {
  if (!Number.isFinite(n) || n <= 0) return fallback;
  return Math.max(min, Math.min(max, Math.floor(n)));
}

/** The limits of a send, shared by the WebSocket and HTTP paths. */
export function validateChannelId(channelId: unknown): void {
  if (typeof channelId !== 'string' || channelId.length === 0 || channelId.length > MAX_CLIENT_ID) {
    throw reject(ChatCodes.INVALID_ARGUMENT, `channel_id must be 1-${MAX_CLIENT_ID} characters`);
  }
}

export function validateSend(channelId: unknown, clientMsgId: unknown, text: unknown): void {
  validateChannelId(channelId);
  if (typeof clientMsgId !== 'string' || clientMsgId.length === 0 || clientMsgId.length > MAX_CLIENT_ID) {
    throw reject(ChatCodes.INVALID_ARGUMENT, `client_msg_id must be 1-${MAX_CLIENT_ID} characters`);
  }
  if (typeof text !== 'string' || text.length === 0) throw reject(ChatCodes.INVALID_ARGUMENT, 'text must not be empty');
  if (codePoints(text) > MAX_TEXT_CODE_POINTS) throw reject(ChatCodes.TEXT_TOO_LONG, `text is longer than ${MAX_TEXT_CODE_POINTS} characters`);
}

/** Code points, counted without allocating; at most `length` and at least half of it. */
function codePoints(s: string): number {
  if (s.length <= MAX_TEXT_CODE_POINTS) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

export function sessionKind(): ActorKind<SessionMessage> {
  return {
    name: 'session',
    virtual: false,
    idleMs: Infinity,
    mailboxCapacity: 2048,
    create: () => {
      throw new Error('sessions are spawned with their socket, never activated by a message');
    },
  };
}

export function createSession(ctx: ActorContext<SessionMessage>, deps: ChatDeps, conn: Connection, settings: SessionSettings): Actor<SessionMessage> {
  return new SessionActor(ctx, deps, conn, settings);
}
