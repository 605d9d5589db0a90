import test from 'ava';
import protobuf from 'protobufjs/light.js';
import { clientDescriptor } from '../../proto/client-descriptor.ts';
import { DepthGuard } from '../../proto/frame-depth.ts';
import { decodeClientFrame, encodeClientFrame, FrameDecodeError } from '../../proto/index.ts';
import { Random } from '../fuzz/fuzz-support.ts';
import { mutate, seedFrames } from '../fuzz/mutations.ts';
import { groups, inBody, opaque } from '../fuzz/nesting.ts';

const root = protobuf.Root.fromJSON(clientDescriptor as unknown as protobuf.INamespace);
const client = new DepthGuard(root.lookupType('chat.v1.ClientFrame'));
const server = new DepthGuard(root.lookupType('chat.v1.ServerFrame'));
const heartbeat = encodeClientFrame(1, 'heartbeat', {});
const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

test('frame depth - the bound is computed from the schema: ClientFrame 2 (frame, body), ServerFrame 4 (frame, sync_result, delivery, message)', (t) => {
  t.is(client.maxDepth, 2);
  t.is(server.maxDepth, 4);
});

test('frame depth - a recursive schema has no bound and is refused when the guard is built', (t) => {
  const r = protobuf.Root.fromJSON({ nested: { Node: { fields: { child: { type: 'Node', id: 1 } } } } });
  const err = t.throws(() => new DepthGuard(r.lookupType('Node')));
  t.regex(err!.message, /contains itself/);
});

test('frame depth - at the limit is ok, one level past it is too deep: groups at the top and inside the body', (t) => {
  t.is(client.check(heartbeat), 'ok');
  t.is(client.check(cat(heartbeat, groups(1))), 'ok', 'frame + group = 2');
  t.is(client.check(cat(heartbeat, groups(2))), 'too_deep', 'frame + group + group = 3');
  t.is(client.check(inBody(8, groups(0))), 'ok', 'frame + body = 2');
  t.is(client.check(inBody(8, groups(1))), 'too_deep', 'frame + body + group = 3');
});

test('frame depth - nesting inside an unknown length-delimited field is opaque bytes, not depth', (t) => {
  const deep = cat(heartbeat, opaque(10_000));
  t.is(client.check(deep), 'ok');
  t.is(decodeClientFrame(deep).body, 'heartbeat', 'protobufjs skips it by its length too');
});

test('frame depth - 250,000 nested groups are refused at once, without recursion', (t) => {
  const deep = cat(heartbeat, groups(250_000));
  const started = performance.now();
  t.is(client.check(deep), 'too_deep');
  t.true(performance.now() - started < 50, 'stops at the first level too many');
});

test('frame depth - decodeClientFrame refuses a frame too deep with FRAME_TOO_DEEP, before decoding', (t) => {
  const err = t.throws(() => decodeClientFrame(cat(heartbeat, groups(3))));
  t.true(err instanceof FrameDecodeError);
  t.is((err as FrameDecodeError).code, 'FRAME_TOO_DEEP');
  t.is((t.throws(() => decodeClientFrame(new Uint8Array([0xff])))! as FrameDecodeError).code, 'BAD_FRAME');
});

test('frame depth - a declared message field read whatever its wire type (as protobufjs does) still counts its level', (t) => {
  // Field 8 (heartbeat) with wire type 0: protobufjs reads a length and decodes a Heartbeat from it.
  const body = groups(1);
  const wrongWire = new Uint8Array([0x08, 1, (8 << 3) | 0, body.length, ...body]);
  t.is(client.check(wrongWire), 'too_deep');
});

test('frame depth - cut and corrupted bytes are unreadable, never a crash; the decoder refuses them too', (t) => {
  for (const bytes of [new Uint8Array([0x08]), new Uint8Array([0x1a, 0x05, 0x0a]), new Uint8Array([0x0f]), new Uint8Array([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])]) {
    t.is(client.check(bytes), 'unreadable');
    t.throws(() => decodeClientFrame(bytes));
  }
});

/**
 * The scan mirrors protobufjs's reading: on 200,000 mutated frames, whatever it passes protobufjs
 * never finds too deep (its own limit), and whatever it cannot read protobufjs refuses as well.
 */
test('frame depth - on 200,000 mutated frames the scan agrees with protobufjs', (t) => {
  const random = new Random(0x5eed);
  const seeds = seedFrames({ token: 'v1.eyJzdWIiOiJ1In0.sig', channelId: 'd-0123456789abcdef', userIds: ['u1', 'u2'] });
  let tooDeep = 0;
  let unreadable = 0;
  for (let i = 0; i < 200_000; i++) {
    // A plain Uint8Array, as the gateway hands frames in: protobufjs reads a Node Buffer with its
    // BufferReader, which cuts an overlong string short where the plain Reader refuses it.
    const bytes = Uint8Array.from(mutate(random, random.pick(seeds), seeds));
    const verdict = client.check(bytes);
    let thrown: unknown;
    try {
      root.lookupType('chat.v1.ClientFrame').decode(bytes);
    } catch (err) {
      thrown = err;
    }
    if (verdict === 'ok' && thrown instanceof Error && /nesting depth/.test(thrown.message)) t.fail(`passed but too deep for protobufjs: ${Buffer.from(bytes).toString('hex')}`);
    if (verdict === 'unreadable' && thrown === undefined) t.fail(`unreadable but decoded: ${Buffer.from(bytes).toString('hex')}`);
    if (verdict === 'too_deep') tooDeep++;
    if (verdict === 'unreadable') unreadable++;
  }
  t.true(tooDeep > 0 && unreadable > 0, `${tooDeep} too deep, ${unreadable} unreadable`);
});
