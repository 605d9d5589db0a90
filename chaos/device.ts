/**
 * One device of a chaos run, written as a careful app on the SDK (client/) would be, and
 * recording everything its app sees into the run's Recorder:
 *
 * - it keeps the last inbox_seq it was handed and opens every new client object with it
 *   (`lastInboxSeq`), so its stream continues without a hole across restarts of the app;
 * - it lets the SDK reconnect, resume and resend (same client_msg_id), and resends itself, with
 *   the same client_msg_id and backoff, whatever the SDK gave up on, refusals excepted;
 * - a watchdog probes the connection (a presence query of itself) every `probeEveryMs`: a server
 *   that does not answer within `probeTimeoutMs` (paused, or cut off behind a dead link) has its
 *   socket dropped so the SDK moves to the next server, and so does one that answers only errors
 *   for longer than `staleAfterMs` (it lost its cluster membership). The SDK alone would wait on
 *   a silent socket forever: the server never answers heartbeats.
 * - after every welcome it asks for its friends' presence (an app refreshes its roster), and
 *   shows pushed presence changes as they come.
 */
import WebSocket from 'ws';
import { ParleyClient, ParleyError, type WebSocketFactory } from '../client/index.ts';
import type { HistoryEntry, InboxEntry, SendRecord } from './history.ts';
import type { Recorder } from './recorder.ts';

/** Answers that say the request itself was wrong or not allowed: repeating it cannot help. */
const REFUSALS = new Set(['INVALID_ARGUMENT', 'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'ALREADY_EXISTS', 'GROUP_FULL', 'TEXT_TOO_LONG', 'BAD_FRAME']);

export interface DeviceOptions {
  /** The run's name for the device (`username/phone`). */
  readonly device: string;
  /** The protocol device_id. */
  readonly deviceId: string;
  readonly userId: string;
  readonly token: string;
  /** WebSocket URLs, first choice first (the SDK moves to the next on each reconnect). */
  readonly servers: readonly string[];
  readonly friends: readonly string[];
  readonly recorder: Recorder;
  readonly probeEveryMs: number;
  readonly probeTimeoutMs: number;
  readonly staleAfterMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class CarefulDevice {
  private client: ParleyClient | undefined;
  private socket: WebSocket | undefined;
  private up = false;
  /** The next connection loss ends this client object: the phone died with its node. */
  private leaving = false;
  private closing = false;
  private started = false;
  private probing = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private failingSince: number | undefined;
  private watchdogSince: number | undefined;
  /** The last inbox_seq handed to the app: where the next client object continues. */
  received = 0;
  /** The node of the current (last) welcome. */
  nodeId: string | undefined;
  /** Listeners for the next welcome (a scenario timing a return). */
  private welcomeWaiters: ((atMs: number) => void)[] = [];

  constructor(readonly o: DeviceOptions) {}

  get name(): string {
    return this.o.device;
  }

  get isUp(): boolean {
    return this.up;
  }

  /** No client object runs: it left, or never opened. */
  get isAway(): boolean {
    return this.client === undefined;
  }

  /** Opens a client object and resolves with its first welcome's time. */
  async open(timeoutMs = 60_000): Promise<number> {
    if (this.client) throw new Error(`${this.name} is open already`);
    this.closing = false;
    this.leaving = false;
    const self = this;
    class TrackedSocket extends WebSocket {
      constructor(url: string) {
        super(url);
        self.socket = this;
      }
    }
    const client = new ParleyClient({
      servers: this.o.servers,
      token: this.o.token,
      deviceId: this.o.deviceId,
      WebSocket: TrackedSocket as unknown as WebSocketFactory,
      reconnect: true,
      ...(this.received > 0 ? { lastInboxSeq: this.received } : {}),
    });
    this.client = client;
    client.on('welcome', (w) => {
      if (this.client !== client) return;
      const atMs = Date.now();
      this.up = true;
      this.nodeId = w.node_id;
      this.failingSince = undefined;
      this.o.recorder.connections.push({ device: this.name, kind: 'welcome', atMs, nodeId: w.node_id });
      if (!this.started) {
        this.started = true;
        this.o.recorder.devices.push({ device: this.name, userId: this.o.userId, startAfterSeq: w.resumed_after_inbox_seq });
      }
      for (const f of this.welcomeWaiters.splice(0)) f(atMs);
      if (this.o.friends.length > 0) void this.queryPresence(this.o.friends);
    });
    client.on('delivery', (d) => {
      this.received = d.inbox_seq;
      const m = d.message;
      this.o.recorder.deliveries.push({
        device: this.name,
        inboxSeq: d.inbox_seq,
        messageId: m.message_id,
        channelId: m.channel_id,
        channelSeq: m.channel_seq,
        senderId: m.sender_id,
        clientMsgId: m.client_msg_id,
        atMs: Date.now(),
      });
    });
    client.on('presence', (p) => this.o.recorder.presence.push({ observer: this.name, subject: p.user_id, online: p.online, atMs: Date.now(), via: 'push' }));
    client.on('disconnect', () => {
      if (this.client !== client) return;
      const since = this.watchdogSince;
      this.watchdogSince = undefined;
      const wasUp = this.up;
      this.up = false;
      if (wasUp || this.leaving || this.closing) {
        this.o.recorder.connections.push({
          device: this.name,
          kind: 'down',
          atMs: Date.now(),
          ...(this.leaving || this.closing ? { intended: true } : {}),
          ...(since !== undefined ? { sinceMs: since } : {}),
        });
      }
      if (this.leaving) {
        // After this event the SDK schedules its reconnect; closing on the next tick cancels it.
        this.client = undefined;
        this.stopProbes();
        queueMicrotask(() => client.close());
      }
    });
    this.startProbes();
    const welcomed = new Promise<number>((resolve) => this.welcomeWaiters.push(resolve));
    void client.connect().catch(() => undefined); // with reconnect on, it keeps trying by itself
    const timeout = sleep(timeoutMs).then(() => 0);
    const at = await Promise.race([welcomed, timeout]);
    if (at === 0) throw new Error(`${this.name} got no welcome within ${timeoutMs} ms`);
    return at;
  }

  /** The next time the connection is lost (its node dies), the device goes away instead of reconnecting. */
  planLeave(): void {
    this.leaving = true;
  }

  /** Closes for good (the end of a run). */
  close(): void {
    const client = this.client;
    if (!client) return;
    this.closing = true;
    this.stopProbes();
    client.close();
    this.client = undefined;
    this.up = false;
  }

  /**
   * Sends until acknowledged, with the same client_msg_id throughout, across client objects;
   * stops at a refusal or once `until()` has passed.
   */
  async send(channelId: string, text: string, rec: SendRecord, until: () => number): Promise<void> {
    for (let attempt = 0; Date.now() < until(); attempt++) {
      const client = this.client;
      if (!client) {
        await sleep(200);
        continue;
      }
      try {
        const ack = await client.send(channelId, text, rec.clientMsgId);
        rec.ack = { messageId: ack.message_id, channelSeq: ack.channel_seq, atMs: Date.now(), ...(this.nodeId ? { node: this.nodeId } : {}) };
        return;
      } catch (err) {
        const code = err instanceof ParleyError ? err.code : 'THROWN';
        rec.errors.push(code);
        if (REFUSALS.has(code)) return;
        await sleep(Math.min(2_000, 100 * 2 ** Math.min(attempt, 4)));
      }
    }
  }

  /** Asks the server for these users' presence and records what it says. */
  async queryPresence(userIds: readonly string[]): Promise<void> {
    const client = this.client;
    if (!client || !this.up) return;
    try {
      const states = await client.presence([...userIds]);
      const atMs = Date.now();
      for (const p of states) this.o.recorder.presence.push({ observer: this.name, subject: p.user_id, online: p.online, atMs, via: 'query' });
    } catch {
      // A query lost with its socket: the next welcome asks again.
    }
  }

  /** The user's whole inbox from 0, read with sync (retried while the cluster settles). */
  async readInbox(deadlineMs: number): Promise<InboxEntry[]> {
    return this.retrying(deadlineMs, async (client) => {
      const out: InboxEntry[] = [];
      for (let after = 0; ; ) {
        const r = await client.sync(after, 500);
        for (const d of r.deliveries) out.push({ inboxSeq: d.inbox_seq, messageId: d.message.message_id, channelId: d.message.channel_id, channelSeq: d.message.channel_seq });
        if (!r.has_more || r.deliveries.length === 0) return out;
        after = r.deliveries.at(-1)!.inbox_seq;
      }
    });
  }

  /** A channel's whole history, oldest first. */
  async readHistory(channelId: string, deadlineMs: number): Promise<HistoryEntry[]> {
    return this.retrying(deadlineMs, async (client) => {
      const out: HistoryEntry[] = [];
      for (let before: string | undefined; ; ) {
        const r = await client.history(channelId, { limit: 100, ...(before ? { before } : {}) });
        for (const m of r.messages) out.push({ channelSeq: m.channel_seq, messageId: m.message_id, senderId: m.sender_id, clientMsgId: m.client_msg_id });
        if (!r.has_more || r.messages.length === 0) return out.reverse();
        before = r.messages.at(-1)!.message_id;
      }
    });
  }

  /** Waits (bounded) until the next welcome; resolves with its time, or 0. */
  nextWelcome(timeoutMs: number): Promise<number> {
    return Promise.race([new Promise<number>((resolve) => this.welcomeWaiters.push(resolve)), sleep(timeoutMs).then(() => 0)]);
  }

  private async retrying<T>(deadlineMs: number, read: (client: ParleyClient) => Promise<T>): Promise<T> {
    let last: unknown;
    while (Date.now() < deadlineMs) {
      const client = this.client;
      if (client && this.up) {
        try {
          return await read(client);
        } catch (err) {
          last = err;
        }
      }
      await sleep(250);
    }
    throw new Error(`${this.name}: read did not succeed before the deadline (${last instanceof Error ? last.message : 'not connected'})`);
  }

  private startProbes(): void {
    this.stopProbes();
    this.probeTimer = setInterval(() => void this.probe(), this.o.probeEveryMs);
  }

  private stopProbes(): void {
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
  }

  private async probe(): Promise<void> {
    const client = this.client;
    const socket = this.socket;
    if (!client || !socket || !this.up || this.probing) return;
    this.probing = true;
    const started = Date.now();
    try {
      const answer = await Promise.race([
        client.presence([this.o.userId]).then(
          () => 'ok',
          (err: unknown) => (err instanceof ParleyError ? err.code : 'THROWN'),
        ),
        sleep(this.o.probeTimeoutMs).then(() => 'silent'),
      ]);
      if (this.socket !== socket || !this.up) return; // that connection is gone already
      if (answer === 'ok') {
        this.failingSince = undefined;
      } else if (answer === 'silent') {
        this.watchdogSince = started;
        socket.terminate();
      } else {
        this.failingSince ??= started;
        if (Date.now() - this.failingSince > this.o.staleAfterMs) {
          this.watchdogSince = this.failingSince;
          this.failingSince = undefined;
          socket.terminate();
        }
      }
    } finally {
      this.probing = false;
    }
  }
}
