import { decodeServerFrame, encodeClientFrame } from '../proto/client-codec.ts';
import type { ClientBody, ClientBodyName, Delivery, Message, Presence, ReadReceipt, SendAck, ServerFrame, TypingNotice, Welcome } from '../proto/client-frames.ts';
import type { TokenGrant } from './http-client.ts';

/** The part of the WebSocket API we use: the browser's, React Native's and the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = new (url: string) => WebSocketLike;

export interface ParleyClientOptions {
  /** WebSocket URLs to try, best first (from login's `servers`). */
  readonly servers: readonly string[];
  readonly token: string;
  /** When `token` expires (login's and refresh's `expires_at_ms`); with `refreshToken`, renewal starts from it. */
  readonly tokenExpiresAtMs?: number;
  /**
   * Gets a new token before the current one expires (at 80 % of its remaining life), e.g.
   * `() => http.refresh()`. Reconnects use the newest token; an open socket keeps running on the
   * one it was opened with. Retried on failure until the token expires; a refusal
   * (UNAUTHENTICATED: logged out or expired) stops it, and the next reconnect is then refused.
   */
  readonly refreshToken?: () => Promise<TokenGrant>;
  readonly deviceId: string;
  /**
   * The last inbox_seq the app has (e.g. kept from `lastAcked` across restarts). Given (above 0),
   * the client hands out nothing after it with a hole: entries the server skips past are read with
   * `sync` first. Absent or 0: the app keeps no seq, and the first connection starts where the
   * server resumes this device (after its stored cursor) without replaying older entries.
   */
  readonly lastInboxSeq?: number;
  /** Defaults to the platform's global WebSocket. */
  readonly WebSocket?: WebSocketFactory;
  /** Reconnect (with backoff) after an unexpected close. Default true. */
  readonly reconnect?: boolean;
  /** Acknowledge each delivery once the `delivery` listeners ran. Default true. */
  readonly autoAck?: boolean;
  /** Request timeout. Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** Retries of a send the server answered UNAVAILABLE, TIMEOUT or OVERLOADED. Default 4. */
  readonly sendRetries?: number;
}

export class ParleyError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ParleyError';
  }
}

interface Events {
  welcome: Welcome;
  /** A refresh got a new token (store it if the app keeps tokens across restarts). */
  token: TokenGrant;
  delivery: Delivery;
  presence: Presence;
  /** Another member is typing in one of your channels: show it for `expires_in_ms`. */
  typing: TypingNotice;
  /** A member (or you, on another device) has read a channel up to `channel_seq`. */
  readReceipt: ReadReceipt;
  /** A socket closed; `willReconnect` tells whether the client tries again. */
  disconnect: { code: number; reason: string; willReconnect: boolean };
  error: ParleyError;
}
type Listener<T> = (value: T) => void;

interface PendingRequest {
  resolve: (frame: ServerFrame) => void;
  reject: (err: ParleyError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface PendingSend {
  /** Server answers of a retryable kind so far, for backoff and the bound. */
  attempts: number;
  readonly channelId: string;
  readonly clientMsgId: string;
  readonly text: string;
  readonly resolve: (ack: SendAck) => void;
  readonly reject: (err: ParleyError) => void;
}

const OPEN = 1;
/** Server answers that mean "not done, or not certainly done; the same request may be repeated". */
const RETRYABLE = new Set(['UNAVAILABLE', 'TIMEOUT', 'OVERLOADED']);
/** Never refresh sooner than this after the last token: bounds the rate if clocks disagree. */
const MIN_REFRESH_DELAY_MS = 1_000;
/** setTimeout's longest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Close codes after which reconnecting would be refused again. */
const FINAL_CLOSES = new Set([1008, 4001]);
/** Entries asked for per `sync` while filling a hole (the server answers at most 500). */
const FILL_PAGE = 200;
/** Live deliveries kept while a fill runs; later ones are dropped and read by the fill instead. */
const MAX_HELD = 1_000;
/** Failed fill pages on one connection before the client reconnects to resume from its last ack. */
const FILL_RETRIES = 3;
/** Our own close when a fill keeps failing: not final, so the reconnect logic resumes. */
const CLOSE_FILL_FAILED = 4000;

/**
 * A Parley connection with resume. Guarantees to the app:
 * - deliveries arrive in inbox_seq order, each once per client object, with no hole, across
 *   reconnects (hello resumes after the last acknowledged seq; repeats are dropped). A delivery or
 *   a welcome that skips past what this client handed out (or past an explicit `lastInboxSeq`) is
 *   preceded by the missing range, read with `sync`; deliveries arriving meanwhile wait and follow
 *   in order. If the socket closes before the hole is filled, nothing after it is handed out: the
 *   next connection resumes from the last ack;
 * - a `send` is retried with the same client_msg_id after a reconnect until it is acked or
 *   refused (and a few times on a retryable server answer), so it yields exactly one message
 *   however often the network fails;
 * - other requests fail with UNAVAILABLE when their socket drops (they are safe to repeat).
 */
export class ParleyClient {
  private ws: WebSocketLike | undefined;
  private readonly WS: WebSocketFactory;
  private readonly listeners: { [K in keyof Events]?: Listener<Events[K]>[] } = {};
  private readonly requests = new Map<number, PendingRequest>();
  private readonly sends = new Map<string, PendingSend>();
  private nextRef = 1;
  private serverIndex = 0;
  private attempts = 0;
  private closedByUser = false;
  private ready = false;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private currentToken: string;
  private tokenExpiresAtMs: number | undefined;
  private acked: number;
  /** The highest inbox_seq handed to the app (or jumped to on a first welcome): no hole below it. */
  private received: number;
  /**
   * Whether `received` is a position the app has: an explicit `lastInboxSeq`, or anything this
   * client handed out or started from. Until then a welcome's resume point is taken as the start,
   * not as a hole: an app that keeps no seq must not get the device's whole history again.
   */
  private positionKnown: boolean;
  /** A fill is reading the hole up to `fillUpTo` with sync; deliveries past it wait in `held`. */
  private filling = false;
  private fillUpTo = 0;
  /** Bumped when a connection ends: a fill of an earlier connection must not touch the state. */
  private fillGeneration = 0;
  private fillTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly held = new Map<number, Delivery>();
  /**
   * @internal Test fault hook, never for apps: this many of the next delivery frames are discarded
   * on arrival, as if lost, so tests can make a real hole in a connection's stream.
   */
  dropDeliveryFrames = 0;
  private readonly timeoutMs: number;
  private readonly sendRetries: number;
  /** The welcome of the current connection. */
  welcome: Welcome | undefined;

  constructor(private readonly o: ParleyClientOptions) {
    const ws = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (!ws) throw new ParleyError('NO_WEBSOCKET', 'no WebSocket implementation: pass options.WebSocket');
    if (o.servers.length === 0) throw new ParleyError('INVALID_ARGUMENT', 'servers must not be empty');
    this.WS = ws;
    this.acked = o.lastInboxSeq ?? 0;
    this.received = this.acked;
    this.positionKnown = this.acked > 0;
    this.timeoutMs = o.requestTimeoutMs ?? 10_000;
    this.sendRetries = o.sendRetries ?? 4;
    this.currentToken = o.token;
    this.tokenExpiresAtMs = o.tokenExpiresAtMs;
  }

  /** The token the next connection says hello with: the newest one. */
  get token(): string {
    return this.currentToken;
  }

  /** The highest inbox_seq acknowledged: where a later session should resume. */
  get lastAcked(): number {
    return this.acked;
  }

  get lastReceived(): number {
    return this.received;
  }

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const list = (this.listeners[event] ??= []) as Listener<Events[K]>[];
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Opens the connection; resolves with the welcome. */
  connect(): Promise<Welcome> {
    this.closedByUser = false;
    if (this.refreshTimer === undefined) this.scheduleRefresh();
    return new Promise((resolve, reject) => {
      const offWelcome = this.on('welcome', (w) => {
        offWelcome();
        offDisconnect();
        resolve(w);
      });
      const offDisconnect = this.on('disconnect', (d) => {
        if (d.willReconnect) return;
        offWelcome();
        offDisconnect();
        reject(new ParleyError('UNAVAILABLE', `connection closed (${d.code} ${d.reason})`));
      });
      this.open();
    });
  }

  /** Sends a message; resolves once it is durable. Retried across reconnects with the same id. */
  send(channelId: string, text: string, clientMsgId: string = randomId()): Promise<SendAck> {
    return new Promise((resolve, reject) => {
      const entry: PendingSend = { attempts: 0, channelId, clientMsgId, text, resolve, reject };
      this.sends.set(clientMsgId, entry);
      if (this.ready) this.transmitSend(entry);
    });
  }

  ack(inboxSeq: number): void {
    if (inboxSeq <= this.acked) return;
    this.acked = inboxSeq;
    if (this.ready) this.frame(0, 'ack', { inbox_seq: inboxSeq });
  }

  async sync(afterInboxSeq: number, limit = 100): Promise<{ deliveries: Delivery[]; has_more: boolean }> {
    const f = await this.request('sync', { after_inbox_seq: afterInboxSeq, limit });
    if (f.body !== 'sync_result') throw unexpected(f);
    return f.sync_result;
  }

  async history(channelId: string, options: { before?: string; limit?: number } = {}): Promise<{ messages: Message[]; has_more: boolean }> {
    const f = await this.request('history', { channel_id: channelId, before_message_id: options.before ?? '', limit: options.limit ?? 50 });
    if (f.body !== 'history_result') throw unexpected(f);
    return f.history_result;
  }

  /**
   * Marks the channel read up to `channelSeq` (a message's channel_seq): stored, and the other
   * members and your other devices get a receipt. A lower mark than the stored one is ignored.
   * Not being a member comes back as an `error` event with code FORBIDDEN.
   */
  markRead(channelId: string, channelSeq: number): void {
    if (this.ready) this.frame(this.nextRef++, 'read', { channel_id: channelId, channel_seq: channelSeq });
  }

  /**
   * Tells the channel's other members that you are typing; call it on every keystroke (the
   * server forwards one notice per second while you keep typing). Nothing is stored. Not being a
   * member comes back as an `error` event with code FORBIDDEN.
   */
  typing(channelId: string): void {
    if (this.ready) this.frame(this.nextRef++, 'typing', { channel_id: channelId });
  }

  async presence(userIds: string[]): Promise<Presence[]> {
    const f = await this.request('presence_query', { user_ids: userIds });
    if (f.body !== 'presence_result') throw unexpected(f);
    return f.presence_result.presences;
  }

  /** Closes for good: pending sends are rejected, no reconnect. */
  close(): void {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.flushAck();
    this.ws?.close(1000, 'bye');
    this.teardown(new ParleyError('CLOSED', 'client closed'));
    for (const s of this.sends.values()) s.reject(new ParleyError('CLOSED', 'client closed before the send was acknowledged'));
    this.sends.clear();
  }

  // ---- internals

  private emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const l of [...((this.listeners[event] ?? []) as Listener<Events[K]>[])]) l(value);
  }

  private open(): void {
    const url = this.o.servers[this.serverIndex % this.o.servers.length]!;
    const ws = new this.WS(url);
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.frame(0, 'hello', { token: this.currentToken, device_id: this.o.deviceId, last_inbox_seq: this.acked });
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onerror = () => undefined; // the close event follows and carries what we act on
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.teardown(new ParleyError('UNAVAILABLE', 'connection lost; retry'));
      const willReconnect = !this.closedByUser && (this.o.reconnect ?? true) && !FINAL_CLOSES.has(ev.code);
      this.emit('disconnect', { code: ev.code, reason: ev.reason, willReconnect });
      if (willReconnect) this.scheduleReconnect();
      else for (const s of this.sends.values()) s.reject(new ParleyError('UNAVAILABLE', `connection closed (${ev.code})`));
      if (!willReconnect) this.sends.clear();
    };
  }

  /** Plans the next refresh: at 80 % of the token's remaining life, or after `delayMs`. */
  private scheduleRefresh(delayMs?: number): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    if (!this.o.refreshToken || this.tokenExpiresAtMs === undefined || this.closedByUser) return;
    const delay = delayMs ?? Math.max(MIN_REFRESH_DELAY_MS, 0.8 * (this.tokenExpiresAtMs - Date.now()));
    this.refreshTimer = setTimeout(() => void this.refresh(), Math.min(delay, MAX_TIMER_MS));
  }

  private async refresh(): Promise<void> {
    let grant: TokenGrant;
    try {
      grant = await this.o.refreshToken!();
    } catch (err) {
      if (this.closedByUser) return;
      const code = (err as { code?: unknown }).code;
      const left = this.tokenExpiresAtMs! - Date.now();
      if (code === 'UNAUTHENTICATED' || left <= 0) {
        // Logged out or expired: no token will come. The open socket, if any, stays until it
        // closes; the reconnect after that is refused (1008) and final.
        this.refreshTimer = undefined;
        this.emit('error', new ParleyError('UNAUTHENTICATED', `token not refreshed: ${(err as Error).message ?? String(err)}`));
        return;
      }
      // Unreachable or failing server: try again well before the token runs out.
      this.scheduleRefresh(Math.min(30_000, Math.max(MIN_REFRESH_DELAY_MS, left / 4)));
      return;
    }
    if (this.closedByUser) return;
    this.currentToken = grant.token;
    this.tokenExpiresAtMs = grant.expires_at_ms;
    this.scheduleRefresh();
    this.emit('token', grant);
  }

  private scheduleReconnect(): void {
    this.attempts++;
    this.serverIndex++; // try the next server: the last one may be the one that went away
    const base = Math.min(5_000, 100 * 2 ** Math.min(this.attempts - 1, 6));
    this.reconnectTimer = setTimeout(() => this.open(), base / 2 + Math.random() * (base / 2));
  }

  private teardown(err: ParleyError): void {
    this.ready = false;
    // A hole not yet filled stays unfilled: what was held is not handed out after it. The next
    // hello resumes from the last ack (never past what was handed out), so it all comes again.
    this.fillGeneration++;
    this.filling = false;
    this.fillUpTo = this.received;
    this.held.clear();
    clearTimeout(this.fillTimer);
    clearInterval(this.heartbeat);
    for (const r of this.requests.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.requests.clear();
  }

  private frame<K extends ClientBodyName>(ref: number, body: K, value: ClientBody<K>): void {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(encodeClientFrame(ref, body, value));
  }

  private request<K extends ClientBodyName>(body: K, value: ClientBody<K>): Promise<ServerFrame> {
    if (!this.ready) return Promise.reject(new ParleyError('UNAVAILABLE', 'not connected'));
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(ref);
        reject(new ParleyError('TIMEOUT', `${body} timed out`));
      }, this.timeoutMs);
      this.requests.set(ref, { resolve, reject, timer });
      this.frame(ref, body, value);
    });
  }

  private transmitSend(s: PendingSend): void {
    this.request('send', { channel_id: s.channelId, client_msg_id: s.clientMsgId, text: s.text }).then(
      (f) => {
        if (f.body !== 'send_ack') return;
        this.sends.delete(s.clientMsgId);
        s.resolve(f.send_ack);
      },
      (err: ParleyError) => {
        // Lost with its socket: the next welcome sends it again, with the same id.
        if (!this.ready && !this.closedByUser) return;
        // A retryable answer from a live server: try again (same id, so at most one message),
        // a bounded number of times with backoff, then let the app decide.
        if (RETRYABLE.has(err.code) && s.attempts < this.sendRetries && !this.closedByUser) {
          s.attempts++;
          setTimeout(() => {
            if (this.ready && this.sends.get(s.clientMsgId) === s) this.transmitSend(s);
          }, Math.min(3_000, 100 * 2 ** s.attempts));
          return;
        }
        this.sends.delete(s.clientMsgId);
        s.reject(err);
      },
    );
  }

  private onFrame(data: unknown): void {
    let f: ServerFrame;
    try {
      f = decodeServerFrame(data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array));
    } catch {
      this.emit('error', new ParleyError('BAD_FRAME', 'server sent an undecodable frame'));
      return;
    }
    if (f.ref !== 0) {
      const r = this.requests.get(f.ref);
      if (!r) {
        // The answer to a frame that waits for none (typing): only a refusal comes back.
        if (f.body === 'error') this.emit('error', new ParleyError(f.error.code, f.error.message));
        return;
      }
      this.requests.delete(f.ref);
      clearTimeout(r.timer);
      if (f.body === 'error') r.reject(new ParleyError(f.error.code, f.error.message));
      else r.resolve(f);
      if (f.body === 'welcome') this.onWelcome(f.welcome);
      return;
    }
    switch (f.body) {
      case 'welcome':
        this.onWelcome(f.welcome);
        return;
      case 'delivery':
        if (this.dropDeliveryFrames > 0) {
          this.dropDeliveryFrames--;
          return;
        }
        this.take(f.delivery);
        return;
      case 'presence':
        this.emit('presence', f.presence);
        return;
      case 'typing':
        this.emit('typing', f.typing);
        return;
      case 'read_receipt':
        this.emit('readReceipt', f.read_receipt);
        return;
      case 'error':
        this.emit('error', new ParleyError(f.error.code, f.error.message));
        return;
      default:
        return;
    }
  }

  private onWelcome(w: Welcome): void {
    this.welcome = w;
    // The server resumes after this device's stored cursor when it is ahead of our seq: entries up
    // to it will not be pushed. With no known position (the app keeps no seq) that is where the app
    // starts; otherwise the entries in between are a hole, filled with sync before anything later.
    const resumed = w.resumed_after_inbox_seq ?? 0;
    this.ready = true;
    if (!this.positionKnown) {
      if (resumed > this.received) this.received = resumed;
      if (resumed > this.acked) this.acked = resumed;
      this.positionKnown = true;
    } else if (resumed > this.received) {
      this.startFill(resumed);
    }
    this.attempts = 0;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.frame(0, 'heartbeat', {}), w.heartbeat_interval_ms || 5_000);
    for (const s of this.sends.values()) this.transmitSend(s);
    this.emit('welcome', w);
  }

  /**
   * Hands a pushed delivery to the app if it is the next one; one that skips ahead, or comes while
   * a fill runs, waits in `held` (bounded: past MAX_HELD it is dropped and the fill reads it).
   */
  private take(d: Delivery): void {
    const seq = d.inbox_seq;
    if (seq <= this.received) return; // handed out already (a resend after a reconnect, or synced)
    if (!this.filling && seq === this.received + 1) return this.handOut(d);
    if (this.held.size < MAX_HELD) {
      this.held.set(seq, d);
      this.startFill(seq - 1);
    } else {
      this.startFill(seq);
    }
  }

  private handOut(d: Delivery): void {
    this.received = d.inbox_seq;
    this.positionKnown = true;
    this.held.delete(d.inbox_seq);
    this.emit('delivery', d);
    if (this.o.autoAck ?? true) this.scheduleAck();
  }

  /** Makes sure everything up to `upTo` is read before anything later is handed out. */
  private startFill(upTo: number): void {
    if (upTo > this.fillUpTo) this.fillUpTo = upTo;
    if (this.filling) return;
    this.filling = true;
    void this.fill(this.fillGeneration, 0);
  }

  /**
   * Reads the hole page by page with sync and hands it out, interleaved with held deliveries that
   * come next, then the rest of what was held. Bound to one connection (generation): when it ends,
   * teardown drops the held deliveries and the next hello resumes from the last ack.
   */
  private async fill(generation: number, failures: number): Promise<void> {
    try {
      // Each hand-out runs the app's listeners, which may close the client: check the generation.
      for (;;) {
        for (let d = this.held.get(this.received + 1); d && generation === this.fillGeneration; d = this.held.get(this.received + 1)) this.handOut(d);
        if (generation !== this.fillGeneration) return;
        if (this.received >= this.fillUpTo) break;
        const page = await this.sync(this.received, Math.min(FILL_PAGE, this.fillUpTo - this.received));
        if (generation !== this.fillGeneration) return;
        const before = this.received;
        for (const d of page.deliveries) if (d.inbox_seq === this.received + 1 && generation === this.fillGeneration) this.handOut(d);
        // The inbox is gap-free up to its head, and the hole is below it: a page that does not go
        // on from where we are is a fault (a damaged store), not something to skip over.
        if (this.received === before) throw new ParleyError('BAD_FRAME', `sync after ${before} did not return ${before + 1}`);
        failures = 0;
      }
    } catch (err) {
      if (generation !== this.fillGeneration || !this.ready) return;
      if (failures + 1 < FILL_RETRIES) {
        // Still holding what came after the hole; try the same page again shortly.
        this.fillTimer = setTimeout(() => void this.fill(generation, failures + 1), 200 * 2 ** failures);
        return;
      }
      // Keeps failing on a live socket: start over with a new connection, which resumes from the
      // last ack, rather than hold on forever or hand out after the hole.
      this.emit('error', new ParleyError(err instanceof ParleyError ? err.code : 'UNAVAILABLE', `could not read missing inbox entries: ${(err as Error).message}`));
      this.ws?.close(CLOSE_FILL_FAILED, 'inbox fill failed');
      return;
    }
    this.filling = false;
    this.fillUpTo = this.received;
    this.held.clear(); // only entries at or below `received` can be left: handed out already
  }

  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => this.flushAck(), 20);
  }

  private flushAck(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    this.ack(this.received);
  }
}

function unexpected(f: ServerFrame): ParleyError {
  return new ParleyError('BAD_FRAME', `unexpected reply ${f.body}`);
}

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
