/**
 * One load-generator process (forked by bench/run.ts). Holds up to ~19,000 sockets, spread over
 * the loopback source addresses it is given, and speaks one target's protocol through a small
 * adapter on the bare `ws` client:
 *
 * - parley: chat.v1 protobuf frames (hello/send/ack/heartbeat), built and read by the lean codec
 *   in bench/lib/parley-wire.ts;
 * - socketio: the Engine.IO 4 / Socket.IO 5 wire protocol as text frames (what socket.io-client
 *   sends over its websocket transport, without its per-packet machinery);
 * - uws-raw: a one-byte-opcode pub/sub protocol (bench/peers/uws-raw/server.ts).
 *
 * With `chatter` (Parley groups, `--group-chatter`), every member of every group also sends, during
 * each run, once a second a `read` (the highest channel_seq it has received in that group) and a
 * `typing` for that group, the members spread evenly over the second (CHATTER_SLICES slices).
 * The receipts and typing notices members get back are counted apart: they are not deliveries
 * and never enter the latency histogram.
 *
 * With `discovery` (a Parley cluster), each connection first asks GET /v1/servers of one node
 * (the nodes in turn) and connects to the first server of the answer, the least loaded one, as
 * the SDK does; the worker counts sessions per node. `connectRate` paces how many connections it
 * starts per second.
 *
 * Open loop: message k of a run is due at start + k / rate, whatever happened before; its latency
 * is measured from that due time to the recipient's delivery (performance.now(), one clock: both
 * ends of every pair and group live in this process). Every message ends as delivered, refused
 * (error) or timed out; timed-out ones go into the histogram at the time they had waited, so
 * losses raise the percentiles instead of vanishing.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { RawWebSocket } from './raw-ws.ts';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from '../lib/hist.ts';
import { ChatterEncoder, encodeAck, encodeHello, HEARTBEAT_FRAME, newScan, scanServerFrame, SendEncoder, ServerBody } from '../lib/parley-wire.ts';
import type { ChatterStats, ConnSpec, FromWorker, GroupSpec, NodeCounts, RunMessage, RunStats, SetupMessage, ToWorker } from '../lib/protocol.ts';

const RING = 1 << 21; // outstanding messages tracked at once (~2M; 25 MB)
const MASK = RING - 1;
const MAX_SENDS_PER_TICK = 4_000;
const HEARTBEAT_SLICE_MS = 100;
/** Group chatter: the second is cut into this many slices; membership k speaks in slice k % CHATTER_SLICES. */
const CHATTER_SLICES = 50;
const CHATTER_SLICE_MS = 1000 / CHATTER_SLICES;

function post(m: FromWorker): void {
  process.send?.(m);
}

interface Codec {
  /** The frame for message `id` to this channel. */
  encode(id: number): Buffer | string;
}

/** What the generator needs of a WebSocket client: the `ws` package or the lean RawWebSocket. */
interface ClientSocket {
  readonly readyState: number;
  send(data: Buffer | Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'open', f: () => void): unknown;
  on(event: 'message', f: (data: Buffer, isBinary: boolean) => void): unknown;
  on(event: 'error', f: (err: Error & { code?: string }) => void): unknown;
  on(event: 'close', f: (code: number) => void): unknown;
}

const WS_OPEN = 1;
const WS_CLOSED = 3;

abstract class Conn {
  ws: ClientSocket | undefined;
  ready = false;
  /** Reached ready once (it may have been closed since). */
  wasReady = false;
  closed = false;
  failed = false;
  openedAt = 0;
  joinsPending = 0;
  /** The node discovery chose (clusters only). */
  node: string | undefined;

  constructor(
    readonly w: LoadWorker,
    readonly index: number,
    readonly spec: ConnSpec,
    readonly source: string,
  ) {}

  protected abstract path(): string;
  protected abstract onOpen(): void;
  protected abstract onData(data: Buffer, isBinary: boolean): void;
  abstract join(channel: string): void;
  abstract heartbeat(): void;

  /** Opens the socket, to `wsUrl` (a full URL from discovery) or to the setup's base URL. */
  open(wsUrl?: string): void {
    if (this.openedAt === 0) this.openedAt = performance.now();
    const url = wsUrl ?? this.w.setup.url + this.path();
    const ws: ClientSocket =
      this.w.setup.client === 'raw'
        ? new RawWebSocket(url, { localAddress: this.source, maxPayload: 8 << 20, handshakeTimeout: this.w.setup.connectTimeoutMs })
        : (new WebSocket(url, {
            localAddress: this.source,
            perMessageDeflate: false,
            skipUTF8Validation: true,
            maxPayload: 8 << 20,
            handshakeTimeout: this.w.setup.connectTimeoutMs,
          }) as unknown as ClientSocket);
    this.ws = ws;
    ws.on('open', () => this.onOpen());
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onData(data, isBinary));
    ws.on('error', (err: Error & { code?: string }) => {
      if (!this.ready && !this.failed) this.fail(err.code ?? err.message.slice(0, 60));
    });
    ws.on('close', (code: number) => {
      const wasReady = this.ready;
      this.ready = false;
      if (this.closed) return;
      this.closed = true;
      if (!wasReady && !this.failed) this.fail(`close ${code}`);
      else if (wasReady) this.w.onClose(this, code);
    });
  }

  /** What a connection that timed out was waiting for. */
  stalledAt(): string {
    if (!this.ws) return this.w.setup.discovery ? 'timeout (discovery answer)' : 'timeout';
    if (this.ws.readyState !== WS_OPEN) return 'timeout (WebSocket handshake)';
    return this.w.setup.target === 'parley' ? 'timeout (no welcome after hello)' : 'timeout (open, never ready)';
  }

  protected becomeReady(): void {
    if (this.ready || this.failed) return;
    this.ready = true;
    this.wasReady = true;
    this.w.onReady(this);
  }

  fail(reason: string): void {
    // A session that was up and got closed since is a close, not a connect failure.
    if (this.failed || this.ready || this.wasReady) return;
    this.failed = true;
    this.w.onConnectFailed(this, reason);
    try {
      this.ws?.terminate();
    } catch {
      // already gone
    }
  }

  /** False when the socket is not open (the message then counts as an error). */
  write(frame: Buffer | Uint8Array | string): boolean {
    const ws = this.ws;
    if (!this.ready || !ws || ws.readyState !== WS_OPEN) return false;
    ws.send(frame);
    return true;
  }

  close(): void {
    this.closed = true;
    this.ready = false;
    try {
      this.ws?.close(1000, 'bench done');
    } catch {
      this.ws?.terminate();
    }
  }
}

// ---- Parley

const scan = newScan();

/** One member in one group, for the chatter: the highest channel_seq it has received there. */
interface Membership {
  readonly conn: ParleyConn;
  readonly chatter: ChatterEncoder;
  seq: number;
}

class ParleyConn extends Conn {
  private lastAcked = 0;
  private received = 0;
  /** Its groups, with chatter on (empty otherwise). */
  readonly memberships: Membership[] = [];

  protected path(): string {
    return '/v1/ws';
  }

  protected onOpen(): void {
    this.ws!.send(encodeHello(this.spec.token ?? '', 'bench'));
  }

  protected onData(data: Buffer): void {
    scanServerFrame(data, scan);
    switch (scan.body) {
      case ServerBody.delivery:
        this.received = scan.inboxSeq;
        if (this.memberships.length > 0) this.noteSeq(data);
        this.w.onDelivery(this, scan.clientMsgId);
        if (this.w.setup.ackEvery > 0 && this.received - this.lastAcked >= this.w.setup.ackEvery) {
          this.lastAcked = this.received;
          this.ws!.send(encodeAck(this.received));
        }
        return;
      case ServerBody.send_ack:
        this.w.onAck(scan.ref);
        return;
      case ServerBody.welcome:
        this.becomeReady();
        return;
      case ServerBody.read_receipt:
        this.w.onChatterIn(false);
        return;
      case ServerBody.typing:
        this.w.onChatterIn(true);
        return;
      case ServerBody.error:
        if (!this.ready) this.fail(scan.errorCode || 'hello refused');
        // Sends carry their id as ref (from 1); ref 0 is the chatter's (heartbeats and acks get no error).
        else if (scan.ref === 0 && this.memberships.length > 0) this.w.onChatterError(scan.errorCode);
        else this.w.onSendError(scan.ref, scan.errorCode);
        return;
      default:
        return;
    }
  }

  /** Remembers the highest channel_seq this member has received in the delivery's group. */
  private noteSeq(data: Buffer): void {
    const ms = this.memberships;
    let m: Membership | undefined = ms[0];
    if (ms.length > 1) {
      m = undefined;
      for (const x of ms) {
        if (x.chatter.isChannel(data, scan.channelOff, scan.channelLen)) {
          m = x;
          break;
        }
      }
    }
    if (m && scan.channelSeq > m.seq) m.seq = scan.channelSeq;
  }

  join(): void {
    // Parley channels are server state (created over HTTP before the run).
  }

  heartbeat(): void {
    this.write(HEARTBEAT_FRAME);
  }

  /** Acknowledges whatever arrived since the last ack (at the end of a run). */
  flushAck(): void {
    if (this.received > this.lastAcked && this.ready) {
      this.lastAcked = this.received;
      this.ws!.send(encodeAck(this.received));
    }
  }
}

// ---- Socket.IO (Engine.IO v4 packets over a websocket: 0 open, 2 ping, 3 pong, 4 message;
// Socket.IO packets inside 4: 0 connect, 2 event, 3 ack, 4 connect_error)

const C_0 = 48;
const C_2 = 50;
const C_3 = 51;
const C_4 = 52;
const EVENT_M = Buffer.from('42["m",');

class SocketIoConn extends Conn {
  protected path(): string {
    return '/socket.io/?EIO=4&transport=websocket';
  }

  protected onOpen(): void {
    // Wait for the Engine.IO open packet, then connect to the default namespace.
  }

  protected onData(data: Buffer): void {
    const c0 = data[0];
    if (c0 === C_4) {
      const c1 = data[1];
      if (c1 === C_2) {
        // 42["m",<id>,"text"]
        if (data.length > 7 && data.compare(EVENT_M, 0, 7, 0, 7) === 0) {
          let id = 0;
          for (let i = 7; i < data.length; i++) {
            const d = data[i]! - 48;
            if (d < 0 || d > 9) break;
            id = id * 10 + d;
          }
          this.w.onDelivery(this, id);
        }
        return;
      }
      if (c1 === C_3) {
        // 43<ackId>[...]: a join was done
        this.joinsPending--;
        if (this.joinsPending === 0) this.w.onJoined(this);
        return;
      }
      if (c1 === C_0) return this.becomeReady();
      if (c1 === C_4) return this.fail('connect_error');
      return;
    }
    if (c0 === C_2) {
      this.ws!.send('3');
      return;
    }
    if (c0 === C_0) {
      this.ws!.send('40');
      return;
    }
  }

  join(channel: string): void {
    this.joinsPending++;
    this.ws!.send(`42${this.joinsPending}["j",${JSON.stringify(channel)}]`);
  }

  heartbeat(): void {
    this.write('42["h"]');
  }
}

// ---- raw uWS pub/sub: 's'+topic subscribe (answered 'k'), 'p'+len+topic+payload publish, 'h' heartbeat

const OP_SUB = 0x73;
const OP_PUB = 0x70;
const OP_OK = 0x6b;
const UWS_HEARTBEAT = Buffer.from([0x68]);

class UwsConn extends Conn {
  protected path(): string {
    return '/ws';
  }

  protected onOpen(): void {
    this.becomeReady();
  }

  protected onData(data: Buffer): void {
    if (data.length === 1 && data[0] === OP_OK) {
      this.joinsPending--;
      if (this.joinsPending === 0) this.w.onJoined(this);
      return;
    }
    if (data.length >= 8) this.w.onDelivery(this, data.readDoubleLE(0));
  }

  join(channel: string): void {
    this.joinsPending++;
    const topic = Buffer.from(channel, 'utf8');
    this.ws!.send(Buffer.concat([Buffer.from([OP_SUB]), topic]));
  }

  heartbeat(): void {
    this.write(UWS_HEARTBEAT);
  }
}

function codecFor(target: SetupMessage['target'], channel: string, text: string): Codec {
  if (target === 'parley') {
    const enc = new SendEncoder(channel, text);
    return { encode: (id) => enc.encode(id) };
  }
  if (target === 'socketio') {
    const head = `42["m",${JSON.stringify(channel)},`;
    const tail = `,${JSON.stringify(text)}]`;
    return { encode: (id) => head + id + tail };
  }
  const topic = Buffer.from(channel, 'utf8');
  if (topic.length > 255) throw new Error('topic too long');
  const header = Buffer.concat([Buffer.from([OP_PUB, topic.length]), topic]);
  const body = Buffer.from(text, 'utf8');
  return {
    encode: (id) => {
      const buf = Buffer.allocUnsafe(header.length + 8 + body.length);
      header.copy(buf, 0);
      buf.writeDoubleLE(id, header.length);
      body.copy(buf, header.length + 8);
      return buf;
    },
  };
}

interface Group {
  readonly spec: GroupSpec;
  readonly codec: Codec;
  next: number;
}

interface Run {
  readonly msg: RunMessage;
  firstId: number;
  lastId: number;
  scheduled: number;
  sent: number;
  expected: number;
  delivered: number;
  errors: number;
  errorCodes: Record<string, number>;
  timeouts: number;
  late: number;
  acks: number;
  closed: number;
  outstanding: number;
  chatter: { -readonly [K in keyof ChatterStats]: ChatterStats[K] };
  readonly latency: Histogram;
  readonly ackLatency: Histogram;
  readonly lag: Histogram;
  t0: number;
}

/** Errors after which the message will certainly not be delivered. */
const FINAL_ERRORS = new Set(['RATE_LIMITED', 'INVALID_ARGUMENT', 'FORBIDDEN', 'NOT_FOUND', 'OVERLOADED', 'UNAVAILABLE', 'TEXT_TOO_LONG', 'INTERNAL']);

class LoadWorker {
  setup!: SetupMessage;
  private conns: Conn[] = [];
  private groups: Group[] = [];
  /** Every (member, group) that chatters, in group order: a group's members fall in consecutive slices. */
  private chatterList: Membership[] = [];
  private rr = 0;
  private nextId = 1;
  // The ring of outstanding messages: due time, deliveries still expected, sender, own id.
  private readonly due = new Float64Array(RING);
  private readonly remaining = new Int32Array(RING);
  private readonly sender = new Int32Array(RING);
  private readonly slotId = new Float64Array(RING);
  private readonly ackPending = new Uint8Array(RING);
  private run: Run | undefined;
  private connected = 0;
  private failedCount = 0;
  private readonly failures: Record<string, number> = {};
  private closedCount = 0;
  private readonly closeCodes: Record<string, number> = {};
  private heartbeats = 0;
  private heartbeatSkipped = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private joinedConns = 0;
  private joinWaiters: (() => void) | undefined;
  private firstOpen = 0;
  private lastReady = 0;
  private failedAtLastReady = 0;
  private readonly byNode: Record<string, NodeCounts> = {};
  private readonly closedByNode: Record<string, number> = {};
  private readonly closedByTime: Record<number, number> = {};
  private readonly discoveryAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private discoveryTurn = 0;
  private readonly discoveryFigures = { asks: 0, failures: 0, retries: 0, totalMs: 0, maxMs: 0 };

  async start(setup: SetupMessage): Promise<void> {
    this.setup = setup;
    const Kind = setup.target === 'parley' ? ParleyConn : setup.target === 'socketio' ? SocketIoConn : UwsConn;
    this.conns = setup.conns.map((spec, i) => new Kind(this, i, spec, setup.sources[i % setup.sources.length]!));
    const text = 'x'.repeat(Math.max(1, setup.textBytes));
    this.groups = setup.groups.map((spec) => ({ spec, codec: codecFor(setup.target, spec.channel, text), next: 0 }));
    if (setup.chatter) {
      if (setup.target !== 'parley') throw new Error('group chatter (read marks, typing) is a Parley feature; the peers have no such frames');
      for (const g of setup.groups) {
        const chatter = new ChatterEncoder(g.channel);
        for (const idx of g.members) {
          const conn = this.conns[idx] as ParleyConn;
          const m: Membership = { conn, chatter, seq: 0 };
          conn.memberships.push(m);
          this.chatterList.push(m);
        }
      }
    }
    this.progressTimer = setInterval(() => this.progress(), 500);
    // Sessions heartbeat from their welcome on, also while the rest are still connecting: a
    // connect phase longer than the server's silence timeout (30 s) would otherwise lose them.
    this.heartbeatTimer = setInterval(() => this.heartbeatSlice(), HEARTBEAT_SLICE_MS);
    await this.connectAll();
    const joinStart = performance.now();
    if (setup.target !== 'parley') await this.joinAll();
    const joinMs = performance.now() - joinStart;
    post({
      type: 'ready',
      connected: this.connected,
      failed: this.failedCount,
      failures: this.failures,
      connectMs: Math.round(this.lastReady - this.firstOpen),
      joinMs: Math.round(joinMs),
      ...(setup.discovery ? { byNode: this.byNode, discovery: { ...this.discoveryFigures, totalMs: Math.round(this.discoveryFigures.totalMs), maxMs: Math.round(this.discoveryFigures.maxMs) } } : {}),
    });
  }

  private progress(): void {
    const r = this.run;
    post({ type: 'progress', connected: this.connected, failed: this.failedCount, sent: r?.sent ?? 0, delivered: r?.delivered ?? 0, errors: r?.errors ?? 0 });
  }

  /** Opens every connection, at most `connectConcurrency` handshakes (and `connectRate` starts per second) at once; bounded in time. */
  private connectAll(): Promise<void> {
    const total = this.conns.length;
    const limit = Math.max(1, this.setup.connectConcurrency);
    const rate = this.setup.connectRate ?? 0;
    let next = 0;
    this.firstOpen = performance.now();
    return new Promise((resolve) => {
      if (total === 0) return resolve();
      const giveUp = this.setup.giveUpPct ?? 0;
      const pump = (): void => {
        const stalled = this.failedCount - this.failedAtLastReady >= 100 && performance.now() - Math.max(this.lastReady, this.firstOpen) > 60_000;
        if (giveUp > 0 && next < total && ((this.failedCount >= 500 && this.failedCount * 100 > next * giveUp) || stalled)) {
          const left = total - next;
          const reason = stalled
            ? `not attempted (gave up: no session up for 60 s, ${this.failedCount - this.failedAtLastReady} failed meanwhile)`
            : `not attempted (gave up after ${this.failedCount} of ${next} failed)`;
          for (let i = next; i < total; i++) this.conns[i]!.failed = true;
          this.failedCount += left;
          this.failures[reason] = left;
          next = total;
        }
        const allowed = rate > 0 ? Math.min(total, Math.floor(((performance.now() - this.firstOpen) / 1000) * rate) + 1) : total;
        while (next < allowed && next - (this.connected + this.failedCount) < limit) this.begin(this.conns[next++]!);
        if (this.connected + this.failedCount >= total) {
          clearInterval(watchdog);
          clearInterval(pacer);
          this.pump = undefined;
          resolve();
        }
      };
      // Connections that neither succeed nor fail in time are written off, so this ends.
      const watchdog = setInterval(() => {
        const now = performance.now();
        for (let i = 0; i < next; i++) {
          const c = this.conns[i]!;
          if (!c.ready && !c.wasReady && !c.failed && now - c.openedAt > this.setup.connectTimeoutMs) c.fail(c.stalledAt());
        }
        pump();
      }, 250);
      const pacer = setInterval(() => (rate > 0 ? pump() : undefined), 20);
      this.pump = pump;
      pump();
    });
  }

  /** Starts one connection: straight to the target, or to the node discovery names first. */
  private begin(c: Conn): void {
    const bases = this.setup.discovery;
    if (!bases || bases.length === 0) return c.open();
    c.openedAt = performance.now();
    const base = bases[(this.setup.workerId + this.discoveryTurn++) % bases.length]!;
    // A kept-alive socket the server closed meanwhile fails the GET at once (ECONNRESET,
    // "socket hang up"): like any HTTP client, ask again on a fresh connection, three times at most.
    const ask = (attempt: number): Promise<{ node_id: string; ws_url: string }> =>
      this.discover(base, this.setup.connectTimeoutMs, attempt > 0).catch((err: unknown) => {
        const code = (err as { code?: string }).code;
        if (attempt < 3 && !c.failed && (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up/.test(String(err)))) {
          this.discoveryFigures.retries++;
          return ask(attempt + 1);
        }
        throw err;
      });
    ask(0).then(
      (s) => {
        if (c.failed) return;
        c.node = s.node_id;
        const n = (this.byNode[s.node_id] ??= { assigned: 0, connected: 0, failed: 0 });
        n.assigned++;
        c.open(s.ws_url);
      },
      (err: unknown) => {
        this.discoveryFigures.failures++;
        c.fail(`discovery: ${err instanceof Error ? err.message.slice(0, 60) : String(err)}`);
      },
    );
  }

  /** GET /v1/servers; the first server of the answer (the least loaded first, as the SDK takes it). */
  private discover(base: string, timeoutMs: number, freshSocket = false): Promise<{ node_id: string; ws_url: string }> {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      // A retry goes over a new connection of its own, not another kept-alive one.
      const req = http.get(`${base}/v1/servers`, { agent: freshSocket ? false : this.discoveryAgent, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          const ms = performance.now() - t0;
          this.discoveryFigures.asks++;
          this.discoveryFigures.totalMs += ms;
          this.discoveryFigures.maxMs = Math.max(this.discoveryFigures.maxMs, ms);
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
          try {
            const first = (JSON.parse(body) as { servers: { node_id: string; ws_url: string }[] }).servers[0];
            if (!first) return reject(new Error('no servers'));
            resolve(first);
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
  }

  private pump: (() => void) | undefined;

  onReady(c: Conn): void {
    this.connected++;
    this.lastReady = performance.now();
    this.failedAtLastReady = this.failedCount;
    if (c.node !== undefined) this.byNode[c.node]!.connected++;
    this.pump?.();
  }

  onConnectFailed(c: Conn, reason: string): void {
    this.failedCount++;
    if (c.node !== undefined) this.byNode[c.node]!.failed++;
    this.failures[reason] = (this.failures[reason] ?? 0) + 1;
    this.pump?.();
  }

  onClose(c: Conn, code: number): void {
    this.closedCount++;
    const bin = Math.floor(Date.now() / 5_000);
    this.closedByTime[bin] = (this.closedByTime[bin] ?? 0) + 1;
    if (c.node !== undefined) this.closedByNode[c.node] = (this.closedByNode[c.node] ?? 0) + 1;
    this.closeCodes[code] = (this.closeCodes[code] ?? 0) + 1;
    if (this.run) this.run.closed++;
  }

  /** Peers: every member subscribes to its channels; waits for every confirmation (bounded). */
  private joinAll(): Promise<void> {
    const memberships = new Map<number, string[]>();
    for (const g of this.groups) for (const m of g.spec.members) (memberships.get(m) ?? memberships.set(m, []).get(m)!).push(g.spec.channel);
    let waiting = 0;
    for (const [idx, channels] of memberships) {
      const c = this.conns[idx]!;
      if (!c.ready) continue;
      waiting++;
      for (const ch of channels) c.join(ch);
    }
    if (waiting === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.joinWaiters = undefined;
        resolve();
      }, this.setup.connectTimeoutMs);
      this.joinWaiters = () => {
        if (this.joinedConns >= waiting) {
          clearTimeout(timer);
          this.joinWaiters = undefined;
          resolve();
        }
      };
    });
  }

  onJoined(_c: Conn): void {
    this.joinedConns++;
    this.joinWaiters?.();
  }

  private hbTick = 0;

  /** Every connection heartbeats once per interval; one timer, a slice of connections per tick. */
  private heartbeatSlice(): void {
    const slices = Math.max(1, Math.round(this.setup.heartbeatMs / HEARTBEAT_SLICE_MS));
    const slice = this.hbTick++ % slices;
    for (let i = slice; i < this.conns.length; i += slices) {
      const c = this.conns[i]!;
      if (c.ready) {
        c.heartbeat();
        this.heartbeats++;
      } else if (!c.failed) this.heartbeatSkipped++;
    }
  }

  // ---- Load

  async runLoad(msg: RunMessage): Promise<void> {
    const run: Run = {
      msg,
      firstId: this.nextId,
      lastId: this.nextId - 1,
      scheduled: 0,
      sent: 0,
      expected: 0,
      delivered: 0,
      errors: 0,
      errorCodes: {},
      timeouts: 0,
      late: 0,
      acks: 0,
      closed: 0,
      outstanding: 0,
      chatter: { reads: 0, typing: 0, readsSkipped: 0, notOpen: 0, slicesDropped: 0, receipts: 0, typingNotices: 0, errors: 0, errorCodes: {} },
      latency: newHistogram(),
      ackLatency: newHistogram(),
      lag: newHistogram(),
      t0: 0,
    };
    this.run = run;
    const wait = msg.startAt - Date.now();
    if (wait > 0) await sleep(wait);
    run.t0 = performance.now();
    const stopChatter = this.chatterList.length > 0 ? this.startChatter(run) : undefined;
    const total = this.groups.length === 0 ? 0 : Math.floor((msg.rate * msg.durationMs) / 1000);
    const interval = total > 0 ? 1000 / msg.rate : 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        const due = Math.min(total, Math.floor((now - run.t0) / interval) + 1);
        let budget = MAX_SENDS_PER_TICK;
        while (run.scheduled < due && budget-- > 0) this.sendOne(run, run.t0 + run.scheduled * interval, now);
        if (run.scheduled >= total) return resolve();
        const next = run.t0 + run.scheduled * interval;
        setTimeout(tick, Math.max(0, next - performance.now()));
      };
      if (total === 0) setTimeout(resolve, msg.durationMs);
      else tick();
    });
    // The chatter speaks for the run's duration (it stops itself then); what it causes still counts while draining.
    if (stopChatter) while (performance.now() < run.t0 + msg.durationMs) await sleep(Math.min(50, Math.max(1, run.t0 + msg.durationMs - performance.now())));
    stopChatter?.();
    // Drain: wait for what is outstanding, bounded.
    const drainEnd = performance.now() + msg.drainMs;
    while (run.outstanding > 0 && performance.now() < drainEnd) await sleep(20);
    for (const c of this.conns) if (c instanceof ParleyConn) c.flushAck();
    this.writeOff(run);
    const stats: RunStats = {
      runId: msg.runId,
      scheduled: run.scheduled,
      sent: run.sent,
      expected: run.expected,
      delivered: run.delivered,
      errors: run.errors,
      errorCodes: run.errorCodes,
      timeouts: run.timeouts,
      late: run.late,
      acks: run.acks,
      latency: encodeHistogram(run.latency),
      ackLatency: encodeHistogram(run.ackLatency),
      sendLag: encodeHistogram(run.lag),
      durationMs: Math.round(performance.now() - run.t0),
      closedDuringRun: run.closed,
      ...(this.setup.chatter ? { chatter: run.chatter } : {}),
    };
    for (const h of [run.latency, run.ackLatency, run.lag]) h.destroy();
    this.run = undefined;
    post({ type: 'runDone', stats });
  }

  /**
   * Group chatter during a run: slice i of the run is due at t0 + i × CHATTER_SLICE_MS, for the
   * run's whole duration (whatever the message rate); each membership speaks once per second in
   * its slice. A timer catches up with the slices that came due (at most a second's worth per
   * tick; older ones are dropped and counted).
   */
  private startChatter(run: Run): () => void {
    let done = 0;
    const slices = Math.floor(run.msg.durationMs / CHATTER_SLICE_MS);
    const tick = (): void => {
      const due = Math.min(slices, Math.floor((performance.now() - run.t0) / CHATTER_SLICE_MS) + 1);
      if (due - done > CHATTER_SLICES) {
        run.chatter.slicesDropped += due - done - CHATTER_SLICES;
        done = due - CHATTER_SLICES;
      }
      while (done < due) this.chatterSlice(run, done++ % CHATTER_SLICES);
    };
    const timer = setInterval(tick, CHATTER_SLICE_MS);
    tick();
    return () => {
      clearInterval(timer);
      tick(); // the slices due up to the end (at most the run's duration)
    };
  }

  private chatterSlice(run: Run, slice: number): void {
    const list = this.chatterList;
    const c = run.chatter;
    for (let i = slice; i < list.length; i += CHATTER_SLICES) {
      const m = list[i]!;
      if (!m.conn.ready) {
        c.notOpen++;
        continue;
      }
      if (m.seq > 0) {
        if (m.conn.write(m.chatter.read(m.seq))) c.reads++;
      } else c.readsSkipped++;
      if (m.conn.write(m.chatter.typing)) c.typing++;
    }
  }

  /** A read receipt (typing false) or a typing notice came in: counted, never a delivery. */
  onChatterIn(typing: boolean): void {
    const run = this.run;
    if (!run) return;
    if (typing) run.chatter.typingNotices++;
    else run.chatter.receipts++;
  }

  onChatterError(code: string): void {
    const run = this.run;
    if (!run) return;
    run.chatter.errors++;
    run.chatter.errorCodes[code || 'UNKNOWN'] = (run.chatter.errorCodes[code || 'UNKNOWN'] ?? 0) + 1;
  }

  private sendOne(run: Run, dueAt: number, now: number): void {
    run.scheduled++;
    const g = this.groups[this.rr++ % this.groups.length]!;
    const members = g.spec.members;
    const from = members[g.next++ % members.length]!;
    const id = this.nextId++;
    run.lastId = id;
    const slot = id & MASK;
    if (this.remaining[slot]! > 0) {
      // The ring wrapped over a message still outstanding: it is written off now.
      this.expire(run, slot, now);
    }
    const conn = this.conns[from]!;
    if (!conn.write(g.codec.encode(id))) {
      run.errors++;
      run.errorCodes.SOCKET_NOT_OPEN = (run.errorCodes.SOCKET_NOT_OPEN ?? 0) + 1;
      this.remaining[slot] = 0;
      this.slotId[slot] = id;
      return;
    }
    const expect = members.length - 1;
    this.due[slot] = dueAt;
    this.remaining[slot] = expect;
    this.sender[slot] = from;
    this.slotId[slot] = id;
    this.ackPending[slot] = this.setup.target === 'parley' ? 1 : 0;
    run.sent++;
    run.expected += expect;
    run.outstanding += expect;
    recordMs(run.lag, performance.now() - dueAt);
  }

  private expire(run: Run, slot: number, now: number): void {
    const left = this.remaining[slot]!;
    if (left <= 0) return;
    run.timeouts += left;
    run.outstanding -= left;
    recordMs(run.latency, now - this.due[slot]!, left);
    this.remaining[slot] = 0;
  }

  /** Whatever is still outstanding after the drain counts as timed out, at the time it waited. */
  private writeOff(run: Run): void {
    const now = performance.now();
    for (let id = Math.max(run.firstId, run.lastId - MASK); id <= run.lastId; id++) {
      const slot = id & MASK;
      if (this.slotId[slot] === id) {
        this.expire(run, slot, now);
        this.ackPending[slot] = 0;
      }
    }
    run.outstanding = 0;
  }

  onDelivery(c: Conn, id: number): void {
    const run = this.run;
    if (id < 0) return;
    const slot = id & MASK;
    if (this.slotId[slot] !== id) {
      if (run) run.late++;
      return;
    }
    if (this.sender[slot] === c.index) return; // the sender's own copy (Parley sends one)
    if (this.remaining[slot]! <= 0 || !run) {
      if (run) run.late++;
      return;
    }
    this.remaining[slot]!--;
    run.delivered++;
    run.outstanding--;
    recordMs(run.latency, performance.now() - this.due[slot]!);
  }

  onAck(id: number): void {
    const run = this.run;
    const slot = id & MASK;
    if (!run || this.slotId[slot] !== id || !this.ackPending[slot]) return;
    this.ackPending[slot] = 0;
    run.acks++;
    recordMs(run.ackLatency, performance.now() - this.due[slot]!);
  }

  onSendError(id: number, code: string): void {
    const run = this.run;
    if (!run) return;
    run.errors++;
    run.errorCodes[code || 'UNKNOWN'] = (run.errorCodes[code || 'UNKNOWN'] ?? 0) + 1;
    const slot = id & MASK;
    if (this.slotId[slot] !== id) return;
    this.ackPending[slot] = 0;
    if (FINAL_ERRORS.has(code)) {
      // Refused: no delivery will come, so none is expected (it is counted as an error instead).
      const left = this.remaining[slot]!;
      if (left > 0) {
        run.expected -= left;
        run.outstanding -= left;
        this.remaining[slot] = 0;
      }
    }
  }

  status(): void {
    let open = 0;
    const openByNode: Record<string, number> = {};
    for (const c of this.conns) {
      if (!c.ready) continue;
      open++;
      if (c.node !== undefined) openByNode[c.node] = (openByNode[c.node] ?? 0) + 1;
    }
    post({
      type: 'status',
      open,
      closed: this.closedCount,
      closeCodes: this.closeCodes,
      heartbeats: this.heartbeats,
      heartbeatSkipped: this.heartbeatSkipped,
      closedByTime: this.closedByTime,
      ...(this.setup.discovery ? { openByNode, closedByNode: this.closedByNode } : {}),
    });
  }

  async close(): Promise<void> {
    this.discoveryAgent.destroy();
    clearInterval(this.heartbeatTimer);
    clearInterval(this.progressTimer);
    for (const c of this.conns) c.close();
    const end = performance.now() + 3_000;
    const allClosed = (): boolean => this.conns.every((c) => !c.ws || c.ws.readyState === WS_CLOSED);
    while (!allClosed() && performance.now() < end) await sleep(50);
    for (const c of this.conns) if (c.ws && c.ws.readyState !== WS_CLOSED) c.ws.terminate();
    post({ type: 'closed' });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const worker = new LoadWorker();
let busy: Promise<void> = Promise.resolve();

process.on('message', (m: ToWorker) => {
  const step = async (): Promise<void> => {
    switch (m.type) {
      case 'setup':
        return worker.start(m);
      case 'run':
        return worker.runLoad(m);
      case 'status':
        return worker.status();
      case 'close':
        await worker.close();
        setTimeout(() => process.exit(0), 50);
        return;
    }
  };
  busy = busy.then(step).catch((err: unknown) => {
    post({ type: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});
// The coordinator went away: so do we (its sockets would otherwise linger).
process.on('disconnect', () => process.exit(0));
