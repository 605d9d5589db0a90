/**
 * What the fuzz tests share: the health check run after every case (the process is alive and a
 * normal client still signs in and chats), parleyd's resident memory, a seeded random source
 * (a failure reproduces with its seed), counts from the environment, a hello on a raw socket, and
 * the figures a run reports.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { decodeServerFrame, encodeClientFrame, type ServerFrame } from '../../proto/index.ts';
import { connect, eventually, newUser, type ServerHandle, type TestUser } from '../support/server.ts';
import { Op, RawWebSocket } from './raw-websocket.ts';

/** A positive integer from the environment (the chaos runner raises these), else `fallback`. */
export function countFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not ${JSON.stringify(raw)}`);
  return n;
}

/**
 * A run's figures as one JSON line appended to the file PARLEY_FUZZ_REPORT names (when set), for
 * the chaos runner to print; the tests also `t.log` them for people.
 */
export function report(figures: Record<string, unknown>): void {
  const file = process.env.PARLEY_FUZZ_REPORT;
  if (file) appendFileSync(file, JSON.stringify(figures) + '\n');
}

/** xorshift32: small, fast, and the same sequence for the same seed on every machine. */
export class Random {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export function seedFromEnv(): number {
  return countFromEnv('PARLEY_FUZZ_SEED', (Date.now() % 0xffffffff) >>> 0 || 1);
}

/** parleyd's resident set (VmRSS) in bytes, from /proc. */
export function rssBytes(server: ServerHandle): number {
  const status = readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error('no VmRSS in /proc/PID/status');
  return Number(kb[1]) * 1024;
}

export const MiB = 1024 * 1024;

export interface MemorySample {
  /** VmRSS, bytes. */
  readonly rss: number;
  /** V8's young generation (new space, from /metrics), bytes. */
  readonly young: number;
}

/**
 * parleyd's RSS, and how much of it is V8's young generation. parleyd runs with a young
 * generation of up to 3 × 64 MiB (bin/parleyd-node-args.ts), which V8 grows step by step (32, 64,
 * 128 MiB) while the allocation rate stays high and keeps: a fast run adds ~100 MiB of RSS that
 * is scratch space, not memory held. Growth is therefore judged on RSS minus the young
 * generation, with the young generation's own size checked against its bound.
 */
export async function memory(server: ServerHandle): Promise<MemorySample> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const young = /^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)$/m.exec(text);
  if (!young) throw new Error('no new-space size in /metrics');
  return { rss: rssBytes(server), young: Number(young[1]) };
}

/** The young generation's ceiling: 3 × --max-semi-space-size (64 MiB). */
export const YOUNG_GENERATION_MAX = 3 * 64 * MiB;

const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

/** RSS growth with the young generation taken out (see `memory`). */
export function retainedGrowth(before: MemorySample, after: MemorySample): number {
  return after.rss - after.young - (before.rss - before.young);
}

export function describeMemory(cold: MemorySample, before: MemorySample, after: MemorySample): string {
  return (
    `parleyd RSS cold ${mib(cold.rss)} MiB, after warm-up ${mib(before.rss)} MiB, after ${mib(after.rss)} MiB (RSS growth ${mib(after.rss - before.rss)} MiB; ` +
    `young generation ${mib(before.young)} -> ${mib(after.young)} MiB; growth without it ${mib(retainedGrowth(before, after))} MiB)`
  );
}

export function alive(server: ServerHandle): boolean {
  return server.proc.exitCode === null && server.proc.signalCode === null;
}

/** Two users with a DM between them, made once and reused by every health check. */
export interface HealthPair {
  readonly a: TestUser;
  readonly b: TestUser;
  readonly channelId: string;
}

export async function healthPair(server: ServerHandle): Promise<HealthPair> {
  const a = await newUser(server, 'ha');
  const b = await newUser(server, 'hb');
  const { channel_id } = await a.http.openDm(b.userId);
  return { a, b, channelId: channel_id };
}

let checks = 0;

/**
 * The server survived: its process is alive, and a normal client signs in (a fresh login), opens
 * a socket, sends, gets the ack, and the other member gets the message live.
 */
export async function assertHealthy(t: ExecutionContext, server: ServerHandle, pair: HealthPair): Promise<void> {
  t.true(alive(server), `parleyd exited (code ${server.proc.exitCode}, signal ${server.proc.signalCode})`);
  const { token } = await pair.a.http.login(pair.a.username, pair.a.password);
  const receiver = await connect(server, pair.b, 'health');
  const sender = await connect(server, { ...pair.a, token }, 'health');
  try {
    const text = `health ${++checks}`;
    const ack = await sender.client.send(pair.channelId, text);
    t.true(ack.channel_seq > 0);
    t.true(await eventually(() => receiver.deliveries.some((d) => d.message.text === text), 5_000), 'the other member got the message');
  } finally {
    sender.client.close();
    receiver.client.close();
  }
}

/** A raw socket that has said hello and got its welcome. */
export async function helloRaw(server: ServerHandle, token: string, deviceId: string): Promise<RawWebSocket> {
  const s = await RawWebSocket.open(server.port);
  await s.send({ opcode: Op.BINARY, payload: encodeClientFrame(1, 'hello', { token, device_id: deviceId, last_inbox_seq: 0 }) });
  const f = await s.next(10_000);
  const welcome = f && f.opcode === Op.BINARY ? decodeServerFrame(f.payload) : undefined;
  if (welcome?.body !== 'welcome') {
    s.destroy();
    throw new Error(`no welcome: ${welcome ? JSON.stringify(welcome) : 'connection ended'}`);
  }
  return s;
}

/** A binary frame from the server as a ServerFrame, or undefined when it does not decode. */
export function serverFrameOf(payload: Uint8Array): ServerFrame | undefined {
  try {
    return decodeServerFrame(payload);
  } catch {
    return undefined;
  }
}
