/**
 * A minimal WebSocket client over node:net that writes frames exactly as a test says, wrong ones
 * included: any opcode, reserved bits, masked or not, any length encoding, fragments, control
 * frames, split across TCP writes at any byte. It reads the server's frames one by one (no
 * reassembly: the server never fragments) and records how the connection ended. No dependency;
 * RFC 6455 section 5 is the whole of it.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export const Op = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface FrameSpec {
  readonly opcode: number;
  readonly payload?: Uint8Array;
  /** Default true. */
  readonly fin?: boolean;
  /** RSV1-3 as a 3-bit number (4 = RSV1). Default 0. */
  readonly rsv?: number;
  /** Default true: clients must mask. */
  readonly mask?: boolean;
  /** Force a length form: 7-bit, 16-bit or 64-bit, even where a shorter one fits. */
  readonly lengthForm?: 7 | 16 | 64;
  /** Write this value as the 64-bit length instead of the payload's (for lengths that lie). */
  readonly declaredLength?: bigint;
  /** The masking key; default random. `ZERO_MASK` is as valid (the key is the client's to pick) and skips the XOR pass: for bulk. */
  readonly maskKey?: Uint8Array;
}

export const ZERO_MASK = new Uint8Array(4);

/** The bytes of one frame as a client writes it. */
export function frame(spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload ?? new Uint8Array(0));
  const mask = spec.mask ?? true;
  const len = payload.length;
  const form = spec.lengthForm ?? (spec.declaredLength !== undefined ? 64 : len < 126 ? 7 : len < 65_536 ? 16 : 64);
  const head: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (form === 7) head.push(maskBit | len);
  else if (form === 16) {
    head.push(maskBit | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(len);
  } else {
    head.push(maskBit | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(spec.declaredLength ?? BigInt(len));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = spec.maskKey ?? randomBytes(4);
  if (key.every((b) => b === 0)) return Buffer.concat([Buffer.from(head), ext, key, payload]);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), ext, key, masked]);
}

/** A close frame's payload: the code (if any) and the reason's bytes. */
export function closePayload(code?: number, reason: Uint8Array | string = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const c = Buffer.alloc(2);
  c.writeUInt16BE(code);
  return Buffer.concat([c, typeof reason === 'string' ? Buffer.from(reason) : Buffer.from(reason)]);
}

export interface ServerFrameRead {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Buffer;
}

export interface Ending {
  /** The server's close frame, when it sent one before the TCP connection ended. */
  readonly close?: { code: number | undefined; reason: string };
  /** Frames received, in order (the close frame included). */
  readonly frames: readonly ServerFrameRead[];
}

/** One raw connection, upgraded. */
export class RawWebSocket {
  readonly frames: ServerFrameRead[] = [];
  /** Resolves when the TCP connection has ended (either side, or an error). */
  readonly ended: Promise<Ending>;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private isEnded = false;

  private constructor(private readonly socket: Socket, rest: Buffer) {
    this.ended = new Promise((resolve) => {
      const finish = (): void => {
        if (this.isEnded) return;
        this.isEnded = true;
        const close = this.frames.find((f) => f.opcode === Op.CLOSE);
        resolve({ frames: this.frames, ...(close ? { close: parseClose(close.payload) } : {}) });
        this.wake();
      };
      socket.on('close', finish);
      socket.on('error', finish);
    });
    socket.on('data', (d: Buffer) => this.feed(d));
    if (rest.length > 0) this.feed(rest);
  }

  /** Connects and upgrades; rejects with the server's answer when it is not 101. */
  static open(port: number, path = '/v1/ws', headers: Record<string, string> = {}): Promise<RawWebSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('upgrade timed out'));
      }, 10_000);
      const onData = (d: Buffer): void => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        socket.off('data', onData);
        const status = head.subarray(0, end).toString();
        if (!status.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          reject(new Error(`upgrade refused: ${status.split('\r\n')[0]}`));
          return;
        }
        resolve(new RawWebSocket(socket, head.subarray(end + 4)));
      };
      socket.on('data', onData);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
  }

  get open(): boolean {
    return !this.isEnded;
  }

  /** Writes bytes as they are; with `chunk`, in TCP writes of that many bytes, each flushed apart. */
  async write(bytes: Uint8Array, chunk?: number): Promise<void> {
    if (this.isEnded) return;
    if (chunk === undefined) {
      await new Promise<void>((resolve) => this.socket.write(bytes, () => resolve()));
      return;
    }
    for (let i = 0; i < bytes.length && !this.isEnded; i += chunk) {
      await new Promise<void>((resolve) => this.socket.write(bytes.subarray(i, i + chunk), () => resolve()));
      // A turn apart, so the kernel sends them as separate segments rather than one.
      await new Promise((r) => setImmediate(r));
    }
  }

  send(spec: FrameSpec): Promise<void> {
    return this.write(frame(spec));
  }

  /** The next frame (after those already taken with this), or undefined when the connection ended first or time ran out. */
  async next(timeoutMs = 5_000): Promise<ServerFrameRead | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.taken >= this.frames.length) {
      if (this.isEnded || Date.now() >= end) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, end - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames[this.taken++];
  }
  private taken = 0;

  /** Waits for the end, at most `timeoutMs`; then destroys the socket so nothing lingers. */
  async end(timeoutMs = 5_000): Promise<Ending & { timedOut: boolean }> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.ended.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    this.socket.destroy();
    return { ...(await this.ended), timedOut };
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private feed(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const f = parseFrame(this.buf);
      if (!f) break;
      this.buf = this.buf.subarray(f.size);
      this.frames.push(f.frame);
    }
    this.wake();
  }
}

function parseFrame(b: Buffer): { frame: ServerFrameRead; size: number } | undefined {
  if (b.length < 2) return undefined;
  const masked = (b[1]! & 0x80) !== 0;
  let len = b[1]! & 0x7f;
  let at = 2;
  if (len === 126) {
    if (b.length < 4) return undefined;
    len = b.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (b.length < 10) return undefined;
    len = Number(b.readBigUInt64BE(2));
    at = 10;
  }
  let key: Buffer | undefined;
  if (masked) {
    if (b.length < at + 4) return undefined;
    key = b.subarray(at, at + 4);
    at += 4;
  }
  if (b.length < at + len) return undefined;
  const payload = Buffer.from(b.subarray(at, at + len));
  if (key) for (let i = 0; i < len; i++) payload[i]! ^= key[i & 3]!;
  return { frame: { fin: (b[0]! & 0x80) !== 0, rsv: (b[0]! >> 4) & 7, opcode: b[0]! & 0x0f, masked, payload }, size: at + len };
}

function parseClose(p: Buffer): { code: number | undefined; reason: string } {
  return p.length >= 2 ? { code: p.readUInt16BE(0), reason: p.subarray(2).toString() } : { code: undefined, reason: '' };
}
