import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { GrpcTransport, type GrpcTransportOptions } from '../../runtime/transport/grpc-transport.ts';
import { ACCEPTED_HEADER, CONNECT_PATH, connectMethod, type Batch } from '../../runtime/transport/grpc-wire.ts';
import { CLUSTER_SECRET_HEADER, NODE_ID_HEADER } from '../../runtime/transport/cluster-secret.ts';
import type { Envelope } from '../../runtime/transport/transport.ts';
import { TransportError } from '../../runtime/transport/transport-error.ts';

const SECRET = 'test-cluster-secret';
const FAST_BACKOFF = { initialMs: 50, maxMs: 400, multiplier: 2 };

async function started(nodeId: string, extra: Partial<GrpcTransportOptions> = {}): Promise<GrpcTransport> {
  const t = new GrpcTransport({ nodeId, listenAddress: '127.0.0.1:0', clusterSecret: SECRET, backoff: FAST_BACKOFF, ...extra });
  await t.start();
  return t;
}

function envelope(seq: number, from: string): Envelope {
  const payload = new Uint8Array(100);
  new DataView(payload.buffer).setUint32(0, seq);
  return { kind: 'tell', targetKind: 'probe', targetKey: `k${seq % 17}`, correlationId: 0, hops: 0, payload, senderNode: from };
}

function seqOf(env: Envelope): number {
  return new DataView(env.payload.buffer, env.payload.byteOffset, env.payload.byteLength).getUint32(0);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends `count` envelopes, yielding to the event loop whenever the transport pushes back. */
async function pump(from: GrpcTransport, fromId: string, toId: string, toAddress: string, count: number): Promise<number> {
  let pushedBack = 0;
  for (let seq = 0; seq < count; ) {
    try {
      from.send(toId, toAddress, envelope(seq, fromId));
      seq++;
      if (seq % 5_000 === 0) await new Promise((r) => setImmediate(r));
    } catch (err) {
      if (!(err instanceof TransportError) || err.code !== 'BACKPRESSURE') throw err;
      pushedBack++;
      await sleep(1);
    }
  }
  return pushedBack;
}

test('two transports exchange 100,000 envelopes each way, in order, none lost or duplicated', async (t) => {
  const a = await started('node-a', { maxQueuedEnvelopes: 20_000 });
  const b = await started('node-b', { maxQueuedEnvelopes: 20_000 });
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const COUNT = 100_000;
  const received = { a: [] as number[], b: [] as number[] };
  const wrongSender: string[] = [];
  a.onEnvelope((env, from) => {
    if (from !== 'node-b' || env.senderNode !== 'node-b') wrongSender.push(from);
    received.a.push(seqOf(env));
  });
  b.onEnvelope((env, from) => {
    if (from !== 'node-a' || env.senderNode !== 'node-a') wrongSender.push(from);
    received.b.push(seqOf(env));
  });
  const downs: string[] = [];
  a.onPeerDown((id) => downs.push(id));
  b.onPeerDown((id) => downs.push(id));

  const started_ = Date.now();
  await Promise.all([pump(a, 'node-a', 'node-b', b.address, COUNT), pump(b, 'node-b', 'node-a', a.address, COUNT)]);
  await until('all envelopes', () => received.a.length >= COUNT && received.b.length >= COUNT, 60_000);
  await sleep(100);
  t.log(`200,000 envelopes in ${Date.now() - started_} ms`);

  t.deepEqual(wrongSender, []);
  t.deepEqual(downs, []);
  for (const side of [received.a, received.b]) {
    t.is(side.length, COUNT);
    let inOrder = true;
    for (let i = 0; i < side.length; i++) if (side[i] !== i) inOrder = false;
    t.true(inOrder, 'every envelope exactly once and in send order');
  }
});

test('a transport with the wrong secret is refused and delivers nothing', async (t) => {
  const a = await started('node-a');
  const intruder = await started('intruder', { clusterSecret: 'guess' });
  t.teardown(() => Promise.all([a.stop(), intruder.stop()]));
  const got: Envelope[] = [];
  a.onEnvelope((env) => got.push(env));
  const downs: string[] = [];
  intruder.onPeerDown((id) => downs.push(id));
  for (let i = 0; i < 10; i++) intruder.send('node-a', a.address, envelope(i, 'intruder'));
  await until('refusal', () => downs.length > 0);
  await sleep(500);
  t.deepEqual(downs.slice(0, 1), ['node-a']);
  t.is(got.length, 0);
  t.is(intruder.queuedFor('node-a'), 10, 'refused envelopes stay queued, never written');
});

test('a raw client without the secret gets UNAUTHENTICATED and its data is dropped', async (t) => {
  const a = await started('node-a');
  t.teardown(() => a.stop());
  const got: Envelope[] = [];
  a.onEnvelope((env) => got.push(env));

  for (const secret of [undefined, 'wrong']) {
    const client = new grpc.Client(a.address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    if (secret !== undefined) md.set(CLUSTER_SECRET_HEADER, secret);
    md.set(NODE_ID_HEADER, 'raw');
    const call = client.makeBidiStreamRequest<Batch, Batch>(CONNECT_PATH, connectMethod.requestSerialize, connectMethod.responseDeserialize, md);
    let accepted = false;
    call.on('metadata', (m: grpc.Metadata) => (accepted ||= m.get(ACCEPTED_HEADER).length > 0));
    call.on('error', () => undefined);
    // Written before the server answered, so it does reach the server, which must ignore it.
    call.write([envelope(1, 'raw')]);
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    client.close();
    t.is(status.code, grpc.status.UNAUTHENTICATED, `secret ${String(secret)}`);
    t.false(accepted);
  }
  await sleep(200);
  t.is(got.length, 0);
});

test('peer down is reported once, and sends succeed again after the peer restarts', async (t) => {
  const a = await started('node-a');
  let b = await started('node-b');
  const address = b.address;
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const downs: string[] = [];
  a.onPeerDown((id) => downs.push(id));
  let received: number[] = [];
  b.onEnvelope((env) => received.push(seqOf(env)));

  a.send('node-b', address, envelope(1, 'node-a'));
  await until('first delivery', () => received.length === 1);

  await b.stop();
  await until('peer down', () => downs.length === 1, 5_000);
  t.deepEqual(downs, ['node-b']);
  // Queued while the peer is away; they go out once it is back.
  a.send('node-b', address, envelope(2, 'node-a'));
  a.send('node-b', address, envelope(3, 'node-a'));
  await sleep(600);
  t.is(downs.length, 1, 'failed reconnect attempts do not report the peer down again');

  b = new GrpcTransport({ nodeId: 'node-b', listenAddress: address, clusterSecret: SECRET });
  received = [];
  b.onEnvelope((env) => received.push(seqOf(env)));
  await b.start();
  await until('delivery after restart', () => received.length === 2, 5_000);
  a.send('node-b', address, envelope(4, 'node-a'));
  await until('later send', () => received.length === 3);
  t.deepEqual(received, [2, 3, 4]);

  // A second break is a new break: reported again.
  await b.stop();
  await until('second peer down', () => downs.length === 2, 5_000);
});

test('an unreachable peer fills its queue to the bound and then gets BACKPRESSURE', async (t) => {
  const probe = await started('probe');
  const deadAddress = probe.address;
  await probe.stop();
  const a = await started('node-a', { maxQueuedEnvelopes: 1_000, maxQueuedBytes: 1024 * 1024 });
  t.teardown(() => a.stop());
  for (let i = 0; i < 1_000; i++) a.send('dead', deadAddress, envelope(i, 'node-a'));
  const err = t.throws(() => a.send('dead', deadAddress, envelope(1_000, 'node-a')), { instanceOf: TransportError });
  t.is(err?.code, 'BACKPRESSURE');
  t.is(a.queuedFor('dead'), 1_000);

  // The byte bound applies too: 100 KiB payloads stop at ~1 MiB.
  const big = (i: number): Envelope => ({ ...envelope(i, 'node-a'), payload: new Uint8Array(100 * 1024) });
  let accepted = 0;
  t.throws(
    () => {
      for (;;) {
        a.send('dead-2', deadAddress, big(accepted));
        accepted++;
      }
    },
    { instanceOf: TransportError, message: /full/ },
  );
  t.true(accepted >= 9 && accepted <= 10, `accepted ${accepted}`);

  // Dropping the peer releases its queue.
  a.dropPeer('dead');
  t.is(a.queuedFor('dead'), 0);
  a.send('dead', deadAddress, envelope(0, 'node-a'));
  t.is(a.queuedFor('dead'), 1);
});

test('a slow receiver pushes back instead of growing memory', async (t) => {
  const a = await started('node-a', { maxQueuedEnvelopes: 5_000, maxBatchEnvelopes: 100 });
  const b = await started('node-b');
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  let received = 0;
  // A handler that blocks the receiving process's event loop simulates a peer that cannot keep up.
  b.onEnvelope(() => {
    received++;
    const until = performance.now() + 0.05;
    while (performance.now() < until);
  });
  a.send('node-b', b.address, envelope(0, 'node-a'));
  await until('link open', () => received === 1);
  let backpressure: TransportError | undefined;
  for (let i = 1; i < 2_000_000 && backpressure === undefined; i++) {
    try {
      a.send('node-b', b.address, envelope(i, 'node-a'));
    } catch (err) {
      backpressure = err as TransportError;
    }
    if (i % 1_000 === 0) await new Promise((r) => setImmediate(r));
  }
  t.is(backpressure?.code, 'BACKPRESSURE');
  t.true(a.queuedFor('node-b') <= 5_000);
});

test('envelopes for a moved peer follow it to its new address', async (t) => {
  const a = await started('node-a');
  const b1 = await started('node-b');
  const b2 = await started('node-b');
  t.teardown(() => Promise.all([a.stop(), b1.stop(), b2.stop()]));
  const got: string[] = [];
  b1.onEnvelope(() => got.push('b1'));
  b2.onEnvelope(() => got.push('b2'));
  a.send('node-b', b1.address, envelope(0, 'node-a'));
  await until('b1', () => got.length === 1);
  a.send('node-b', b2.address, envelope(1, 'node-a'));
  await until('b2', () => got.length === 2);
  t.deepEqual(got, ['b1', 'b2']);
});

test('send after stop throws STOPPED; invalid envelopes throw RangeError', async (t) => {
  const a = await started('node-a');
  t.throws(() => a.send('x', '127.0.0.1:1', { ...envelope(0, 'node-a'), correlationId: -1 }), { instanceOf: RangeError });
  await a.stop();
  const err = t.throws(() => a.send('x', '127.0.0.1:1', envelope(0, 'node-a')), { instanceOf: TransportError });
  t.is(err?.code, 'STOPPED');
});

test('a throwing handler does not break the link', async (t) => {
  const a = await started('node-a');
  const b = await started('node-b');
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const seen: number[] = [];
  b.onEnvelope((env) => {
    seen.push(seqOf(env));
    if (seqOf(env) === 1) throw new Error('handler bug');
  });
  for (let i = 0; i < 3; i++) a.send('node-b', b.address, envelope(i, 'node-a'));
  await until('all three', () => seen.length === 3);
  t.deepEqual(seen, [0, 1, 2]);
});

test('inbound streams get the wide HTTP/2 window (fails if a grpc-js upgrade moved its internals)', async (t) => {
  const a = await started('node-a');
  t.teardown(() => a.stop());
  t.true(a.windowWidened);
});
