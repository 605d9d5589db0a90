/**
 * Samples the server from outside every 500 ms: RSS and CPU from /proc/<pid> (whole process and
 * its main thread, the event loop), the load generator's CPU (its worker processes plus the
 * coordinator), machine-wide CPU, and the latency of a GET /healthz probe as a stand-in for
 * event-loop delay (the server cannot be changed to report it; if /healthz ever carries
 * `event_loop_delay_ms`, that is read too).
 *
 * A server may be several processes (a Parley cluster: one per node). Then RSS, CPU and disk
 * writes are sums over all of them, "main thread" is the busiest node's event loop in each
 * sample (the one that saturates first), every node is also reported on its own (its /healthz
 * probed too; the server's probe figure is then the slowest node's), and helper processes (etcd)
 * are sampled apart from both the server and "other jobs".
 */
import http from 'node:http';
import { cpus } from 'node:os';
import { CLK_TCK, readIo, readMachine, readProc, readThreads, loadAverage, type MachineTimes, type ProcTimes } from './proc.ts';

export interface Sample {
  /** performance.now() of the coordinator. */
  readonly t: number;
  readonly rssBytes: number;
  /** % of one core, all threads (can exceed 100). */
  readonly cpuPct: number;
  /** % of one core, main thread only. */
  readonly mainCpuPct: number;
  /** % of one core of the busiest threads other than the main one (SQLite writer, GC, ...). */
  readonly otherThreadsPct: number[];
  readonly generatorCpuPct: number;
  /** Storage writes of the server process, bytes/s. */
  readonly diskWriteBps: number;
  /** % of all cores, whole machine. */
  readonly machinePct: number;
  /** % of one core used by everything else on the machine (other jobs, kernel). */
  readonly otherCpuPct: number;
  /** % of one core in interrupts and softirqs (the kernel's share of loopback networking), not in otherCpuPct. */
  readonly irqCpuPct: number;
  readonly probeMs: number | undefined;
  readonly eventLoopDelayMs: number | undefined;
  readonly load1: number;
  /** Per server process, in the order given: RSS, CPU and main-thread CPU (% of one core). */
  readonly perServer: readonly { readonly rssBytes: number; readonly cpuPct: number; readonly mainCpuPct: number; readonly probeMs: number | undefined }[];
  /** Helper processes (etcd): RSS and CPU summed. */
  readonly auxRssBytes: number;
  readonly auxCpuPct: number;
}

export interface PerServerStats {
  readonly rss_bytes: number;
  readonly rss_peak_bytes: number;
  readonly cpu_pct: number;
  readonly main_thread_cpu_pct: number;
  readonly main_thread_cpu_peak_pct: number;
  /** GET /healthz latency of this process (a stand-in for its event-loop delay): p99 and max. */
  readonly healthz_probe_ms: { p99: number; max: number } | undefined;
}

export interface WindowStats {
  readonly samples: number;
  readonly server_rss_bytes: number;
  readonly server_rss_peak_bytes: number;
  readonly server_cpu_pct: number;
  readonly server_cpu_peak_pct: number;
  readonly server_main_thread_cpu_pct: number;
  readonly server_main_thread_cpu_peak_pct: number;
  /** Average % of one core of the three busiest other threads of the server (for Parley the SQLite writer is normally first). */
  readonly server_other_threads_cpu_pct: number[];
  readonly generator_cpu_pct: number;
  readonly server_disk_write_bytes_per_s: number;
  readonly machine_cpu_pct: number;
  readonly other_cpu_pct: number;
  readonly irq_cpu_pct: number;
  readonly load_avg_1m: number;
  readonly healthz_probe_ms: { p50: number; p99: number; max: number } | undefined;
  readonly event_loop_delay_ms: { mean: number; max: number } | undefined;
  /** One entry per server process (same order as given to the sampler). */
  readonly per_server: PerServerStats[];
  readonly aux_rss_bytes: number;
  readonly aux_cpu_pct: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function probe(url: string, timeoutMs: number): Promise<{ ms: number; eld?: number } | undefined> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        const ms = performance.now() - t0;
        let eld: number | undefined;
        try {
          const v = (JSON.parse(body) as { event_loop_delay_ms?: unknown }).event_loop_delay_ms;
          if (typeof v === 'number') eld = v;
        } catch {
          // not JSON: latency only
        }
        resolve(eld === undefined ? { ms } : { ms, eld });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ ms: timeoutMs });
    });
    req.on('error', () => resolve(undefined));
  });
}

export class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private prevServer = new Map<number, ProcTimes>();
  private prevThreads = new Map<number, Map<number, number>>();
  private prevIo = new Map<number, number>();
  private prevGen = new Map<number, number>();
  private prevAux = new Map<number, number>();
  private prevMachine: MachineTimes | undefined;
  private prevT = 0;
  private readonly healthUrls: readonly string[];
  private readonly lastProbes: ({ ms: number; eld?: number } | undefined)[];
  private readonly probing: boolean[];
  private readonly cores = cpus().length;
  private readonly serverPids: readonly number[];

  constructor(
    serverPid: number | readonly number[],
    healthUrl: string | readonly string[] | undefined,
    private readonly generatorPids: () => number[],
    private readonly intervalMs = 500,
    private readonly auxPids: readonly number[] = [],
  ) {
    this.serverPids = typeof serverPid === 'number' ? [serverPid] : [...serverPid];
    this.healthUrls = healthUrl === undefined ? [] : typeof healthUrl === 'string' ? [healthUrl] : [...healthUrl];
    this.lastProbes = this.healthUrls.map(() => undefined);
    this.probing = this.healthUrls.map(() => false);
  }

  start(): this {
    this.tick();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The server's RSS now (summed over its processes). */
  rssNow(): number {
    return this.rssNowPer().reduce((a, b) => a + b, 0);
  }

  /** RSS of each server process now, in the order given. */
  rssNowPer(): number[] {
    return this.serverPids.map((pid) => readProc(pid)?.rssBytes ?? 0);
  }

  /** CPU ticks of a set of pids since the last reading (pids seen for the first time count 0). */
  private static delta(pids: readonly number[], prev: Map<number, number>): { ticks: number; rss: number; next: Map<number, number> } {
    let ticks = 0;
    let rss = 0;
    const next = new Map<number, number>();
    for (const pid of pids) {
      const p = readProc(pid);
      if (!p) continue;
      next.set(pid, p.ticks);
      rss += p.rssBytes;
      const before = prev.get(pid);
      if (before !== undefined) ticks += p.ticks - before;
    }
    return { ticks, rss, next };
  }

  private tick(): void {
    const t = performance.now();
    const servers = this.serverPids.map((pid) => readProc(pid));
    const threads = this.serverPids.map((pid) => readThreads(pid));
    const ios = this.serverPids.map((pid) => readIo(pid));
    const machine = readMachine();
    const gen = Sampler.delta([process.pid, ...this.generatorPids()], this.prevGen);
    const aux = Sampler.delta(this.auxPids, this.prevAux);
    const complete = servers.every((x, i) => x !== undefined && this.prevServer.has(this.serverPids[i]!));
    if (servers.some((x) => x !== undefined) && complete && this.prevMachine) {
      const dt = (t - this.prevT) / 1000;
      const pct = (ticks: number): number => Math.round(((ticks / CLK_TCK / dt) * 100) * 10) / 10;
      const perServer = servers.map((p, i) => {
        const before = this.prevServer.get(this.serverPids[i]!)!;
        const probeMs = this.lastProbes[i]?.ms;
        return p
          ? { rssBytes: p.rssBytes, cpuPct: pct(p.ticks - before.ticks), mainCpuPct: pct(p.mainTicks - before.mainTicks), probeMs }
          : { rssBytes: 0, cpuPct: 0, mainCpuPct: 0, probeMs };
      });
      const probes = this.lastProbes.filter((x): x is { ms: number; eld?: number } => x !== undefined);
      const slowest = probes.reduce<{ ms: number; eld?: number } | undefined>((a, x) => (!a || x.ms > a.ms ? x : a), undefined);
      const cpuPct = Math.round(perServer.reduce((a, x) => a + x.cpuPct, 0) * 10) / 10;
      const generatorCpuPct = pct(gen.ticks);
      const auxCpuPct = pct(aux.ticks);
      const dm = machine.total - this.prevMachine.total;
      const machineBusyTicks = machine.busy - this.prevMachine.busy;
      const machinePct = dm > 0 ? Math.round((machineBusyTicks / dm) * 1000) / 10 : 0;
      const machineCores = (machinePct / 100) * this.cores * 100;
      const irqCpuPct = dm > 0 ? Math.round(((machine.irq - this.prevMachine.irq) / dm) * this.cores * 1000) / 10 : 0;
      const others: number[] = [];
      threads.forEach((byTid, i) => {
        const pid = this.serverPids[i]!;
        const prev = this.prevThreads.get(pid);
        if (!prev) return;
        for (const [tid, ticks] of byTid) {
          if (tid === pid) continue;
          const before = prev.get(tid);
          if (before !== undefined) others.push(pct(ticks - before));
        }
      });
      others.sort((a, b) => b - a);
      let diskDelta = 0;
      ios.forEach((io, i) => {
        const before = this.prevIo.get(this.serverPids[i]!);
        if (io && before !== undefined) diskDelta += io.writeBytes - before;
      });
      this.samples.push({
        t,
        rssBytes: perServer.reduce((a, x) => a + x.rssBytes, 0),
        cpuPct,
        mainCpuPct: Math.max(...perServer.map((x) => x.mainCpuPct)),
        otherThreadsPct: others.slice(0, 3),
        diskWriteBps: Math.round(diskDelta / dt),
        generatorCpuPct,
        machinePct,
        otherCpuPct: Math.max(0, Math.round((machineCores - cpuPct - generatorCpuPct - auxCpuPct - irqCpuPct) * 10) / 10),
        irqCpuPct,
        probeMs: slowest?.ms,
        eventLoopDelayMs: slowest?.eld,
        load1: loadAverage()[0] ?? 0,
        perServer,
        auxRssBytes: aux.rss,
        auxCpuPct,
      });
    }
    servers.forEach((p, i) => {
      if (p) this.prevServer.set(this.serverPids[i]!, p);
    });
    threads.forEach((byTid, i) => this.prevThreads.set(this.serverPids[i]!, byTid));
    ios.forEach((io, i) => {
      if (io) this.prevIo.set(this.serverPids[i]!, io.writeBytes);
    });
    this.prevGen = gen.next;
    this.prevAux = aux.next;
    this.prevMachine = machine;
    this.prevT = t;
    this.healthUrls.forEach((url, i) => {
      this.lastProbes[i] = undefined;
      if (this.probing[i]) return;
      this.probing[i] = true;
      void probe(url, 2_000).then((r) => {
        this.probing[i] = false;
        this.lastProbes[i] = r;
      });
    });
  }

  /** Figures over samples taken between t0 and t1 (performance.now()). */
  window(t0: number, t1: number): WindowStats {
    const s = this.samples.filter((x) => x.t >= t0 && x.t <= t1 + this.intervalMs);
    const list = s.length > 0 ? s : this.samples.slice(-1);
    const avg = (f: (x: Sample) => number): number => (list.length ? Math.round((list.reduce((a, x) => a + f(x), 0) / list.length) * 10) / 10 : 0);
    const max = (f: (x: Sample) => number): number => list.reduce((a, x) => Math.max(a, f(x)), 0);
    const probes = list.map((x) => x.probeMs).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    const elds = list.map((x) => x.eventLoopDelayMs).filter((x): x is number => x !== undefined);
    const q = (p: number): number => Math.round((probes[Math.min(probes.length - 1, Math.floor(p * probes.length))] ?? 0) * 100) / 100;
    return {
      samples: list.length,
      server_rss_bytes: list.at(-1)?.rssBytes ?? 0,
      server_rss_peak_bytes: max((x) => x.rssBytes),
      server_cpu_pct: avg((x) => x.cpuPct),
      server_cpu_peak_pct: max((x) => x.cpuPct),
      server_main_thread_cpu_pct: avg((x) => x.mainCpuPct),
      server_main_thread_cpu_peak_pct: max((x) => x.mainCpuPct),
      server_other_threads_cpu_pct: [0, 1, 2].map((i) => avg((x) => x.otherThreadsPct[i] ?? 0)),
      generator_cpu_pct: avg((x) => x.generatorCpuPct),
      server_disk_write_bytes_per_s: Math.round(avg((x) => x.diskWriteBps)),
      machine_cpu_pct: avg((x) => x.machinePct),
      other_cpu_pct: avg((x) => x.otherCpuPct),
      irq_cpu_pct: avg((x) => x.irqCpuPct),
      load_avg_1m: avg((x) => x.load1),
      healthz_probe_ms: probes.length ? { p50: q(0.5), p99: q(0.99), max: Math.round((probes.at(-1) ?? 0) * 100) / 100 } : undefined,
      event_loop_delay_ms: elds.length
        ? { mean: Math.round((elds.reduce((a, b) => a + b, 0) / elds.length) * 100) / 100, max: Math.max(...elds) }
        : undefined,
      per_server: this.serverPids.map((_, i) => ({
        rss_bytes: list.at(-1)?.perServer[i]?.rssBytes ?? 0,
        rss_peak_bytes: max((x) => x.perServer[i]?.rssBytes ?? 0),
        cpu_pct: avg((x) => x.perServer[i]?.cpuPct ?? 0),
        main_thread_cpu_pct: avg((x) => x.perServer[i]?.mainCpuPct ?? 0),
        main_thread_cpu_peak_pct: max((x) => x.perServer[i]?.mainCpuPct ?? 0),
        healthz_probe_ms: ((): { p99: number; max: number } | undefined => {
          const ms = list.map((x) => x.perServer[i]?.probeMs).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
          if (ms.length === 0) return undefined;
          return { p99: Math.round(ms[Math.min(ms.length - 1, Math.floor(0.99 * ms.length))]! * 100) / 100, max: Math.round(ms.at(-1)! * 100) / 100 };
        })(),
      })),
      aux_rss_bytes: list.at(-1)?.auxRssBytes ?? 0,
      aux_cpu_pct: avg((x) => x.auxCpuPct),
    };
  }
}
