/**
 * The workload of a chaos run: users, their channels and devices (careful apps, device.ts), and a
 * paced sender, all recorded into one Recorder for the checker.
 *
 * Shape, for `clients` devices and `channels` channels (the run: 200 and 50):
 * - users: four in five devices are a user's only one, the rest are second devices (each of a
 *   different user), so order is compared across devices of one user as well as across members;
 * - channels: a fifth are DMs between two users, the rest groups of about 2 x users / groups
 *   members (3..100), every user in at least one; members never change during a run;
 * - friends: each user befriends the next (a ring), so every device has two friends whose
 *   presence it is shown;
 * - leavers: a few single-device users (`leaversPerNode` per node) whose phone dies with its node
 *   when a scenario says so, and comes back later; watchers: one user per node, friend of every
 *   leaver, who observes their presence. Watchers are in no channel.
 * - sends: `ratePerSec` in total, each from a random device that is not away to a random channel
 *   of its user, with a unique client_msg_id, resent until acknowledged (device.ts).
 */
import { randomBytes } from 'node:crypto';
import { ParleyHttp } from '../client/index.ts';
import type { HistoryEntry, InboxEntry, SendRecord } from './history.ts';
import { CarefulDevice } from './device.ts';
import { Recorder } from './recorder.ts';

export interface WorkloadNode {
  readonly nodeId: string;
  readonly baseUrl: string;
  readonly wsUrl: string;
}

export interface WorkloadOptions {
  readonly nodes: readonly WorkloadNode[];
  readonly clients: number;
  readonly channels: number;
  readonly ratePerSec: number;
  readonly leaversPerNode: number;
  readonly seed: number;
  /** The device watchdog (device.ts): probe period, silence bound, error-only bound. */
  readonly probeEveryMs?: number;
  readonly probeTimeoutMs?: number;
  readonly staleAfterMs?: number;
  readonly log: (line: string) => void;
}

export interface WorkloadUser {
  readonly userId: string;
  readonly username: string;
  readonly token: string;
  readonly devices: CarefulDevice[];
  readonly channels: string[];
  readonly friends: string[];
}

/** Most in-flight sends kept: past it the sender skips ticks rather than pile up promises. */
const MAX_IN_FLIGHT = 5_000;
/** Concurrent HTTP calls while setting up. */
const SETUP_CONCURRENCY = 8;

/** A small seeded PRNG (mulberry32): a run's shape is the same for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function inBatches<T>(items: readonly T[], limit: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

export class Workload {
  readonly recorder = new Recorder();
  readonly users: WorkloadUser[] = [];
  readonly watchers: WorkloadUser[] = [];
  readonly leavers: WorkloadUser[] = [];
  /** channel id -> member user ids */
  readonly members: Record<string, string[]> = {};
  private readonly random: () => number;
  private readonly tag = randomBytes(3).toString('hex');
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;
  private skipped = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private sendDeadline = Number.POSITIVE_INFINITY;

  constructor(private readonly o: WorkloadOptions) {
    this.random = prng(o.seed);
  }

  get devices(): CarefulDevice[] {
    return [...this.users, ...this.watchers].flatMap((u) => u.devices);
  }

  /** Sends started so far, and ticks skipped because too many were in flight. */
  get counts(): { sent: number; skipped: number; inFlight: number } {
    return { sent: this.sent, skipped: this.skipped, inFlight: this.inFlight.size };
  }

  async setup(): Promise<void> {
    const { nodes, clients } = this.o;
    const n = nodes.length;
    const second = Math.floor(clients / 5);
    const userCount = Math.max(2, clients - second);
    const leaverCount = Math.min(this.o.leaversPerNode * n, Math.max(0, userCount - second - 1));
    const made: { userId: string; username: string; token: string }[] = [];
    const total = userCount + n;
    await inBatches(Array.from({ length: total }, (_, i) => i), SETUP_CONCURRENCY, async (i) => {
      made[i] = await this.signup(nodes[i % n]!, i < userCount ? `c${this.tag}_${i}` : `w${this.tag}_${i - userCount}`);
    });
    const userIds = made.slice(0, userCount).map((u) => u.userId);

    // Channels, seeded: DMs between random pairs, groups of random members; everyone in one at least.
    const channelsOf = new Map<string, string[]>(userIds.map((id) => [id, []]));
    const dms = Math.min(Math.round(this.o.channels / 5), Math.floor(userCount / 2));
    const groups = Math.max(1, this.o.channels - dms);
    const groupSize = Math.max(Math.min(3, userCount), Math.min(100, userCount, Math.round((2 * userCount) / groups)));
    const plan: { kind: 'dm' | 'group'; members: string[] }[] = [];
    for (let i = 0; i < dms; i++) {
      const a = Math.floor(this.random() * userCount);
      const b = (a + 1 + Math.floor(this.random() * (userCount - 1))) % userCount;
      plan.push({ kind: 'dm', members: [userIds[a]!, userIds[b]!] });
    }
    for (let i = 0; i < groups; i++) {
      const pool = [...userIds];
      for (let j = pool.length - 1; j > 0; j--) {
        const k = Math.floor(this.random() * (j + 1));
        [pool[j], pool[k]] = [pool[k]!, pool[j]!];
      }
      plan.push({ kind: 'group', members: pool.slice(0, groupSize) });
    }
    const inSome = new Set(plan.flatMap((p) => p.members));
    const groupPlans = plan.filter((p) => p.kind === 'group');
    userIds.forEach((id, i) => {
      if (inSome.has(id)) return;
      const g = groupPlans.find((p, j) => j >= i % groupPlans.length && p.members.length < 100) ?? groupPlans.find((p) => p.members.length < 100)!;
      g.members.push(id);
    });
    const byId = new Map(made.map((u) => [u.userId, u]));
    const http = (userId: string, i: number) => new ParleyHttp(nodes[i % n]!.baseUrl, byId.get(userId)!.token);
    await inBatches(plan, SETUP_CONCURRENCY, async (p, i) => {
      const [creator, ...rest] = p.members;
      const { channel_id } = p.kind === 'dm' ? await http(creator!, i).openDm(rest[0]!) : await http(creator!, i).createGroup(`g${i}`, rest);
      this.members[channel_id] = p.members;
      for (const m of p.members) channelsOf.get(m)!.push(channel_id);
    });

    // Friends: a ring over the users; every leaver with every watcher.
    const friendsOf = new Map<string, string[]>(made.map((u) => [u.userId, []]));
    const pairs: [string, string][] = userIds.map((id, i) => [id, userIds[(i + 1) % userCount]!]);
    const leaverIds = userIds.slice(userCount - leaverCount);
    const watcherIds = made.slice(userCount).map((u) => u.userId);
    for (const l of leaverIds) for (const w of watcherIds) pairs.push([l, w]);
    await inBatches(pairs, SETUP_CONCURRENCY, async ([a, b], i) => {
      if (a === b || friendsOf.get(a)!.includes(b)) return;
      await http(a, i).addFriend(b);
      await http(b, i + 1).addFriend(a);
      friendsOf.get(a)!.push(b);
      friendsOf.get(b)!.push(a);
    });

    // Devices: user i's first device starts at node i mod n, its second (users 0..second-1) at the next.
    const serversFrom = (k: number) => Array.from({ length: n }, (_, j) => nodes[(k + j) % n]!.wsUrl);
    const device = (u: { userId: string; username: string; token: string }, deviceId: string, first: number) =>
      new CarefulDevice({
        device: `${u.username}/${deviceId}`,
        deviceId,
        userId: u.userId,
        token: u.token,
        servers: serversFrom(first),
        friends: friendsOf.get(u.userId)!,
        recorder: this.recorder,
        probeEveryMs: this.o.probeEveryMs ?? 2_000,
        probeTimeoutMs: this.o.probeTimeoutMs ?? 4_000,
        staleAfterMs: this.o.staleAfterMs ?? 8_000,
      });
    made.forEach((u, i) => {
      const isWatcher = i >= userCount;
      // Leavers are the last users: spread them so that every node starts with some.
      const li = leaverIds.indexOf(u.userId);
      const first = isWatcher ? i - userCount : li >= 0 ? li % n : i % n;
      const devices = [device(u, 'phone', first)];
      if (!isWatcher && i < second) devices.push(device(u, 'tablet', first + 1));
      const wu: WorkloadUser = { ...u, devices, channels: isWatcher ? [] : channelsOf.get(u.userId)!, friends: friendsOf.get(u.userId)! };
      (isWatcher ? this.watchers : this.users).push(wu);
      if (li >= 0) this.leavers.push(wu);
    });
    await inBatches(this.devices, SETUP_CONCURRENCY * 2, (d) => d.open().then(() => undefined));
    this.o.log(`workload: ${userCount} users (${second} with two devices, ${leaverCount} leavers), ${n} watchers, ${plan.length} channels (${dms} DMs, groups of ${groupSize}), ${this.devices.length} devices`);
  }

  private async signup(node: WorkloadNode, username: string): Promise<{ userId: string; username: string; token: string }> {
    const http = new ParleyHttp(node.baseUrl);
    const password = `pw-${this.tag}-${username}`;
    const { user_id } = await http.signup(username, password);
    const { token } = await http.login(username, password);
    return { userId: user_id, username, token };
  }

  /** Starts sending at the configured rate (catching up on ticks a busy event loop delayed). */
  start(): void {
    const startedAt = Date.now();
    const senders = this.users.flatMap((u) => u.devices.map((d) => ({ d, u })));
    this.timer = setInterval(() => {
      const due = Math.floor(((Date.now() - startedAt) / 1000) * this.o.ratePerSec);
      while (this.sent + this.skipped < due) {
        if (this.inFlight.size >= MAX_IN_FLIGHT) {
          this.skipped++;
          continue;
        }
        const pick = this.pickSender(senders);
        if (!pick) {
          this.skipped++;
          continue;
        }
        this.sendOne(pick.d, pick.u);
      }
    }, 10);
  }

  private pickSender(senders: { d: CarefulDevice; u: WorkloadUser }[]): { d: CarefulDevice; u: WorkloadUser } | undefined {
    for (let tries = 0; tries < 20; tries++) {
      const s = senders[Math.floor(this.random() * senders.length)]!;
      if (!s.d.isAway && s.u.channels.length > 0) return s;
    }
    return undefined;
  }

  private sendOne(d: CarefulDevice, u: WorkloadUser): void {
    const channelId = u.channels[Math.floor(this.random() * u.channels.length)]!;
    const n = this.sent++;
    const rec: SendRecord = { device: d.name, userId: u.userId, channelId, clientMsgId: `${this.tag}-${n}`, startedAtMs: Date.now(), errors: [] };
    this.recorder.sends.push(rec);
    const p = d.send(channelId, `chaos ${n}`, rec, () => this.sendDeadline);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Stops starting sends and waits (at most `settleMs`) for those in flight to be acknowledged. */
  async stopSending(settleMs: number): Promise<void> {
    clearInterval(this.timer);
    this.sendDeadline = Date.now() + settleMs;
    while (this.inFlight.size > 0 && Date.now() < this.sendDeadline + 1_000) await new Promise((r) => setTimeout(r, 100));
  }

  /** Leavers whose phone is connected to `nodeId` right now. */
  leaversOn(nodeId: string): WorkloadUser[] {
    return this.leavers.filter((u) => u.devices[0]!.isUp && u.devices[0]!.nodeId === nodeId);
  }

  /** Watchers connected to a node other than `nodeId`: the observers of what happens on it. */
  watchersNotOn(nodeId: string): CarefulDevice[] {
    return this.watchers.map((w) => w.devices[0]!).filter((d) => d.isUp && d.nodeId !== nodeId);
  }

  /** Every watcher device (whatever its state). */
  watcherDevices(): CarefulDevice[] {
    return this.watchers.map((w) => w.devices[0]!);
  }

  /** Observers ask for `subjects`' presence every `everyMs` until `untilMs` (each answer recorded). */
  async pollPresence(observers: readonly CarefulDevice[], subjects: readonly string[], untilMs: number, everyMs: number): Promise<void> {
    while (Date.now() < untilMs) {
      await Promise.all(observers.map((o) => o.queryPresence(subjects)));
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  /** Reopens every device that went away; resolves once each is welcomed (or the time is up). */
  async bringBackAll(timeoutMs: number): Promise<void> {
    await Promise.all(this.devices.filter((d) => d.isAway).map((d) => d.open(timeoutMs).catch((err: unknown) => this.o.log(`${d.name} did not come back: ${(err as Error).message}`))));
  }

  /**
   * The end of a run: every user's devices asked for their friends' presence (everyone is back,
   * so everyone must be shown online within 5 s), then each user's inbox and each channel's
   * history read back, and every device given until `deadlineMs` to reach its inbox's head.
   */
  async finish(deadlineMs: number): Promise<{ inboxes: Record<string, InboxEntry[]>; histories: Record<string, HistoryEntry[]> }> {
    const askedAt = Date.now();
    for (const u of [...this.users, ...this.watchers]) {
      for (const d of u.devices) for (const f of u.friends) this.recorder.expectations.push({ observer: d.name, subject: f, online: true, fromMs: askedAt, withinMs: 5_000, why: 'everyone is back at the end' });
    }
    await new Promise((r) => setTimeout(r, 2_000));
    await inBatches(this.devices, 16, (d) => d.queryPresence(d.o.friends));
    const inboxes: Record<string, InboxEntry[]> = {};
    await inBatches(this.users, 8, async (u) => {
      const reader = u.devices.find((d) => d.isUp) ?? u.devices[0]!;
      inboxes[u.userId] = await reader.readInbox(deadlineMs);
    });
    const histories: Record<string, HistoryEntry[]> = {};
    const byId = new Map(this.users.map((u) => [u.userId, u]));
    await inBatches(Object.entries(this.members), 8, async ([channelId, members]) => {
      histories[channelId] = await byId.get(members[0]!)!.devices[0]!.readHistory(channelId, deadlineMs);
    });
    const heads = new Map(Object.entries(inboxes).map(([id, entries]) => [id, entries.at(-1)?.inboxSeq ?? 0]));
    const behind = () => this.users.flatMap((u) => u.devices.filter((d) => d.received < heads.get(u.userId)!));
    while (behind().length > 0 && Date.now() < deadlineMs) await new Promise((r) => setTimeout(r, 200));
    return { inboxes, histories };
  }

  closeAll(): void {
    for (const d of this.devices) d.close();
  }
}
