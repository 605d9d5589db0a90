import test from 'ava';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { CodedError, Rejection, RuntimeCodes } from '../../runtime/errors.ts';
import { silentLogger, type Logger } from '../../runtime/log.ts';
import {
  ActorSystem,
  deferReply,
  type ActorContext,
  type ActorSystemOptions,
  type DeactivationReason,
} from '../../runtime/actor/index.ts';

// Timing-sensitive tests run one after another so they do not compete for the event loop.

// ---------------------------------------------------------------------------------------------
// helpers (every wait is bounded)

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Fails (instead of hanging) when `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every 5 ms; throws after `ms`. */
async function waitFor(condition: () => boolean, ms: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await sleep(5);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

interface LogRecord {
  level: number;
  msg?: string;
  actor?: { kind: string; key: string };
  err?: { message?: string; type?: string };
  [field: string]: unknown;
}

/** A pino logger writing JSON lines into memory. */
function captureLogger(): { log: Logger; records: () => LogRecord[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const log = pino({ level: 'info' }, destination);
  const records = (): LogRecord[] =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as LogRecord);
  return { log, records };
}

function newSystem(
  t: { teardown(fn: () => unknown): void },
  options: Partial<ActorSystemOptions> = {},
): ActorSystem {
  const system = new ActorSystem({ log: silentLogger(), askTimeoutMs: 2_000, sweepIntervalMs: 20, ...options });
  t.teardown(() => system.shutdown());
  return system;
}

// ---------------------------------------------------------------------------------------------
// 1. virtual activation and passivation

type CounterMsg = { op: 'add'; by: number } | { op: 'get' };

test.serial('actor kernel - a virtual actor is activated by its first message and passivated after idleMs', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 20 });
  const storage = new Map<string, number>();
  const events: string[] = [];
  system.register<CounterMsg>({
    name: 'counter',
    idleMs: 100,
    create: (ctx) => {
      let n = 0;
      return {
        onActivate() {
          events.push('activate');
          n = storage.get(ctx.address.key) ?? 0;
        },
        receive(m) {
          if (m.op === 'add') n += m.by;
          return n;
        },
        onDeactivate(reason) {
          events.push(`deactivate:${reason}`);
          storage.set(ctx.address.key, n);
        },
      };
    },
  });
  const ref = system.ref<CounterMsg>('counter', 'c1');

  // Nothing exists until the first message.
  t.is(system.count(), 0);
  t.false(system.isActive(ref.address));
  const first = ref.ask<number>({ op: 'add', by: 5 });
  t.is(system.count(), 1);
  t.is(system.count('counter'), 1);
  t.is(await first, 5);
  t.is(await ref.ask<number>({ op: 'add', by: 2 }), 7);
  t.deepEqual(events, ['activate'], 'onActivate runs once per activation, not per message');
  const lastMessageAt = Date.now();

  // Not passivated before idleMs ...
  await sleep(40);
  t.is(system.count(), 1);
  // ... but soon after it.
  await waitFor(() => system.count() === 0, 1_000, 'passivation');
  const idleFor = Date.now() - lastMessageAt;
  t.true(idleFor >= 90, `passivated after ${idleFor} ms, before idleMs`);
  t.true(idleFor < 600, `passivated only after ${idleFor} ms`);
  t.deepEqual(events, ['activate', 'deactivate:idle']);
  t.is(storage.get('c1'), 7);
  t.false(system.isActive(ref.address));

  // A later message activates a new instance that reloads the persisted state.
  t.is(await ref.ask<number>({ op: 'get' }), 7);
  t.is(system.count(), 1);
  t.deepEqual(events, ['activate', 'deactivate:idle', 'activate']);
  t.is(await ref.ask<number>({ op: 'add', by: 1 }), 8);
});

test.serial('actor kernel - an idle actor whose canPassivate() is false stays active', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 20 });
  const reasons: DeactivationReason[] = [];
  let mayPassivate = false;
  system.register<CounterMsg>({
    name: 'busy',
    idleMs: 60,
    create: () => ({
      receive: () => 'ok',
      canPassivate: () => mayPassivate,
      onDeactivate(reason) {
        reasons.push(reason);
      },
    }),
  });
  const ref = system.ref<CounterMsg>('busy', 'b1');
  await ref.ask({ op: 'get' });

  await sleep(300); // five idle periods, fifteen sweeps
  t.is(system.count(), 1);
  t.deepEqual(reasons, []);

  mayPassivate = true;
  await waitFor(() => system.count() === 0, 1_000, 'passivation once allowed');
  t.deepEqual(reasons, ['idle']);
});

// ---------------------------------------------------------------------------------------------
// 2. one message at a time

test.serial('actor kernel - handlers of one actor never interleave across awaits and run in send order', async (t) => {
  const system = newSystem(t);
  let inFlight = 0;
  let maxInFlight = 0;
  const trace: string[] = [];
  const handled: number[] = [];
  system.register<{ seq: number }>({
    name: 'serial',
    create: () => ({
      async receive(m) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        trace.push(`enter:${m.seq}`);
        const delay = Math.floor(Math.random() * 3);
        if (m.seq % 5 === 0) await Promise.resolve(); // microtask-only yield
        else await sleep(delay);
        handled.push(m.seq);
        trace.push(`exit:${m.seq}`);
        inFlight--;
        return m.seq * 10;
      },
    }),
  });
  const ref = system.ref<{ seq: number }>('serial', 'one');
  const asks = range(0, 200).map((seq) => ref.ask<number>({ seq }, { timeoutMs: 10_000 }));
  const replies = await within(Promise.all(asks), 8_000, '200 asks');

  t.is(maxInFlight, 1, 'two handlers of the same actor were running at once');
  t.deepEqual(handled, range(0, 200), 'handling order differs from send order');
  t.deepEqual(replies, range(0, 200).map((seq) => seq * 10));
  t.deepEqual(
    trace,
    range(0, 200).flatMap((seq) => [`enter:${seq}`, `exit:${seq}`]),
    'every handler exits before the next enters',
  );
});

test.serial('actor kernel - different actors run concurrently', async (t) => {
  const system = newSystem(t);
  let inFlight = 0;
  let maxInFlight = 0;
  const bothInside = deferred();
  system.register<string>({
    name: 'parallel',
    create: () => ({
      async receive() {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (inFlight === 2) bothInside.resolve();
        // Each handler waits for the other one to be inside: only possible if they overlap.
        await within(bothInside.promise, 1_000, 'the other actor');
        inFlight--;
        return 'done';
      },
    }),
  });
  const a = system.ref<string>('parallel', 'a');
  const b = system.ref<string>('parallel', 'b');
  t.deepEqual(await Promise.all([a.ask('go'), b.ask('go')]), ['done', 'done']);
  t.is(maxInFlight, 2);
});

// ---------------------------------------------------------------------------------------------
// 3. tell, ask, timeouts, deferReply, Rejection

type EchoMsg =
  | { op: 'add'; by: number }
  | { op: 'get' }
  | { op: 'slow'; ms: number }
  | { op: 'asyncGet' }
  | { op: 'refuse' }
  | { op: 'refuseLater' }
  | { op: 'defer' }
  | { op: 'deferRejected' }
  | { op: 'ping' };

test.serial('actor kernel - ask resolves with the handler value and tell is fire-and-forget', async (t) => {
  const system = newSystem(t);
  let n = 0;
  system.register<EchoMsg>({
    name: 'echo',
    create: () => ({
      async receive(m) {
        if (m.op === 'add') return (n += m.by);
        if (m.op === 'asyncGet') {
          await sleep(5);
          return { n };
        }
        return n;
      },
    }),
  });
  const ref = system.ref<EchoMsg>('echo', 'e');
  t.is(ref.tell({ op: 'add', by: 2 }), undefined);
  ref.tell({ op: 'add', by: 3 });
  t.is(await ref.ask<number>({ op: 'get' }), 5);
  t.deepEqual(await ref.ask<{ n: number }>({ op: 'asyncGet' }), { n: 5 });
  t.is(await ref.ask<number>({ op: 'add', by: 1 }), 6);
});

test.serial('actor kernel - ask with timeoutMs rejects TIMEOUT on a slow handler and the late reply is harmless', async (t) => {
  const { log, records } = captureLogger();
  const system = newSystem(t, { log });
  let activations = 0;
  const slowDone = deferred();
  system.register<EchoMsg>({
    name: 'slowpoke',
    create: () => ({
      onActivate() {
        activations++;
      },
      async receive(m) {
        if (m.op === 'slow') {
          await sleep(m.ms);
          slowDone.resolve();
          return 'late';
        }
        return 'pong';
      },
    }),
  });
  const ref = system.ref<EchoMsg>('slowpoke', 's');
  const started = Date.now();
  const err = await t.throwsAsync(ref.ask({ op: 'slow', ms: 300 }, { timeoutMs: 50 }), {
    instanceOf: CodedError,
    code: RuntimeCodes.TIMEOUT,
  });
  const waited = Date.now() - started;
  t.true(waited >= 45 && waited < 250, `TIMEOUT after ${waited} ms, expected about 50`);
  t.truthy(err);

  // The handler finishes after the caller gave up: its reply goes nowhere, nothing throws.
  await within(slowDone.promise, 1_000, 'slow handler');
  t.is(await ref.ask<string>({ op: 'ping' }), 'pong');
  t.is(activations, 1, 'the late reply must not have failed (and restarted) the actor');
  t.deepEqual(
    records().filter((r) => r.level >= 50),
    [],
  );
});

test.serial('actor kernel - deferReply lets the next message run before the reply resolves', async (t) => {
  const system = newSystem(t);
  const gate = deferred<number>();
  const trace: string[] = [];
  let activations = 0;
  system.register<EchoMsg>({
    name: 'deferring',
    create: () => ({
      onActivate() {
        activations++;
      },
      receive(m) {
        trace.push(m.op);
        if (m.op === 'defer') return deferReply(gate.promise.then((v) => v * 2));
        if (m.op === 'deferRejected') return deferReply(Promise.reject(new Rejection('LATER_NO', 'refused later')));
        return 'pong';
      },
    }),
  });
  const ref = system.ref<EchoMsg>('deferring', 'd');
  let deferredSettled = false;
  const deferredAsk = ref.ask<number>({ op: 'defer' }, { timeoutMs: 2_000 });
  void deferredAsk.finally(() => {
    deferredSettled = true;
  });

  // The turn of 'defer' has ended: 'ping' is handled although the deferred reply is pending.
  t.is(await within(ref.ask<string>({ op: 'ping' }), 1_000, 'ping after defer'), 'pong');
  t.deepEqual(trace, ['defer', 'ping']);
  t.false(deferredSettled);

  gate.resolve(21);
  t.is(await within(deferredAsk, 1_000, 'deferred reply'), 42);

  // A deferred failure reaches the caller as is and does not restart the actor.
  await t.throwsAsync(ref.ask({ op: 'deferRejected' }), { instanceOf: Rejection, code: 'LATER_NO' });
  t.is(await ref.ask<string>({ op: 'ping' }), 'pong');
  t.is(activations, 1);
});

test.serial('actor kernel - a Rejection reaches the caller with its code and does not restart the actor', async (t) => {
  const { log, records } = captureLogger();
  const system = newSystem(t, { log });
  let activations = 0;
  system.register<EchoMsg>({
    name: 'picky',
    create: () => {
      let n = 0; // in memory only: survives only if the actor is not rebuilt
      return {
        onActivate() {
          activations++;
        },
        async receive(m) {
          if (m.op === 'add') return (n += m.by);
          if (m.op === 'refuse') throw new Rejection('NOT_ALLOWED', 'not allowed');
          if (m.op === 'refuseLater') {
            await sleep(2);
            throw new Rejection('TOO_LATE', 'too late');
          }
          return n;
        },
      };
    },
  });
  const ref = system.ref<EchoMsg>('picky', 'p');
  await ref.ask({ op: 'add', by: 3 });
  const refused = await t.throwsAsync(ref.ask({ op: 'refuse' }), { instanceOf: Rejection, code: 'NOT_ALLOWED' });
  t.is(refused?.message, 'not allowed');
  await t.throwsAsync(ref.ask({ op: 'refuseLater' }), { instanceOf: Rejection, code: 'TOO_LATE' });
  ref.tell({ op: 'refuse' }); // a refused tell is equally harmless

  t.is(await ref.ask<number>({ op: 'get' }), 3, 'in-memory state survives a Rejection');
  t.is(activations, 1);
  t.is(system.count(), 1);
  t.deepEqual(
    records().filter((r) => r.level >= 50),
    [],
    'a Rejection is not a failure',
  );
});

// ---------------------------------------------------------------------------------------------
// 4. timers

type TimerMsg =
  | { op: 'arm' }
  | { op: 'armOnce'; name: string; ms: number }
  | { op: 'armEvery'; name: string; ms: number }
  | { op: 'cancel'; name: string }
  | { op: 'has'; name: string }
  | { op: 'tick'; from: string }
  | { op: 'work'; n: number }
  | { op: 'stopSelf' }
  | { op: 'get' };

interface TimerProbe {
  readonly handled: string[];
  readonly events: string[];
  inFlight: number;
  maxInFlight: number;
  activations: number;
  lastContext: ActorContext<TimerMsg> | undefined;
}

function registerTimerActor(system: ActorSystem, name: string, idleMs: number): TimerProbe {
  const probe: TimerProbe = { handled: [], events: [], inFlight: 0, maxInFlight: 0, activations: 0, lastContext: undefined };
  system.register<TimerMsg>({
    name,
    idleMs,
    create: (ctx) => ({
      onActivate() {
        probe.activations++;
        probe.lastContext = ctx;
        probe.events.push('activate');
      },
      onDeactivate(reason) {
        probe.events.push(`deactivate:${reason}`);
      },
      async receive(m) {
        probe.inFlight++;
        probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight);
        try {
          switch (m.op) {
            case 'arm':
              ctx.timers.once('once', 20, { op: 'tick', from: 'once' });
              ctx.timers.every('every', 10, { op: 'tick', from: 'every' });
              return [ctx.timers.has('once'), ctx.timers.has('every')];
            case 'armOnce':
              ctx.timers.once(m.name, m.ms, { op: 'tick', from: m.name });
              return ctx.timers.has(m.name);
            case 'armEvery':
              ctx.timers.every(m.name, m.ms, { op: 'tick', from: m.name });
              return ctx.timers.has(m.name);
            case 'cancel':
              ctx.timers.cancel(m.name);
              return ctx.timers.has(m.name);
            case 'has':
              return ctx.timers.has(m.name);
            case 'tick':
              probe.handled.push(`tick:${m.from}`);
              probe.events.push(`tick:${m.from}`);
              await sleep(1);
              return undefined;
            case 'work':
              probe.handled.push(`work:${m.n}`);
              await sleep(2);
              return undefined;
            case 'stopSelf':
              // Timer messages queue up behind this turn, then the actor stops, then more could fire.
              await sleep(35);
              ctx.stop();
              probe.events.push('stop-requested');
              await sleep(35);
              return 'stopping';
            case 'get':
              return probe.handled.length;
          }
        } finally {
          probe.inFlight--;
        }
      },
    }),
  });
  return probe;
}

const countOf = (items: readonly string[], item: string): number => items.filter((i) => i === item).length;

test.serial('actor kernel - timers.once and timers.every deliver through the mailbox, one message at a time', async (t) => {
  const system = newSystem(t);
  const probe = registerTimerActor(system, 'ticker', 10_000);
  const ref = system.ref<TimerMsg>('ticker', 't');

  t.deepEqual(await ref.ask<boolean[]>({ op: 'arm' }), [true, true]);
  // Other messages keep arriving while the timers fire.
  for (let n = 0; n < 20; n++) {
    ref.tell({ op: 'work', n });
    await sleep(3);
  }
  await waitFor(() => countOf(probe.handled, 'tick:every') >= 4 && probe.handled.includes('tick:once'), 1_000, 'timer ticks');
  await within(ref.ask({ op: 'get' }), 1_000, 'drain');

  t.is(probe.maxInFlight, 1, 'a timer message was handled concurrently with another message');
  const works = probe.handled.filter((h) => h.startsWith('work:'));
  t.deepEqual(works, range(0, 20).map((n) => `work:${n}`), 'ordinary messages keep their order');
  const firstWork = probe.handled.indexOf('work:0');
  const lastWork = probe.handled.indexOf('work:19');
  t.true(
    probe.handled.slice(firstWork, lastWork).some((h) => h.startsWith('tick:')),
    'timer messages interleave with other messages in the same mailbox',
  );

  // once fires exactly once and is then gone.
  t.false(await ref.ask<boolean>({ op: 'has', name: 'once' }));
  t.true(await ref.ask<boolean>({ op: 'has', name: 'every' }));

  // cancel stops an interval ...
  t.false(await ref.ask<boolean>({ op: 'cancel', name: 'every' }));
  await sleep(15); // a tick already queued before the cancel may still be handled
  const everyTicks = countOf(probe.handled, 'tick:every');
  await sleep(60); // six intervals
  t.is(countOf(probe.handled, 'tick:every'), everyTicks, 'a cancelled interval kept firing');
  t.is(countOf(probe.handled, 'tick:once'), 1);

  // ... and a pending once.
  t.true(await ref.ask<boolean>({ op: 'armOnce', name: 'never', ms: 30 }));
  t.false(await ref.ask<boolean>({ op: 'cancel', name: 'never' }));
  await sleep(80);
  t.false(probe.handled.includes('tick:never'));

  // Re-arming under the same name replaces the timer rather than adding one.
  await ref.ask({ op: 'armOnce', name: 'again', ms: 20 });
  await ref.ask({ op: 'armOnce', name: 'again', ms: 20 });
  await sleep(70);
  t.is(countOf(probe.handled, 'tick:again'), 1);
  t.is(probe.activations, 1);
});

test.serial('actor kernel - timers are cancelled when the actor is passivated', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 20 });
  const probe = registerTimerActor(system, 'sleepy-ticker', 60);
  const ref = system.ref<TimerMsg>('sleepy-ticker', 't');

  // Both timers are due after passivation (idleMs 60 < 150).
  t.true(await ref.ask<boolean>({ op: 'armEvery', name: 'e', ms: 150 }));
  t.true(await ref.ask<boolean>({ op: 'armOnce', name: 'o', ms: 150 }));
  const ctx = probe.lastContext!;
  await waitFor(() => system.count() === 0, 1_000, 'passivation');
  t.deepEqual(probe.events, ['activate', 'deactivate:idle']);
  t.false(ctx.timers.has('e'), 'interval still scheduled after passivation');
  t.false(ctx.timers.has('o'), 'timeout still scheduled after passivation');

  await sleep(400); // well past both due times
  t.deepEqual(probe.events, ['activate', 'deactivate:idle'], 'a timer message was handled after the actor stopped');
  t.is(system.count(), 0, 'a timer woke the passivated actor up');
});

test.serial('actor kernel - timers are cancelled when the actor stops itself, and no timer message outlives it', async (t) => {
  const system = newSystem(t);
  const probe = registerTimerActor(system, 'quitter', 10_000);
  const ref = system.ref<TimerMsg>('quitter', 't');

  await ref.ask({ op: 'armEvery', name: 'e', ms: 10 });
  await waitFor(() => countOf(probe.handled, 'tick:e') >= 2, 1_000, 'ticks before stop');
  const ctx = probe.lastContext!;
  // The handler waits while ticks queue behind it, calls ctx.stop(), and keeps waiting while more fire.
  t.is(await within(ref.ask<string>({ op: 'stopSelf' }), 1_000, 'stopSelf'), 'stopping');
  await waitFor(() => probe.events.includes('deactivate:stop'), 1_000, 'deactivation');
  t.false(ctx.timers.has('e'));

  await sleep(80); // eight intervals
  const afterStop = probe.events.slice(probe.events.indexOf('deactivate:stop') + 1);
  t.deepEqual(afterStop, [], 'something happened after the actor stopped (a timer message reactivated it?)');
  t.is(probe.activations, 1);
  t.is(system.count(), 0);
  t.is(probe.maxInFlight, 1);
});

// ---------------------------------------------------------------------------------------------
// 5. failures

type FragileMsg = { op: 'save' } | { op: 'mem' } | { op: 'boom' } | { op: 'get' };
interface FragileState {
  persisted: number;
  memOnly: number;
}

function registerFragile(system: ActorSystem, storage: Map<string, number>) {
  const probe = { activations: 0, deactivations: [] as DeactivationReason[] };
  system.register<FragileMsg>({
    name: 'fragile',
    create: (ctx) => {
      let persisted = 0;
      let memOnly = 0;
      return {
        onActivate() {
          probe.activations++;
          persisted = storage.get(ctx.address.key) ?? 0;
        },
        onDeactivate(reason) {
          probe.deactivations.push(reason);
        },
        async receive(m): Promise<FragileState | number> {
          switch (m.op) {
            case 'save':
              persisted++;
              storage.set(ctx.address.key, persisted);
              return persisted;
            case 'mem':
              return ++memOnly;
            case 'boom':
              persisted += 10;
              storage.set(ctx.address.key, persisted); // written before the throw: must survive
              memOnly += 100; // never written: must be gone
              await sleep(1);
              throw new Error('kaboom');
            case 'get':
              return { persisted, memOnly };
          }
        },
      };
    },
  });
  return probe;
}

test.serial('actor kernel - a throwing handler fails the ask with ACTOR_FAILED, is logged, and is rebuilt from persisted state', async (t) => {
  const { log, records } = captureLogger();
  const system = newSystem(t, { log });
  const storage = new Map<string, number>();
  const probe = registerFragile(system, storage);
  const ref = system.ref<FragileMsg>('fragile', 'f1');
  const bystander = system.ref<FragileMsg>('fragile', 'f2');

  await ref.ask({ op: 'save' });
  await ref.ask({ op: 'save' });
  await ref.ask({ op: 'mem' });
  await ref.ask({ op: 'mem' });
  t.deepEqual(await ref.ask<FragileState>({ op: 'get' }), { persisted: 2, memOnly: 2 });
  await bystander.ask({ op: 'mem' });

  // A message queued behind the failing one is handled by the rebuilt actor.
  const failing = ref.ask({ op: 'boom' });
  const queued = ref.ask<FragileState>({ op: 'get' });
  const error = await t.throwsAsync(failing, { instanceOf: CodedError, code: RuntimeCodes.ACTOR_FAILED });
  t.is((error?.cause as Error | undefined)?.message, 'kaboom');
  t.deepEqual(await queued, { persisted: 12, memOnly: 0 }, 'persisted state reloaded, in-memory state dropped');
  t.is(probe.activations, 3, 'f1 activated, f2 activated, f1 rebuilt once');
  t.deepEqual(probe.deactivations, [], 'onDeactivate must not persist suspect state after a failure');

  // The node keeps going: the actor itself and other actors still answer.
  t.deepEqual(await ref.ask<FragileState>({ op: 'get' }), { persisted: 12, memOnly: 0 });
  t.is(await ref.ask<number>({ op: 'save' }), 13);
  t.deepEqual(await bystander.ask<FragileState>({ op: 'get' }), { persisted: 0, memOnly: 1 });
  t.is(system.count(), 2);

  // The failure was logged as a JSON error line (pino level 50).
  const errors = records().filter((r) => r.level === 50);
  t.is(errors.length, 1);
  const [line] = errors;
  t.regex(line?.msg ?? '', /handler failed/);
  t.deepEqual(line?.actor, { kind: 'fragile', key: 'f1' });
  t.is(line?.err?.message, 'kaboom');
});

test.serial('actor kernel - an actor failing too often in a row is stopped with ACTOR_FAILED and the next message activates it fresh', async (t) => {
  const { log, records } = captureLogger();
  const system = newSystem(t, { log });
  const storage = new Map<string, number>();
  const probe = registerFragile(system, storage);
  const ref = system.ref<FragileMsg>('fragile', 'f');

  // Four failures in a row (three restarts allowed), then one message queued behind them.
  const booms = range(0, 4).map(() => ref.ask({ op: 'boom' }));
  const queued = ref.ask({ op: 'get' });
  for (const boom of booms) await t.throwsAsync(boom, { code: RuntimeCodes.ACTOR_FAILED });
  const gaveUp = await t.throwsAsync(queued, { instanceOf: CodedError, code: RuntimeCodes.ACTOR_FAILED });
  t.regex(gaveUp?.message ?? '', /keeps failing/);
  t.is(system.count(), 0, 'the activation should be stopped');
  t.is(probe.activations, 4, 'first activation plus three restarts');
  t.deepEqual(probe.deactivations, []);
  t.true(records().some((r) => r.level === 50 && /too often/.test(r.msg ?? '')));

  // A later message activates it fresh, from what was persisted (four booms wrote +10 each).
  t.deepEqual(await ref.ask<FragileState>({ op: 'get' }), { persisted: 40, memOnly: 0 });
  t.is(system.count(), 1);
  t.is(probe.activations, 5);
  // With a fresh restart budget: one failure restarts it again rather than stopping it.
  await t.throwsAsync(ref.ask({ op: 'boom' }), { code: RuntimeCodes.ACTOR_FAILED });
  t.deepEqual(await ref.ask<FragileState>({ op: 'get' }), { persisted: 50, memOnly: 0 });
  t.is(system.count(), 1);
});

// ---------------------------------------------------------------------------------------------
// 6. bounded mailboxes

type GateMsg = { op: 'block' } | { op: 'n'; i: number };

test.serial('actor kernel - a full mailbox refuses with OVERLOADED and loses nothing it accepted', async (t) => {
  const system = newSystem(t);
  const gate = deferred();
  const entered = deferred();
  const handled: number[] = [];
  system.register<GateMsg>({
    name: 'bounded',
    mailboxCapacity: 10,
    create: () => ({
      async receive(m) {
        if (m.op === 'block') {
          entered.resolve();
          await gate.promise;
          return 'unblocked';
        }
        handled.push(m.i);
        return m.i;
      },
    }),
  });
  const ref = system.ref<GateMsg>('bounded', 'b');
  const blocked = ref.ask<string>({ op: 'block' }, { timeoutMs: 5_000 });
  await within(entered.promise, 1_000, 'blocking handler');

  // The handler is stuck: ten messages fit in the mailbox, the 11th and later are refused.
  for (let i = 0; i < 10; i++) t.notThrows(() => ref.tell({ op: 'n', i }), `tell ${i + 1} refused`);
  let refused = 0;
  for (let i = 10; i < 1_010; i++) {
    try {
      ref.tell({ op: 'n', i });
    } catch (err) {
      t.true(err instanceof CodedError);
      t.is((err as CodedError).code, RuntimeCodes.OVERLOADED);
      refused++;
    }
  }
  t.is(refused, 1_000, 'every message beyond capacity is refused, so the mailbox never holds more than 10');
  await t.throwsAsync(ref.ask({ op: 'n', i: -1 }), { instanceOf: CodedError, code: RuntimeCodes.OVERLOADED });
  t.deepEqual(handled, []);

  gate.resolve();
  t.is(await within(blocked, 1_000, 'unblocked ask'), 'unblocked');
  await waitFor(() => handled.length === 10, 1_000, 'accepted messages handled');
  t.deepEqual(handled, range(0, 10), 'all accepted messages handled, in order, none lost');

  // Room again.
  for (let i = 100; i < 110; i++) ref.tell({ op: 'n', i });
  t.is(await ref.ask<number>({ op: 'n', i: 110 }), 110);
  t.deepEqual(handled, [...range(0, 10), ...range(100, 111)]);
});

// ---------------------------------------------------------------------------------------------
// 7. spawn()

type SessionMsg = { op: 'echo'; v: string } | { op: 'stop' } | { op: 'boom' };

test.serial('actor kernel - a spawned non-virtual actor is active at once and ends with ctx.stop()', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 20 });
  const events: string[] = [];
  system.register<SessionMsg>({
    name: 'session',
    virtual: false,
    idleMs: Infinity,
    create: () => {
      throw new Error('a session is only ever spawned with its own factory');
    },
  });
  const ref = system.spawn<SessionMsg>('session', 's1', (ctx) => ({
    onActivate() {
      events.push('activate');
    },
    onDeactivate(reason) {
      events.push(`deactivate:${reason}`);
    },
    receive(m) {
      if (m.op === 'stop') {
        ctx.stop();
        return 'bye';
      }
      if (m.op === 'echo') return `${ctx.address.key}:${m.v}`;
      return undefined;
    },
  }));
  // Active at once, without any message.
  t.is(system.count('session'), 1);
  t.true(system.isActive({ kind: 'session', key: 's1' }));
  t.deepEqual(events, ['activate']);
  t.throws(() => system.spawn<SessionMsg>('session', 's1', () => ({ receive: () => undefined })), {
    code: RuntimeCodes.CONFIG,
  });

  t.is(await ref.ask<string>({ op: 'echo', v: 'hi' }), 's1:hi');
  // A non-virtual actor with idleMs Infinity is never passivated.
  await sleep(150);
  t.is(system.count('session'), 1);

  // Messages to a key that was never spawned: a tell is dropped, an ask fails STOPPED, nothing is created.
  const ghost = system.ref<SessionMsg>('session', 'never-spawned');
  t.notThrows(() => ghost.tell({ op: 'echo', v: 'lost' }));
  await t.throwsAsync(ghost.ask({ op: 'echo', v: 'lost' }), { instanceOf: CodedError, code: RuntimeCodes.STOPPED });
  t.is(system.count('session'), 1);
  t.false(system.isActive(ghost.address));

  // ctx.stop() ends it for good.
  t.is(await ref.ask<string>({ op: 'stop' }), 'bye');
  await waitFor(() => system.count('session') === 0, 1_000, 'stop');
  t.deepEqual(events, ['activate', 'deactivate:stop']);
  await t.throwsAsync(ref.ask({ op: 'echo', v: 'again' }), { code: RuntimeCodes.STOPPED });
  t.notThrows(() => ref.tell({ op: 'echo', v: 'again' }));
  t.is(system.count(), 0);
  t.deepEqual(events, ['activate', 'deactivate:stop']);
});

test.serial('actor kernel - a spawned actor that throws is stopped, not rebuilt', async (t) => {
  const system = newSystem(t);
  system.register<SessionMsg>({
    name: 'socket',
    virtual: false,
    idleMs: Infinity,
    create: () => {
      throw new Error('spawn only');
    },
  });
  let built = 0;
  const events: string[] = [];
  const factory = (): { receive(m: SessionMsg): unknown; onDeactivate(r: DeactivationReason): void } => {
    built++;
    return {
      onDeactivate(reason) {
        events.push(`deactivate:${reason}`);
      },
      async receive(m) {
        if (m.op === 'boom') {
          await sleep(1);
          throw new Error('socket broke');
        }
        return m.op === 'echo' ? m.v : undefined;
      },
    };
  };
  const ref = system.spawn<SessionMsg>('socket', 'k', factory);
  t.is(await ref.ask<string>({ op: 'echo', v: 'a' }), 'a');

  const failing = ref.ask({ op: 'boom' });
  const queued = ref.ask({ op: 'echo', v: 'b' });
  await t.throwsAsync(failing, { instanceOf: CodedError, code: RuntimeCodes.ACTOR_FAILED });
  await t.throwsAsync(queued, { instanceOf: CodedError, code: RuntimeCodes.ACTOR_FAILED });
  await waitFor(() => system.count('socket') === 0, 1_000, 'stop after failure');
  t.is(built, 1, 'a spawned actor must not be rebuilt');
  t.deepEqual(events, [], 'onDeactivate is not called after a failure');
  await t.throwsAsync(ref.ask({ op: 'echo', v: 'c' }), { code: RuntimeCodes.STOPPED });
  t.is(built, 1);

  // The key is free again for a new spawn.
  const again = system.spawn<SessionMsg>('socket', 'k', factory);
  t.is(await again.ask<string>({ op: 'echo', v: 'd' }), 'd');
  t.is(built, 2);
});

// ---------------------------------------------------------------------------------------------
// 8. passivation hand-over and shutdown

test.serial('actor kernel - messages sent during passivation are handled by the successor after onDeactivate finished', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 10 });
  const storage = new Map<string, number>();
  const events: string[] = [];
  const deactivating = deferred();
  system.register<CounterMsg>({
    name: 'slow-persist',
    idleMs: 50,
    create: (ctx) => {
      let n = 0;
      return {
        onActivate() {
          events.push('activate');
          n = storage.get(ctx.address.key) ?? 0;
        },
        receive(m) {
          if (m.op === 'add') {
            n += m.by;
            events.push(`receive:${m.by}`);
          }
          return n;
        },
        async onDeactivate(reason) {
          events.push(`deactivate-start:${reason}`);
          deactivating.resolve();
          await sleep(150);
          storage.set(ctx.address.key, n); // the last write lands late: a successor loading early reads stale state
          events.push('deactivate-end');
        },
      };
    },
  });
  const ref = system.ref<CounterMsg>('slow-persist', 'x');
  t.is(await ref.ask<number>({ op: 'add', by: 1 }), 1);
  await within(deactivating.promise, 1_000, 'passivation start');

  ref.tell({ op: 'add', by: 2 });
  ref.tell({ op: 'add', by: 3 });
  const total = await within(ref.ask<number>({ op: 'add', by: 4 }), 1_500, 'ask during passivation');
  t.is(total, 10, 'successor loaded the state its predecessor persisted, then handled every message');
  t.deepEqual(events, [
    'activate',
    'receive:1',
    'deactivate-start:idle',
    'deactivate-end',
    'activate',
    'receive:2',
    'receive:3',
    'receive:4',
  ]);
  t.is(system.count(), 1);
});

test.serial('actor kernel - shutdown() deactivates every activation with reason shutdown', async (t) => {
  const system = newSystem(t);
  const storage = new Map<string, number>();
  const reasons = new Map<string, DeactivationReason>();
  system.register<CounterMsg>({
    name: 'durable',
    idleMs: 60_000,
    create: (ctx) => {
      let n = 0;
      return {
        onActivate() {
          n = storage.get(ctx.address.key) ?? 0;
        },
        receive(m) {
          if (m.op === 'add') n += m.by;
          return n;
        },
        async onDeactivate(reason) {
          await sleep(10);
          reasons.set(ctx.address.key, reason);
          storage.set(ctx.address.key, n);
        },
      };
    },
  });
  const keys = ['a', 'b', 'c'];
  await Promise.all(keys.map((key, i) => system.ref<CounterMsg>('durable', key).ask({ op: 'add', by: i + 1 })));
  t.is(system.count(), 3);

  await within(system.shutdown(), 1_000, 'shutdown');
  t.is(system.count(), 0);
  t.deepEqual([...reasons.entries()].sort(), [
    ['a', 'shutdown'],
    ['b', 'shutdown'],
    ['c', 'shutdown'],
  ]);
  t.deepEqual([...storage.entries()].sort(), [
    ['a', 1],
    ['b', 2],
    ['c', 3],
  ]);

  // Afterwards no new work is taken.
  const ref = system.ref<CounterMsg>('durable', 'a');
  await t.throwsAsync(ref.ask({ op: 'get' }), { code: RuntimeCodes.STOPPED });
  t.notThrows(() => ref.tell({ op: 'get' }));
  t.is(system.count(), 0);
});

test.serial('actor kernel - shutdown() during a passivation leaves no activation behind', async (t) => {
  const system = newSystem(t, { sweepIntervalMs: 10 });
  const events: string[] = [];
  const deactivating = deferred();
  system.register<string>({
    name: 'handover',
    idleMs: 30,
    create: () => ({
      onActivate() {
        events.push('activate');
      },
      receive(m) {
        events.push(`receive:${m}`);
        return m;
      },
      async onDeactivate(reason) {
        events.push(`deactivate-start:${reason}`);
        deactivating.resolve();
        await sleep(80);
        events.push('deactivate-end');
      },
    }),
  });
  const ref = system.ref<string>('handover', 'h');
  await ref.ask('one');
  await within(deactivating.promise, 1_000, 'passivation start');

  // Queued for a successor that must now never start.
  const late = ref.ask<string>('two', { timeoutMs: 1_000 });
  await within(system.shutdown(), 1_000, 'shutdown');
  t.is(system.count(), 0, 'an activation is alive after shutdown() resolved');
  await t.throwsAsync(late, { instanceOf: CodedError, code: RuntimeCodes.STOPPED });
  await sleep(30);
  t.deepEqual(events, ['activate', 'receive:one', 'deactivate-start:idle', 'deactivate-end']);
  t.is(system.count(), 0);
});
