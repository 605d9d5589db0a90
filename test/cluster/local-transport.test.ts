import test from 'ava';
import { LocalNetwork, LocalTransport } from '../../runtime/transport/local-transport.ts';
import type { Envelope } from '../../runtime/transport/transport.ts';
import { TransportError } from '../../runtime/transport/transport-error.ts';

const env = (seq: number, from = 'a'): Envelope => ({
  kind: 'ask', targetKind: 'probe', targetKey: 'k', correlationId: seq + 1, hops: 0, payload: Uint8Array.of(seq & 0xff), senderNode: from,
});
const tick = () => new Promise((r) => setImmediate(r));

async function pair(secretB?: string) {
  const net = new LocalNetwork();
  const a = new LocalTransport({ network: net, nodeId: 'a', address: 'addr-a', clusterSecret: 's' });
  const b = new LocalTransport({ network: net, nodeId: 'b', address: 'addr-b', clusterSecret: secretB ?? 's' });
  await a.start();
  await b.start();
  return { net, a, b };
}

test('delivers in order, on a later turn, with the sender node and copied payloads', async (t) => {
  const { a, b } = await pair();
  const got: [number, string][] = [];
  let firstPayload: Uint8Array | undefined;
  b.onEnvelope((e, from) => {
    firstPayload ??= e.payload;
    got.push([e.correlationId, from]);
  });
  const sent = env(0);
  for (let i = 0; i < 1_000; i++) a.send('b', 'addr-b', i === 0 ? sent : env(i));
  t.is(got.length, 0, 'nothing is delivered synchronously');
  await tick();
  t.is(got.length, 1_000);
  t.not(firstPayload, sent.payload);
  t.deepEqual(firstPayload, sent.payload);
  t.true(got.every(([id, from], i) => id === i + 1 && from === 'a'));
});

test('a stopped peer is reported down once; queued envelopes go out when it is back', async (t) => {
  const { net, a, b } = await pair();
  const downs: string[] = [];
  a.onPeerDown((id) => downs.push(id));
  a.send('b', 'addr-b', env(0));
  await tick();
  await b.stop();
  t.deepEqual(downs, ['b'], 'reported when the peer stops, not at the next send');
  a.send('b', 'addr-b', env(1));
  a.send('b', 'addr-b', env(2));
  await tick();
  t.deepEqual(downs, ['b']);
  const b2 = new LocalTransport({ network: net, nodeId: 'b', address: 'addr-b', clusterSecret: 's' });
  const got: number[] = [];
  b2.onEnvelope((e) => got.push(e.correlationId));
  await b2.start();
  await tick();
  t.deepEqual(got, [2, 3]);
});

test('a secret mismatch is refused and delivers nothing', async (t) => {
  const { a, b } = await pair('other');
  let got = 0;
  b.onEnvelope(() => got++);
  const downs: string[] = [];
  a.onPeerDown((id) => downs.push(id));
  a.send('b', 'addr-b', env(0));
  await tick();
  t.is(got, 0);
  t.deepEqual(downs, ['b']);
  t.is(a.queuedFor('b'), 1);
});

test('BACKPRESSURE past the queue bound, STOPPED after stop', async (t) => {
  const net = new LocalNetwork();
  const a = new LocalTransport({ network: net, nodeId: 'a', address: 'addr-a', maxQueuedEnvelopes: 10 });
  for (let i = 0; i < 10; i++) a.send('nobody', 'nowhere', env(i));
  const err = t.throws(() => a.send('nobody', 'nowhere', env(10)), { instanceOf: TransportError });
  t.is(err?.code, 'BACKPRESSURE');
  a.dropPeer('nobody');
  t.is(a.queuedFor('nobody'), 0);
  await a.stop();
  t.is(t.throws(() => a.send('x', 'y', env(0)), { instanceOf: TransportError })?.code, 'STOPPED');
});
