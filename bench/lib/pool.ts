/**
 * The load generator as a set of worker processes: splits connections and channels between
 * them (a channel's members always in one process, so one monotonic clock times each message),
 * starts runs on all of them at one wall-clock instant and merges what they measured.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { forkTracked } from './children.ts';
import { mergeEncoded, percentiles, type Percentiles } from './hist.ts';
import type { ChatterStats, ConnSpec, DiscoveryFigures, FromWorker, NodeCounts, RunStats, SetupMessage, StatusReport, TargetName, ToWorker } from './protocol.ts';
import { ROOT } from './targets.ts';

/** Sockets per worker process: each may hold 20,000 open files here. */
export const MAX_CONNS_PER_WORKER = 18_000;

export interface PoolOptions {
  readonly target: TargetName;
  readonly url: string;
  readonly workers: number;
  readonly sources: readonly string[];
  readonly conns: readonly ConnSpec[];
  /** Members are indexes into `conns`. */
  readonly groups: readonly { channel: string; members: readonly number[] }[];
  readonly connectConcurrency: number;
  readonly connectTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly textBytes: number;
  readonly ackEvery: number;
  readonly client?: 'raw' | 'ws';
  /** HTTP bases of the nodes whose GET /v1/servers picks each connection's node (clusters). */
  readonly discovery?: readonly string[];
  /** Connections started per second over all workers (0 or unset: unpaced). */
  readonly connectRate?: number;
  /** Each worker stops starting connections once more than this % failed (0 or unset: never). */
  readonly giveUpPct?: number;
  /** Parley groups: every member sends a read and a typing per group once a second during runs. */
  readonly chatter?: boolean;
  readonly onProgress?: (p: Progress) => void;
  /** The workers' pids, as soon as they have their work (before they connect). */
  readonly onSpawned?: (pids: number[]) => void;
}

export interface Progress {
  connected: number;
  failed: number;
  sent: number;
  delivered: number;
  errors: number;
}

export interface ConnectSummary {
  readonly connected: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
  /** Slowest worker's first-open to last-ready, ms. */
  readonly connectMs: number;
  readonly joinMs: number;
  /** Sessions per node as discovery placed them (clusters only). */
  readonly byNode: Record<string, NodeCounts> | undefined;
  readonly discovery: DiscoveryFigures | undefined;
}

export interface RunSummary {
  readonly scheduled: number;
  readonly sent: number;
  readonly expected: number;
  readonly delivered: number;
  readonly errors: number;
  readonly errorCodes: Record<string, number>;
  readonly timeouts: number;
  readonly late: number;
  readonly acks: number;
  readonly latency: Percentiles;
  readonly ackLatency: Percentiles;
  readonly sendLag: Percentiles;
  readonly durationMs: number;
  readonly closedDuringRun: number;
  /** Summed over the workers; with chatter only. */
  readonly chatter?: ChatterStats;
}

interface Slot {
  readonly proc: ChildProcess;
  readonly groups: number;
  readonly conns: number;
  progress: Progress;
  exited: string | undefined;
  waiting: ((m: FromWorker) => boolean) | undefined;
  resolveWait: ((m: FromWorker) => void) | undefined;
  rejectWait: ((e: Error) => void) | undefined;
}

const WORKER = join(ROOT, 'bench/worker/load-worker.ts');

/** Workers forked ahead of time (booting Node with tsx takes a while), waiting for a setup. */
const spares: ChildProcess[] = [];
let forked = 0;

/** Extra Node.js arguments for load workers (diagnosis, e.g. --cpu-prof). */
let workerNodeArgs: readonly string[] = [];

export function setWorkerNodeArgs(args: readonly string[]): void {
  workerNodeArgs = args;
}

function forkWorker(): ChildProcess {
  return forkTracked(WORKER, [], { execArgv: [...workerNodeArgs, '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }, `load-worker-${forked++}`);
}

function takeWorker(): ChildProcess {
  while (spares.length > 0) {
    const p = spares.shift()!;
    if (p.exitCode === null && p.signalCode === null && p.connected) return p;
  }
  return forkWorker();
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly totalGroups: number;
  private runId = 0;

  private constructor(private readonly o: PoolOptions) {
    this.totalGroups = o.groups.length;
  }

  /** Forks workers now so that the next pool starts without waiting for them to boot. */
  static prewarm(n: number): void {
    while (spares.length < n) spares.push(forkWorker());
  }

  /** Ends the spare workers (at the end of a run). */
  static dropSpares(): void {
    for (const p of spares.splice(0)) p.kill('SIGTERM');
  }

  static async start(o: PoolOptions): Promise<{ pool: WorkerPool; connect: ConnectSummary }> {
    const pool = new WorkerPool(o);
    try {
      const connect = await pool.spawnAll();
      return { pool, connect };
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  pids(): number[] {
    return this.slots.map((s) => s.proc.pid!).filter((p) => p !== undefined);
  }

  /** Splits the work: whole channels per worker (balanced by members), loose connections evenly. */
  private plan(): { conns: ConnSpec[]; groups: { channel: string; members: number[] }[] }[] {
    const n = Math.max(1, this.o.workers);
    const plans = Array.from({ length: n }, () => ({ conns: [] as ConnSpec[], groups: [] as { channel: string; members: number[] }[], map: new Map<number, number>() }));
    const local = (p: (typeof plans)[number], global: number): number => {
      let i = p.map.get(global);
      if (i === undefined) {
        i = p.conns.length;
        p.conns.push(this.o.conns[global]!);
        p.map.set(global, i);
      }
      return i;
    };
    const owner = new Map<number, number>();
    for (const g of this.o.groups) {
      // A connection in several channels pins them to one worker.
      let w = g.members.map((m) => owner.get(m)).find((x) => x !== undefined);
      if (w === undefined) {
        w = 0;
        for (let i = 1; i < n; i++) if (plans[i]!.conns.length < plans[w]!.conns.length) w = i;
      }
      const p = plans[w]!;
      for (const m of g.members) owner.set(m, w);
      p.groups.push({ channel: g.channel, members: g.members.map((m) => local(p, m)) });
    }
    let rr = 0;
    for (let i = 0; i < this.o.conns.length; i++) {
      if (owner.has(i)) continue;
      let w = rr++ % n;
      // Keep loose connections balanced with the channel members already placed.
      for (let k = 0; k < n; k++) if (plans[k]!.conns.length < plans[w]!.conns.length) w = k;
      local(plans[w]!, i);
    }
    for (const p of plans) {
      if (p.conns.length > MAX_CONNS_PER_WORKER) {
        throw new Error(`worker plan has ${p.conns.length} connections, more than ${MAX_CONNS_PER_WORKER} per process; use more --workers`);
      }
    }
    return plans.map((p) => ({ conns: p.conns, groups: p.groups }));
  }

  private async spawnAll(): Promise<ConnectSummary> {
    const plans = this.plan().filter((p) => p.conns.length > 0);
    for (const [i, plan] of plans.entries()) {
      const proc = takeWorker();
      const slot: Slot = {
        proc,
        groups: plan.groups.length,
        conns: plan.conns.length,
        progress: { connected: 0, failed: 0, sent: 0, delivered: 0, errors: 0 },
        exited: undefined,
        waiting: undefined,
        resolveWait: undefined,
        rejectWait: undefined,
      };
      proc.on('message', (m: FromWorker) => this.onMessage(slot, m));
      proc.once('exit', (code, signal) => {
        slot.exited = `load worker ${i} exited (${code ?? signal})`;
        slot.rejectWait?.(new Error(slot.exited));
      });
      this.slots.push(slot);
      const setup: SetupMessage = {
        type: 'setup',
        workerId: i,
        target: this.o.target,
        url: this.o.url,
        sources: this.o.sources,
        conns: plan.conns,
        groups: plan.groups,
        connectConcurrency: this.o.connectConcurrency,
        connectTimeoutMs: this.o.connectTimeoutMs,
        heartbeatMs: this.o.heartbeatMs,
        textBytes: this.o.textBytes,
        ackEvery: this.o.ackEvery,
        client: this.o.client ?? 'raw',
        ...(this.o.discovery ? { discovery: this.o.discovery } : {}),
        ...(this.o.connectRate ? { connectRate: (this.o.connectRate * plan.conns.length) / this.o.conns.length } : {}),
        ...(this.o.giveUpPct ? { giveUpPct: this.o.giveUpPct } : {}),
        ...(this.o.chatter ? { chatter: true } : {}),
      };
      this.send(slot, setup);
    }
    this.o.onSpawned?.(this.pids());
    // Bounded: every connection succeeds or fails within its own timeout, in waves of `concurrency`.
    const waves = Math.ceil(Math.max(...this.slots.map((s) => s.conns)) / Math.max(1, this.o.connectConcurrency));
    const paced = this.o.connectRate ? (this.o.conns.length / this.o.connectRate) * 1000 : 0;
    const bound = 60_000 + paced + waves * this.o.connectTimeoutMs * 2;
    const replies = await Promise.all(this.slots.map((s) => this.waitFor(s, (m) => m.type === 'ready', bound)));
    let connected = 0;
    let failed = 0;
    let connectMs = 0;
    let joinMs = 0;
    const failures: Record<string, number> = {};
    let byNode: Record<string, NodeCounts> | undefined;
    let discovery: { asks: number; failures: number; retries: number; totalMs: number; maxMs: number } | undefined;
    for (const r of replies) {
      if (r.type !== 'ready') continue;
      connected += r.connected;
      failed += r.failed;
      connectMs = Math.max(connectMs, r.connectMs);
      joinMs = Math.max(joinMs, r.joinMs);
      for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
      if (r.byNode) {
        byNode ??= {};
        for (const [k, v] of Object.entries(r.byNode)) {
          const n = (byNode[k] ??= { assigned: 0, connected: 0, failed: 0 });
          n.assigned += v.assigned;
          n.connected += v.connected;
          n.failed += v.failed;
        }
      }
      if (r.discovery) {
        discovery ??= { asks: 0, failures: 0, retries: 0, totalMs: 0, maxMs: 0 };
        discovery.asks += r.discovery.asks;
        discovery.failures += r.discovery.failures;
        discovery.retries += r.discovery.retries;
        discovery.totalMs += r.discovery.totalMs;
        discovery.maxMs = Math.max(discovery.maxMs, r.discovery.maxMs);
      }
    }
    return { connected, failed, failures, connectMs, joinMs, byNode, discovery };
  }

  private send(slot: Slot, m: ToWorker): void {
    if (slot.proc.connected) slot.proc.send(m);
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    if (m.type === 'progress') {
      slot.progress = { connected: m.connected, failed: m.failed, sent: m.sent, delivered: m.delivered, errors: m.errors };
      if (this.o.onProgress) this.o.onProgress(this.progress());
      return;
    }
    if (m.type === 'fatal') {
      slot.rejectWait?.(new Error(`load worker failed: ${m.message}`));
      return;
    }
    if (slot.waiting?.(m)) {
      const resolve = slot.resolveWait!;
      slot.waiting = undefined;
      slot.resolveWait = undefined;
      slot.rejectWait = undefined;
      resolve(m);
    }
  }

  private waitFor(slot: Slot, match: (m: FromWorker) => boolean, timeoutMs: number): Promise<FromWorker> {
    return new Promise<FromWorker>((resolve, reject) => {
      if (slot.exited) return reject(new Error(slot.exited));
      const timer = setTimeout(() => {
        slot.waiting = undefined;
        reject(new Error(`load worker did not answer within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      slot.waiting = match;
      slot.resolveWait = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      slot.rejectWait = (e) => {
        clearTimeout(timer);
        slot.waiting = undefined;
        reject(e);
      };
    });
  }

  progress(): Progress {
    const p: Progress = { connected: 0, failed: 0, sent: 0, delivered: 0, errors: 0 };
    for (const s of this.slots) {
      p.connected += s.progress.connected;
      p.failed += s.progress.failed;
      p.sent += s.progress.sent;
      p.delivered += s.progress.delivered;
      p.errors += s.progress.errors;
    }
    return p;
  }

  /** One open-loop run at `rate` messages/s in total; each worker offers its channels' share. */
  async run(rate: number, durationMs: number, drainMs: number): Promise<RunSummary> {
    const runId = ++this.runId;
    const startAt = Date.now() + 300;
    for (const s of this.slots) {
      const share = this.totalGroups > 0 ? (rate * s.groups) / this.totalGroups : 0;
      this.send(s, { type: 'run', runId, rate: share, durationMs, startAt, drainMs });
    }
    const bound = durationMs + drainMs + 60_000;
    const replies = await Promise.all(this.slots.map((s) => this.waitFor(s, (m) => m.type === 'runDone' && m.stats.runId === runId, bound)));
    const stats = replies.map((r) => (r as { stats: RunStats }).stats);
    const sum = (f: (s: RunStats) => number): number => stats.reduce((a, s) => a + f(s), 0);
    const errorCodes: Record<string, number> = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
    const merged = (f: (s: RunStats) => string): Percentiles => {
      const h = mergeEncoded(stats.map(f));
      const p = percentiles(h);
      h.destroy();
      return p;
    };
    return {
      scheduled: sum((s) => s.scheduled),
      sent: sum((s) => s.sent),
      expected: sum((s) => s.expected),
      delivered: sum((s) => s.delivered),
      errors: sum((s) => s.errors),
      errorCodes,
      timeouts: sum((s) => s.timeouts),
      late: sum((s) => s.late),
      acks: sum((s) => s.acks),
      latency: merged((s) => s.latency),
      ackLatency: merged((s) => s.ackLatency),
      sendLag: merged((s) => s.sendLag),
      durationMs: Math.max(...stats.map((s) => s.durationMs)),
      closedDuringRun: sum((s) => s.closedDuringRun),
      ...(stats.some((s) => s.chatter) ? { chatter: sumChatter(stats.flatMap((s) => (s.chatter ? [s.chatter] : []))) } : {}),
    };
  }

  async status(): Promise<StatusReport> {
    const replies = await Promise.all(
      this.slots.map((s) => {
        const p = this.waitFor(s, (m) => m.type === 'status', 30_000);
        this.send(s, { type: 'status' });
        return p;
      }),
    );
    const out = { open: 0, closed: 0, closeCodes: {} as Record<string, number>, heartbeats: 0, heartbeatSkipped: 0 } as {
      open: number;
      closed: number;
      closeCodes: Record<string, number>;
      heartbeats: number;
      heartbeatSkipped: number;
      openByNode?: Record<string, number>;
      closedByNode?: Record<string, number>;
      closedByTime?: Record<string, number>;
    };
    const add = (into: Record<string, number>, from: Record<string, number>): void => {
      for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
    };
    for (const r of replies) {
      if (r.type !== 'status') continue;
      out.open += r.open;
      out.closed += r.closed;
      out.heartbeats += r.heartbeats;
      out.heartbeatSkipped += r.heartbeatSkipped;
      add(out.closeCodes, r.closeCodes);
      if (r.openByNode) add((out.openByNode ??= {}), r.openByNode);
      if (r.closedByNode) add((out.closedByNode ??= {}), r.closedByNode);
      if (r.closedByTime) add((out.closedByTime ??= {}), r.closedByTime);
    }
    return out;
  }

  /** Closes every socket, then the workers; kills any that do not leave within 15 s. */
  async close(): Promise<void> {
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => s.proc.once('exit', () => resolve()));
        this.send(s, { type: 'close' });
        const timer = setTimeout(() => s.proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

function sumChatter(all: readonly ChatterStats[]): ChatterStats {
  const sum = (f: (c: ChatterStats) => number): number => all.reduce((a, c) => a + f(c), 0);
  const errorCodes: Record<string, number> = {};
  for (const c of all) for (const [k, v] of Object.entries(c.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
  return {
    reads: sum((c) => c.reads),
    typing: sum((c) => c.typing),
    readsSkipped: sum((c) => c.readsSkipped),
    notOpen: sum((c) => c.notOpen),
    slicesDropped: sum((c) => c.slicesDropped),
    receipts: sum((c) => c.receipts),
    typingNotices: sum((c) => c.typingNotices),
    errors: sum((c) => c.errors),
    errorCodes,
  };
}
