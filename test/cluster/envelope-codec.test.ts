import test from 'ava';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { decodeBatch, encodeBatch } from '../../runtime/transport/envelope-codec.ts';
import type { Envelope } from '../../runtime/transport/transport.ts';

const protoPath = fileURLToPath(new URL('../../proto/cluster.proto', import.meta.url));
const Batch = protobuf.loadSync(protoPath).lookupType('parley.cluster.Batch');
const kinds = ['tell', 'ask', 'reply', 'error'] as const;

function sample(i: number): Envelope {
  const env: Envelope = {
    kind: kinds[i % 4]!,
    targetKind: i % 3 === 0 ? 'kind-α' : 'kind',
    targetKey: `key-${i}-${'x'.repeat(i % 90)}`,
    correlationId: i % 4 === 0 ? 0 : i * 1_000_003,
    hops: i % 5,
    payload: Uint8Array.from({ length: i % 200 }, (_, j) => (i + j) & 0xff),
    senderNode: `node-${i % 3}`,
  };
  if (env.kind === 'error') {
    env.errorCode = 'SOME_CODE';
    env.errorMessage = `failure ${i} — détails`;
    if (i % 8 === 3) env.errorRefusal = true;
  }
  return env;
}

function normalise(env: Envelope): Envelope {
  return { ...env, payload: Uint8Array.from(env.payload) };
}

test('round-trips every field', (t) => {
  const envs = Array.from({ length: 300 }, (_, i) => sample(i));
  const decoded = decodeBatch(encodeBatch(envs));
  t.deepEqual(decoded.map(normalise), envs.map(normalise));
});

test('an error envelope says refusal or fault; an envelope without the field reads as a fault', (t) => {
  const base = { ...sample(3), kind: 'error' as const, errorCode: 'FORBIDDEN', errorMessage: 'no' };
  const refusal = decodeBatch(encodeBatch([{ ...base, errorRefusal: true }]))[0]!;
  const fault = decodeBatch(encodeBatch([{ ...base, errorRefusal: false }]))[0]!;
  const { errorRefusal: _, ...unsaid } = base;
  t.true(refusal.errorRefusal);
  t.is(fault.errorRefusal, undefined, 'false is the default and is not written');
  t.is(decodeBatch(encodeBatch([unsaid]))[0]!.errorRefusal, undefined);
  // As protobufjs sees it: field 10, a bool.
  const decoded = Batch.toObject(Batch.decode(encodeBatch([{ ...base, errorRefusal: true }])), { defaults: true }) as { envelopes: { errorRefusal: boolean }[] };
  t.true(decoded.envelopes[0]!.errorRefusal);
});

test('an empty batch is an empty frame', (t) => {
  t.is(encodeBatch([]).length, 0);
  t.deepEqual(decodeBatch(Buffer.alloc(0)), []);
});

test('correlation ids up to 2^53-1 survive', (t) => {
  const env = { ...sample(1), correlationId: Number.MAX_SAFE_INTEGER };
  t.is(decodeBatch(encodeBatch([env]))[0]!.correlationId, Number.MAX_SAFE_INTEGER);
  t.throws(() => encodeBatch([{ ...env, correlationId: 2 ** 53 }]), { instanceOf: RangeError });
  t.throws(() => encodeBatch([{ ...env, correlationId: -1 }]), { instanceOf: RangeError });
});

test('protobufjs reads what the codec writes', (t) => {
  const envs = Array.from({ length: 50 }, (_, i) => sample(i));
  const msg = Batch.toObject(Batch.decode(encodeBatch(envs)), { longs: Number, enums: Number, defaults: true });
  const got = (msg.envelopes as Array<Record<string, unknown>>).map((e) => ({
    kind: kinds[e.kind as number],
    targetKey: e.targetKey,
    correlationId: e.correlationId,
    hops: e.hops,
    payload: Uint8Array.from(e.payload as Uint8Array),
    errorMessage: e.errorMessage,
    senderNode: e.senderNode,
    errorRefusal: e.errorRefusal,
  }));
  t.deepEqual(
    got,
    envs.map((e) => ({
      kind: e.kind,
      targetKey: e.targetKey,
      correlationId: e.correlationId,
      hops: e.hops,
      payload: Uint8Array.from(e.payload),
      errorMessage: e.errorMessage ?? '',
      senderNode: e.senderNode,
      errorRefusal: e.errorRefusal ?? false,
    })),
  );
});

test('the codec reads what protobufjs writes, skipping unknown fields', (t) => {
  const envs = Array.from({ length: 50 }, (_, i) => sample(i));
  const wire = envs.map((e) => ({ ...e, kind: kinds.indexOf(e.kind) }));
  const frame = Buffer.from(Batch.encode(Batch.fromObject({ envelopes: wire })).finish());
  t.deepEqual(decodeBatch(frame).map(normalise), envs.map(normalise));
  // Field 15 (varint) and 16 (bytes) appended to the batch and inside an envelope.
  const inner = Buffer.concat([encodeBatch([envs[1]!]).subarray(2), Buffer.from([0x78, 0x05, 0x82, 0x01, 0x02, 0xaa, 0xbb])]);
  const withUnknown = Buffer.concat([Buffer.from([0x0a, inner.length]), inner, Buffer.from([0x78, 0x01])]);
  t.deepEqual(decodeBatch(withUnknown).map(normalise), [normalise(envs[1]!)]);
});

test('truncated or corrupt frames fail with MALFORMED', (t) => {
  const frame = encodeBatch([sample(5), sample(6)]);
  t.throws(() => decodeBatch(frame.subarray(0, frame.length - 3)), { code: 'MALFORMED' });
  t.throws(() => decodeBatch(Buffer.from([0x0a, 0x05, 0x08])), { code: 'MALFORMED' });
  t.throws(() => decodeBatch(Buffer.from([0x0a, 0x02, 0x08, 0x09])), { code: 'MALFORMED' });
  t.throws(() => decodeBatch(Buffer.from([0x0f])), { code: 'MALFORMED' });
});
