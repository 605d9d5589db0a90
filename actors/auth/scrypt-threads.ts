import { Worker } from 'node:worker_threads';
import { KEY_LEN, scryptOptions, type Derive, type PasswordCost } from './password.ts';

/**
 * scrypt on threads of its own at a low CPU priority (nice 10), instead of libuv's pool.
 *
 * Why: at N=2^17 a derivation keeps a core busy for a few hundred milliseconds and touches 128
 * MiB. On libuv's pool it runs at the event loop's priority and takes pool threads that file
 * system calls and DNS need; on a busy machine the scheduler then splits a core between it and
 * the event loop, and every chat message waits. At nice 10 the kernel lets the event loop preempt
 * a derivation and, where they compete for a core, gives it about nine tenths (CFS weights 1024
 * to 110), so a login flood slows logins, not chat. Not 19: with 1024 to 15 a busy node would
 * hardly hash at all and refuse every login. The niceness is set per thread (Linux applies
 * setpriority to a thread id); where that fails the threads run at normal priority and are still
 * off the pool.
 *
 * Threads are started by `start()` (or on first use) and do one derivation at a time; callers
 * bound how many run at once (a WorkGate with the same count), extra ones wait here in order.
 *
 * @example
 * const threads = new ScryptThreads(1);
 * const hasher = new PasswordHasher(cost, gate, counter, threads.derive);
 */
export class ScryptThreads {
  private readonly all = new Set<Worker>();
  private readonly idle: Worker[] = [];
  /** The job each busy thread runs. */
  private readonly running = new Map<Worker, Pending>();
  private readonly queue: Pending[] = [];

  constructor(private readonly threads: number) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  }

  readonly derive: Derive = (password, salt, cost) =>
    new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ job: { password, salt, cost }, resolve, reject });
      this.dispatch();
    });

  /**
   * Starts every thread now rather than on the first derivation, so a login does not wait for a
   * thread to boot (nor does the WorkGate take that boot for what a derivation costs).
   */
  async start(): Promise<void> {
    const booting: Promise<unknown>[] = [];
    while (this.all.size < this.threads) {
      const w = this.spawn();
      this.idle.push(w);
      booting.push(new Promise((resolve) => w.once('online', resolve).once('error', resolve)));
    }
    await Promise.all(booting);
  }

  /** Ends the threads (a stopping node); derivations waiting or in flight fail. */
  async close(): Promise<void> {
    const closed = new Error('scrypt threads closed');
    for (const p of this.queue.splice(0)) p.reject(closed);
    for (const p of this.running.values()) p.reject(closed);
    this.running.clear();
    const all = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (worker === undefined) {
        if (this.all.size >= this.threads) return;
        worker = this.spawn();
      }
      const pending = this.queue.shift()!;
      this.running.set(worker, pending);
      worker.ref(); // a derivation in flight keeps the process up until it answers
      const { password, salt, cost } = pending.job;
      worker.postMessage({ password, salt, keyLen: KEY_LEN, ...scryptOptions(cost) });
    }
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    this.all.add(worker);
    worker.on('message', (m: { key?: Uint8Array; error?: string }) => {
      const pending = this.running.get(worker);
      this.running.delete(worker);
      worker.unref();
      this.idle.push(worker);
      if (m.key) pending?.resolve(Buffer.from(m.key));
      else pending?.reject(new Error(`scrypt failed: ${m.error}`));
      this.dispatch();
    });
    // The thread died: its job fails, and another thread is started for the next one.
    worker.on('error', (err) => {
      this.all.delete(worker);
      const i = this.idle.indexOf(worker);
      if (i >= 0) this.idle.splice(i, 1);
      this.running.get(worker)?.reject(err);
      this.running.delete(worker);
      this.dispatch();
    });
    // Idle threads must not keep a stopping process alive.
    worker.unref();
    return worker;
  }
}

interface Pending {
  readonly job: Job;
  resolve(key: Buffer): void;
  reject(err: Error): void;
}

interface Job {
  readonly password: string;
  readonly salt: Buffer;
  readonly cost: PasswordCost;
}

const NICENESS = 10;

/** The thread: lowers its own priority once, then derives keys synchronously, one message each. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
const { readlinkSync } = require('node:fs');
const { setPriority } = require('node:os');
try { setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), ${NICENESS}); } catch {}
parentPort.on('message', (m) => {
  try {
    const key = scryptSync(m.password, Buffer.from(m.salt), m.keyLen, { N: m.N, r: m.r, p: m.p, maxmem: m.maxmem });
    parentPort.postMessage({ key });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
});
`;
