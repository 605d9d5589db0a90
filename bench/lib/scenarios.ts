/**
 * The benchmark scenarios. Each starts a fresh server for one target, prepares users and
 * channels, drives it through a WorkerPool, samples the server from outside and returns one
 * result entry.
 */
import { collectGarbage, startCpuProfile } from './inspector.ts';
import { WorkerPool, MAX_CONNS_PER_WORKER, type RunSummary } from './pool.ts';
import { waitForQuietMachine } from './proc.ts';
import { Progress, note } from './progress.ts';
import type { ConnSpec, TargetName } from './protocol.ts';
import { Sampler, type WindowStats } from './sampler.ts';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startParleyCluster } from './cluster.ts';
import type { NodeCounts } from './protocol.ts';
import { MetricsScraper } from './metrics-scraper.ts';
import { createParleyChannels, runParleyctl, startTarget, type ProvisionFigures, type ServerLog, type TargetHandle } from './targets.ts';

/** One server process may hold this many sessions: it has 20,000 open files, minus its own. */
export const MAX_SESSIONS_PER_NODE = 19_000;

export interface BenchConfig {
  readonly targets: readonly TargetName[];
  /** Messages/s for one-to-one, and for group when given. */
  readonly rate: number | undefined;
  readonly rates: readonly number[];
  readonly durationS: number;
  readonly warmupS: number;
  readonly drainS: number;
  readonly pairs: number;
  readonly sessions: readonly number[];
  readonly holdS: number;
  readonly settleS: number;
  readonly groups: number;
  readonly groupSize: number;
  readonly groupRate: number | undefined;
  readonly groupStartRate: number;
  /** Group, Parley only: every member sends a read and a typing per second in its group during runs. */
  readonly groupChatter: boolean;
  readonly startRate: number;
  readonly stepS: number;
  readonly stepFactor: number;
  readonly maxSteps: number;
  readonly p99LimitMs: number;
  /** Group steps hold while p99 stays within this (a message fans out to size − 1 sockets). */
  readonly groupP99LimitMs: number;
  readonly workers: number | undefined;
  /** Parley nodes: 1 is one parleyd; more is a cluster (etcd, shared SQLite, discovery places sessions). */
  readonly nodes: number;
  /** Sessions started per second over all workers (0: as fast as connectConcurrency allows). */
  readonly connectRate: number;
  /** A worker stops starting sessions once more than this % of its started ones failed (0: never). */
  readonly giveUpPct: number;
  readonly durability: 'fsync' | 'os';
  /** Parley's store URL; SQLite in the data dir when absent. */
  readonly store?: string;
  /** Parley's Redis URL for presence; in-process when absent. */
  readonly redis?: string;
  readonly textBytes: number;
  readonly heartbeatMs: number;
  readonly ackEvery: number;
  /** Handshakes in flight per worker; default: 512 over all workers, 32..256 per worker. */
  readonly connectConcurrency: number | undefined;
  readonly connectTimeoutS: number;
  /** Extra parleyd flags (name without dashes -> value). */
  readonly serverFlags: Record<string, string>;
  readonly serverNodeArgs: readonly string[];
  /** Parley entry point other than bin/parleyd.ts (default dist/bin/parleyd.js, built by npm run build). */
  readonly parleydEntry: string | undefined;
  /** Connections: force a full GC in the server (over the inspector) before each memory reading. */
  readonly gcBeforeMemory: boolean;
  /** Before each measured run, wait until other processes use at most this % of one core (0: don't wait). */
  readonly quietMachinePct: number;
  readonly quietMaxWaitS: number;
  /** Redo a measured run or step (at most this often) when other processes used more than quietMachinePct × 1.5 during it. */
  readonly contentionRetries: number;
  /** Max-throughput/group: run a failed step this many more times before it counts as failed. */
  readonly confirmFailures: number;
  /** The generator's WebSocket client: lean `raw` (default) or the `ws` package. */
  readonly client: 'raw' | 'ws';
  /** Connections: write a V8 CPU profile of every server process during the hold into this dir. */
  readonly profileHoldDir?: string | undefined;
  /** Copy the Parley server processes' stdout and stderr into DIR/<node id>.log. */
  readonly serverLogDir?: string | undefined;
  /** Parley: GET /metrics of every node this often during the run (0: never); bench/lib/metrics-scraper.ts. */
  readonly scrapeMetricsMs?: number;
  /** With scrapeMetricsMs: where the first, last and highest figures per node are written. */
  readonly metricsDumpDir?: string | undefined;
  readonly quiet: boolean;
}

export interface LatencyMs {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface StepResult {
  offered_rate: number;
  sent: number;
  expected: number;
  delivered: number;
  errors: number;
  timeouts: number;
  latency_ms: LatencyMs;
  send_lag_p99_ms: number;
  deliveries_per_s: number;
  held: boolean;
  why_not: string | undefined;
  server_cpu_pct: number;
  server_main_thread_cpu_pct: number;
  server_other_threads_cpu_pct: number[];
  generator_cpu_pct: number;
  machine_cpu_pct: number;
  other_cpu_pct: number;
  /** Group runs with `--group-chatter`. */
  chatter?: ChatterRates | null;
}

/** What the group chatter did in one run, per second of the run (receipts counted up to the end of its drain). */
export interface ChatterRates {
  reads_sent_per_s: number;
  typing_sent_per_s: number;
  receipts_per_s: number;
  typing_notices_per_s: number;
  /** Reads not sent because the member had received nothing in its group yet. */
  reads_skipped: number;
  /** Member-seconds skipped because the socket was not open. */
  not_open: number;
  /** Slices of a second that came due more than a second late in the generator and were dropped. */
  slices_dropped: number;
  errors: number;
  error_codes: Record<string, number>;
}

/** `--group-chatter`: on, and its rates in the run reported (the best step when stepping). */
export interface ChatterResult extends ChatterRates {
  on: true;
  /** Members that chatter (every member of every group), each once per `every_ms`. */
  members: number;
  every_ms: number;
  /** What full chatter would give: members × 1/s frames of each kind sent, members × (size − 1)/s of each kind received. */
  expected_sent_per_s: number;
  expected_received_per_s: number;
}

export interface LevelResult {
  sessions: number;
  connected: number;
  rss_bytes: number;
  rss_per_session_bytes: number;
  heap_used_bytes: number | null;
  heap_per_session_bytes: number | null;
  connect_s: number;
  connect_rate_per_s: number;
}

/** Five seconds of a connections run (averages over the samples in it). */
export interface TimelinePoint {
  /** Seconds since the first connection was started. */
  t_s: number;
  phase: 'connect' | 'hold';
  sessions_up: number;
  server_cpu_pct: number;
  /** The busiest server event loop. */
  main_thread_cpu_pct: number;
  generator_cpu_pct: number;
  other_cpu_pct: number;
  /** Interrupts and softirqs (loopback networking), % of one core. */
  irq_cpu_pct: number;
  machine_cpu_pct: number;
  server_rss_bytes: number;
  /** The slowest server's GET /healthz latency (2,000: no answer within 2 s). */
  healthz_probe_max_ms: number | null;
}

function buildTimeline(sampler: Sampler, connectT0: number, holdT0: number, t1: number, upAt: [number, number][], connected: number): TimelinePoint[] {
  const out: TimelinePoint[] = [];
  for (let a = connectT0, i = 0; a < t1 && i < 10_000; a += 5_000, i++) {
    const b = Math.min(t1, a + 5_000);
    const w = sampler.window(a, b - 500);
    const up = a + 5_000 <= holdT0 ? (upAt.filter(([t]) => t <= b).at(-1)?.[1] ?? 0) : connected;
    out.push({
      t_s: Math.round((a - connectT0) / 1000),
      phase: a < holdT0 ? 'connect' : 'hold',
      sessions_up: up,
      server_cpu_pct: w.server_cpu_pct,
      main_thread_cpu_pct: w.server_main_thread_cpu_pct,
      generator_cpu_pct: w.generator_cpu_pct,
      other_cpu_pct: w.other_cpu_pct,
      irq_cpu_pct: w.irq_cpu_pct,
      machine_cpu_pct: w.machine_cpu_pct,
      server_rss_bytes: w.server_rss_bytes,
      healthz_probe_max_ms: w.healthz_probe_ms?.max ?? null,
    });
  }
  return out;
}

/** One node of a Parley cluster in a connections run. */
export interface NodeResult {
  node_id: string;
  pid: number;
  /** Sessions the discovery answers sent to this node. */
  sessions_assigned: number;
  /** Of those, open at the generator at the end of the hold. */
  sessions_up: number;
  /** Sessions on this node that were up and got closed (by the server) before the end of the hold. */
  sessions_closed: number;
  /** The node's own count (GET /healthz `connections`) at the end of the hold. */
  server_connections: number | null;
  rss_before_bytes: number;
  rss_after_bytes: number;
  /** (RSS after − RSS before) / sessions up on this node. */
  rss_per_session_bytes: number | null;
  heap_used_bytes: number | null;
  /** During the hold, % of one core: the whole process, and its event loop (average and peak). */
  cpu_pct: number;
  main_thread_cpu_pct: number;
  main_thread_cpu_peak_pct: number;
  /** GET /healthz latency during the hold (stands in for the node's event-loop delay). */
  healthz_probe_ms: { p99: number; max: number } | null;
}

/** What a multi-node Parley run adds to its entry. */
export interface ClusterResult {
  nodes: number;
  etcd_url: string;
  prefix: string;
  store: string;
  secret: string;
  tokens: string;
  /** First parleyd spawned until every node listed every node. */
  formed_s: number;
  /** During the hold. */
  etcd_rss_bytes: number;
  etcd_cpu_pct: number;
  discovery: { endpoint: string; asks: number; failures: number; retries: number; mean_ms: number; max_ms: number } | null;
  /** Sessions up per node at the end of the hold. */
  spread: { min: number; max: number; mean: number; max_over_mean: number } | null;
}

export interface ResultEntry {
  scenario: string;
  target: TargetName;
  /** Server processes (Parley nodes); 1 unless a cluster ran. */
  nodes?: number;
  per_node?: NodeResult[] | null;
  cluster?: ClusterResult | null;
  offered_rate: number | null;
  duration_s: number | null;
  sent: number;
  expected: number;
  delivered: number;
  errors: number;
  error_codes: Record<string, number>;
  timeouts: number;
  late: number;
  latency_ms: LatencyMs | null;
  /** Parley only: scheduled send to send_ack (the message is durable then). */
  ack_latency_ms: LatencyMs | null;
  /** How far behind its schedule the generator put messages on the wire. */
  send_lag_ms: { p50: number; p99: number; max: number } | null;
  max_rate: number | null;
  steps: StepResult[] | null;
  deliveries_per_s: number | null;
  group_size: number | null;
  groups: number | null;
  /** Group runs with `--group-chatter` (Parley only): read marks and typing once a second per member. */
  chatter?: ChatterResult | null;
  pairs: number | null;
  sessions: number | null;
  connected: number | null;
  /** (RSS after − RSS before) / sessions; both readings after a forced full GC when gc_before_memory. */
  rss_per_session_bytes: number | null;
  /** The same with the RSS read before forcing a GC (includes garbage V8 had not collected yet). */
  rss_per_session_no_gc_bytes: number | null;
  /** Growth of the server's JS heap (after GC) per session. */
  heap_per_session_bytes: number | null;
  gc_before_memory: boolean;
  levels: LevelResult[] | null;
  connect_rate_per_s: number | null;
  all_up: boolean | null;
  /**
   * Connections: the run held: every session up at the end of the hold, the generator sent ≥ 95 %
   * of the heartbeats due, every server answered GET /healthz within 1 s (p99) during the hold,
   * and (clusters) no node lost its etcd registration up to the end of the hold. `held_why_not`
   * lists what failed.
   */
  held?: boolean | null;
  held_why_not?: string[];
  /** Heartbeats the generator sent during the hold; `due_per_s` is sessions / interval. */
  heartbeats: { sent: number; per_s: number; skipped: number; due_per_s?: number } | null;
  /** Connections: server RSS every ~5 s during the hold, [seconds into the hold, bytes]. */
  rss_timeline: [number, number][] | null;
  /** Connections: every 5 s from the first connect to the end of the hold, what the machine did. */
  timeline?: TimelinePoint[] | null;
  closed: number;
  close_codes: Record<string, number>;
  server_rss_bytes: number;
  server_rss_before_bytes: number;
  server_rss_peak_bytes: number;
  server_cpu_pct: number;
  server_main_thread_cpu_pct: number;
  server_other_threads_cpu_pct: number[];
  generator_cpu_pct: number;
  server_disk_write_bytes_per_s: number;
  machine_cpu_pct: number;
  other_cpu_pct: number;
  load_avg_1m: number;
  healthz_probe_ms: WindowStats['healthz_probe_ms'] | null;
  event_loop_delay_ms: WindowStats['event_loop_delay_ms'] | null;
  persistence: string;
  provision: ProvisionFigures | null;
  server_log: ServerLog;
  /** Connections: what the server logged after the hold, while memory was read (forced GCs) and while every session was closed at once. */
  server_log_after_hold?: { memory_reading: ServerLog; closing: ServerLog } | null;
  workers: number;
  bottleneck: string;
  notes: string[];
  /** Seconds spent waiting for other processes to leave the CPU before measured runs. */
  quiet_wait_s?: number;
  error?: string;
}

const LOOPBACK_BASE = 2;

/**
 * Connections per loopback source address. An address has about 28,000 ephemeral ports, but the
 * kernel's bind() to port 0 (what connecting from a given address does) slows down sharply once
 * about 7,000 of them are taken: here 0.1 ms per connect below that, 3 to 13 ms of system time
 * above it (measured: 2,000 connects from one address take 0.3 s up to 6,000 in use, 6 s at 8,000,
 * 25 s at 16,000). Those milliseconds block the generator's event loop, its heartbeats stall,
 * and the server rightly closes the silent sessions. So: at most 5,000 per address.
 */
export const CONNS_PER_SOURCE = 5_000;

/** Loopback source addresses 127.0.0.2 .. (after `offset` already in use), at most CONNS_PER_SOURCE connections each. */
export function sourceAddresses(connections: number, offset = 0): string[] {
  const n = Math.max(4, Math.ceil(connections / CONNS_PER_SOURCE));
  if (LOOPBACK_BASE + offset + n > 254) throw new Error(`too many loopback source addresses needed (${offset + n})`);
  return Array.from({ length: n }, (_, i) => `127.0.0.${LOOPBACK_BASE + offset + i}`);
}

function workersFor(cfg: BenchConfig, conns: number): number {
  const needed = Math.ceil(conns / MAX_CONNS_PER_WORKER);
  return Math.max(needed, cfg.workers ?? Math.min(2, Math.max(1, Math.ceil(conns / 50))));
}

/** Default handshakes in flight per worker: 512 in all (many workers must not flood the server at once), 32..256 each. */
export function connectConcurrencyFor(workers: number): number {
  return Math.min(256, Math.max(32, Math.ceil(512 / Math.max(1, workers))));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function persistenceOf(target: TargetName, cfg: BenchConfig): string {
  const build = cfg.parleydEntry ? `, entry ${cfg.parleydEntry}` : '';
  if (target !== 'parley') return 'none (relay only)';
  const presence = cfg.redis ? ', presence in Redis' : '';
  const promise = `every message durable in its channel history before send_ack${presence}${build}`;
  if (cfg.store?.startsWith('cassandra:')) return `cassandra, ${storeLabel(cfg.store)} (${promise})`;
  return `sqlite, durability=${cfg.durability} (${promise})`;
}

/** A store URL without its credentials, for reports. */
function storeLabel(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}

function latencyOf(r: RunSummary): LatencyMs {
  const { p50, p90, p99, p999, max, mean } = r.latency;
  return { p50, p90, p99, p999, max, mean };
}

function bottleneck(w: WindowStats, lagP99: number, workers: number): string {
  const parts: string[] = [];
  if (w.server_main_thread_cpu_pct >= 85) parts.push(`server event loop saturated (main thread ${w.server_main_thread_cpu_pct}% of a core)`);
  const busiest = w.server_other_threads_cpu_pct[0] ?? 0;
  if (busiest >= 70) parts.push(`a server thread other than the event loop at ${busiest}% of a core (for Parley: the SQLite writer)`);
  if (w.generator_cpu_pct >= 85 * Math.min(workers + 1, 2) || lagP99 > 10) parts.push(`load generator (${w.generator_cpu_pct}% CPU, send lag p99 ${lagP99} ms)`);
  if (w.machine_cpu_pct >= 90) parts.push(`machine CPU (${w.machine_cpu_pct}% of all cores; other jobs ${w.other_cpu_pct}% of a core)`);
  if (parts.length === 0) parts.push(`no CPU saturated (server ${w.server_cpu_pct}%, main thread ${w.server_main_thread_cpu_pct}%, generator ${w.generator_cpu_pct}%, machine ${w.machine_cpu_pct}%)`);
  return parts.join('; ');
}

function blankEntry(scenario: string, target: TargetName, cfg: BenchConfig): ResultEntry {
  return {
    scenario,
    target,
    offered_rate: null,
    duration_s: null,
    sent: 0,
    expected: 0,
    delivered: 0,
    errors: 0,
    error_codes: {},
    timeouts: 0,
    late: 0,
    latency_ms: null,
    ack_latency_ms: null,
    send_lag_ms: null,
    max_rate: null,
    steps: null,
    deliveries_per_s: null,
    group_size: null,
    groups: null,
    pairs: null,
    sessions: null,
    connected: null,
    rss_per_session_bytes: null,
    rss_per_session_no_gc_bytes: null,
    heap_per_session_bytes: null,
    gc_before_memory: false,
    levels: null,
    connect_rate_per_s: null,
    all_up: null,
    heartbeats: null,
    rss_timeline: null,
    closed: 0,
    close_codes: {},
    server_rss_bytes: 0,
    server_rss_before_bytes: 0,
    server_rss_peak_bytes: 0,
    server_cpu_pct: 0,
    server_main_thread_cpu_pct: 0,
    server_other_threads_cpu_pct: [],
    generator_cpu_pct: 0,
    server_disk_write_bytes_per_s: 0,
    machine_cpu_pct: 0,
    other_cpu_pct: 0,
    load_avg_1m: 0,
    healthz_probe_ms: null,
    event_loop_delay_ms: null,
    persistence: persistenceOf(target, cfg),
    provision: null,
    server_log: { warn: 0, error: 0, byMessage: {} },
    workers: 0,
    bottleneck: '',
    notes: [],
  };
}

function applyWindow(e: ResultEntry, w: WindowStats): void {
  e.server_rss_bytes = w.server_rss_bytes;
  e.server_rss_peak_bytes = Math.max(e.server_rss_peak_bytes, w.server_rss_peak_bytes);
  e.server_cpu_pct = w.server_cpu_pct;
  e.server_main_thread_cpu_pct = w.server_main_thread_cpu_pct;
  e.server_other_threads_cpu_pct = w.server_other_threads_cpu_pct;
  e.server_disk_write_bytes_per_s = w.server_disk_write_bytes_per_s;
  e.generator_cpu_pct = w.generator_cpu_pct;
  e.machine_cpu_pct = w.machine_cpu_pct;
  e.other_cpu_pct = w.other_cpu_pct;
  e.load_avg_1m = w.load_avg_1m;
  e.healthz_probe_ms = w.healthz_probe_ms ?? null;
  e.event_loop_delay_ms = w.event_loop_delay_ms ?? null;
}

function applyRun(e: ResultEntry, r: RunSummary): void {
  e.sent = r.sent;
  e.expected = r.expected;
  e.delivered = r.delivered;
  e.errors = r.errors;
  e.error_codes = r.errorCodes;
  e.timeouts = r.timeouts;
  e.late = r.late;
  e.latency_ms = latencyOf(r);
  e.ack_latency_ms = r.ackLatency.count > 0 ? (({ p50, p90, p99, p999, max, mean }) => ({ p50, p90, p99, p999, max, mean }))(r.ackLatency) : null;
  e.send_lag_ms = { p50: r.sendLag.p50, p99: r.sendLag.p99, max: r.sendLag.max };
  e.closed += r.closedDuringRun;
}

function chatterRates(r: RunSummary, durationS: number): ChatterRates | null {
  const c = r.chatter;
  if (!c) return null;
  const per = (n: number): number => Math.round(n / durationS);
  return {
    reads_sent_per_s: per(c.reads),
    typing_sent_per_s: per(c.typing),
    receipts_per_s: per(c.receipts),
    typing_notices_per_s: per(c.typingNotices),
    reads_skipped: c.readsSkipped,
    not_open: c.notOpen,
    slices_dropped: c.slicesDropped,
    errors: c.errors,
    error_codes: c.errorCodes,
  };
}

/** The entry's chatter figures from the run it reports; null without chatter. */
function applyChatter(e: ResultEntry, r: RunSummary, durationS: number, cfg: BenchConfig): void {
  const rates = chatterRates(r, durationS);
  if (!rates) return;
  const members = (e.groups ?? 0) * (e.group_size ?? 0);
  e.chatter = {
    on: true,
    members,
    every_ms: 1000,
    expected_sent_per_s: members,
    expected_received_per_s: members * Math.max(0, (e.group_size ?? cfg.groupSize) - 1),
    ...rates,
  };
}

/** A running target: the server, its sampler, and where its load-generator pids come from. */
export interface Env {
  readonly t: TargetHandle;
  readonly sampler: Sampler;
  readonly pids: { set: (f: () => number[]) => void };
  /** Every process of ours: coordinator, server, load workers. */
  readonly ours: () => number[];
}

/** A running target with its sampler; always stopped, whatever happens in `body`. */
export async function withTarget<T>(name: TargetName, cfg: BenchConfig, users: number, body: (env: Env) => Promise<T>, inspect = false): Promise<T> {
  const clustered = name === 'parley' && cfg.nodes > 1;
  const label = `${name}${clustered ? ` (${cfg.nodes} nodes)` : ''}: starting${users > 0 && name === 'parley' ? ` (+${users} users)` : ''}`;
  const progress = new Progress(label, 1, cfg.quiet);
  progress.update(0);
  // One more than the first pool needs: the next pool on this target then starts at once too.
  // A cluster run's one big pool gets all its workers booted while the nodes start.
  WorkerPool.prewarm(workersFor(cfg, clustered ? users : Math.min(users, MAX_CONNS_PER_WORKER)) + 1);
  const options = {
    users: name === 'parley' ? users : 0,
    durability: cfg.durability,
    ...(cfg.store ? { store: cfg.store } : {}),
    ...(cfg.redis ? { redis: cfg.redis } : {}),
    serverFlags: name === 'parley' ? cfg.serverFlags : {},
    serverNodeArgs: cfg.serverNodeArgs,
    ...(cfg.parleydEntry ? { parleydEntry: cfg.parleydEntry } : {}),
    ...(cfg.serverLogDir && name === 'parley' ? { logDir: cfg.serverLogDir } : {}),
    inspect,
  };
  const t = clustered
    ? await startParleyCluster({ ...options, nodes: cfg.nodes, onProgress: (x) => progress.update(0, x) })
    : await startTarget(name, options);
  progress.done(
    [t.provision ? `provisioned ${t.provision.users} users in ${t.provision.seconds} s` : '', t.cluster ? `${t.cluster.nodes} nodes formed in ${t.cluster.formed_s} s` : '']
      .filter(Boolean)
      .join('; '),
  );
  if (t.cluster && !cfg.quiet) note(`  tokens: ${t.cluster.tokens}`);
  let gen: () => number[] = () => [];
  const serverPids = t.nodes.map((n) => n.pid);
  const sampler = new Sampler(serverPids, t.nodes.map((n) => n.healthUrl), () => gen(), 500, t.auxPids).start();
  const scraper = name === 'parley' && (cfg.scrapeMetricsMs ?? 0) > 0 ? await new MetricsScraper(t.nodes, cfg.scrapeMetricsMs!, cfg.metricsDumpDir).start() : undefined;
  try {
    return await body({ t, sampler, pids: { set: (f) => (gen = f) }, ours: () => [process.pid, ...serverPids, ...t.auxPids, ...gen()] });
  } finally {
    sampler.stop();
    await scraper?.stop();
    const stopping = new Progress(`${name}: stopping ${t.nodes.length} server process${t.nodes.length > 1 ? 'es' : ''}`, 1, cfg.quiet || t.nodes.length === 1);
    await t.stop();
    stopping.done();
  }
}

function connSpecs(t: TargetHandle, from: number, count: number): ConnSpec[] {
  return Array.from({ length: count }, (_, i) => {
    const u = t.users[from + i];
    return u ? { token: u.token, user: u.username } : { user: `u${from + i}` };
  });
}

async function makeChannels(t: TargetHandle, cfg: BenchConfig, kind: 'dm' | 'group', members: number[][]): Promise<string[]> {
  if (t.name !== 'parley') return members.map((_, i) => `${kind}-${i}`);
  const p = new Progress(`parley: creating ${members.length} ${kind === 'dm' ? 'DMs' : 'groups'}`, members.length, cfg.quiet);
  const ids = await createParleyChannels(
    t,
    members.map((m) => ({ kind, members: m })),
    (d) => p.update(d, `${d}/${members.length}`),
  );
  p.done(`${members.length}/${members.length}`);
  return ids;
}

async function openPool(
  t: TargetHandle,
  cfg: BenchConfig,
  label: string,
  conns: ConnSpec[],
  groups: { channel: string; members: number[] }[],
  pids: { set: (f: () => number[]) => void },
  extraPids: () => number[] = () => [],
  onUp?: (connected: number) => void,
  sources: readonly string[] = sourceAddresses(conns.length),
): Promise<{
  pool: WorkerPool;
  connected: number;
  failed: number;
  failures: Record<string, number>;
  connectMs: number;
  workers: number;
  byNode: Record<string, NodeCounts> | undefined;
  discovery: { asks: number; failures: number; retries: number; totalMs: number; maxMs: number } | undefined;
}> {
  const workers = workersFor(cfg, conns.length);
  const p = new Progress(`${t.name}: ${label}`, conns.length, cfg.quiet);
  const { pool, connect } = await WorkerPool.start({
    target: t.name,
    url: t.wsBase,
    ...(t.discovery ? { discovery: t.discovery } : {}),
    connectRate: cfg.connectRate,
    giveUpPct: cfg.giveUpPct,
    workers,
    sources,
    conns,
    groups,
    connectConcurrency: cfg.connectConcurrency ?? connectConcurrencyFor(workers),
    connectTimeoutMs: cfg.connectTimeoutS * 1000,
    heartbeatMs: cfg.heartbeatMs,
    textBytes: cfg.textBytes,
    ackEvery: cfg.ackEvery,
    client: cfg.client,
    ...(cfg.groupChatter && t.name === 'parley' ? { chatter: true } : {}),
    onProgress: (x) => {
      p.update(x.connected + x.failed, `${x.connected} up, ${x.failed} failed`);
      onUp?.(x.connected);
    },
    // The sampler counts the workers as the generator from the start, not as other processes.
    onSpawned: (workerPids) => pids.set(() => [...extraPids(), ...workerPids]),
  });
  pids.set(() => [...extraPids(), ...pool.pids()]);
  p.done(`${connect.connected} up, ${connect.failed} failed in ${(connect.connectMs / 1000).toFixed(1)} s`);
  if (connect.failed > 0) note(`  ${t.name}: connection failures: ${JSON.stringify(connect.failures)}`);
  if (connect.byNode && !cfg.quiet) {
    const spread = Object.entries(connect.byNode).sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1)) || a.localeCompare(b));
    note(`  discovery placed: ${spread.map(([k, v]) => `${k} ${v.connected}${v.failed ? ` (+${v.failed} failed)` : ''}`).join(', ')}`);
  }
  return { pool, ...connect, workers };
}

/** Waits for a quiet machine when asked to; adds the time waited to the entry. */
async function quietGate(env: Env, cfg: BenchConfig, e: ResultEntry | undefined): Promise<void> {
  if (cfg.quietMachinePct <= 0) return;
  const r = await waitForQuietMachine(cfg.quietMachinePct, cfg.quietMaxWaitS, env.ours, (other, waited) => {
    if (!cfg.quiet) note(`  waiting for a quiet machine: other processes use ${other}% of a core (limit ${cfg.quietMachinePct}%), ${waited.toFixed(0)} s so far`);
  });
  if (e) {
    e.quiet_wait_s = Math.round(((e.quiet_wait_s ?? 0) + r.waitedS) * 10) / 10;
    if (r.otherPct > cfg.quietMachinePct) e.notes.push(`started although other processes used ${r.otherPct}% of a core (waited ${r.waitedS} s, the most allowed)`);
  }
}

/**
 * A measured run at `rate`: waits for a quiet machine first and redoes the run (bounded) when
 * other processes took more than their share of the CPU meanwhile. Returns the last attempt.
 */
async function measuredRun(m: Messaging, cfg: BenchConfig, e: ResultEntry, label: string, rate: number, durationS: number): Promise<{ r: RunSummary; w: WindowStats }> {
  const limit = cfg.quietMachinePct * 1.5;
  const attempts = 1 + (cfg.quietMachinePct > 0 ? Math.max(0, cfg.contentionRetries) : 0);
  let last: { r: RunSummary; w: WindowStats } | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) {
      e.notes.push(`${label}: redone, other processes used ${last!.w.other_cpu_pct}% of a core during attempt ${attempt}`);
      if (!cfg.quiet) note(`  other processes used ${last!.w.other_cpu_pct}% of a core during the run; running it again`);
      await sleep(3_000);
    }
    const r = await timedRun(m.pool, cfg, label, rate, durationS, () => quietGate(m.env, cfg, e));
    last = { r, w: m.sampler.window(r.startedAt, performance.now()) };
    if (cfg.quietMachinePct <= 0 || last.w.other_cpu_pct <= limit) return last;
  }
  e.notes.push(`${label}: other processes used ${last!.w.other_cpu_pct}% of a core during the run (kept after ${attempts - 1} retries)`);
  return last!;
}

async function timedRun(
  pool: WorkerPool,
  cfg: BenchConfig,
  label: string,
  rate: number,
  durationS: number,
  gate?: () => Promise<void>,
): Promise<RunSummary & { startedAt: number }> {
  if (gate) await gate();
  const p = new Progress(label, durationS * 1000, cfg.quiet);
  const t0 = performance.now();
  const timer = setInterval(() => {
    const x = pool.progress();
    p.update(performance.now() - t0, `sent ${x.sent} delivered ${x.delivered} errors ${x.errors}`);
  }, 250);
  try {
    const r = await pool.run(rate, durationS * 1000, cfg.drainS * 1000);
    p.done(`sent ${r.sent} delivered ${r.delivered}/${r.expected} errors ${r.errors} timeouts ${r.timeouts} p99 ${r.latency.p99} ms`);
    return { ...r, startedAt: t0 };
  } finally {
    clearInterval(timer);
  }
}

// ---- connections

export async function connections(target: TargetName, cfg: BenchConfig, levels: readonly number[] = cfg.sessions): Promise<ResultEntry> {
  const n = Math.max(...levels);
  if (n > MAX_SESSIONS_PER_NODE * cfg.nodes) throw new Error(`${n} sessions need ${Math.ceil(n / MAX_SESSIONS_PER_NODE)} nodes (one process holds at most ${MAX_SESSIONS_PER_NODE}: 20,000 open files)`);
  return withTarget(target, cfg, n, (env) => connectionsIn(env, cfg, levels, 0), cfg.gcBeforeMemory);
}

interface Memory {
  /** Summed over the server's processes. */
  readonly rss: number;
  readonly heap: number | undefined;
  /** Per server process, in the order of `t.nodes`. */
  readonly perNode: { rss: number; heap: number | undefined }[];
}

/** RSS (and JS heap), after a forced full GC in every server process that has an inspector. */
async function memoryNow(env: Env, cfg: BenchConfig): Promise<Memory> {
  const heaps: (number | undefined)[] = env.t.nodes.map(() => undefined);
  if (cfg.gcBeforeMemory) {
    for (const [i, node] of env.t.nodes.entries()) {
      if (!node.inspectorUrl) continue;
      try {
        heaps[i] = (await collectGarbage(node.inspectorUrl)).usedBytes;
      } catch (err) {
        note(`  ${env.t.name} ${node.nodeId}: could not force a GC: ${err instanceof Error ? err.message : String(err)}`);
        // An unresponsive node: the others are likely no better, and each try costs 30 s.
        if (env.t.nodes.length > 1 && i < env.t.nodes.length - 1) note(`  ${env.t.name}: reading the other nodes' memory without a forced GC`);
        break;
      }
    }
    if (heaps.some((h) => h !== undefined)) await sleep(300);
  }
  const rss = await steadyRss(env.sampler, cfg);
  const per = env.sampler.rssNowPer();
  const heap = heaps.every((h) => h !== undefined) ? heaps.reduce<number>((a, h) => a + h!, 0) : undefined;
  return { rss, heap, perNode: env.t.nodes.map((_, i) => ({ rss: per[i] ?? 0, heap: heaps[i] })) };
}

/**
 * Freshly started nodes keep returning start-up memory to the OS for a while (module loading,
 * compilation): RSS read too early makes the baseline too high and RSS per session too low.
 * Reads memory (after GC) every 2 s until two readings agree within 1 %, at most 30 s.
 */
async function settledMemory(env: Env, cfg: BenchConfig): Promise<Memory> {
  let last = await memoryNow(env, cfg);
  const end = performance.now() + 30_000;
  for (let i = 0; i < 20 && performance.now() < end; i++) {
    await sleep(2_000);
    const m = await memoryNow(env, cfg);
    const stable = Math.abs(m.rss - last.rss) <= last.rss * 0.01;
    last = m;
    if (stable) break;
  }
  return last;
}

async function startHoldProfiles(t: TargetHandle): Promise<{ nodeId: string; stop: () => Promise<unknown> }[]> {
  const out: { nodeId: string; stop: () => Promise<unknown> }[] = [];
  for (const node of t.nodes) {
    if (!node.inspectorUrl) {
      note(`  ${node.nodeId}: no inspector, no profile`);
      continue;
    }
    try {
      out.push({ nodeId: node.nodeId, stop: await startCpuProfile(node.inspectorUrl) });
    } catch (err) {
      note(`  ${node.nodeId}: could not start the profiler: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}

async function writeHoldProfiles(profiles: { nodeId: string; stop: () => Promise<unknown> }[], dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const p of profiles) {
    try {
      const file = join(dir, `${p.nodeId}.hold.cpuprofile`);
      writeFileSync(file, JSON.stringify(await p.stop()));
      written.push(file);
    } catch (err) {
      note(`  ${p.nodeId}: could not stop the profiler: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return written.length ? [`CPU profiles of the hold: ${written.join(', ')}`] : [];
}

async function healthConnections(url: string): Promise<number | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const j = (await res.json()) as { connections?: unknown };
    return typeof j.connections === 'number' ? j.connections : null;
  } catch {
    return null;
  }
}

/** Sessions of users base.. in steps of `levels`, then held; measures RSS before, per level and after. */
async function connectionsIn(env: Env, cfg: BenchConfig, levels: readonly number[], base: number): Promise<ResultEntry> {
  const { t, sampler, pids } = env;
  const target = t.name;
  const e = blankEntry('connections', target, cfg);
  const sorted = [...new Set(levels)].sort((a, b) => a - b);
  const n = sorted.at(-1)!;
  e.sessions = n;
  e.provision = t.provision ?? null;
  e.nodes = t.nodes.length;
  await sleep(cfg.settleS * 400);
  const beforeMem = t.nodes.length > 1 ? await settledMemory(env, cfg) : await memoryNow(env, cfg);
  const before = beforeMem.rss;
  e.server_rss_before_bytes = before;
  e.gc_before_memory = beforeMem.heap !== undefined;
  const pools: WorkerPool[] = [];
  const levelsOut: LevelResult[] = [];
  const byNode: Record<string, NodeCounts> = {};
  const discovery = { asks: 0, failures: 0, retries: 0, totalMs: 0, maxMs: 0 };
  let connected = 0;
  let connectSeconds = 0;
  const connectStartedMs = Date.now();
  const connectT0 = performance.now();
  /** Sessions up over time while connecting: [performance.now(), sessions up]. */
  const upAt: [number, number][] = [];
  let sourcesUsed = 0;
  let logAtHoldEnd: ServerLog | undefined;
  let logAfterMemory: ServerLog | undefined;
  try {
    let have = 0;
    for (const level of sorted) {
      const add = level - have;
      const conns = connSpecs(t, base + have, add);
      await quietGate(env, cfg, e);
      const base0 = connected;
      // Each level on fresh source addresses: the earlier levels' sockets still hold theirs.
      const sources = sourceAddresses(conns.length, sourcesUsed);
      sourcesUsed += sources.length;
      const opened = await openPool(
        t,
        cfg,
        `connecting ${have}..${level}`,
        conns,
        [],
        pids,
        () => pools.flatMap((p) => p.pids()),
        (up) => upAt.push([performance.now(), base0 + up]),
        sources,
      );
      upAt.push([performance.now(), base0 + opened.connected]);
      pools.push(opened.pool);
      e.workers += opened.workers;
      connected += opened.connected;
      connectSeconds += opened.connectMs / 1000;
      have = level;
      pids.set(() => pools.flatMap((p) => p.pids()));
      for (const [k, v] of Object.entries(opened.byNode ?? {})) {
        const x = (byNode[k] ??= { assigned: 0, connected: 0, failed: 0 });
        x.assigned += v.assigned;
        x.connected += v.connected;
        x.failed += v.failed;
      }
      if (opened.discovery) {
        discovery.asks += opened.discovery.asks;
        discovery.failures += opened.discovery.failures;
        discovery.retries += opened.discovery.retries;
        discovery.totalMs += opened.discovery.totalMs;
        discovery.maxMs = Math.max(discovery.maxMs, opened.discovery.maxMs);
      }
      if (opened.failed > 0) e.notes.push(`level ${level}: ${opened.failed} sessions failed to connect: ${JSON.stringify(opened.failures)}`);
      await sleep(cfg.settleS * 1000);
      const mem = await memoryNow(env, cfg);
      const rss = mem.rss;
      const heapGrowth = mem.heap !== undefined && beforeMem.heap !== undefined ? mem.heap - beforeMem.heap : undefined;
      levelsOut.push({
        sessions: level,
        connected,
        rss_bytes: rss,
        rss_per_session_bytes: connected > 0 ? Math.round((rss - before) / connected) : 0,
        heap_used_bytes: mem.heap ?? null,
        heap_per_session_bytes: heapGrowth !== undefined && connected > 0 ? Math.round(heapGrowth / connected) : null,
        connect_s: Math.round((opened.connectMs / 1000) * 100) / 100,
        connect_rate_per_s: opened.connectMs > 0 ? Math.round(opened.connected / (opened.connectMs / 1000)) : 0,
      });
    }
    // Hold: every session heartbeats; the server must keep them all.
    await quietGate(env, cfg, e);
    const h0 = await Promise.all(pools.map((p) => p.status()));
    const profiles = cfg.profileHoldDir ? await startHoldProfiles(t) : [];
    const holdStartedMs = Date.now();
    const t0 = performance.now();
    const hp = new Progress(`${target}: holding ${connected} sessions`, cfg.holdS * 1000, cfg.quiet);
    const holdEnd = t0 + cfg.holdS * 1000;
    const timeline: [number, number][] = [[0, sampler.rssNow()]];
    for (let i = 0; i < 100_000 && performance.now() < holdEnd; i++) {
      await sleep(Math.min(1_000, Math.max(0, holdEnd - performance.now())));
      const rss = sampler.rssNow();
      const at = (performance.now() - t0) / 1000;
      if (at - timeline.at(-1)![0] >= 5 || performance.now() >= holdEnd) timeline.push([Math.round(at), rss]);
      const w = sampler.window(performance.now() - 2_000, performance.now());
      hp.update(performance.now() - t0, `rss ${(rss / 1048576).toFixed(1)} MiB, server CPU ${w.server_cpu_pct}%, machine ${w.machine_cpu_pct}%`);
    }
    e.rss_timeline = timeline;
    const t1 = performance.now();
    logAtHoldEnd = copyLog(t.log);
    e.timeline = buildTimeline(sampler, connectT0, t0, t1, upAt, connected);
    // A shared machine: say so when others took a real share of the CPU while we measured.
    const othersConnect = sampler.window(connectT0, t0).other_cpu_pct;
    const othersHold = sampler.window(t0, t1).other_cpu_pct;
    if (othersConnect > 25 || othersHold > 25) {
      e.notes.push(
        `processes outside the benchmark used ${othersConnect}% of a core while connecting and ${othersHold}% during the hold (of ${cpus().length * 100}%): the run shared the machine`,
      );
    }
    const h1 = await Promise.all(pools.map((p) => p.status()));
    if (cfg.profileHoldDir) e.notes.push(...(await writeHoldProfiles(profiles, cfg.profileHoldDir)));
    // The nodes' own counts, right at the end of the hold.
    const serverCounts = t.nodes.length > 1 ? await Promise.all(t.nodes.map((node) => healthConnections(node.healthUrl))) : [];
    const open = h1.reduce((a, s) => a + s.open, 0);
    const closed = h1.reduce((a, s) => a + s.closed, 0);
    const beats = h1.reduce((a, s) => a + s.heartbeats, 0) - h0.reduce((a, s) => a + s.heartbeats, 0);
    const skipped = h1.reduce((a, s) => a + s.heartbeatSkipped, 0) - h0.reduce((a, s) => a + s.heartbeatSkipped, 0);
    for (const s of h1) for (const [k, v] of Object.entries(s.closeCodes)) e.close_codes[k] = (e.close_codes[k] ?? 0) + v;
    const byTime: Record<string, number> = {};
    for (const s of h1) for (const [k, v] of Object.entries(s.closedByTime ?? {})) byTime[k] = (byTime[k] ?? 0) + v;
    const closeBins = Object.entries(byTime)
      .map(([k, v]) => [Number(k) * 5_000, v] as const)
      .sort((a, b) => a[0] - b[0]);
    if (closeBins.length > 0) {
      const at = (ms: number): string => (ms < holdStartedMs ? `${Math.round((ms - connectStartedMs) / 1000)} s into connecting` : `${Math.round((ms - holdStartedMs) / 1000)} s into the hold`);
      e.notes.push(`sessions closed after they were up, by 5 s: ${closeBins.slice(0, 40).map(([ms, v]) => `${at(ms)} ${v}`).join(', ')}${closeBins.length > 40 ? ', …' : ''}`);
    }
    hp.done(`${open}/${n} still up`);
    const rssNoGc = await steadyRss(sampler, cfg);
    const afterMem = await memoryNow(env, cfg);
    logAfterMemory = copyLog(t.log);
    const rssAfter = afterMem.rss;
    const w = sampler.window(t0, t1);
    applyWindow(e, w);
    e.server_rss_bytes = rssAfter;
    e.server_rss_peak_bytes = Math.max(...sampler.samples.map((s) => s.rssBytes));
    e.connected = connected;
    e.rss_per_session_bytes = connected > 0 ? Math.round((rssAfter - before) / connected) : null;
    e.rss_per_session_no_gc_bytes = connected > 0 ? Math.round((rssNoGc - before) / connected) : null;
    e.heap_per_session_bytes =
      connected > 0 && afterMem.heap !== undefined && beforeMem.heap !== undefined ? Math.round((afterMem.heap - beforeMem.heap) / connected) : null;
    e.levels = levelsOut;
    e.connect_rate_per_s = connectSeconds > 0 ? Math.round(connected / connectSeconds) : null;
    e.all_up = open === n && closed === 0;
    e.closed = closed;
    const expectedBeats = Math.round(connected / (cfg.heartbeatMs / 1000));
    e.heartbeats = { sent: beats, per_s: Math.round(beats / ((t1 - t0) / 1000)), skipped, due_per_s: expectedBeats };
    e.duration_s = cfg.holdS;
    const cpuNote = `server ${w.server_cpu_pct}% CPU${t.nodes.length > 1 ? ` over ${t.nodes.length} nodes (busiest event loop ${w.server_main_thread_cpu_pct}%)` : ''}, generator ${w.generator_cpu_pct}%, other processes ${w.other_cpu_pct}%, machine ${w.machine_cpu_pct}% of ${cpus().length} cores`;
    e.bottleneck = `idle: ${cpuNote} while handling ${e.heartbeats.per_s} heartbeats/s (${expectedBeats} due)`;
    if (w.machine_cpu_pct >= 90) e.bottleneck += `; machine CPU saturated`;
    if (e.heartbeats.per_s < expectedBeats * 0.95) e.notes.push(`the generator sent ${e.heartbeats.per_s} heartbeats/s of the ${expectedBeats} due (every session every ${cfg.heartbeatMs} ms): it fell behind`);
    if (levelsOut.length >= 2) {
      const a = levelsOut[0]!;
      const b = levelsOut.at(-1)!;
      const slope = Math.round((b.rss_bytes - a.rss_bytes) / Math.max(1, b.connected - a.connected));
      e.notes.push(`RSS slope ${a.sessions}->${b.sessions} sessions: ${slope} bytes/session (per-session average at ${a.sessions}: ${a.rss_per_session_bytes}, at ${b.sessions}: ${b.rss_per_session_bytes})`);
    }
    if (connected < n) e.notes.push(`${n - connected} sessions could not connect`);
    const whyNot: string[] = [];
    if (open < n) whyNot.push(`${n - open} of ${n} sessions not up at the end of the hold`);
    if (e.heartbeats.per_s < expectedBeats * 0.95) whyNot.push(`heartbeats ${e.heartbeats.per_s}/s of ${expectedBeats}/s due`);
    const slowProbe = t.nodes.length > 1 ? Math.max(0, ...w.per_server.map((x) => x.healthz_probe_ms?.p99 ?? 0)) : (w.healthz_probe_ms?.p99 ?? 0);
    if (slowProbe >= 1_000) whyNot.push(`a server's GET /healthz p99 ${slowProbe} ms during the hold`);
    e.held_why_not = whyNot;
    if (t.cluster) {
      const openBy: Record<string, number> = {};
      const closedBy: Record<string, number> = {};
      for (const s of h1) for (const [k, v] of Object.entries(s.openByNode ?? {})) openBy[k] = (openBy[k] ?? 0) + v;
      for (const s of h1) for (const [k, v] of Object.entries(s.closedByNode ?? {})) closedBy[k] = (closedBy[k] ?? 0) + v;
      e.per_node = t.nodes.map((node, i) => {
        const up = openBy[node.nodeId] ?? 0;
        const b0 = beforeMem.perNode[i]!;
        const a1 = afterMem.perNode[i]!;
        const ws = w.per_server[i];
        return {
          node_id: node.nodeId,
          pid: node.pid,
          sessions_assigned: byNode[node.nodeId]?.assigned ?? 0,
          sessions_up: up,
          sessions_closed: closedBy[node.nodeId] ?? 0,
          server_connections: serverCounts[i] ?? null,
          rss_before_bytes: b0.rss,
          rss_after_bytes: a1.rss,
          rss_per_session_bytes: up > 0 ? Math.round((a1.rss - b0.rss) / up) : null,
          heap_used_bytes: a1.heap ?? null,
          cpu_pct: ws?.cpu_pct ?? 0,
          main_thread_cpu_pct: ws?.main_thread_cpu_pct ?? 0,
          main_thread_cpu_peak_pct: ws?.main_thread_cpu_peak_pct ?? 0,
          healthz_probe_ms: ws?.healthz_probe_ms ?? null,
        };
      });
      const ups = e.per_node.map((x) => x.sessions_up);
      const mean = ups.reduce((a, b) => a + b, 0) / Math.max(1, ups.length);
      e.cluster = {
        nodes: t.cluster.nodes,
        etcd_url: t.cluster.etcd_url,
        prefix: t.cluster.prefix,
        store: t.cluster.store,
        secret: t.cluster.secret,
        tokens: t.cluster.tokens,
        formed_s: t.cluster.formed_s,
        etcd_rss_bytes: w.aux_rss_bytes,
        etcd_cpu_pct: w.aux_cpu_pct,
        discovery:
          discovery.asks + discovery.failures > 0
            ? { endpoint: 'GET /v1/servers (first entry: least loaded)', asks: discovery.asks, failures: discovery.failures, retries: discovery.retries, mean_ms: Math.round((discovery.totalMs / Math.max(1, discovery.asks)) * 100) / 100, max_ms: discovery.maxMs }
            : null,
        spread: ups.length ? { min: Math.min(...ups), max: Math.max(...ups), mean: Math.round(mean), max_over_mean: mean > 0 ? Math.round((Math.max(...ups) / mean) * 1000) / 1000 : 0 } : null,
      };
      const lost = logAtHoldEnd.byMessage['cluster membership lost; passivating placed actors and refusing their messages'] ?? 0;
      if (lost > 0) {
        e.notes.push(
          `${lost} time(s) a node lost its own etcd registration (no lease renewal within 90 % of the ${cfg.serverFlags['lease-ttl-s'] ?? '5'} s lease TTL: an event loop starved of CPU or blocked) and passivated its actors; the others then moved actors and sessions reattached`,
        );
      }
      const unresponsive = e.per_node.filter((x) => (x.healthz_probe_ms?.p99 ?? 0) >= 2_000).length;
      if (unresponsive > 0) e.notes.push(`${unresponsive} of ${t.nodes.length} nodes did not answer GET /healthz within 2 s for most of the hold`);
      if (!e.all_up) e.notes.push('RSS per session is (RSS after − RSS before) / sessions connected; with sessions lost and queues growing it is not the cost of a held session');
      if (lost > 0) whyNot.push(`${lost} lost etcd registration(s)`);
      const serverSum = serverCounts.reduce<number>((a, c) => a + (c ?? 0), 0);
      if (serverCounts.every((c) => c !== null) && serverSum !== open) e.notes.push(`the nodes count ${serverSum} connections (GET /healthz), the generator ${open} open sessions`);
      e.bottleneck += `; etcd ${w.aux_cpu_pct}% CPU`;
    }
  } finally {
    if (e.held_why_not) e.held = e.held_why_not.length === 0;
    const closing = new Progress(`${target}: closing ${connected} sessions`, 1, cfg.quiet);
    await Promise.all(pools.map((p) => p.close()));
    closing.done();
    if (t.nodes.length > 1) await sleep(3_000); // let the nodes log what the mass close did to them
    const end = copyLog(t.log);
    e.server_log = logAtHoldEnd ?? end;
    if (logAtHoldEnd && logAfterMemory) {
      const m = diffLog(logAtHoldEnd, logAfterMemory);
      const c = diffLog(logAfterMemory, end);
      e.server_log_after_hold = m.warn + m.error + c.warn + c.error > 0 ? { memory_reading: m, closing: c } : null;
    }
  }
  return e;
}

function copyLog(l: ServerLog): ServerLog {
  return { warn: l.warn, error: l.error, byMessage: { ...l.byMessage } };
}

/** What was logged between two copies of a server log's counts. */
function diffLog(a: ServerLog, b: ServerLog): ServerLog {
  const byMessage: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.byMessage)) if (v - (a.byMessage[k] ?? 0) > 0) byMessage[k] = v - (a.byMessage[k] ?? 0);
  return { warn: b.warn - a.warn, error: b.error - a.error, byMessage };
}

/** Median of three RSS readings 500 ms apart (GC makes single readings jumpy); one when settling is short. */
async function steadyRss(sampler: Sampler, cfg: BenchConfig): Promise<number> {
  const n = cfg.settleS >= 2 ? 3 : 1;
  const r: number[] = [];
  for (let i = 0; i < n; i++) {
    r.push(sampler.rssNow());
    if (i < n - 1) await sleep(500);
  }
  return r.sort((a, b) => a - b)[Math.floor(n / 2)]!;
}

// ---- messaging (one-to-one, group, max-throughput)

interface Messaging {
  readonly env: Env;
  readonly t: TargetHandle;
  readonly pool: WorkerPool;
  readonly sampler: Sampler;
  readonly workers: number;
}

type Shape = { kind: 'dm' | 'group'; count: number; size: number };

function usersOf(shape: Shape, cfg: BenchConfig): number {
  const users = shape.count * shape.size;
  if (users > MAX_SESSIONS_PER_NODE * cfg.nodes) throw new Error(`${users} sessions need more than one node (at most ${MAX_SESSIONS_PER_NODE} per process)`);
  return users;
}

/** Channels of users base.., all members connected; `body` drives them. */
async function withMessaging<T>(env: Env, cfg: BenchConfig, shape: Shape, base: number, e: ResultEntry, body: (m: Messaging) => Promise<T>): Promise<T> {
  const { t, sampler, pids } = env;
  const users = usersOf(shape, cfg);
  e.provision = t.provision ?? null;
  e.nodes = t.nodes.length;
  const members = Array.from({ length: shape.count }, (_, g) => Array.from({ length: shape.size }, (_, i) => base + g * shape.size + i));
  const channels = await makeChannels(t, cfg, shape.kind, members);
  // The pool indexes its own connection list from 0.
  const groups = members.map((m, i) => ({ channel: channels[i]!, members: m.map((x) => x - base) }));
  e.server_rss_before_bytes = await steadyRss(sampler, cfg);
  // Chatter is the group scenario's, and Parley's only (run.ts refuses it with other targets).
  const chatter = shape.kind === 'group' && cfg.groupChatter && t.name === 'parley';
  const opened = await openPool(t, { ...cfg, groupChatter: chatter }, `connecting ${users} sessions`, connSpecs(t, base, users), groups, pids);
  e.workers = opened.workers;
  e.connected = opened.connected;
  if (opened.failed > 0) e.notes.push(`${opened.failed} of ${users} sessions failed to connect: ${JSON.stringify(opened.failures)}`);
  try {
    return await body({ env, t, pool: opened.pool, sampler, workers: opened.workers });
  } finally {
    e.server_log = t.log;
    await opened.pool.close();
    WorkerPool.prewarm(opened.workers + 1);
  }
}

async function warmup(m: Messaging, cfg: BenchConfig, rate: number): Promise<void> {
  if (cfg.warmupS <= 0) return;
  await timedRun(m.pool, cfg, `${m.t.name}: warm-up ${rate}/s`, rate, cfg.warmupS);
  await sleep(500);
}

export async function oneToOne(target: TargetName, cfg: BenchConfig, rate: number): Promise<ResultEntry> {
  const shape: Shape = { kind: 'dm', count: cfg.pairs, size: 2 };
  return withTarget(target, cfg, usersOf(shape, cfg), (env) => oneToOneIn(env, cfg, rate, 0));
}

async function oneToOneIn(env: Env, cfg: BenchConfig, rate: number, base: number): Promise<ResultEntry> {
  const target = env.t.name;
  const e = blankEntry('one-to-one', target, cfg);
  e.pairs = cfg.pairs;
  e.offered_rate = rate;
  e.duration_s = cfg.durationS;
  return withMessaging(env, cfg, { kind: 'dm', count: cfg.pairs, size: 2 }, base, e, async (m) => {
    await warmup(m, cfg, rate);
    const { r, w } = await measuredRun(m, cfg, e, `${target}: one-to-one ${rate}/s`, rate, cfg.durationS);
    applyRun(e, r);
    applyWindow(e, w);
    e.deliveries_per_s = Math.round(r.delivered / cfg.durationS);
    e.bottleneck = bottleneck(w, r.sendLag.p99, m.workers);
    return e;
  });
}

/** Fixed rate when `rate` is given; otherwise steps the rate up to the highest that holds. */
export async function group(target: TargetName, cfg: BenchConfig, rate: number | undefined): Promise<ResultEntry> {
  const shape: Shape = { kind: 'group', count: cfg.groups, size: cfg.groupSize };
  return withTarget(target, cfg, usersOf(shape, cfg), (env) => groupIn(env, cfg, rate, 0));
}

async function groupIn(env: Env, cfg: BenchConfig, rate: number | undefined, base: number): Promise<ResultEntry> {
  const target = env.t.name;
  const e = blankEntry('group', target, cfg);
  e.groups = cfg.groups;
  e.group_size = cfg.groupSize;
  e.chatter = null;
  return withMessaging(env, cfg, { kind: 'group', count: cfg.groups, size: cfg.groupSize }, base, e, async (m) => {
    if (rate !== undefined) {
      await warmup(m, cfg, rate);
      const { r, w } = await measuredRun(m, cfg, e, `${target}: group ${rate} msg/s`, rate, cfg.durationS);
      applyRun(e, r);
      applyWindow(e, w);
      e.offered_rate = rate;
      e.duration_s = cfg.durationS;
      e.deliveries_per_s = Math.round(r.delivered / cfg.durationS);
      applyChatter(e, r, cfg.durationS, cfg);
      e.bottleneck = bottleneck(w, r.sendLag.p99, m.workers);
      if (r.chatter?.errors) e.notes.push(`chatter: ${r.chatter.errors} errors ${JSON.stringify(r.chatter.errorCodes)}`);
      return e;
    }
    await stepUp(m, cfg, e, cfg.groupStartRate, 'group', cfg.groupP99LimitMs);
    return e;
  });
}

export async function maxThroughput(target: TargetName, cfg: BenchConfig): Promise<ResultEntry> {
  const shape: Shape = { kind: 'dm', count: cfg.pairs, size: 2 };
  return withTarget(target, cfg, usersOf(shape, cfg), async (env) => {
    const e = blankEntry('max-throughput', target, cfg);
    e.pairs = cfg.pairs;
    return withMessaging(env, cfg, shape, 0, e, async (m) => {
      await stepUp(m, cfg, e, cfg.startRate, 'max-throughput', cfg.p99LimitMs);
      return e;
    });
  });
}

/**
 * The quick check (npm test): one server per target, and on it a few idle sessions, a short
 * one-to-one run and a short group run, each on its own users. A part that fails is reported in
 * its entry's `error` and the others still run.
 */
export async function smoke(target: TargetName, cfg: BenchConfig): Promise<ResultEntry[]> {
  const sessions = Math.max(...cfg.sessions);
  const pairUsers = cfg.pairs * 2;
  const groupUsers = cfg.groups * cfg.groupSize;
  return withTarget(target, cfg, sessions + pairUsers + groupUsers, async (env) => {
    const parts: [string, () => Promise<ResultEntry>][] = [
      ['connections', () => connectionsIn(env, cfg, cfg.sessions, 0)],
      ['one-to-one', () => oneToOneIn(env, cfg, cfg.rate ?? 500, sessions)],
      ['group', () => groupIn(env, cfg, cfg.groupRate ?? 20, sessions + pairUsers)],
    ];
    const out: ResultEntry[] = [];
    for (const [name, run] of parts) {
      note(`-- ${name} · ${target}`);
      try {
        out.push(await run());
      } catch (err) {
        const e = blankEntry(name, target, cfg);
        e.error = err instanceof Error ? err.message : String(err);
        note(`!! ${name} · ${target} failed: ${e.error}`);
        out.push(e);
      }
    }
    return out;
  }, cfg.gcBeforeMemory);
}

/**
 * Raises the offered rate by `stepFactor` while a step holds (p99 within the limit, no errors,
 * nothing lost), then bisects twice between the last rate that held and the first that did not.
 * Bounded by maxSteps. The entry gets the best step's figures and every step.
 */
async function stepUp(m: Messaging, cfg: BenchConfig, e: ResultEntry, startRate: number, label: string, p99LimitMs: number): Promise<void> {
  const steps: StepResult[] = [];
  let best: { rate: number; r: RunSummary; w: WindowStats } | undefined;
  let failedAt: number | undefined;
  let rate = Math.max(1, Math.round(startRate));
  let refinements = 0;
  await warmup(m, cfg, rate);
  const verdict = (r: RunSummary): string | undefined =>
    r.errors > 0
      ? `${r.errors} errors ${JSON.stringify(r.errorCodes)}`
      : r.chatter && r.chatter.errors > 0
        ? `${r.chatter.errors} chatter frames refused ${JSON.stringify(r.chatter.errorCodes)}`
      : r.timeouts > 0
        ? `${r.timeouts} deliveries timed out`
        : r.latency.p99 > p99LimitMs
          ? `p99 ${r.latency.p99} ms > ${p99LimitMs} ms`
          : r.delivered < r.expected
            ? `${r.expected - r.delivered} deliveries missing`
            : undefined;
  for (let i = 0; i < cfg.maxSteps; i++) {
    let { r, w } = await measuredRun(m, cfg, e, `${m.t.name}: ${label} #${i + 1} ${rate}/s`, rate, cfg.stepS);
    let why = verdict(r);
    // On a shared machine one spike fails a step: a failure counts only when it repeats.
    for (let c = 0; why !== undefined && c < cfg.confirmFailures; c++) {
      if (!cfg.quiet) note(`  step did not hold (${why}); confirming`);
      e.notes.push(`${label} ${rate}/s failed once (${why}) and was run again`);
      await sleep(3_000);
      ({ r, w } = await measuredRun(m, cfg, e, `${m.t.name}: ${label} #${i + 1} ${rate}/s (again)`, rate, cfg.stepS));
      why = verdict(r);
    }
    steps.push({
      offered_rate: rate,
      sent: r.sent,
      expected: r.expected,
      delivered: r.delivered,
      errors: r.errors,
      timeouts: r.timeouts,
      latency_ms: latencyOf(r),
      send_lag_p99_ms: r.sendLag.p99,
      deliveries_per_s: Math.round(r.delivered / cfg.stepS),
      held: why === undefined,
      why_not: why,
      server_cpu_pct: w.server_cpu_pct,
      server_main_thread_cpu_pct: w.server_main_thread_cpu_pct,
      server_other_threads_cpu_pct: w.server_other_threads_cpu_pct,
      generator_cpu_pct: w.generator_cpu_pct,
      machine_cpu_pct: w.machine_cpu_pct,
      other_cpu_pct: w.other_cpu_pct,
      ...(r.chatter ? { chatter: chatterRates(r, cfg.stepS) } : {}),
    });
    if (why === undefined) {
      if (!best || rate > best.rate) best = { rate, r, w };
    } else {
      failedAt = failedAt === undefined ? rate : Math.min(failedAt, rate);
      if (!cfg.quiet) note(`  step did not hold: ${why}`);
    }
    // Let queues empty before the next step so one overload does not poison the next.
    await sleep(why === undefined ? 1_000 : 3_000);
    if (failedAt === undefined) {
      rate = Math.round(rate * cfg.stepFactor);
      continue;
    }
    if (!best) {
      rate = Math.round(rate / 2);
      if (rate < 1) break;
      continue;
    }
    if (refinements >= 2 || failedAt / best.rate < 1.1) break;
    refinements++;
    rate = Math.round((best.rate + failedAt) / 2);
  }
  e.steps = steps;
  e.max_rate = best?.rate ?? 0;
  const chosen = best ?? undefined;
  if (chosen) {
    applyRun(e, chosen.r);
    applyWindow(e, chosen.w);
    e.offered_rate = chosen.rate;
    e.duration_s = cfg.stepS;
    e.deliveries_per_s = Math.round(chosen.r.delivered / cfg.stepS);
    applyChatter(e, chosen.r, cfg.stepS, cfg);
  }
  const top = steps.reduce<StepResult | undefined>((a, s) => (!a || s.offered_rate > a.offered_rate ? s : a), undefined);
  const w = chosen?.w;
  const failing = steps.find((s) => !s.held && s.offered_rate === failedAt);
  e.bottleneck = failing
    ? `first rate that failed: ${failing.offered_rate}/s (${failing.why_not}); then server ${failing.server_cpu_pct}% CPU (main thread ${failing.server_main_thread_cpu_pct}%), generator ${failing.generator_cpu_pct}%, machine ${failing.machine_cpu_pct}%, send lag p99 ${failing.send_lag_p99_ms} ms`
    : `no step failed up to ${top?.offered_rate}/s (maxSteps reached)` + (w ? `; server ${w.server_cpu_pct}% CPU` : '');
  e.notes.push(`a step holds while p99 ≤ ${p99LimitMs} ms with no errors and nothing lost`);
  if (failedAt === undefined) e.notes.push('the step limit was reached before any step failed: max_rate is a lower bound');
  const dropped = steps.filter((s) => (s.chatter?.slices_dropped ?? 0) > 0);
  if (dropped.length > 0) e.notes.push(`the generator fell more than a second behind the chatter at ${dropped.map((s) => s.offered_rate).join(', ')}/s and dropped slices of it`);
  const lagged = steps.filter((s) => s.send_lag_p99_ms > 10);
  if (lagged.length > 0) e.notes.push(`generator send lag p99 above 10 ms at ${lagged.map((s) => s.offered_rate).join(', ')}/s: there the generator (or the shared CPU) added latency`);
}

// ---- provisioning alone

/** Users and tokens for `count` sessions through parleyctl, timed; no server involved. */
export async function provisionOnly(cfg: BenchConfig, count: number): Promise<ResultEntry> {
  const e = blankEntry('provision', 'parley', cfg);
  const dir = mkdtempSync(join(tmpdir(), 'parley-provision-'));
  const p = new Progress(`parley: provisioning ${count} users`, 1, cfg.quiet);
  try {
    const { figures } = await runParleyctl(dir, count);
    e.provision = figures;
    e.sessions = count;
    e.duration_s = figures.seconds;
    e.bottleneck = `parleyctl: ${figures.users_per_s} users/s (${figures.seconds} s for ${count}; goal: 250,000 in under 60 s)`;
    p.done(`${count} users in ${figures.seconds} s`);
    return e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
