import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import { describeExit, tailFile, type SpawnedProcess } from './process.ts';

/**
 * Readiness: a service counts as started only once it answers a real request of its own
 * protocol, since an open port alone says little (Cassandra opens its storage port long before
 * it serves CQL).
 */

/** One attempt; resolves when the service answered as expected, rejects with why not. */
export type Probe = () => Promise<void>;

const ATTEMPT_TIMEOUT_MS = 2_000;

export interface WaitReadyOptions {
  readonly service: string;
  readonly process: SpawnedProcess;
  readonly probe: Probe;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** How many log lines an error message carries. */
  readonly logLines?: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Polls `probe` until it succeeds, the process exits (EXITED_EARLY) or `timeoutMs` passes
 * (NOT_READY). Both errors carry the tail of the service's log, which is where the reason is.
 */
export async function waitUntilReady(options: WaitReadyOptions): Promise<void> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const interval = options.intervalMs ?? 100;
  let lastError = 'no attempt made';
  const aborted = options.signal === undefined ? new Promise<never>(() => undefined) : abortPromise(options.signal);
  for (;;) {
    if (options.signal?.aborted === true) {
      throw new ServiceError(ServiceErrorCodes.ABORTED, `${options.service}: start aborted`, { service: options.service });
    }
    if (options.process.hasExited()) {
      const exit = await options.process.exited;
      throw new ServiceError(
        ServiceErrorCodes.EXITED_EARLY,
        `${options.service}: process ${options.process.pid} exited before it answered (${describeExit(exit)})\n` +
          (await tailFile(options.process.logFile, options.logLines)),
        { service: options.service },
      );
    }
    try {
      await options.probe();
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() >= deadline) break;
    // Wake early if the process dies, so a crash is reported at once rather than at the deadline.
    await Promise.race([sleep(Math.min(interval, Math.max(0, deadline - Date.now()))), options.process.exited, aborted]);
  }
  throw new ServiceError(
    ServiceErrorCodes.NOT_READY,
    `${options.service}: pid ${options.process.pid} did not answer within ${options.timeoutMs} ms (last probe: ${lastError})\n` +
      (await tailFile(options.process.logFile, options.logLines)),
    { service: options.service },
  );
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/**
 * Opens a TCP connection, writes `payload` and collects the reply until `complete` says it has
 * all it needs. Rejects on connection errors, on close before completion and on timeout.
 */
export function tcpExchange(
  host: string,
  port: number,
  payload: Uint8Array,
  complete: (reply: Buffer) => boolean,
  timeoutMs = ATTEMPT_TIMEOUT_MS,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err: Error | undefined, reply?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err !== undefined) reject(err);
      else resolve(reply ?? Buffer.alloc(0));
    };
    const timer = setTimeout(() => finish(new Error(`no complete reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const reply = Buffer.concat(chunks);
      if (complete(reply)) finish(undefined, reply);
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(new Error(`${host}:${port} closed the connection before a complete reply`)));
  });
}

/** GET `url` and parse the body as JSON; rejects on non-2xx, bad JSON or timeout. */
export function httpGetJson(url: string, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          reject(new Error(`GET ${url}: HTTP ${status} ${body.slice(0, 200)}`));
          return;
        }
        try {
          resolve(JSON.parse(body) as unknown);
        } catch {
          reject(new Error(`GET ${url}: not JSON: ${body.slice(0, 200)}`));
        }
      });
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** Redis: `PING` must come back as `+PONG` (a loading server answers `-LOADING`, not ready yet). */
export async function redisPing(host: string, port: number, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<void> {
  const reply = await tcpExchange(host, port, Buffer.from('PING\r\n'), (r) => r.includes('\r\n'), timeoutMs);
  const line = reply.toString('utf8').trim();
  if (line !== '+PONG') throw new Error(`PING answered ${JSON.stringify(line.slice(0, 200))}`);
}

const CQL_OPCODE_OPTIONS = 0x05;
const CQL_OPCODE_SUPPORTED = 0x06;
const CQL_OPCODE_ERROR = 0x00;
const CQL_HEADER_BYTES = 9;

/**
 * Cassandra: a native-protocol v4 OPTIONS frame must be answered with SUPPORTED. That needs no
 * driver and no cqlsh, and only succeeds once the node really serves CQL.
 */
export async function cqlOptions(host: string, port: number, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<void> {
  // Header: version 4 request, no flags, stream 0, opcode OPTIONS, empty body.
  const frame = Uint8Array.from([0x04, 0x00, 0x00, 0x00, CQL_OPCODE_OPTIONS, 0x00, 0x00, 0x00, 0x00]);
  const complete = (r: Buffer): boolean => r.length >= CQL_HEADER_BYTES && r.length >= CQL_HEADER_BYTES + r.readUInt32BE(5);
  const reply = await tcpExchange(host, port, frame, complete, timeoutMs);
  const version = reply[0] ?? 0;
  const opcode = reply[4];
  if ((version & 0x80) === 0) throw new Error(`CQL reply is not a response frame (version byte 0x${version.toString(16)})`);
  if (opcode === CQL_OPCODE_ERROR) {
    const text = reply.length > CQL_HEADER_BYTES + 6 ? reply.subarray(CQL_HEADER_BYTES + 6).toString('utf8') : '';
    throw new Error(`CQL OPTIONS answered ERROR ${text.slice(0, 200)}`);
  }
  if (opcode !== CQL_OPCODE_SUPPORTED) throw new Error(`CQL OPTIONS answered opcode 0x${(opcode ?? 0).toString(16)}, not SUPPORTED`);
}
