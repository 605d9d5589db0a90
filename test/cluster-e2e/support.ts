/**
 * Helpers for the multi-node end-to-end tests: devices that record every raw frame they
 * receive (per connection, below the SDK's own de-duplication), a paced load generator that
 * retries like an app would, and the delivery checks the cluster contract asks for.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { ParleyClient, ParleyError, type Delivery, type Presence, type SendAck, type WebSocketFactory } from '../../client/index.ts';
import { decodeServerFrame, encodeClientFrame } from '../../proto/client-codec.ts';
import type { ClientBody, ClientBodyName, Message, ServerFrame, Welcome } from '../../proto/client-frames.ts';
import { ownerOf } from '../../runtime/cluster/hash-ring.ts';
import { waitForViews } from '../../chaos/cluster.ts';
import type { ClusterNode, TestCluster } from '../support/cluster.ts';
import { newUser, type TestUser } from '../support/server.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One WebSocket connection as the device saw it, frame by frame. */
export interface ConnRecord {
  readonly url: string;
  readonly openedAtMs: number;
  welcome?: Welcome;
  /** Last inbox seq sent in hello (read off the SDK when the socket opened). */
  helloFrom?: number;
  /** Every delivery frame on this connection, in arrival order, duplicates included. */
  readonly deliveries: Delivery[];
  closeCode?: number;
  closedAtMs?: number;
}

export interface Device {
  readonly user: TestUser;
  readonly deviceId: string;
  readonly client: ParleyClient;
  /** What the SDK emitted (de-duplicated by the SDK across reconnects). */
  readonly deliveries: Delivery[];
  readonly presences: (Presence & { atMs: number })[];
  readonly welcomes: (Welcome & { atMs: number })[];
  readonly disconnects: { code: number; reason: string; atMs: number; willReconnect: boolean }[];
  readonly errors: ParleyError[];
  /** Every connection this device made, with its raw frames. */
  readonly conns: ConnRecord[];
  /** The node id of the current (last) welcome. */
  readonly nodeId: string | undefined;
  close(): void;
}

/**
 * A `ws` WebSocket that also records each connection's raw delivery frames and close code, so
 * tests can check the server's per-connection guarantees (order, no gap, no duplicate, resume
 * point), which the SDK would otherwise hide by dropping repeats.
 */
function tappedWebSocket(conns: ConnRecord[], lastAcked: () => number): WebSocketFactory {
  class Tapped extends WebSocket {
    constructor(url: string) {
      super(url);
      const rec: ConnRecord = { url, openedAtMs: Date.now(), deliveries: [] };
      conns.push(rec);
      this.addEventListener('open', () => {
        rec.helloFrom = lastAcked();
      });
      this.addEventListener('message', (ev) => {
        const data = ev.data;
        const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.isBuffer(data) ? new Uint8Array(data) : undefined;
        if (!bytes) return;
        try {
          const f = decodeServerFrame(bytes);
          if (f.body === 'delivery') rec.deliveries.push(f.delivery);
          else if (f.body === 'welcome') rec.welcome = f.welcome;
        } catch {
          // the SDK reports undecodable frames itself
        }
      });
      this.addEventListener('close', (ev) => {
        rec.closeCode = ev.code;
        rec.closedAtMs = Date.now();
      });
    }
  }
  return Tapped as unknown as WebSocketFactory;
}

/**
 * Opens a device of `user`. `servers` are WebSocket URLs, best first (the first one is used
 * first; the SDK moves to the next on each reconnect).
 */
/** Every device opened by this test process, so an after hook can close them all (no reconnect loops left behind). */
const openDevices = new Set<Device>();

export function closeAllDevices(): void {
  for (const d of openDevices) d.close();
  openDevices.clear();
}

/** Writes every node's log to $PARLEY_E2E_LOGS/<tag>/<node>.log when that variable is set. */
export function dumpLogs(cluster: TestCluster | undefined, tag: string): void {
  const dir = process.env.PARLEY_E2E_LOGS;
  if (!dir || !cluster) return;
  mkdirSync(join(dir, tag), { recursive: true });
  for (const n of cluster.nodes) writeFileSync(join(dir, tag, `${n.nodeId}.log`), n.logs.join('\n') + '\n');
}

export async function openDevice(
  user: TestUser,
  deviceId: string,
  servers: readonly string[],
  options: { reconnect?: boolean; lastInboxSeq?: number; autoAck?: boolean; connect?: boolean } = {},
): Promise<Device> {
  const conns: ConnRecord[] = [];
  let client: ParleyClient | undefined;
  const WS = tappedWebSocket(conns, () => client?.lastAcked ?? 0);
  client = new ParleyClient({
    servers,
    token: user.token,
    deviceId,
    WebSocket: WS,
    reconnect: options.reconnect ?? false,
    ...(options.lastInboxSeq !== undefined ? { lastInboxSeq: options.lastInboxSeq } : {}),
    ...(options.autoAck !== undefined ? { autoAck: options.autoAck } : {}),
  });
  const device = {
    user,
    deviceId,
    client,
    deliveries: [] as Delivery[],
    presences: [] as (Presence & { atMs: number })[],
    welcomes: [] as (Welcome & { atMs: number })[],
    disconnects: [] as { code: number; reason: string; atMs: number; willReconnect: boolean }[],
    errors: [] as ParleyError[],
    conns,
    get nodeId() {
      return this.welcomes.at(-1)?.node_id;
    },
    close: () => {
      openDevices.delete(device);
      client!.close();
    },
  };
  openDevices.add(device);
  client.on('delivery', (d) => device.deliveries.push(d));
  client.on('presence', (p) => device.presences.push({ ...p, atMs: Date.now() }));
  client.on('welcome', (w) => device.welcomes.push({ ...w, atMs: Date.now() }));
  client.on('disconnect', (d) => device.disconnects.push({ ...d, atMs: Date.now() }));
  client.on('error', (e) => device.errors.push(e));
  if (options.connect ?? true) await client.connect();
  return device;
}

/** Mutual friends (both added each other). */
export async function befriend(a: TestUser, b: TestUser): Promise<void> {
  const first = await a.http.addFriend(b.userId);
  const second = await b.http.addFriend(a.userId);
  if (first.status !== 'pending' || second.status !== 'friends') throw new Error('friendship did not form');
}

/** The node that owns an actor identity (`user/<id>`, `channel/<id>`) among these node ids. */
export function placement(kind: 'user' | 'channel', key: string, nodeIds: readonly string[]): string {
  return ownerOf(`${kind}/${key}`, nodeIds)!;
}

/** Polls until every listed node lists exactly `expected` in GET /v1/servers (its membership view). */
export function waitForView(nodes: readonly ClusterNode[], expected: readonly string[], timeoutMs = 20_000): Promise<number> {
  return waitForViews(nodes, expected, timeoutMs, 50);
}

/** Codes after which an app retries a send with the same client_msg_id. */
const RETRYABLE = new Set(['UNAVAILABLE', 'TIMEOUT', 'OVERLOADED', 'STOPPED', 'FENCED', 'RATE_LIMITED', 'ACTOR_FAILED', 'INTERNAL']);

export interface SendOutcome {
  readonly clientMsgId: string;
  readonly channelId: string;
  readonly senderId: string;
  readonly startedAtMs: number;
  ack?: SendAck;
  ackedAtMs?: number;
  /** Error codes of failed attempts, in order. */
  readonly errors: string[];
}

/**
 * Sends with the same client_msg_id until acked, the way an app is told to (retryable codes
 * only), bounded in attempts and time.
 */
export async function sendWithRetry(device: Device, channelId: string, text: string, clientMsgId: string, outcome?: SendOutcome, deadlineMs = 40_000): Promise<SendOutcome> {
  const o: SendOutcome = outcome ?? { clientMsgId, channelId, senderId: device.user.userId, startedAtMs: Date.now(), errors: [] };
  const end = Date.now() + deadlineMs;
  for (let attempt = 0; attempt < 60 && Date.now() < end; attempt++) {
    try {
      o.ack = await device.client.send(channelId, text, clientMsgId);
      o.ackedAtMs = Date.now();
      return o;
    } catch (err) {
      const code = err instanceof ParleyError ? err.code : 'THROWN';
      o.errors.push(code);
      if (!RETRYABLE.has(code)) return o;
      await sleep(Math.min(1_000, 100 * (attempt + 1)));
    }
  }
  return o;
}

export interface LoadSender {
  readonly device: Device;
  readonly channelId: string;
}

/**
 * Sends at a steady total rate, round-robin over `senders`, each send retried like an app
 * would. `stop()` ends the sending and waits (bounded) for every send in flight to settle.
 */
export class LoadGenerator {
  readonly outcomes: SendOutcome[] = [];
  private readonly inflight = new Set<Promise<SendOutcome>>();
  private timer: NodeJS.Timeout | undefined;
  private n = 0;
  private readonly tag = Math.random().toString(36).slice(2, 8);

  constructor(
    private readonly senders: readonly LoadSender[],
    private readonly ratePerSec: number,
  ) {}

  start(): void {
    const interval = 1000 / this.ratePerSec;
    const startedAt = Date.now();
    // Catch up on ticks the event loop delayed, so the rate holds on a busy machine.
    this.timer = setInterval(() => {
      const due = Math.floor((Date.now() - startedAt) / interval);
      while (this.n < due) this.sendOne();
    }, Math.max(5, Math.floor(interval)));
  }

  get sent(): number {
    return this.n;
  }

  /** Sends in flight right now. */
  get pending(): number {
    return this.inflight.size;
  }

  private sendOne(): void {
    const s = this.senders[this.n % this.senders.length]!;
    const i = this.n++;
    const clientMsgId = `${this.tag}-${i}`;
    const o: SendOutcome = { clientMsgId, channelId: s.channelId, senderId: s.device.user.userId, startedAtMs: Date.now(), errors: [] };
    this.outcomes.push(o);
    const p = sendWithRetry(s.device, s.channelId, `load ${i}`, clientMsgId, o);
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  async stop(settleMs = 20_000): Promise<void> {
    clearInterval(this.timer);
    const end = Date.now() + settleMs;
    while (this.inflight.size > 0 && Date.now() < end) await sleep(50);
  }

  acked(): SendOutcome[] {
    return this.outcomes.filter((o) => o.ack !== undefined);
  }

  unacked(): SendOutcome[] {
    return this.outcomes.filter((o) => o.ack === undefined);
  }

  errorCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const o of this.outcomes) for (const e of o.errors) counts[e] = (counts[e] ?? 0) + 1;
    return counts;
  }
}

/** Every inbox entry of the user, read with a fresh sync from 0 over `client`. */
export async function syncAll(client: ParleyClient, maxPages = 100): Promise<Delivery[]> {
  const out: Delivery[] = [];
  let after = 0;
  for (let page = 0; page < maxPages; page++) {
    const r = await client.sync(after, 500);
    out.push(...r.deliveries);
    if (r.deliveries.length > 0) after = r.deliveries.at(-1)!.inbox_seq;
    if (!r.has_more) return out;
  }
  throw new Error(`inbox longer than ${maxPages} pages`);
}

/** The whole history of a channel, oldest first. */
export async function historyAll(client: ParleyClient, channelId: string, maxPages = 200): Promise<Message[]> {
  const out: Message[] = [];
  let before: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const r = await client.history(channelId, { limit: 100, ...(before ? { before } : {}) });
    out.push(...r.messages);
    if (!r.has_more || r.messages.length === 0) return out.reverse();
    before = r.messages.at(-1)!.message_id;
  }
  throw new Error(`history longer than ${maxPages} pages`);
}

/**
 * Checks one stream of deliveries against the contract and returns the problems found (empty:
 * fine). `expected` is every acked message id this user must have; `gapFree` demands inbox_seq
 * be exactly 1..N (a full stream from 0).
 */
export function checkDeliveries(what: string, deliveries: readonly Delivery[], expected: ReadonlySet<string>, options: { gapFree?: boolean; firstSeq?: number } = {}): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  const lastSeqByChannel = new Map<string, number>();
  let prevInbox: number | undefined;
  for (const d of deliveries) {
    const id = d.message.message_id;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    const last = lastSeqByChannel.get(d.message.channel_id);
    if (last !== undefined && d.message.channel_seq <= last) {
      problems.push(`${what}: channel ${d.message.channel_id} seq ${d.message.channel_seq} after ${last} (out of channel order)`);
    }
    lastSeqByChannel.set(d.message.channel_id, d.message.channel_seq);
    if (prevInbox !== undefined && d.inbox_seq !== prevInbox + 1) problems.push(`${what}: inbox_seq ${d.inbox_seq} after ${prevInbox}`);
    prevInbox = d.inbox_seq;
  }
  if (options.gapFree && deliveries.length > 0 && deliveries[0]!.inbox_seq !== (options.firstSeq ?? 1)) {
    problems.push(`${what}: first inbox_seq ${deliveries[0]!.inbox_seq}, expected ${options.firstSeq ?? 1}`);
  }
  for (const [id, n] of seen) if (n > 1) problems.push(`${what}: message ${id} delivered ${n} times`);
  let missing = 0;
  for (const id of expected) if (!seen.has(id)) missing++;
  if (missing > 0) problems.push(`${what}: ${missing} of ${expected.size} acked messages missing`);
  return problems.slice(0, 20);
}

/** Acked message ids per member, given each channel's members. */
export function expectedPerUser(acked: readonly SendOutcome[], membersOf: ReadonlyMap<string, readonly string[]>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const o of acked) {
    for (const m of membersOf.get(o.channelId) ?? []) {
      let s = out.get(m);
      if (!s) out.set(m, (s = new Set()));
      s.add(o.ack!.message_id);
    }
  }
  return out;
}

/**
 * Cluster-wide: every acked message_id names one message, i.e. one (channel, channel_seq). A
 * resend answered with the first ack repeats the same pair, which is fine; two different pairs
 * under one id are two nodes stamping the same id.
 */
export function sharedMessageIds(acks: readonly SendAck[]): string[] {
  const owners = new Map<string, Set<string>>();
  for (const a of acks) {
    let s = owners.get(a.message_id);
    if (!s) owners.set(a.message_id, (s = new Set()));
    s.add(`${a.channel_id}#${a.channel_seq}`);
  }
  return [...owners].filter(([, s]) => s.size > 1).map(([id, s]) => `message_id ${id} acked for ${[...s].join(' and ')}`);
}

/** Checks a channel's history: channel_seq exactly 1..N, unique ids, every acked id present once. */
export function checkHistory(channelId: string, messages: readonly Message[], ackedIds: readonly string[]): string[] {
  const problems: string[] = [];
  messages.forEach((m, i) => {
    if (m.channel_seq !== i + 1) problems.push(`history ${channelId}: position ${i + 1} has channel_seq ${m.channel_seq}`);
  });
  const count = new Map<string, number>();
  for (const m of messages) count.set(m.message_id, (count.get(m.message_id) ?? 0) + 1);
  for (const [id, n] of count) if (n > 1) problems.push(`history ${channelId}: ${id} ${n} times`);
  const byClient = new Map<string, number>();
  for (const m of messages) {
    const k = `${m.sender_id}:${m.client_msg_id}`;
    byClient.set(k, (byClient.get(k) ?? 0) + 1);
  }
  for (const [k, n] of byClient) if (n > 1) problems.push(`history ${channelId}: client_msg_id ${k} stored ${n} times`);
  for (const id of ackedIds) if (!count.has(id)) problems.push(`history ${channelId}: acked ${id} missing`);
  return problems.slice(0, 20);
}

/**
 * Per-connection checks of a device's raw frames: deliveries on each connection go in inbox
 * order without gap or repeat, and each connection starts right after its resume point (the
 * hello's seq, or the device's stored cursor when that is later; never earlier than the hello's).
 */
export function checkConnections(device: Device): string[] {
  const problems: string[] = [];
  device.conns.forEach((c, i) => {
    const what = `${device.user.username}/${device.deviceId} conn ${i} (${c.welcome?.node_id ?? 'no welcome'})`;
    const resumed = c.welcome?.resumed_after_inbox_seq;
    if (resumed !== undefined && c.helloFrom !== undefined && resumed < c.helloFrom && resumed < c.welcome!.inbox_head_seq) {
      problems.push(`${what}: resumed after ${resumed}, before the hello's ${c.helloFrom}`);
    }
    let prev = resumed === undefined ? c.helloFrom : Math.max(resumed, c.helloFrom ?? 0);
    for (const d of c.deliveries) {
      if (prev !== undefined && d.inbox_seq !== prev + 1) {
        problems.push(`${what}: inbox_seq ${d.inbox_seq} after ${prev}`);
        break;
      }
      prev = d.inbox_seq;
    }
  });
  return problems;
}

/** Log lines of a node at level >= warn (40), parsed. */
export function warnings(node: ClusterNode, minLevel = 40): { level: number; msg: string; [k: string]: unknown }[] {
  const out: { level: number; msg: string }[] = [];
  for (const line of node.logs) {
    try {
      const j = JSON.parse(line) as { level: number; msg: string };
      if (j.level >= minLevel) out.push(j);
    } catch {
      // not JSON
    }
  }
  return out;
}

/** Lines of every node's log containing `text`. */
export function logLines(cluster: TestCluster, text: string): { nodeId: string; line: string }[] {
  return cluster.nodes.flatMap((n) => n.logs.filter((l) => l.includes(text)).map((line) => ({ nodeId: n.nodeId, line })));
}

/** p50/p99/max of a list of numbers. */
export function percentiles(xs: readonly number[]): { n: number; p50: number; p90: number; p99: number; max: number; mean: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.at(-1) ?? NaN, mean: Math.round(mean * 100) / 100 };
}

export interface ChatScenario {
  readonly users: TestUser[];
  /** Every device, in creation order; `main` devices first. */
  readonly devices: Device[];
  /** channel id -> member user ids */
  readonly membersOf: Map<string, string[]>;
  readonly dms: string[];
  readonly group: string;
  readonly senders: LoadSender[];
}

/**
 * Users spread over `nodes` (user i on node i mod n, its device's server list starting there and
 * going round the others), a DM between each user and the next (so on different nodes), one
 * group of everyone, and optionally a second device for every other user, on the next node.
 * Every member of every channel sends to it.
 */
export async function setupChat(
  nodes: readonly ClusterNode[],
  options: {
    usersPerNode: number;
    secondDevices?: boolean;
    reconnect?: boolean;
    /** Whether user i will do (e.g. its actor's placement); signs up again (bounded) until it does. */
    userOk?: (i: number, userId: string) => boolean;
  },
): Promise<ChatScenario> {
  const n = nodes.length;
  const total = n * options.usersPerNode;
  const serversFrom = (k: number) => Array.from({ length: n }, (_, j) => nodes[(k + j) % n]!.wsUrl);
  const users: TestUser[] = [];
  for (let i = 0; i < total; i++) {
    let u = await newUser(nodes[i % n]!, 'u');
    for (let tries = 0; options.userOk && !options.userOk(i, u.userId) && tries < 40; tries++) u = await newUser(nodes[i % n]!, 'u');
    users.push(u);
  }
  const membersOf = new Map<string, string[]>();
  const dms: string[] = [];
  for (let i = 0; i < total; i++) {
    const a = users[i]!;
    const b = users[(i + 1) % total]!;
    const { channel_id } = await a.http.openDm(b.userId);
    dms.push(channel_id);
    membersOf.set(channel_id, [a.userId, b.userId]);
  }
  const { channel_id: group } = await users[0]!.http.createGroup('everyone', users.slice(1).map((u) => u.userId));
  membersOf.set(group, users.map((u) => u.userId));
  const reconnect = options.reconnect ?? true;
  const main = await Promise.all(users.map((u, i) => openDevice(u, 'main', serversFrom(i % n), { reconnect })));
  const second = options.secondDevices
    ? await Promise.all(users.flatMap((u, i) => (i % 2 === 0 ? [openDevice(u, 'second', serversFrom((i + 1) % n), { reconnect })] : [])))
    : [];
  const senders: LoadSender[] = [];
  for (let i = 0; i < total; i++) {
    senders.push({ device: main[i]!, channelId: dms[i]! });
    senders.push({ device: main[(i + 1) % total]!, channelId: dms[i]! });
  }
  for (let i = 0; i < total; i++) {
    const d = second.find((s) => s.user === users[i]) ?? main[i]!;
    senders.push({ device: d, channelId: group });
  }
  return { users, devices: [...main, ...second], membersOf, dms, group, senders };
}

/** Waits (bounded) until every device of the scenario holds every acked message of its user. */
export async function waitForConvergence(s: ChatScenario, expected: Map<string, Set<string>>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const done = s.devices.every((d) => {
      const want = expected.get(d.user.userId) ?? new Set<string>();
      if (d.deliveries.length < want.size) return false;
      const have = new Set(d.deliveries.map((x) => x.message.message_id));
      for (const id of want) if (!have.has(id)) return false;
      return true;
    });
    if (done) return true;
    if (Date.now() > end) return false;
    await sleep(100);
  }
}

/**
 * The full check after a disturbance: every device's deliveries (once, in channel order, gap-free
 * inbox from 1, every acked message), each connection's raw frames, a fresh device per user
 * syncing from 0 on `verifier`, and every channel's history. Returns the problems found.
 */
export async function verifyScenario(s: ChatScenario, acked: readonly SendOutcome[], verifier: ClusterNode): Promise<{ problems: string[]; inboxSizes: number[] }> {
  const expected = expectedPerUser(acked, s.membersOf);
  const problems: string[] = [];
  for (const d of s.devices) {
    const name = `${d.user.username}/${d.deviceId}`;
    problems.push(...checkDeliveries(name, d.deliveries, expected.get(d.user.userId) ?? new Set(), { gapFree: true }));
    problems.push(...checkConnections(d));
  }
  const inboxSizes: number[] = [];
  for (const u of s.users) {
    const fresh = await openDevice(u, `verify-${Math.random().toString(36).slice(2, 8)}`, [verifier.wsUrl], { autoAck: false });
    try {
      const all = await syncAll(fresh.client);
      inboxSizes.push(all.length);
      problems.push(...checkDeliveries(`${u.username} sync from 0`, all, expected.get(u.userId) ?? new Set(), { gapFree: true }));
      const last = all.at(-1)?.inbox_seq ?? 0;
      if (last !== all.length) problems.push(`${u.username}: inbox has ${all.length} entries but ends at seq ${last}`);
    } finally {
      fresh.close();
    }
  }
  const reader = await openDevice(s.users[0]!, 'history-reader', [verifier.wsUrl], { autoAck: false });
  try {
    for (const [channelId, members] of s.membersOf) {
      const client = members.includes(s.users[0]!.userId) ? reader : undefined;
      let history: Message[];
      if (client) history = await historyAll(client.client, channelId);
      else {
        const member = s.users.find((u) => u.userId === members[0])!;
        const other = await openDevice(member, 'history-reader', [verifier.wsUrl], { autoAck: false });
        try {
          history = await historyAll(other.client, channelId);
        } finally {
          other.close();
        }
      }
      problems.push(...checkHistory(channelId, history, acked.filter((o) => o.channelId === channelId).map((o) => o.ack!.message_id)));
    }
  } finally {
    reader.close();
  }
  return { problems, inboxSizes };
}

/** Per device: how many acked messages it still lacks, and where its stream stands. */
export function convergenceReport(s: ChatScenario, expected: Map<string, Set<string>>): string[] {
  const out: string[] = [];
  for (const d of s.devices) {
    const want = expected.get(d.user.userId) ?? new Set<string>();
    const have = new Set(d.deliveries.map((x) => x.message.message_id));
    let missing = 0;
    for (const id of want) if (!have.has(id)) missing++;
    if (missing > 0) {
      out.push(
        `${d.user.username}/${d.deviceId} (user actor ${placement('user', d.user.userId, ['n1', 'n2', 'n3'])}/${placement('user', d.user.userId, ['n1', 'n2'])}, socket ${d.nodeId}): ` +
          `missing ${missing} of ${want.size}, last inbox_seq ${d.client.lastReceived}, conns ${d.conns.length}`,
      );
    }
  }
  return out;
}

/** Unacked sends grouped by channel, with their error codes and the channel's placement. */
export function unackedReport(load: LoadGenerator, nodeIds: readonly string[]): string[] {
  const by = new Map<string, SendOutcome[]>();
  for (const o of load.unacked()) {
    const l = by.get(o.channelId) ?? [];
    l.push(o);
    by.set(o.channelId, l);
  }
  return [...by].map(([ch, os]) => {
    const codes: Record<string, number> = {};
    for (const o of os) for (const e of o.errors) codes[e] = (codes[e] ?? 0) + 1;
    return `${ch} (owner ${placement('channel', ch, nodeIds)}): ${os.length} unacked, first started +${os[0]!.startedAtMs}, errors ${JSON.stringify(codes)}`;
  });
}

/**
 * A bare WebSocket session (no SDK: no retries, no resends), for tests that must see exactly
 * what the server answers to one request.
 */
export class RawSession {
  private nextRef = 1;
  private readonly waiting = new Map<number, (f: ServerFrame) => void>();
  readonly frames: (ServerFrame & { atMs: number })[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data));
      this.frames.push({ ...f, atMs: Date.now() });
      const w = this.waiting.get(f.ref);
      if (w) {
        this.waiting.delete(f.ref);
        w(f);
      }
    });
  }

  static async open(url: string, user: TestUser, deviceId: string): Promise<RawSession> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const s = new RawSession(ws);
    const welcome = await s.request('hello', { token: user.token, device_id: deviceId, last_inbox_seq: 0 }, 10_000);
    if (welcome.body !== 'welcome') {
      ws.close();
      throw new Error(`hello answered ${welcome.body}${welcome.body === 'error' ? ` ${welcome.error.code}` : ''}`);
    }
    return s;
  }

  /** Sends one frame and waits for the frame with its ref (or `timeoutMs`, then resolves undefined-ish as a TIMEOUT marker). */
  request<K extends ClientBodyName>(body: K, value: ClientBody<K>, timeoutMs: number): Promise<ServerFrame | { body: 'no answer'; ref: number }> {
    const ref = this.nextRef++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(ref);
        resolve({ body: 'no answer', ref });
      }, timeoutMs);
      this.waiting.set(ref, (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      this.ws.send(encodeClientFrame(ref, body, value));
    });
  }

  close(): void {
    this.ws.terminate();
  }
}

/**
 * What a node's graceful leave (SIGTERM, `parleyctl drain`) owes its clients and everyone else:
 * each device on it closed with 1012 after `stopAt`, welcomed by another node within 5 s and
 * resumed from its last acked seq (its first delivery the next one); no other device disturbed;
 * every acked message converged and verified. Returns the problems and the reconnect times.
 */
export async function handoffReport(
  s: ChatScenario,
  leaving: readonly Device[],
  leftNode: string,
  stopAt: number,
  acked: readonly SendOutcome[],
  verifier: ClusterNode,
): Promise<{ problems: string[]; reconnects: number[]; inboxSizes: number[] }> {
  const problems: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  const reconnects: number[] = [];
  for (const d of leaving) {
    const name = `${d.user.username}/${d.deviceId}`;
    const close = d.disconnects.find((x) => x.atMs >= stopAt);
    check(close?.code === 1012, `${name} closed with 1012 (got ${close?.code})`);
    const back = d.welcomes.find((w) => w.atMs >= (close?.atMs ?? stopAt));
    check(back !== undefined && back.node_id !== leftNode, `${name} reconnected to another node (closes ${JSON.stringify(d.disconnects.map((x) => x.code))})`);
    if (!close || !back) continue;
    reconnects.push(back.atMs - close.atMs);
    check(back.atMs - close.atMs < 5_000, `${name} reconnected within 5 s (${back.atMs - close.atMs} ms)`);
    const conn = d.conns.find((c) => c.welcome?.node_id === back.node_id && c.openedAtMs >= close.atMs);
    check(conn?.helloFrom !== undefined && conn.helloFrom > 0, `${name} resumed from a non-zero acked seq (${conn?.helloFrom})`);
    if (conn && conn.deliveries.length > 0) check(conn.deliveries[0]!.inbox_seq === conn.helloFrom! + 1, `${name}: first delivery after resume is ${conn.deliveries[0]!.inbox_seq}, hello said ${conn.helloFrom}`);
  }
  for (const d of s.devices.filter((x) => !leaving.includes(x))) check(d.disconnects.length === 0, `${d.user.username}/${d.deviceId} was disconnected: ${JSON.stringify(d.disconnects.map((x) => x.code))}`);
  const expected = expectedPerUser(acked, s.membersOf);
  if (!(await waitForConvergence(s, expected, 15_000))) problems.push(...convergenceReport(s, expected));
  const verified = await verifyScenario(s, acked, verifier);
  problems.push(...verified.problems);
  return { problems, reconnects, inboxSizes: verified.inboxSizes };
}
