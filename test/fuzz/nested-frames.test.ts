/**
 * Deeply nested payloads against a real parleyd. chat.v1.ClientFrame nests two levels (the frame
 * and its body); a frame that nests deeper is refused with an error frame FRAME_TOO_DEEP and close
 * 1008 "FRAME_TOO_DEEP", before it is decoded (proto/frame-depth.ts), before hello as after it.
 * The cases: at the limit and one past it, nesting inside the body, 200,000 levels, nesting that
 * is opaque bytes to a decoder (accepted); then a bulk run of deep payloads of several shapes
 * (test/fuzz/nesting.ts) with the process alive, memory flat, and a normal client served after.
 *
 * What protobufjs 7.6 does on its own: it stops at 100 levels ("maximum nesting depth exceeded",
 * refused as BAD_FRAME); versions before its recursion limit overflowed the stack on a few
 * thousand nested groups. The scan makes the bound the schema's and the refusal its own code.
 *
 * Counts: PARLEY_FUZZ_NESTED (default 5,000, the npm test profile; 100,000 is the chaos suite's
 * figure), PARLEY_FUZZ_SEED, PARLEY_FUZZ_REPORT (a file: the figures are appended as a JSON line).
 */
import test, { type ExecutionContext } from 'ava';
import { encodeClientFrame } from '../../proto/index.ts';
import { newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { alive, assertHealthy, countFromEnv, describeMemory, healthPair, helloRaw, memory, MiB, Random, report, retainedGrowth, seedFromEnv, serverFrameOf, YOUNG_GENERATION_MAX, type HealthPair } from './fuzz-support.ts';
import { deepFrame, groups, inBody, opaque } from './nesting.ts';
import { frame, Op, RawWebSocket, ZERO_MASK } from './raw-websocket.ts';

const NESTED = countFromEnv('PARLEY_FUZZ_NESTED', 5_000);
const SEED = seedFromEnv();
/** Sockets at once: each deep payload closes its socket. */
const LANES = 16;
/** Deepest payload drawn (log-uniform from 3): 100,000 levels of two-byte groups is 200 KB. */
const MAX_LEVELS = 100_000;
const MAX_GROWTH = 50 * MiB;
/** A floor of 300 payloads a second (the shared 2-core box did 540-950). */
const DEADLINE_MS = 60_000 + Math.ceil(NESTED / 300) * 1000;

let server: ServerHandle;
let pair: HealthPair;
let user: TestUser;

test.before(async () => {
  server = await startServer();
  pair = await healthPair(server);
  user = await newUser(server, 'nest');
});

test.after.always(async () => {
  await server?.stop();
});

const bin = (payload: Uint8Array): Buffer => frame({ opcode: Op.BINARY, payload, maskKey: ZERO_MASK });
const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
/** A presence query (answered by presence_result with its ref) and what is appended to it. */
const query = (ref: number, ...tail: Uint8Array[]): Uint8Array => cat(encodeClientFrame(ref, 'presence_query', { user_ids: [] }), ...tail);

/** The bytes are refused as too deep: error FRAME_TOO_DEEP (ref 0), then close 1008 with the code. */
async function assertTooDeep(t: ExecutionContext, s: RawWebSocket): Promise<void> {
  const end = await s.end(10_000);
  t.false(end.timedOut);
  const data = end.frames.filter((f) => f.opcode === Op.BINARY);
  const err = data.length > 0 ? serverFrameOf(data[data.length - 1]!.payload) : undefined;
  t.is(err?.body === 'error' && err.error.code, 'FRAME_TOO_DEEP', JSON.stringify(err));
  t.is(err?.ref, 0);
  t.deepEqual(end.close, { code: 1008, reason: 'FRAME_TOO_DEEP' });
}

/** The bytes were decoded and answered: presence_result with `ref`, the socket still open. */
async function assertAnswered(t: ExecutionContext, s: RawWebSocket, ref: number): Promise<void> {
  const f = await s.next(10_000);
  const answer = f?.opcode === Op.BINARY ? serverFrameOf(f.payload) : undefined;
  t.is(answer?.body, 'presence_result', JSON.stringify(answer));
  t.is(answer?.ref, ref);
  t.true(s.open);
}

test.serial('nesting - at the limit (the frame and one group) is read; one level more is FRAME_TOO_DEEP and close 1008', async (t) => {
  const s = await helloRaw(server, user.token, 'nest-1');
  await s.write(bin(query(21, groups(1))));
  await assertAnswered(t, s, 21);
  await s.write(bin(query(22, groups(2))));
  await assertTooDeep(t, s);
  await assertHealthy(t, server, pair);
});

test.serial('nesting - a group inside the body is one level past the limit', async (t) => {
  const s = await helloRaw(server, user.token, 'nest-2');
  await s.write(bin(inBody(8, groups(0)))); // a heartbeat body: 2 levels, no answer expected
  await s.write(bin(query(23)));
  await assertAnswered(t, s, 23);
  await s.write(bin(inBody(7, groups(1))));
  await assertTooDeep(t, s);
  await assertHealthy(t, server, pair);
});

test.serial('nesting - 200,000 nested groups (400 KB) are refused at once, before hello too (not UNAUTHENTICATED: refused before any session reads it)', async (t) => {
  const deep = query(24, groups(200_000));
  t.true(deep.length > 400_000 && deep.length < 512 * 1024);
  const s = await RawWebSocket.open(server.port);
  const started = performance.now();
  await s.write(bin(deep));
  await assertTooDeep(t, s);
  t.log(`refused in ${(performance.now() - started).toFixed(1)} ms (write of 400 KB included)`);
  await assertHealthy(t, server, pair);
});

test.serial('nesting - 10,000 levels inside an unknown length-delimited field are bytes to the decoder: the frame is read and answered', async (t) => {
  const s = await helloRaw(server, user.token, 'nest-3');
  await s.write(bin(query(25, opaque(10_000))));
  await assertAnswered(t, s, 25);
  s.destroy();
  await assertHealthy(t, server, pair);
});

test.serial('nesting - deep payloads of every shape are refused with FRAME_TOO_DEEP; the process survives and its memory stays flat', async (t) => {
  t.timeout(DEADLINE_MS + 60_000);
  const random = new Random(SEED);
  const shapes = new Map<string, number>();
  const problems: string[] = [];
  let sent = 0;
  let bytes = 0;
  let authenticated = 0;
  const deadline = Date.now() + DEADLINE_MS;
  const send = async (lane: number): Promise<void> => {
    const { shape, bytes: payload } = deepFrame(random, MAX_LEVELS);
    shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
    bytes += payload.length;
    // One in sixteen after hello: the refusal must not depend on the session's phase.
    const afterHello = random.int(16) === 0;
    if (afterHello) authenticated++;
    const s = afterHello ? await helloRaw(server, user.token, `nest-lane-${lane}`) : await RawWebSocket.open(server.port);
    try {
      await s.write(bin(payload));
      const end = await s.end(10_000);
      const data = end.frames.filter((f) => f.opcode === Op.BINARY);
      const err = data.length > 0 ? serverFrameOf(data[data.length - 1]!.payload) : undefined;
      const ok = err?.body === 'error' && err.error.code === 'FRAME_TOO_DEEP' && end.close?.code === 1008 && end.close.reason === 'FRAME_TOO_DEEP';
      if (!ok && problems.length < 10) problems.push(`${shape} (${payload.length} bytes): ${JSON.stringify(err)} ${JSON.stringify(end.close)}${end.timedOut ? ' timed out' : ''}`);
    } finally {
      s.destroy();
    }
  };
  const run = async (count: number): Promise<void> => {
    const target = sent + count;
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        while (sent < target && problems.length === 0 && Date.now() < deadline && alive(server)) {
          sent++;
          await send(lane);
        }
      }),
    );
  };
  const cold = await memory(server);
  const started = Date.now();
  const warmUp = Math.max(1, Math.floor(NESTED / 10));
  await run(warmUp);
  const before = await memory(server);
  await run(NESTED - warmUp);
  const seconds = (Date.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2_000));
  const after = await memory(server);

  t.deepEqual(problems, [], `seed ${SEED}`);
  t.is(sent, NESTED, `all sent before the deadline (${DEADLINE_MS} ms)`);
  t.true(alive(server));
  t.log(
    `fuzz nested: ${sent} deep payloads (${authenticated} after hello; ${(bytes / MiB).toFixed(0)} MiB) in ${seconds.toFixed(1)} s, ` +
      `${Math.round(sent / seconds)} payloads/s; ${describeMemory(cold, before, after)}; crashes: ${alive(server) ? 0 : 1}; seed ${SEED}`,
  );
  t.log(`shapes: ${JSON.stringify(Object.fromEntries(shapes))}`);
  report({
    scenario: 'fuzz-nested', payloads: sent, after_hello: authenticated, bytes, seconds, payloads_per_s: Math.round(sent / seconds),
    rss_before: before.rss, rss_after: after.rss, young_before: before.young, young_after: after.young, retained_growth: retainedGrowth(before, after),
    crashes: alive(server) ? 0 : 1, problems: problems.length, shapes: Object.fromEntries(shapes), seed: SEED,
  });
  t.true(retainedGrowth(before, after) < MAX_GROWTH, describeMemory(cold, before, after));
  t.true(after.young <= YOUNG_GENERATION_MAX);
  await assertHealthy(t, server, pair);
});
