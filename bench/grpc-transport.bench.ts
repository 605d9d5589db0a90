/**
 * Envelopes per second over one inter-node stream, 100-byte payloads, for BENCH_SECONDS (5).
 * The receiver runs in a child process so the two "nodes" do not share an event loop, as in a
 * real cluster. Also prints the batch codec throughput next to the two protobuf libraries it
 * replaced. Run: node --import tsx bench/grpc-transport.bench.ts
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { decodeBatch, encodeBatch } from '../runtime/transport/envelope-codec.ts';
import { GrpcTransport } from '../runtime/transport/grpc-transport.ts';
import type { Envelope } from '../runtime/transport/transport.ts';
import { TransportError } from '../runtime/transport/transport-error.ts';

const SECRET = 'bench-secret';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const PAYLOAD = new Uint8Array(100).fill(42);
const QUEUE_BOUND = 100_000;
const BATCH = Number(process.env.BENCH_BATCH ?? 1024);

function envelope(i: number): Envelope {
  return { kind: 'tell', targetKind: 'bench', targetKey: `key-${i & 1023}`, correlationId: 0, hops: 0, payload: PAYLOAD, senderNode: 'sender' };
}

type ToParent = { type: 'ready'; address: string } | { type: 'count'; received: number };

async function receiver(): Promise<void> {
  const t = new GrpcTransport({ nodeId: 'receiver', listenAddress: '127.0.0.1:0', clusterSecret: SECRET });
  let received = 0;
  t.onEnvelope(() => {
    received++;
  });
  await t.start();
  const send = (msg: ToParent) => process.send!(msg);
  send({ type: 'ready', address: t.address });
  process.on('message', (msg: string) => {
    if (msg === 'count') send({ type: 'count', received });
    if (msg === 'exit') void t.stop().then(() => process.exit(0));
  });
}

async function sender(): Promise<void> {
  // The child inherits this process's flags (--import tsx, and any profiling flags).
  const child = fork(fileURLToPath(import.meta.url), ['receiver']);
  const next = () => new Promise<ToParent>((resolve) => child.once('message', (m: ToParent) => resolve(m)));
  const ready = await next();
  if (ready.type !== 'ready') throw new Error('unexpected first message');
  const t = new GrpcTransport({ nodeId: 'sender', listenAddress: '127.0.0.1:0', clusterSecret: SECRET, maxQueuedEnvelopes: QUEUE_BOUND, maxBatchEnvelopes: BATCH });
  await t.start();

  const count = async () => {
    child.send('count');
    const m = await next();
    return m.type === 'count' ? m.received : -1;
  };

  // Warm-up: open the stream and let the JIT settle.
  const run = async (ms: number) => {
    const end = performance.now() + ms;
    let sent = 0;
    let pushedBack = 0;
    while (performance.now() < end) {
      // Keep the queue short of its bound instead of provoking BACKPRESSURE errors, whose stack
      // traces would cost the sender more than the sending itself.
      if (t.queuedFor('receiver') > QUEUE_BOUND - 4_000) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      for (let i = 0; i < 2_000; i++) {
        try {
          t.send('receiver', ready.address, envelope(sent));
          sent++;
        } catch (err) {
          if (!(err instanceof TransportError) || err.code !== 'BACKPRESSURE') throw err;
          pushedBack++;
          break;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
    return { sent, pushedBack };
  };
  await run(1_000);
  const before = await count();
  const startedAt = performance.now();
  const { pushedBack } = await run(SECONDS * 1000);
  const after = await count();
  const seconds = (performance.now() - startedAt) / 1000;
  const rate = Math.round((after - before) / seconds);
  console.log(`grpc stream, 100-byte payloads: ${rate.toLocaleString('en-US')} envelopes/s received over ${seconds.toFixed(1)} s, batches of <= ${BATCH} (sender pushed back ${pushedBack} times)`);
  child.send('exit');
  await t.stop();
}

function codecComparison(): void {
  const protoPath = fileURLToPath(new URL('../proto/cluster.proto', import.meta.url));
  const loaderDef = protoLoader.loadSync(protoPath, { longs: Number, enums: Number });
  const method = (loaderDef['parley.cluster.ClusterTransport'] as protoLoader.ServiceDefinition)['Connect']!;
  const Batch = protobuf.loadSync(protoPath).lookupType('parley.cluster.Batch');
  const envs = Array.from({ length: 1_000 }, (_, i) => envelope(i));
  const wire = envs.map((e) => ({ ...e, kind: 0 }));
  const frame = encodeBatch(envs);
  const rate = (label: string, fn: () => unknown) => {
    for (let i = 0; i < 100; i++) fn();
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < 1_000) {
      fn();
      n += envs.length;
    }
    const perSecond = Math.round((n / (performance.now() - start)) * 1000);
    console.log(`  ${label.padEnd(32)} ${perSecond.toLocaleString('en-US').padStart(11)} envelopes/s`);
  };
  console.log('codec, 1,000-envelope batches:');
  rate('encode: @grpc/proto-loader', () => method.requestSerialize({ envelopes: wire }));
  rate('encode: protobufjs reflection', () => Batch.encode({ envelopes: wire }).finish());
  rate('encode: envelope-codec', () => encodeBatch(envs));
  rate('decode: @grpc/proto-loader', () => method.requestDeserialize(frame));
  rate('decode: protobufjs reflection', () => Batch.decode(frame));
  rate('decode: envelope-codec', () => decodeBatch(frame));
}

if (process.argv[2] === 'receiver') {
  await receiver();
} else {
  if (process.env.BENCH_SKIP_CODEC !== '1') codecComparison();
  await sender();
}
