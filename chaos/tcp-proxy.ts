/**
 * A userspace TCP proxy on 127.0.0.1 that a fault can cut or slow down. It stands in for what a
 * network namespace with netem would do, because this kernel has no netem qdisc:
 *
 * - `cut()`: a partition. Nothing crosses in either direction: open connections are held (their
 *   data waits in the kernel's buffers, as unacknowledged segments would), and new ones are
 *   accepted but not connected onwards. `heal()` lets everything flow again, in order; callers
 *   whose own deadlines passed meanwhile have given up on their requests, as they would have.
 * - `shape({ delayMs, jitterMs, stallChance, stallMs })`: a slow, lossy link. Every chunk read is
 *   written onwards `delayMs` ± `jitterMs` later, never before the chunk ahead of it (a TCP
 *   stream keeps its order), and with probability `stallChance` a chunk waits `stallMs` more:
 *   what a lost segment costs a TCP stream (a retransmission after the minimum RTO, 200 ms on
 *   Linux, holding everything behind it). Chunks are what one read returns, not packets, so
 *   "1 % loss" means 1 % of reads stall.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface LinkShape {
  readonly delayMs: number;
  readonly jitterMs: number;
  readonly stallChance: number;
  readonly stallMs: number;
}

/** Bytes queued in one direction before the reading side is paused (backpressure through the delay). */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/** One direction of a connection: chunks waiting for their release time. */
class Lane {
  private readonly queue: { at: number; chunk: Buffer }[] = [];
  private queued = 0;
  private lastRelease = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly shape: () => LinkShape | undefined,
    /** False while the link is cut: nothing is written onwards (what was read waits). */
    private readonly open: () => boolean,
  ) {}

  push(chunk: Buffer): void {
    const s = this.shape();
    if (!s && this.queue.length === 0 && this.open()) {
      if (!this.to.write(chunk)) this.from.pause();
      return;
    }
    const now = Date.now();
    const delay = s ? s.delayMs + (Math.random() * 2 - 1) * s.jitterMs + (Math.random() < s.stallChance ? s.stallMs : 0) : 0;
    this.lastRelease = Math.max(this.lastRelease, now + delay);
    this.queue.push({ at: this.lastRelease, chunk });
    this.queued += chunk.length;
    if (this.queued > MAX_QUEUED_BYTES) this.from.pause();
    this.arm();
  }

  /** Schedules the next write, if any is due and the link is open (heal() calls it again). */
  arm(): void {
    if (this.timer || this.queue.length === 0 || !this.open()) return;
    this.timer = setTimeout(() => this.flush(), Math.max(0, this.queue[0]!.at - Date.now()));
  }

  private flush(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.at <= now && this.open()) {
      const { chunk } = this.queue.shift()!;
      this.queued -= chunk.length;
      if (!this.to.destroyed) this.to.write(chunk);
    }
    if (this.queued < MAX_QUEUED_BYTES / 4 && this.from.isPaused() && this.open()) this.from.resume();
    this.arm();
  }

  close(): void {
    clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

interface Pair {
  readonly client: Socket;
  upstream?: Socket;
  lanes: Lane[];
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private cutNow = false;
  private link: LinkShape | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: { readonly host: string; readonly port: number },
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Listens on `port` (0: any free one) of 127.0.0.1 and forwards to `target`. */
  static async start(target: { host: string; port: number }, port = 0): Promise<TcpProxy> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP address');
    return new TcpProxy(server, address.port, target);
  }

  get isCut(): boolean {
    return this.cutNow;
  }

  /** Holds every connection, open or new, until `heal()`. */
  cut(): void {
    this.cutNow = true;
    for (const p of this.pairs) {
      p.client.pause();
      p.upstream?.pause();
    }
  }

  heal(): void {
    this.cutNow = false;
    for (const p of this.pairs) {
      if (!p.upstream) this.dial(p);
      else {
        p.client.resume();
        p.upstream.resume();
        for (const l of p.lanes) l.arm();
      }
    }
  }

  /** Delay, jitter and stalls on every byte from now on; undefined: a plain pipe again. */
  shape(link: LinkShape | undefined): void {
    this.link = link;
  }

  /** Closes the listener and every connection through it. */
  async close(): Promise<void> {
    for (const p of this.pairs) this.drop(p);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const pair: Pair = { client, lanes: [] };
    this.pairs.add(pair);
    client.setNoDelay(true);
    client.on('error', () => this.drop(pair));
    client.on('close', () => this.drop(pair));
    if (!this.cutNow) this.dial(pair);
  }

  private dial(pair: Pair): void {
    const upstream = connect({ host: this.target.host, port: this.target.port });
    pair.upstream = upstream;
    upstream.setNoDelay(true);
    const shape = () => this.link;
    const open = () => !this.cutNow;
    const up = new Lane(pair.client, upstream, shape, open);
    const down = new Lane(upstream, pair.client, shape, open);
    pair.lanes = [up, down];
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    upstream.on('connect', () => {
      pair.client.on('data', (c: Buffer) => up.push(c));
      upstream.on('data', (c: Buffer) => down.push(c));
      pair.client.on('drain', () => !this.cutNow && upstream.resume());
      upstream.on('drain', () => !this.cutNow && pair.client.resume());
      if (this.cutNow) {
        pair.client.pause();
        upstream.pause();
      } else pair.client.resume();
    });
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    for (const l of pair.lanes) l.close();
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
