/**
 * Process and machine figures from /proc, read from outside the measured process: CPU time of a
 * process (all threads) and of its main thread, resident memory, and machine-wide CPU use.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second for /proc times; 100 on every Linux we run on (getconf CLK_TCK). */
export const CLK_TCK = 100;

export interface ProcTimes {
  /** utime + stime of the whole process, ticks. */
  readonly ticks: number;
  /** utime + stime of the main thread (tid = pid): the event loop of a Node process. */
  readonly mainTicks: number;
  readonly rssBytes: number;
  readonly threads: number;
}

function statTicks(path: string): number {
  const text = readFileSync(path, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

export function readProc(pid: number): ProcTimes | undefined {
  try {
    const ticks = statTicks(`/proc/${pid}/stat`);
    let mainTicks = ticks;
    try {
      mainTicks = statTicks(`/proc/${pid}/task/${pid}/stat`);
    } catch {
      // no per-thread view: whole process
    }
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const threads = /Threads:\s+(\d+)/.exec(status);
    return { ticks, mainTicks, rssBytes: rss ? Number(rss[1]) * 1024 : 0, threads: threads ? Number(threads[1]) : 0 };
  } catch {
    return undefined;
  }
}

export interface MachineTimes {
  readonly busy: number;
  readonly total: number;
  /** Interrupt and softirq time (loopback TCP is processed there too): no process is charged for it. */
  readonly irq: number;
}

/** Aggregate CPU counters from /proc/stat (ticks over all CPUs). */
export function readMachine(): MachineTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total, irq: (v[5] ?? 0) + (v[6] ?? 0) };
}

export function loadAverage(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

/** utime + stime per thread of a process, by thread id. */
export function readThreads(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.set(Number(tid), statTicks(`/proc/${pid}/task/${tid}/stat`));
      } catch {
        // thread ended meanwhile
      }
    }
  } catch {
    // process gone
  }
  return out;
}

/** Bytes the process caused to be written to and read from storage (/proc/<pid>/io). */
export function readIo(pid: number): { writeBytes: number; readBytes: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const w = /^write_bytes:\s+(\d+)/m.exec(text);
    const r = /^read_bytes:\s+(\d+)/m.exec(text);
    return { writeBytes: w ? Number(w[1]) : 0, readBytes: r ? Number(r[1]) : 0 };
  } catch {
    return undefined;
  }
}

/**
 * Waits (bounded) until the rest of the machine leaves us alone: CPU used by processes other
 * than `ours`, measured over 1.5 s, at most `limitPct` % of one core. A benchmark on a shared box
 * otherwise measures the neighbours. Returns how long it waited and the last reading.
 */
export async function waitForQuietMachine(
  limitPct: number,
  maxWaitS: number,
  ours: () => number[],
  onWait?: (otherPct: number, waitedS: number) => void,
): Promise<{ waitedS: number; otherPct: number }> {
  const t0 = performance.now();
  let other = 0;
  for (let i = 0; i < 10_000; i++) {
    const m0 = readMachine();
    const p0 = ours().map((pid) => readProc(pid)?.ticks ?? 0);
    const s0 = performance.now();
    await new Promise((r) => setTimeout(r, 1_500));
    const m1 = readMachine();
    const p1 = ours().map((pid) => readProc(pid)?.ticks ?? 0);
    const dt = (performance.now() - s0) / 1000;
    const oursTicks = p1.reduce((a, t, k) => a + Math.max(0, t - (p0[k] ?? t)), 0);
    other = Math.max(0, Math.round(((m1.busy - m0.busy - oursTicks) / CLK_TCK / dt) * 100));
    const waited = (performance.now() - t0) / 1000;
    if (other <= limitPct || waited >= maxWaitS) break;
    onWait?.(other, waited);
    await new Promise((r) => setTimeout(r, 2_000));
  }
  return { waitedS: Math.round((performance.now() - t0) / 100) / 10, otherPct: other };
}
