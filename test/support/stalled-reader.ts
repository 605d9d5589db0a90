/**
 * Clients that stop reading, and what the server holds for them: a real `ws` socket that says
 * hello and then pauses its TCP socket, so the kernel's buffers fill and whatever the server goes
 * on sending stays in the server; the server's own figures read from GET /metrics and /proc.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { decodeServerFrame, encodeClientFrame } from '../../proto/client-codec.ts';
import type { Presence, ServerFrame } from '../../proto/client-frames.ts';

/** What a stalled reader got, in arrival order (texts cut to their first characters). */
export interface Received {
  readonly inboxSeq: number;
  readonly textHead: string;
  readonly textLength: number;
  readonly frameBytes: number;
}

/**
 * A device that stops reading after its welcome, as an app whose reader hangs: it still writes
 * heartbeats (so the server does not close it as silent), and `resume()` reads again.
 */
export class StalledReader {
  readonly deliveries: Received[] = [];
  readonly presences: Presence[] = [];
  /** Answers to requests, by ref. */
  readonly answers = new Map<number, ServerFrame>();
  readonly closed: Promise<number>;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextRef = 100;

  private constructor(private readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    void this.closed.then(() => clearInterval(this.heartbeat));
    ws.on('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (f.body === 'delivery') {
        const text = f.delivery.message.text;
        this.deliveries.push({ inboxSeq: f.delivery.inbox_seq, textHead: text.slice(0, 16), textLength: text.length, frameBytes: data.byteLength });
      } else if (f.body === 'presence') this.presences.push(f.presence);
      else if (f.ref) this.answers.set(f.ref, f);
    });
  }

  /** Connects, says hello and waits for the welcome; reading stops right after it unless `paused` is false. */
  static async open(wsUrl: string, token: string, options: { deviceId?: string; paused?: boolean; heartbeatMs?: number } = {}): Promise<StalledReader> {
    const ws = new WebSocket(wsUrl);
    ws.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const welcome = new Promise<void>((resolve, reject) => {
      const onFrame = (data: Buffer): void => {
        const f = decodeServerFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        if (f.ref !== 1) return;
        ws.off('message', onFrame);
        if (f.body === 'welcome') resolve();
        else reject(new Error(`hello refused: ${JSON.stringify(f)}`));
      };
      ws.on('message', onFrame);
      ws.once('close', (code) => reject(new Error(`closed ${code} before welcome`)));
    });
    const reader = new StalledReader(ws);
    ws.send(encodeClientFrame(1, 'hello', { token, device_id: options.deviceId ?? 'stalled', last_inbox_seq: 0 }));
    await welcome;
    if (options.paused ?? true) ws.pause();
    reader.heartbeat = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeClientFrame(0, 'heartbeat', {}));
    }, options.heartbeatMs ?? 2_000);
    return reader;
  }

  /** Asks for inbox entries after a seq (a request the server must answer, read or not). */
  sync(afterInboxSeq: number, limit: number): number {
    const ref = this.nextRef++;
    this.ws.send(encodeClientFrame(ref, 'sync', { after_inbox_seq: afterInboxSeq, limit }));
    return ref;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.ws.terminate();
  }
}

/** One unlabelled sample of the server's /metrics, or undefined when absent. */
export async function metric(baseUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/**
 * Scrapes `parley_socket_unsent_bytes_peak` every `everyMs` until stopped: each scrape reads and
 * resets the server's peak, so the largest reading is the most any one socket held in between.
 */
export function watchUnsentPeak(baseUrl: string, everyMs = 50): { readonly max: number; maxSince(atMs: number): number; stop(): Promise<number> } {
  const readings: { atMs: number; bytes: number }[] = [];
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const v = await metric(baseUrl, 'parley_socket_unsent_bytes_peak');
      if (v !== undefined) {
        readings.push({ atMs: Date.now(), bytes: v });
        if (v > max) max = v;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    get max() {
      return max;
    },
    /** The largest reading taken at or after `atMs` (Date.now()). */
    maxSince(atMs: number): number {
      return readings.reduce((m, r) => (r.atMs >= atMs && r.bytes > m ? r.bytes : m), 0);
    },
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Resident memory of a process, bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}
