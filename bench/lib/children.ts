/**
 * Every process the harness starts is registered here and killed by pid on the way out: normal
 * exit, error, SIGINT/SIGTERM/SIGHUP. Servers we cannot teach to watch their parent (parleyd) get
 * a tiny watchdog that kills them if this process dies without cleaning up (kill -9).
 */
import { spawn, fork, type ChildProcess, type ForkOptions, type SpawnOptions } from 'node:child_process';

const live = new Map<number, { proc: ChildProcess; label: string }>();
/** Processes started by someone else's launcher on our behalf (etcd, detached): killed by pid. */
const foreign = new Map<number, string>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => killAllSync());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}; stopping ${live.size} child process(es)\n`);
      killAllSync();
      process.exit(130);
    });
  }
}

function track(proc: ChildProcess, label: string): ChildProcess {
  install();
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`could not start ${label}`);
  live.set(pid, { proc, label });
  proc.once('exit', () => live.delete(pid));
  return proc;
}

/**
 * Registers a process we caused to start but did not spawn ourselves (a detached service such as
 * etcd): SIGKILLed by pid on the way out, and by a watchdog if this process dies first.
 */
export function trackPid(pid: number, label: string): void {
  install();
  foreign.set(pid, label);
  startWatchdog(pid);
}

/** Forgets a process registered by trackPid (it was stopped properly). */
export function untrackPid(pid: number): void {
  foreign.delete(pid);
}

export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions, label: string, watchdog = false): ChildProcess {
  const proc = track(spawn(command, args, options), label);
  if (watchdog) startWatchdog(proc.pid!);
  return proc;
}

export function forkTracked(module: string, args: readonly string[], options: ForkOptions, label: string): ChildProcess {
  return track(fork(module, args, options), label);
}

/** A shell loop (bounded to 24 h) that SIGKILLs `pid` once this process is gone. */
function startWatchdog(pid: number): void {
  const script = `for i in $(seq 1 86400); do kill -0 ${process.pid} 2>/dev/null || break; kill -0 ${pid} 2>/dev/null || exit 0; sleep 1; done; kill -9 ${pid} 2>/dev/null; exit 0`;
  const dog = spawn('sh', ['-c', script], { stdio: 'ignore', detached: true });
  dog.unref();
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
export async function stopChild(proc: ChildProcess, graceMs = 10_000): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

export function killAllSync(): void {
  for (const [pid, { proc }] of live) {
    if (proc.exitCode === null && proc.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
  for (const pid of foreign.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  foreign.clear();
}

export function liveChildren(): { pid: number; label: string }[] {
  return [...[...live].map(([pid, { label }]) => ({ pid, label })), ...[...foreign].map(([pid, label]) => ({ pid, label }))];
}
