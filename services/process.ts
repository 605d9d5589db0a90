import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import type { ServiceProcessRecord, StopOptions } from './service.ts';

/**
 * One long-running service process that we spawned: where it logs, how to tell whether it is
 * still the same process, and a promise that settles when it exits.
 */
export interface SpawnedProcess {
  readonly pid: number;
  readonly startTicks: number;
  readonly logFile: string;
  /** Settles when the process exits (never rejects). */
  readonly exited: Promise<ProcessExit>;
  /** True once the process has exited. */
  hasExited(): boolean;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnServiceOptions {
  readonly service: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Spawns a service with stdout and stderr appended to `logFile`.
 *
 * Detached (own session) so that it outlives the CLI that started it and does not catch the
 * Ctrl-C meant for a developer's terminal; unref'd so it never keeps a test process alive. Its
 * output goes to a file, not a pipe, because nobody would drain a pipe once the CLI has exited.
 */
export async function spawnService(options: SpawnServiceOptions): Promise<SpawnedProcess> {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
  } catch (err) {
    throw new ServiceError(ServiceErrorCodes.SPAWN_FAILED, `${options.service}: cannot spawn ${options.command}: ${String(err)}`, {
      service: options.service,
      cause: err,
    });
  } finally {
    // The child holds its own copy of the descriptor; ours would only leak.
    closeSync(fd);
  }

  let exit: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  // `on`, not `once`: a later 'error' (say, a failed kill) must not become an uncaught exception.
  const spawnError = new Promise<Error>((resolve) => child.on('error', resolve));

  const pid = child.pid;
  if (pid === undefined) {
    const err = await Promise.race([spawnError, sleep(5_000).then(() => new Error('no pid and no error within 5 s'))]);
    throw new ServiceError(ServiceErrorCodes.SPAWN_FAILED, `${options.service}: cannot spawn ${options.command}: ${err.message}`, {
      service: options.service,
      cause: err,
    });
  }
  child.unref();

  const stat = readProcStat(pid);
  if (stat === undefined) {
    // It died between fork and our look at /proc; report it the way a later exit is reported.
    const result = await Promise.race([exited, sleep(5_000).then(() => undefined)]);
    throw new ServiceError(
      ServiceErrorCodes.EXITED_EARLY,
      `${options.service}: exited at once (${describeExit(result)})\n${await tailFile(options.logFile)}`,
      { service: options.service },
    );
  }

  return { pid, startTicks: stat.startTicks, logFile: options.logFile, exited, hasExited: () => exit !== undefined };
}

export function describeExit(exit: ProcessExit | undefined): string {
  if (exit === undefined) return 'exit status unknown';
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${String(exit.code)}`;
}

interface ProcStat {
  /** One letter: R, S, D, Z (zombie), X (dead), ... */
  readonly state: string;
  readonly startTicks: number;
}

function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const startTicks = Number(rest[19]);
  if (state === undefined || !Number.isFinite(startTicks)) return undefined;
  return { state, startTicks };
}

/** The start time of a pid, for a record that outlives this process. */
export function processStartTicks(pid: number): number | undefined {
  return readProcStat(pid)?.startTicks;
}

/**
 * True while that very process runs. A zombie counts as gone (it holds no port and no file; only
 * its parent's reaping is pending), and a pid now used by another process counts as gone too.
 */
export function isRunning(record: Pick<ServiceProcessRecord, 'pid' | 'startTicks'>): boolean {
  const stat = readProcStat(record.pid);
  if (stat === undefined) return false;
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return stat.startTicks === record.startTicks;
}

const DEFAULT_GRACE_MS = 30_000;
const KILL_WAIT_MS = 10_000;
const POLL_MS = 50;

/**
 * Stops exactly the process in `record`: SIGTERM, then SIGKILL after `graceMs`. Resolves once
 * it is gone; throws STOP_FAILED if even SIGKILL did not end it in time. `exited`, when the
 * caller spawned the process itself, is awaited too so the zombie is reaped before we return.
 */
export async function stopProcess(
  record: Pick<ServiceProcessRecord, 'name' | 'pid' | 'startTicks'>,
  options: StopOptions & { exited?: Promise<ProcessExit> } = {},
): Promise<void> {
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  if (isRunning(record)) {
    signal(record.pid, graceMs <= 0 ? 'SIGKILL' : 'SIGTERM');
    if (!(await waitGone(record, graceMs))) {
      signal(record.pid, 'SIGKILL');
      if (!(await waitGone(record, KILL_WAIT_MS))) {
        throw new ServiceError(ServiceErrorCodes.STOP_FAILED, `${record.name}: pid ${record.pid} still runs after SIGKILL`, {
          service: record.name,
        });
      }
    }
  }
  if (options.exited !== undefined) {
    await Promise.race([options.exited, sleep(KILL_WAIT_MS)]);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    // ESRCH: it ended between our check and the signal, which is what we wanted anyway.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function waitGone(record: Pick<ServiceProcessRecord, 'pid' | 'startTicks'>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(record)) return true;
    await sleep(POLL_MS);
  }
  return !isRunning(record);
}

const MAX_LINE_CHARS = 400;

/** The last `lines` lines of a log file, for error messages; a note instead if there is none. */
export async function tailFile(path: string, lines = 30): Promise<string> {
  const maxBytes = 64 * 1024;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return `(no log at ${path})`;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const all = buffer.toString('utf8').split('\n');
    if (all.at(-1) === '') all.pop();
    // Some lines (Cassandra's dump of its whole config) run to kilobytes; an error message needn't.
    const shown = all.slice(-lines).map((line) => (line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line));
    return `--- last ${shown.length} lines of ${path} ---\n${shown.join('\n')}`;
  } finally {
    await handle.close();
  }
}
