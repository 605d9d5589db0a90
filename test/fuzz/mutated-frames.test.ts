/**
 * Mutated protobuf frames against a real parleyd: every frame the server decodes gets a clear
 * answer (a reply, an error frame with a refusal code from the registry, or nothing for the frames
 * that want none), every frame it cannot decode gets BAD_FRAME or FRAME_TOO_DEEP and close 1008,
 * the process never dies, nothing is logged at error, and memory held grows by less than 50 MiB
 * (RSS without V8's young generation, see fuzz-support.ts `memory`; raw RSS is reported too).
 *
 * Mutants are sorted with the server's own codec. Those it decodes go over a few authenticated
 * sockets in batches, each ended by a probe (a presence query) whose answer says the session has
 * taken every frame before it; one batch in eight ends instead with a mutant it cannot decode,
 * which closes that socket. A frame the server cannot decode closes its socket, so the rest of
 * those go one per fresh socket (the codec refuses them before any session state matters), with
 * one socket in sixteen opening with a mutated hello instead (of its own user, so that a mutated
 * device id never takes over a fuzzing socket's device).
 *
 * Counts: PARLEY_FUZZ_FRAMES (default 20,000, the npm test profile; 1,000,000 is the chaos
 * suite's figure), PARLEY_FUZZ_SOCKETS (authenticated sockets, 4), PARLEY_FUZZ_SEED (random,
 * printed: the same seed sends the same mutants), PARLEY_FUZZ_REPORT (a file: the figures are
 * appended to it as one JSON line).
 */
import test, { type ExecutionContext } from 'ava';
import { decodeClientFrame, encodeClientFrame, FrameDecodeError } from '../../proto/index.ts';
import { newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { alive, assertHealthy, countFromEnv, describeMemory, healthPair, helloRaw, memory, MiB, Random, report, retainedGrowth, seedFromEnv, serverFrameOf, YOUNG_GENERATION_MAX } from './fuzz-support.ts';
import { mutate, seedFrames } from './mutations.ts';
import { frame, Op, RawWebSocket, ZERO_MASK } from './raw-websocket.ts';

const FRAMES = countFromEnv('PARLEY_FUZZ_FRAMES', 20_000);
const SOCKETS = countFromEnv('PARLEY_FUZZ_SOCKETS', 4);
/** Lanes of one-frame sockets (refused mutants and mutated hellos), each with its own hello user. */
const FRESH_LANES = 16;
/**
 * The share of frames the server cannot decode. About 70 % of mutants are such, but each costs a
 * connection (it closes its socket), so at that share a run would measure connection setup; a
 * quarter still sends a quarter of a million of them through the codec and the connection
 * lifecycle in a 1M run, while most frames reach the session and the actors behind it.
 */
const REFUSED_SHARE = 0.25;
const SEED = seedFromEnv();
/** Frames per batch at most: well under a session's mailbox (2,048), so none is shed as overload. */
const BATCH = 200;
/** Memory the run may add (RSS without V8's young generation: fuzz-support.ts `memory`), after a warm-up of a tenth of the frames. */
const MAX_GROWTH = 50 * MiB;
/** A floor of 1,000 frames a second (the shared 2-core box did 1,700-5,700 under others' load). */
const DEADLINE_MS = 60_000 + FRAMES;

/** Codes a decodable but wrong frame may get: refusals and flow control, never a fault. */
const REFUSALS = new Set(['INVALID_ARGUMENT', 'FORBIDDEN', 'NOT_FOUND', 'RATE_LIMITED', 'TEXT_TOO_LONG', 'OVERLOADED', 'TIMEOUT', 'UNAVAILABLE']);
/** Codes a mutated hello may get before the socket closes. */
const HELLO_REFUSALS = new Set(['UNAUTHENTICATED', 'INVALID_ARGUMENT', 'BAD_FRAME', 'FRAME_TOO_DEEP']);
const PROBE_REF = 2 ** 50;

let server: ServerHandle;

test.before(async () => {
  server = await startServer();
});

test.after.always(async () => {
  await server?.stop();
});

/** Live activations by kind, from /metrics: what a run leaves behind in the process. */
async function activeActors(): Promise<string> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('parley_actors_active') || l.startsWith('parley_connections')).join(', ');
}

class Tally {
  frames = 0;
  decodable = 0;
  sockets = 0;
  readonly codes = new Map<string, number>();
  readonly bodies = new Map<string, number>();
  readonly problems: string[] = [];

  count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  problem(p: string): void {
    if (this.problems.length < 20) this.problems.push(p);
  }

  /** Checks one frame from the server; returns it decoded. */
  answer(payload: Uint8Array, allowed: ReadonlySet<string>): ReturnType<typeof serverFrameOf> {
    const f = serverFrameOf(payload);
    if (!f) {
      this.problem(`undecodable server frame ${Buffer.from(payload).toString('hex').slice(0, 80)}`);
      return undefined;
    }
    this.count(this.bodies, f.body);
    if (f.body === 'error') {
      this.count(this.codes, f.error.code);
      if (!allowed.has(f.error.code)) this.problem(`error ${f.error.code} (ref ${f.ref}): ${f.error.message}`);
    }
    return f;
  }
}

type Verdict = 'ok' | 'BAD_FRAME' | 'FRAME_TOO_DEEP';

/**
 * Mutants sorted by what the server will do with them. Lanes take the kind they send (in the mix
 * REFUSED_SHARE sets); a mutant of the other kind waits in its queue, up to a bound past which
 * new ones are dropped unsent.
 */
class MutantSource {
  private readonly decodable: Uint8Array[] = [];
  private readonly refused: Array<{ bytes: Uint8Array; code: Exclude<Verdict, 'ok'> }> = [];

  constructor(
    private readonly random: Random,
    private readonly seeds: readonly Uint8Array[],
  ) {}

  takeDecodable(): Uint8Array {
    while (this.decodable.length === 0) this.generate();
    return this.decodable.pop()!;
  }

  takeRefused(): { bytes: Uint8Array; code: Exclude<Verdict, 'ok'> } {
    while (this.refused.length === 0) this.generate();
    return this.refused.pop()!;
  }

  private generate(): void {
    // A plain Uint8Array, as the gateway hands frames to the codec.
    const bytes = Uint8Array.from(mutate(this.random, this.random.pick(this.seeds), this.seeds));
    const verdict = classify(bytes);
    if (verdict === 'ok') {
      if (this.decodable.length < 10_000) this.decodable.push(bytes);
    } else if (this.refused.length < 10_000) this.refused.push({ bytes, code: verdict });
  }
}

/** Whether the server decodes these bytes, and if not with which code: its own codec decides. */
function classify(bytes: Uint8Array): Verdict {
  try {
    decodeClientFrame(bytes);
    return 'ok';
  } catch (err) {
    return err instanceof FrameDecodeError ? err.code : 'BAD_FRAME';
  }
}

interface Run {
  readonly random: Random;
  readonly source: MutantSource;
  readonly tally: Tally;
  /** Frames still to send, of each kind; a lane reserves what it sends. */
  readonly budget: { decodable: number; refused: number };
  readonly deadline: number;
}

function reserve(run: Run, kind: 'decodable' | 'refused', wanted: number): number {
  const n = Math.min(wanted, run.budget[kind]);
  run.budget[kind] -= n;
  return n;
}

/**
 * One authenticated socket: batches of decodable mutants, each checked by a probe, until the
 * budget is spent or (one batch in eight) a refused mutant ends the batch and closes the socket.
 */
async function authenticatedSocket(run: Run, user: TestUser, deviceId: string): Promise<void> {
  const { tally, source, random } = run;
  const s = await helloRaw(server, user.token, deviceId);
  tally.sockets++;
  try {
    for (;;) {
      const n = reserve(run, 'decodable', BATCH);
      if (n === 0) break;
      const closing = random.int(8) === 0 && reserve(run, 'refused', 1) === 1 ? source.takeRefused() : undefined;
      const batch = Array.from({ length: n }, () => source.takeDecodable());
      tally.frames += batch.length + (closing ? 1 : 0);
      tally.decodable += batch.length;
      if (closing) {
        await s.write(Buffer.concat([...batch, closing.bytes].map((b) => rawFrame(b))));
        await untilRefusedClose(tally, s, closing.code);
        return;
      }
      const probe = PROBE_REF + tally.frames;
      await s.write(Buffer.concat([...batch, encodeClientFrame(probe, 'presence_query', { user_ids: [] })].map((b) => rawFrame(b))));
      if (!(await untilProbe(tally, s, probe))) return;
      if (Date.now() > run.deadline || !alive(server)) return;
    }
    await s.send({ opcode: Op.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
    await s.end();
  } finally {
    s.destroy();
  }
}

/** A binary frame masked with the zero key: no XOR pass over a million frames. */
const rawFrame = (b: Uint8Array): Buffer => frame({ opcode: Op.BINARY, payload: b, maskKey: ZERO_MASK });

async function untilProbe(tally: Tally, s: RawWebSocket, probe: number): Promise<boolean> {
  for (;;) {
    const f = await s.next(20_000);
    if (!f) {
      const end = s.open ? 'no answer in 20 s' : `closed ${JSON.stringify((await s.end()).close)}`;
      tally.problem(`an open batch got no probe answer: ${end}`);
      return false;
    }
    if (f.opcode !== Op.BINARY) {
      tally.problem(`unexpected opcode ${f.opcode} on an open batch`);
      return false;
    }
    const answer = tally.answer(f.payload, REFUSALS);
    if (answer?.ref === probe) return true;
  }
}

/** Answers to the frames before, then the refusal's error frame (ref 0) and close 1008 with its code. */
async function untilRefusedClose(tally: Tally, s: RawWebSocket, code: Exclude<Verdict, 'ok'>): Promise<void> {
  const end = await s.end(20_000);
  const data = end.frames.filter((f) => f.opcode === Op.BINARY);
  for (const f of data.slice(0, -1)) tally.answer(f.payload, REFUSALS);
  const final = data.length > 0 ? serverFrameOf(data[data.length - 1]!.payload) : undefined;
  if (final?.body !== 'error' || final.error.code !== code || final.ref !== 0) tally.problem(`expected ${code} last, got ${JSON.stringify(final)}`);
  else tally.count(tally.codes, code);
  if (end.close?.code !== 1008 || end.close.reason !== code) tally.problem(`expected close 1008 ${code}, got ${JSON.stringify(end.close)}${end.timedOut ? ' (timed out)' : ''}`);
}

/** A fresh socket for one refused mutant: the codec refuses it before any session state matters. */
async function refusedSocket(run: Run): Promise<void> {
  if (reserve(run, 'refused', 1) === 0) return;
  const m = run.source.takeRefused();
  const s = await RawWebSocket.open(server.port);
  run.tally.sockets++;
  run.tally.frames++;
  try {
    await s.write(rawFrame(m.bytes));
    await untilRefusedClose(run.tally, s, m.code);
  } finally {
    s.destroy();
  }
}

/** A fresh socket whose first frame is a mutated hello (of its own user: see the header). */
async function helloSocket(run: Run, helloSeed: Uint8Array): Promise<void> {
  if (reserve(run, 'refused', 1) === 0) return;
  const { tally } = run;
  const m = Uint8Array.from(mutate(run.random, helloSeed, [helloSeed]));
  const s = await RawWebSocket.open(server.port);
  tally.sockets++;
  tally.frames++;
  try {
    await s.write(rawFrame(m));
    const f = await s.next(10_000);
    const answer = f?.opcode === Op.BINARY ? tally.answer(f.payload, HELLO_REFUSALS) : undefined;
    if (answer?.body === 'welcome') {
      tally.decodable++;
      return;
    }
    if (answer?.body !== 'error') tally.problem(`a mutated hello got ${JSON.stringify(answer)}`);
    const end = await s.end(10_000);
    if (end.close?.code !== 1008) tally.problem(`a refused hello closed with ${JSON.stringify(end.close)}`);
  } finally {
    s.destroy();
  }
}

/** Sends `frames` mutants: SOCKETS authenticated lanes and FRESH_LANES lanes of one-frame sockets. */
async function fuzz(run: Run, frames: number, user: TestUser, helloSeeds: readonly Uint8Array[]): Promise<void> {
  run.budget.refused = Math.round(frames * REFUSED_SHARE);
  run.budget.decodable = frames - run.budget.refused;
  const going = (kind: 'decodable' | 'refused'): boolean => run.budget[kind] > 0 && run.tally.problems.length === 0 && Date.now() <= run.deadline && alive(server);
  const auth = Array.from({ length: SOCKETS }, async (_, i) => {
    while (going('decodable')) await authenticatedSocket(run, user, `fuzz-${i}`);
  });
  const fresh = helloSeeds.map(async (helloSeed) => {
    while (going('refused')) {
      if (run.random.int(16) === 0) await helloSocket(run, helloSeed);
      else await refusedSocket(run);
    }
  });
  await Promise.all([...auth, ...fresh]);
  const unsent = run.budget.decodable + run.budget.refused;
  if (unsent > 0 && run.tally.problems.length === 0) run.tally.problem(alive(server) ? `deadline: ${unsent} frames unsent after ${DEADLINE_MS} ms` : 'parleyd exited');
}

test('fuzz - mutated frames get a clear answer or close; the process survives and its memory stays flat', async (t) => {
  t.timeout(DEADLINE_MS + 60_000);
  const peer = await newUser(server, 'fp');
  const user = await newUser(server, 'fz');
  const helloUsers = await Promise.all(Array.from({ length: FRESH_LANES }, (_, i) => newUser(server, `fh${i}`)));
  const { channel_id } = await user.http.openDm(peer.userId);
  const seeds = seedFrames({ token: user.token, channelId: channel_id, userIds: [peer.userId, user.userId, 'u-nobody'] });
  const helloSeeds = helloUsers.map((u) => encodeClientFrame(1, 'hello', { token: u.token, device_id: 'hello-fuzz', last_inbox_seq: 3 }));
  const random = new Random(SEED);
  const started = Date.now();
  const run: Run = { random, source: new MutantSource(random, seeds), tally: new Tally(), budget: { decodable: 0, refused: 0 }, deadline: started + DEADLINE_MS };
  const logLinesBefore = server.logs.length;
  const cold = await memory(server);

  const warmUp = Math.max(1, Math.floor(FRAMES / 10));
  await fuzz(run, warmUp, user, helloSeeds);
  const before = await memory(server);
  await fuzz(run, FRAMES - warmUp, user, helloSeeds);
  const seconds = (Date.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 2_000)); // replies and closes settle
  const after = await memory(server);
  const { tally } = run;

  t.deepEqual(tally.problems, [], `seed ${SEED}`);
  t.true(alive(server), 'parleyd is alive');
  const faults = server.logs.slice(logLinesBefore).filter((l) => /"level":(50|60)/.test(l));
  t.deepEqual(faults.slice(0, 5), [], 'nothing logged at error or fatal');
  t.log(
    `fuzz mutated: ${tally.frames} frames (${tally.decodable} decodable) over ${tally.sockets} sockets in ${seconds.toFixed(1)} s, ` +
      `${Math.round(tally.frames / seconds)} frames/s; ${describeMemory(cold, before, after)}; crashes: ${alive(server) ? 0 : 1}; seed ${SEED}`,
  );
  t.log(`answers: ${JSON.stringify(Object.fromEntries(tally.bodies))}; error codes: ${JSON.stringify(Object.fromEntries(tally.codes))}`);
  const leftBehind = await activeActors();
  t.log(`left behind: ${leftBehind}`);
  report({
    scenario: 'fuzz-mutated', frames: tally.frames, decodable: tally.decodable, sockets: tally.sockets, seconds, frames_per_s: Math.round(tally.frames / seconds),
    rss_before: before.rss, rss_after: after.rss, young_before: before.young, young_after: after.young, retained_growth: retainedGrowth(before, after),
    crashes: alive(server) ? 0 : 1, problems: tally.problems.length, codes: Object.fromEntries(tally.codes), seed: SEED,
  });
  t.regex(leftBehind, /kind="channel"\} [01](,|$)/, 'no channel activation kept for made-up ids (only the real DM may be active)');
  t.true(retainedGrowth(before, after) < MAX_GROWTH, describeMemory(cold, before, after));
  t.true(after.young <= YOUNG_GENERATION_MAX, 'the young generation stays within its bound');
  await assertHealthy(t, server, await healthPair(server));
});
