/**
 * Raw WebSocket frames against a real parleyd, case by case after the Autobahn TestSuite's
 * chapters 1-7 and 9 (framing, pings/pongs, reserved bits, opcodes, fragmentation, UTF-8, close
 * handling, limits), adapted to a binary-protobuf endpoint: a "message that was read" is proven by
 * the server's answer to a frame whose size or fragmentation is the case (a padded `hello` gets
 * `welcome`, a padded frame before hello gets UNAUTHENTICATED with its ref). After every case the
 * process must be alive and a normal client must still sign in and chat.
 *
 * The WebSocket protocol itself is uWebSockets.js's. What it does, as these cases pin down:
 * - a protocol error (reserved bits, reserved opcodes, a control frame over 125 bytes or
 *   fragmented, a continuation with nothing to continue, invalid UTF-8 in a text message, a
 *   message over max_frame_bytes) fails the connection by closing TCP, without a close frame
 *   (RFC 6455 7.1.7 allows it; a client library reports 1006). Over the limit this happens on the
 *   frame header, before the payload is read.
 * - a close with a code it does not know (anything but 1000-1003, 1007-1011, 4000-4999, so also
 *   the registered 1012-1014 and 3000-3999) or a malformed close payload is answered with an empty
 *   close frame; a known code is echoed.
 * - Deviations from RFC 6455 that cannot hurt the server (each pinned below so a uWS upgrade that
 *   changes them shows): an unmasked client frame is not refused (uWS reads a mask key anyway, so
 *   the stream desyncs and the silent-socket sweep closes it with 4008); a data frame with a
 *   binary opcode in the middle of a fragmented message is taken as its continuation.
 * Parley's own answers: a text message (the protocol is binary protobuf) gets an error frame
 * BAD_FRAME and close 1008 "BAD_FRAME", whatever the text; so does an empty binary message.
 */
import test, { type ExecutionContext } from 'ava';
import { encodeClientFrame } from '../../proto/index.ts';
import { newUser, startServer, type ServerHandle } from '../support/server.ts';
import { assertHealthy, healthPair, serverFrameOf, type HealthPair } from './fuzz-support.ts';
import { closePayload, frame, Op, RawWebSocket, type FrameSpec } from './raw-websocket.ts';

const MAX_FRAME = 512 * 1024; // max_frame_bytes, default
const PRESENCE_TIMEOUT_MS = 2_000; // short, so a stalled socket is swept within the case

let server: ServerHandle;
let pair: HealthPair;
let token: string;

test.before(async () => {
  server = await startServer({ flags: { 'presence-timeout-ms': String(PRESENCE_TIMEOUT_MS), 'heartbeat-interval-ms': '500' } });
  pair = await healthPair(server);
  token = (await newUser(server, 'raw')).token;
});

test.after.always(async () => {
  await server?.stop();
});

/** An unknown field (15, length-delimited) of padding: ignored by the server, read as bytes. */
function padTo(base: Uint8Array, size: number): Buffer {
  if (size === base.length) return Buffer.from(base);
  for (let pad = size - base.length - 2; pad >= 0; pad--) {
    const len: number[] = [];
    for (let v = pad; ; v >>>= 7) {
      if (v < 128) {
        len.push(v);
        break;
      }
      len.push((v & 127) | 128);
    }
    if (base.length + 1 + len.length + pad === size) return Buffer.concat([base, Buffer.from([0x7a, ...len]), Buffer.alloc(pad, 0x61)]);
  }
  throw new Error(`cannot pad ${base.length} bytes to ${size}`);
}

/** A hello of exactly `size` bytes: answered with welcome, the socket stays open. */
const hello = (size?: number): Buffer => {
  const base = encodeClientFrame(7, 'hello', { token, device_id: 'raw', last_inbox_seq: 0 });
  return padTo(base, size ?? base.length);
};
/** A non-hello frame before hello of exactly `size` bytes: answered UNAUTHENTICATED with `ref`, then 1008. */
const early = (ref: number, size: number): Buffer => padTo(encodeClientFrame(ref, 'heartbeat', {}), size);

const bin = (payload: Uint8Array, more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.BINARY, payload, ...more });
const txt = (payload: Uint8Array | string, more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.TEXT, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, ...more });
/** Control payloads are given as latin1 strings: one character, one byte. */
const ping = (payload = '', more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.PING, payload: Buffer.from(payload, 'latin1'), ...more });
const pong = (payload = '', more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.PONG, payload: Buffer.from(payload, 'latin1'), ...more });
const cont = (payload: Uint8Array, more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.CONTINUATION, payload, ...more });
const close = (code?: number, reason: Uint8Array | string = '', more: Partial<FrameSpec> = {}): FrameSpec => ({ opcode: Op.CLOSE, payload: closePayload(code, reason), ...more });

/** `bytes` as a first fragment and continuations of `size` bytes each. */
function fragments(bytes: Uint8Array, size: number, opcode: number = Op.BINARY): FrameSpec[] {
  const out: FrameSpec[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    out.push({ opcode: i === 0 ? opcode : Op.CONTINUATION, payload: bytes.subarray(i, i + size), fin: i + size >= bytes.length });
  }
  return out;
}

/** What the server must do with a case's frames. */
type Expect =
  /** The message was read whole: `welcome` for a hello (socket stays open) or an error with the ref. */
  | { answer: 'welcome' }
  | { answer: 'UNAUTHENTICATED'; ref: number }
  /** Pongs with these payloads, in order, and the socket stays open. */
  | { pongs: readonly string[]; then?: 'welcome' }
  /** Nothing comes back and the socket stays open (proved by a hello answered afterwards). */
  | { ignored: true }
  /** Error frame BAD_FRAME, then close 1008 "BAD_FRAME". */
  | { badFrame: true }
  /** Connection failed: TCP closed with no close frame and no other answer, within 3 s. */
  | { failed: true; afterPongs?: readonly string[] }
  /** A close frame echoing this code, or (`undefined`) an empty one, and then the end of TCP. */
  | { closeWith: number | undefined }
  /** No answer at all; the silent-socket sweep closes it with 4008. */
  | { stalls: true };

interface Case {
  readonly id: string;
  readonly name: string;
  /** Built when the case runs: the frames carry a token that exists only after `before`. */
  readonly frames: () => readonly FrameSpec[];
  /** Write the frames' bytes in TCP writes of this size. */
  readonly chop?: number;
  /**
   * Write one frame at a time, 100 ms apart. uWS drops what it had queued (a pong) when a later
   * frame of the same read fails the connection, so a case that wants an answer before a failure
   * sends them apart, as a real peer would.
   */
  readonly apart?: true;
  readonly expect: Expect | (() => Expect);
}

const pings10 = Array.from({ length: 10 }, (_, i) => `ping ${i}`);
const helloSize = (): number => hello().length;

const cases: readonly Case[] = [
  // 1 Framing: every length encoding (7-bit up to 125, 16-bit 126..65535, 64-bit above), whole and chopped.
  ...[0, 125, 126, 127, 65_535, 65_536].map((n): Case => ({ id: `1.1.${n}`, name: `text message of ${n} bytes`, frames: () => [txt('*'.repeat(n))], expect: { badFrame: true } })),
  { id: '1.2.0', name: 'binary message of 0 bytes', frames: () => [bin(new Uint8Array(0))], expect: { badFrame: true } },
  ...[8, 125, 126, 127, 128, 65_535, 65_536].map((n): Case => ({ id: `1.2.${n}`, name: `binary message of ${n} bytes, read whole`, frames: () => [bin(early(n, n))], expect: { answer: 'UNAUTHENTICATED', ref: n } })),
  { id: '1.2.hello', name: 'a hello as it is gets welcome', frames: () => [bin(hello())], expect: { answer: 'welcome' } },
  { id: '1.2.chopped', name: 'binary message of 65,536 bytes chopped into TCP writes of 997 bytes', frames: () => [bin(hello(65_536))], chop: 997, expect: { answer: 'welcome' } },
  { id: '1.2.16bit', name: 'a 10-byte message with a 16-bit length (not minimal)', frames: () => [bin(early(10, 10), { lengthForm: 16 })], expect: { answer: 'UNAUTHENTICATED', ref: 10 } },
  { id: '1.2.64bit', name: 'a 10-byte message with a 64-bit length (not minimal)', frames: () => [bin(early(10, 10), { lengthForm: 64 })], expect: { answer: 'UNAUTHENTICATED', ref: 10 } },
  { id: '1.2.msb', name: 'a 64-bit length with its most significant bit set', frames: () => [bin(early(3, 10), { declaredLength: 1n << 63n })], expect: { failed: true } },

  // 2 Pings and pongs.
  { id: '2.1', name: 'ping without payload', frames: () => [ping()], expect: { pongs: [''] } },
  { id: '2.2', name: 'ping with a text payload', frames: () => [ping('Hello, world!')], expect: { pongs: ['Hello, world!'] } },
  { id: '2.3', name: 'ping with a binary payload', frames: () => [ping('\x00\xff\xfe\xfd\xfc\xfb\x00\xff')], expect: { pongs: ['\x00\xff\xfe\xfd\xfc\xfb\x00\xff'] } },
  { id: '2.4', name: 'ping with 125 bytes', frames: () => [ping('\xfe'.repeat(125))], expect: { pongs: ['\xfe'.repeat(125)] } },
  { id: '2.5', name: 'ping with 126 bytes (control frames hold at most 125)', frames: () => [ping('x'.repeat(126))], expect: { failed: true } },
  { id: '2.6', name: 'ping with 125 bytes written 1 byte at a time', frames: () => [ping('y'.repeat(125))], chop: 1, expect: { pongs: ['y'.repeat(125)] } },
  { id: '2.7', name: 'unsolicited pong without payload', frames: () => [pong()], expect: { ignored: true } },
  { id: '2.8', name: 'unsolicited pong with payload', frames: () => [pong('unsolicited')], expect: { ignored: true } },
  { id: '2.9', name: 'unsolicited pong, then ping', frames: () => [pong('unsolicited'), ping('solicited')], expect: { pongs: ['solicited'] } },
  { id: '2.10', name: '10 pings answered in order', frames: () => pings10.map((p) => ping(p)), expect: { pongs: pings10 } },
  { id: '2.11', name: '10 pings written 1 byte at a time', frames: () => pings10.map((p) => ping(p)), chop: 1, expect: { pongs: pings10 } },

  // 3 Reserved bits: no extension is negotiated (compression off), so any set bit fails.
  { id: '3.1', name: 'text with RSV2', frames: () => [txt('Hello', { rsv: 2 })], expect: { failed: true } },
  { id: '3.2', name: 'binary with RSV1 (no permessage-deflate)', frames: () => [bin(hello(), { rsv: 4 })], expect: { failed: true } },
  { id: '3.3', name: 'ping with RSV3', frames: () => [ping('x', { rsv: 1 })], expect: { failed: true } },
  { id: '3.4', name: 'close with all RSV bits', frames: () => [close(1000, '', { rsv: 7 })], expect: { failed: true } },
  { id: '3.5', name: 'ping answered, then a frame with RSV1 fails', frames: () => [ping('first'), bin(hello(), { rsv: 4 })], apart: true, expect: { failed: true, afterPongs: ['first'] } },

  // 4 Opcodes: reserved data (3-7) and control (0xB-0xF) opcodes fail.
  ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((opcode): Case => ({ id: `4.${opcode < 8 ? 1 : 2}.${opcode}`, name: `reserved opcode ${opcode}`, frames: () => [{ opcode, payload: hello() }], expect: { failed: true } })),
  { id: '4.3', name: 'ping answered, then reserved opcode 5 fails', frames: () => [ping('first'), { opcode: 5, payload: Buffer.from('x') }], apart: true, expect: { failed: true, afterPongs: ['first'] } },

  // 5 Fragmentation.
  { id: '5.1', name: 'fragmented ping', frames: () => [ping('frag', { fin: false }), cont(Buffer.from('ment'))], expect: { failed: true } },
  { id: '5.2', name: 'fragmented pong', frames: () => [pong('frag', { fin: false }), cont(Buffer.from('ment'))], expect: { failed: true } },
  { id: '5.3', name: 'binary message in 2 fragments', frames: () => fragments(hello(), Math.ceil(helloSize() / 2)), expect: { answer: 'welcome' } },
  { id: '5.4', name: 'binary message in 1-byte fragments', frames: () => fragments(hello(), 1), expect: { answer: 'welcome' } },
  { id: '5.5', name: 'binary message in 1-byte fragments, written 1 byte at a time', frames: () => fragments(hello(), 1), chop: 1, expect: { answer: 'welcome' } },
  { id: '5.6', name: 'text message in 2 fragments', frames: () => fragments(Buffer.from('fragmented text'), 8, Op.TEXT), expect: { badFrame: true } },
  { id: '5.7', name: 'ping between two fragments', frames: () => [bin(hello().subarray(0, 10), { fin: false }), ping('between'), cont(hello().subarray(10))], expect: { pongs: ['between'], then: 'welcome' } },
  { id: '5.8', name: 'pings between 1-byte fragments', frames: () => fragments(hello(), 1).flatMap((f, i) => (i % 50 === 49 ? [f, ping(`p${i}`)] : [f])), expect: () => ({ pongs: fragments(hello(), 1).flatMap((_, i) => (i % 50 === 49 ? [`p${i}`] : [])), then: 'welcome' }) },
  { id: '5.9', name: 'continuation (FIN) with nothing to continue', frames: () => [cont(hello())], expect: { failed: true } },
  { id: '5.10', name: 'continuation (no FIN) with nothing to continue', frames: () => [cont(hello(), { fin: false })], expect: { failed: true } },
  { id: '5.11', name: 'text fragment, then binary fragment in the middle', frames: () => [txt('ab', { fin: false }), bin(Buffer.from('c'))], expect: { badFrame: true } },
  { id: '5.12', name: 'binary fragment, then a text frame in the middle', frames: () => [bin(hello().subarray(0, 5), { fin: false }), txt('x')], expect: { failed: true } },
  { id: '5.13', name: 'binary fragment, then a second binary frame: taken as its continuation, one message (uWS; RFC 6455 would fail it)', frames: () => [bin(hello().subarray(0, 5), { fin: false }), bin(hello().subarray(5))], expect: { answer: 'welcome' } },
  { id: '5.14', name: 'fragmented close', frames: () => [close(1000, '', { fin: false })], expect: { failed: true } },
  { id: '5.15', name: 'close between fragments ends the connection cleanly', frames: () => [bin(hello().subarray(0, 5), { fin: false }), close(1000)], expect: { closeWith: 1000 } },

  // 6 UTF-8: text is never read as a frame; valid text gets BAD_FRAME, invalid UTF-8 fails.
  ...(
    [
      ['ASCII', Buffer.from('hello')],
      ['2-, 3- and 4-byte code points', Buffer.from('κόσμε €𝄞')],
      ['U+FFFF and U+10FFFF', Buffer.from([0xef, 0xbf, 0xbf, 0xf4, 0x8f, 0xbf, 0xbf])],
      ['the noncharacter U+FFFE', Buffer.from([0xef, 0xbf, 0xbe])],
      ['a hello frame that happens to be valid UTF-8', Buffer.from(encodeClientFrame(1, 'heartbeat', {}))],
    ] as const
  ).map(([name, bytes], i): Case => ({ id: `6.1.${i + 1}`, name: `valid text: ${name}`, frames: () => [txt(bytes)], expect: { badFrame: true } })),
  { id: '6.2.1', name: 'valid text with a code point split across fragments', frames: () => [txt(Buffer.from([0xf0, 0x9f]), { fin: false }), cont(Buffer.from([0x98, 0x80]))], expect: { badFrame: true } },
  { id: '6.2.2', name: 'valid text in 1-byte fragments', frames: () => fragments(Buffer.from('κόσμε'), 1, Op.TEXT), expect: { badFrame: true } },
  ...(
    [
      ['a lone continuation byte', [0x80]],
      ['an overlong "/"', [0xc0, 0xaf]],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
      ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
      ['0xFE and 0xFF', [0xfe, 0xff]],
      ['a sequence cut at the end', [0x61, 0xf0, 0x9f]],
      ['invalid bytes after valid ones', [...Buffer.from('κόσμε'), 0xed, 0xa0, 0x80, 0x65]],
    ] as const
  ).map(([name, bytes], i): Case => ({ id: `6.3.${i + 1}`, name: `invalid UTF-8: ${name}`, frames: () => [txt(Buffer.from(bytes))], expect: { failed: true } })),
  { id: '6.4.1', name: 'invalid UTF-8 in the second fragment', frames: () => [txt('ok', { fin: false }), cont(Buffer.from([0xff]))], expect: { failed: true } },

  // 7 Close handling.
  { id: '7.1.1', name: 'close without payload', frames: () => [close()], expect: { closeWith: undefined } },
  { id: '7.1.2', name: 'close 1000 with a reason is echoed', frames: () => [close(1000, 'bye')], expect: { closeWith: 1000 } },
  { id: '7.1.3', name: 'a ping after close gets no pong', frames: () => [close(1000), ping('after')], expect: { closeWith: 1000 } },
  { id: '7.1.4', name: 'a message after close is not read', frames: () => [close(1000), bin(hello())], expect: { closeWith: 1000 } },
  { id: '7.3.1', name: 'close with a 1-byte payload', frames: () => [{ opcode: Op.CLOSE, payload: Buffer.from([0x03]) }], expect: { closeWith: undefined } },
  { id: '7.3.2', name: 'close with a 123-byte reason (125-byte payload)', frames: () => [close(1000, 'r'.repeat(123))], expect: { closeWith: 1000 } },
  { id: '7.3.3', name: 'close with a 124-byte reason (126-byte payload)', frames: () => [close(1000, 'r'.repeat(124))], expect: { failed: true } },
  { id: '7.5.1', name: 'close reason that is not UTF-8', frames: () => [close(1000, Buffer.from([0xce, 0xba, 0xed, 0xa0, 0x80]))], expect: { closeWith: undefined } },
  ...[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 4000, 4999].map((code): Case => ({ id: `7.7.${code}`, name: `close ${code} is echoed`, frames: () => [close(code)], expect: { closeWith: code } })),
  ...[1012, 1013, 1014, 3000, 3999].map((code): Case => ({ id: `7.7.${code}`, name: `close ${code} (registered; unknown to uWS) gets an empty close`, frames: () => [close(code)], expect: { closeWith: undefined } })),
  ...[0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535].map((code): Case => ({ id: `7.9.${code}`, name: `invalid close code ${code} is not echoed`, frames: () => [close(code)], expect: { closeWith: undefined } })),

  // 9 Limits: max_frame_bytes whole, fragmented and chopped; one byte past it, however it comes.
  ...[64 * 1024, 256 * 1024, MAX_FRAME].map((n): Case => ({ id: `9.1.${n}`, name: `binary message of ${n} bytes in one frame`, frames: () => [bin(hello(n))], expect: { answer: 'welcome' } })),
  ...[64, 4096, 65_536].map((size): Case => ({ id: `9.2.${size}`, name: `binary message of max_frame_bytes in fragments of ${size} bytes`, frames: () => fragments(hello(MAX_FRAME), size), expect: { answer: 'welcome' } })),
  { id: '9.3', name: 'binary message of max_frame_bytes chopped into TCP writes of 64 KiB', frames: () => [bin(hello(MAX_FRAME))], chop: 65_536, expect: { answer: 'welcome' } },
  { id: '9.4.1', name: 'binary message of max_frame_bytes + 1 in one frame', frames: () => [bin(hello(MAX_FRAME + 1))], expect: { failed: true } },
  { id: '9.4.2', name: 'binary message of max_frame_bytes + 1 in two fragments', frames: () => fragments(hello(MAX_FRAME + 1), MAX_FRAME / 2 + 1), expect: { failed: true } },
  { id: '9.4.3', name: 'text message of max_frame_bytes + 1', frames: () => [txt('t'.repeat(MAX_FRAME + 1))], expect: { failed: true } },
  { id: '9.4.4', name: 'a header declaring 1 GiB, with no payload: refused on the header alone', frames: () => [bin(hello(), { declaredLength: 1n << 30n })], expect: { failed: true } },

  // Masking: not a chapter (Autobahn's client always masks), pinned because uWS does not check it.
  { id: '10.1', name: 'unmasked binary frame: not read as a frame; the silent socket is swept', frames: () => [bin(hello(), { mask: false })], expect: { stalls: true } },
];

async function run(t: ExecutionContext, c: Case): Promise<void> {
  const s = await RawWebSocket.open(server.port);
  try {
    if (c.apart) {
      for (const f of c.frames()) {
        await s.write(frame(f), c.chop);
        await new Promise((r) => setTimeout(r, 100));
      }
    } else {
      await s.write(Buffer.concat(c.frames().map((f) => frame(f))), c.chop);
    }
    await check(t, s, typeof c.expect === 'function' ? c.expect() : c.expect);
  } finally {
    s.destroy();
  }
  await assertHealthy(t, server, pair);
}

async function check(t: ExecutionContext, s: RawWebSocket, e: Expect): Promise<void> {
  if ('pongs' in e) {
    for (const p of e.pongs) {
      const f = await s.next();
      t.is(f?.opcode, Op.PONG, `a pong for ${JSON.stringify(p)}`);
      t.is(f?.payload.toString('latin1'), p);
    }
    if (e.then) return check(t, s, { answer: e.then });
    return openAfterwards(t, s);
  }
  if ('answer' in e) {
    const f = await s.next(10_000);
    t.is(f?.opcode, Op.BINARY, 'a binary answer');
    const answer = f && serverFrameOf(f.payload);
    if (e.answer === 'welcome') {
      t.is(answer?.body, 'welcome', JSON.stringify(answer));
      t.is(answer?.ref, 7);
      t.true(s.open);
      return cleanClose(t, s);
    }
    t.is(answer?.body === 'error' && answer.error.code, 'UNAUTHENTICATED', JSON.stringify(answer));
    t.is(answer?.ref, e.ref, 'the ref of the frame read whole');
    const end = await s.end();
    t.is(end.close?.code, 1008);
    return;
  }
  if ('ignored' in e) return openAfterwards(t, s);
  if ('badFrame' in e) {
    const end = await s.end();
    t.false(end.timedOut);
    const first = end.frames[0];
    const err = first?.opcode === Op.BINARY ? serverFrameOf(first.payload) : undefined;
    t.is(err?.body === 'error' && err.error.code, 'BAD_FRAME');
    t.deepEqual(end.close, { code: 1008, reason: 'BAD_FRAME' });
    return;
  }
  if ('failed' in e) {
    const end = await s.end(3_000);
    t.false(end.timedOut, 'the server ended the connection');
    const pongs = end.frames.filter((f) => f.opcode === Op.PONG).map((f) => f.payload.toString('latin1'));
    t.deepEqual(pongs, e.afterPongs ?? []);
    t.deepEqual(end.frames.filter((f) => f.opcode !== Op.PONG).map((f) => f.opcode), [], 'no answer and no close frame: TCP closed');
    return;
  }
  if ('closeWith' in e) {
    const end = await s.end(3_000);
    t.false(end.timedOut, 'the server ended the connection');
    t.deepEqual(end.frames.map((f) => f.opcode), [Op.CLOSE], 'a close frame and nothing else');
    t.is(end.close?.code, e.closeWith);
    return;
  }
  // Stalls: no frame at all until the sweep closes it as silent.
  const end = await s.end(PRESENCE_TIMEOUT_MS + 3_000);
  t.false(end.timedOut, 'the silent-socket sweep closed it');
  t.deepEqual(end.frames.map((f) => f.opcode), [Op.CLOSE]);
  t.is(end.close?.code, 4008);
}

/** The socket still reads frames: () => a hello gets its welcome. */
async function openAfterwards(t: ExecutionContext, s: RawWebSocket): Promise<void> {
  t.is(await s.next(300), undefined, 'nothing else came back');
  t.true(s.open, 'the socket is still open');
  await s.send(bin(hello()));
  return check(t, s, { answer: 'welcome' });
}

async function cleanClose(t: ExecutionContext, s: RawWebSocket): Promise<void> {
  await s.send(close(1000, 'done'));
  const end = await s.end();
  t.is(end.close?.code, 1000);
}

for (const c of cases) test.serial(`websocket ${c.id} - ${c.name}`, (t) => run(t, c));
