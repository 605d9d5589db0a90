/**
 * One parleyd process of a chaos cluster, run as `npm start` runs it (the compiled dist/ with
 * the same Node options), on fixed ports so that a restarted node is found where clients look for
 * it. Faults act on it by signal: SIGKILL (`kill`), SIGSTOP/SIGCONT (`pause`/`resume`), SIGTERM
 * (`stop`). Its log goes to a file; the lines a run counts are counted as they come.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PARLEYD_NODE_ARGS } from '../bin/parleyd-node-args.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENTRY = join(ROOT, 'dist/bin/parleyd.js');

/** Log lines a run counts, by the text that identifies them (stable texts of the node's log). */
export const COUNTED_LINES = {
  /** A presence write of a superseded owner, refused by the fence (actors/user/user-actor.ts). */
  stalePresenceRefused: 'stale presence write refused',
  /** Any store write refused because a newer owner epoch exists. */
  fenced: '"FENCED"',
  /** The node found its lease lapsed and stopped serving placed actors (runtime/cluster). */
  membershipLost: 'cluster membership lost',
} as const;
export type CountedLine = keyof typeof COUNTED_LINES;

export interface NodeSpec {
  readonly nodeId: string;
  /** HTTP and WebSocket port. */
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** Every other flag, without the leading dashes. */
  readonly flags: Readonly<Record<string, string>>;
}

export class NodeProcess {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private log: WriteStream | undefined;
  private paused = false;
  private starting: Promise<void> | undefined;
  readonly counts: Record<CountedLine, number> = { stalePresenceRefused: 0, fenced: 0, membershipLost: 0 };
  /** Times (ms) at which the process was seen serving, one per start. */
  readonly startedAt: number[] = [];

  constructor(readonly spec: NodeSpec) {}

  get nodeId(): string {
    return this.spec.nodeId;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.spec.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.spec.port}/v1/ws`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Starts the process and resolves once it logs that it serves. A start refused early (a
   * restart right after a SIGKILL waits for the dead process's lease to lapse) is tried again
   * each second until `timeoutMs`.
   */
  start(timeoutMs = 60_000): Promise<void> {
    // One start at a time: a second caller (a kill loop catching up) waits for the same one.
    this.starting ??= this.startRetrying(timeoutMs).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async startRetrying(timeoutMs: number): Promise<void> {
    if (this.running) return;
    const end = Date.now() + timeoutMs;
    let lastError = '';
    while (Date.now() < end) {
      const result = await this.startOnce(end - Date.now());
      if (result === 'serving') return;
      lastError = result;
      await this.exited;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    throw new Error(`node ${this.nodeId} did not start within ${timeoutMs} ms: ${lastError}`);
  }

  private startOnce(timeoutMs: number): Promise<'serving' | string> {
    this.log ??= createWriteStream(this.spec.logFile, { flags: 'a' });
    const args = [...PARLEYD_NODE_ARGS, ENTRY, '--node-id', this.nodeId, '--host', '127.0.0.1', '--port', String(this.spec.port), '--data-dir', this.spec.dataDir];
    for (const [k, v] of Object.entries(this.spec.flags)) args.push(`--${k}`, v);
    const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    this.paused = false;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    // The harness dying must not leave nodes behind (a stopped one would hold its ports forever).
    const reap = (): void => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGCONT');
        proc.kill('SIGKILL');
      }
    };
    process.once('exit', reap);
    void this.exited.then(() => process.removeListener('exit', reap));
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4_000);
      this.log!.write(d);
    });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // Not serving in time: end it, so that a retry never runs two of one node.
        proc.kill('SIGKILL');
        resolve(`no "serving" line in ${timeoutMs} ms`);
      }, timeoutMs);
      let buf = '';
      proc.stdout!.on('data', (d: Buffer) => {
        this.log!.write(d);
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          for (const [k, text] of Object.entries(COUNTED_LINES) as [CountedLine, string][]) if (line.includes(text)) this.counts[k]++;
          if (line.includes('"parley node serving"')) {
            clearTimeout(timer);
            this.startedAt.push(Date.now());
            resolve('serving');
          }
        }
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        resolve(`exited (${proc.exitCode ?? proc.signalCode}) before serving: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      });
    });
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill('SIGKILL');
    await this.exited;
    this.paused = false;
  }

  /** SIGSTOP: the process keeps its sockets but runs no code, as in a long GC pause or a VM freeze. */
  pause(): void {
    if (!this.running) return;
    this.proc!.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.running) return;
    this.proc!.kill('SIGCONT');
    this.paused = false;
  }

  /** SIGTERM (graceful stop), SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    if (this.paused) this.resume();
    this.proc!.kill('SIGTERM');
    const timer = setTimeout(() => this.proc?.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** GET /readyz status; 0 when it did not answer within `timeoutMs`. */
  async readyz(timeoutMs = 1_000): Promise<number> {
    try {
      const res = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  }

  closeLog(): void {
    this.log?.end();
    this.log = undefined;
  }
}
