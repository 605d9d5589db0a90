/**
 * A lean WebSocket client for the load generator, over a bare TCP socket: the handshake, a frame
 * parser that hands each message to one callback, and frames written as one buffer each. It
 * implements the part of the `ws` client API the generator uses (events open/message/close/error,
 * send, close, terminate, readyState), so either can drive a worker (`--client raw|ws`).
 *
 * Differences from `ws`, all deliberate for a loopback load generator:
 * - the masking key is all zeros (RFC 6455 wants an unpredictable key to protect browsers behind
 *   proxies; servers accept any key, and with zeros the payload is sent as is, uncopied by XOR);
 * - no extensions, no UTF-8 validation, no Sec-WebSocket-Accept check (only the 101 status);
 * - fragmented messages are reassembled; control frames are answered (ping -> pong, close).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

const KEY = 'YmVuY2gtcGFybGV5LWtleQ=='; // any 16 bytes, base64
const EMPTY = Buffer.alloc(0);

export interface RawOptions {
  readonly localAddress?: string;
  readonly handshakeTimeout?: number;
  readonly maxPayload?: number;
}

/** A whole client frame (FIN set, zero mask key) for `payload`. */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  out.writeUInt32BE(0, head);
  payload.copy(out, head + 4);
  return out;
}

export class RawWebSocket extends EventEmitter {
  readyState = CONNECTING;
  private readonly socket: net.Socket;
  private pending: Buffer = EMPTY;
  private fragments: Buffer[] | undefined;
  private fragmentOpcode = 0;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private readonly maxPayload: number;

  constructor(url: string, o: RawOptions = {}) {
    super();
    const u = new URL(url);
    this.maxPayload = o.maxPayload ?? 8 << 20;
    const port = Number(u.port || 80);
    this.socket = net.connect({ host: u.hostname, port, ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    this.socket.setNoDelay(true);
    if (o.handshakeTimeout) {
      this.handshakeTimer = setTimeout(() => this.fail(Object.assign(new Error('handshake timed out'), { code: 'HANDSHAKE_TIMEOUT' })), o.handshakeTimeout);
    }
    this.socket.once('connect', () => {
      this.socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.finish(1006));
  }

  private fail(err: Error): void {
    if (this.readyState === CLOSED) return;
    this.emit('error', err);
    this.socket.destroy();
    this.finish(1006);
  }

  private finish(code: number): void {
    if (this.readyState === CLOSED) return;
    clearTimeout(this.handshakeTimer);
    this.readyState = CLOSED;
    this.emit('close', code);
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    if (this.readyState === CONNECTING) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16_384) this.fail(new Error('handshake response too long'));
        else this.pending = buf;
        return;
      }
      const status = buf.toString('latin1', 0, Math.min(end, 32));
      if (!/^HTTP\/1\.1 101/.test(status)) {
        this.fail(Object.assign(new Error(`unexpected response ${status.split('\r\n')[0]}`), { code: 'HANDSHAKE_REFUSED' }));
        return;
      }
      clearTimeout(this.handshakeTimer);
      this.readyState = OPEN;
      buf = buf.subarray(end + 4);
      this.pending = EMPTY;
      this.emit('open');
      if (buf.length === 0) return;
    }
    let off = 0;
    const n = buf.length;
    while (n - off >= 2) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (n - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (n - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
        head = 10;
      }
      if (b1 & 0x80) head += 4; // a masked server frame: not expected, but skip the key
      if (len > this.maxPayload) {
        this.fail(new Error('frame too large'));
        return;
      }
      if (n - off < head + len) break;
      const payload = buf.subarray(off + head, off + head + len);
      if (b1 & 0x80) {
        const k = buf.subarray(off + head - 4, off + head);
        for (let i = 0; i < payload.length; i++) payload[i]! ^= k[i & 3]!;
      }
      off += head + len;
      this.onFrame(b0 & 0x80, b0 & 0x0f, payload);
      if (this.readyState === CLOSED) return;
    }
    // Keep an incomplete frame (copied: the chunk's memory is reused by nothing, but a subarray
    // would pin the whole chunk).
    this.pending = off >= n ? EMPTY : Buffer.from(buf.subarray(off));
  }

  private onFrame(fin: number, opcode: number, payload: Buffer): void {
    if (opcode === 0x1 || opcode === 0x2) {
      if (fin) this.emit('message', payload, opcode === 0x2);
      else {
        this.fragments = [Buffer.from(payload)];
        this.fragmentOpcode = opcode;
      }
      return;
    }
    if (opcode === 0x0) {
      if (!this.fragments) return;
      this.fragments.push(Buffer.from(payload));
      if (fin) {
        const whole = Buffer.concat(this.fragments);
        this.fragments = undefined;
        this.emit('message', whole, this.fragmentOpcode === 0x2);
      }
      return;
    }
    if (opcode === 0x9) {
      if (this.readyState === OPEN) this.socket.write(clientFrame(0xa, payload));
      return;
    }
    if (opcode === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (this.readyState === OPEN) this.socket.write(clientFrame(0x8, payload.subarray(0, 2)));
      this.readyState = CLOSING;
      this.socket.end();
      this.finish(code);
    }
  }

  send(data: Buffer | Uint8Array | string): void {
    if (this.readyState !== OPEN) return;
    if (typeof data === 'string') this.socket.write(clientFrame(0x1, Buffer.from(data, 'utf8')));
    else this.socket.write(clientFrame(0x2, Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState !== OPEN) {
      this.terminate();
      return;
    }
    const r = Buffer.from(reason, 'utf8');
    const p = Buffer.allocUnsafe(2 + r.length);
    p.writeUInt16BE(code, 0);
    r.copy(p, 2);
    this.socket.write(clientFrame(0x8, p));
    this.readyState = CLOSING;
    this.socket.end();
  }

  terminate(): void {
    this.socket.destroy();
    this.finish(1006);
  }
}
