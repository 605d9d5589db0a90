/**
 * An `ask` to a node that died (SIGKILL) fails with a clear error within its timeout; no request
 * hangs. Node A (this process: ActorSystem + ClusterRouter + GrpcTransport) asks `echo` actors
 * placed on node B, a separate process (fixtures/actor-node.ts) that we kill -9. Membership is a
 * StaticMembership on each side listing both nodes, so "B is still a member" (its lease has not
 * lapsed yet) and "B left" are both under the test's control.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ActorSystem } from '../../runtime/actor/index.ts';
import { ClusterRouter, HashRing, StaticCluster, StaticMembership } from '../../runtime/cluster/index.ts';
import { CodedError } from '../../runtime/errors.ts';
import { silentLogger } from '../../runtime/log.ts';
import { GrpcTransport } from '../../runtime/transport/index.ts';

const SECRET = 'ask-stopped-node-test-secret-0123456789';
const FIXTURE = fileURLToPath(new URL('./fixtures/actor-node.ts', import.meta.url));

interface NodeA {
  system: ActorSystem;
  transport: GrpcTransport;
  router: ClusterRouter;
  cluster: StaticCluster;
  phantomB: StaticMembership;
  b: ChildProcess;
  bExited: Promise<void>;
  /** Keys of `echo` actors that B owns. */
  keysOnB: string[];
}

async function startPair(): Promise<NodeA> {
  const log = silentLogger();
  const system = new ActorSystem({ log });
  system.register({ name: 'echo', create: () => ({ receive: () => ({ node: 'A' }) }) });
  const transport = new GrpcTransport({ nodeId: 'A', listenAddress: '127.0.0.1:0', clusterSecret: SECRET, logger: log });
  await transport.start();
  const b = spawn(process.execPath, ['--import', 'tsx', FIXTURE, 'B', 'A', transport.address, SECRET], { stdio: ['ignore', 'pipe', 'inherit'] });
  const bExited = new Promise<void>((r) => b.once('exit', () => r()));
  const killB = () => b.kill('SIGKILL');
  process.once('exit', killB); // no orphan if this process ends abruptly
  void bExited.then(() => process.removeListener('exit', killB));
  const bAddress = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('node B did not start in 20 s')), 20_000);
    let buf = '';
    b.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i < 0) return;
      clearTimeout(timer);
      resolve((JSON.parse(buf.slice(0, i)) as { address: string }).address);
    });
    void bExited.then(() => reject(new Error('node B exited before serving')));
  });
  const cluster = new StaticCluster();
  const self = new StaticMembership(cluster);
  const phantomB = new StaticMembership(cluster);
  const router = new ClusterRouter({ nodeId: 'A', system, membership: self, transport, log });
  system.setRemoteRouter(router);
  await self.join({ nodeId: 'A', grpcAddress: transport.address, wsUrl: 'ws://127.0.0.1:1/', load: 0, startedAtMs: Date.now() });
  await phantomB.join({ nodeId: 'B', grpcAddress: bAddress, wsUrl: 'ws://127.0.0.1:1/', load: 0, startedAtMs: Date.now() });
  const ring = new HashRing(['A', 'B']);
  const keysOnB = Array.from({ length: 200 }, (_, i) => `k${i}`).filter((k) => ring.ownerOf(`echo/${k}`) === 'B');
  return { system, transport, router, cluster, phantomB, b, bExited, keysOnB };
}

async function stopPair(p: NodeA | undefined): Promise<void> {
  if (!p) return;
  if (p.b.exitCode === null && p.b.signalCode === null) {
    p.b.kill('SIGKILL');
    await p.bExited;
  }
  await p.system.shutdown();
  await p.transport.stop();
}

/** Asks and reports how it ended and when; never waits past `timeoutMs` + 2 s. */
async function timedAsk(p: NodeA, key: string, message: unknown, timeoutMs: number): Promise<{ ok: boolean; code?: string; message?: string; ms: number }> {
  const t0 = Date.now();
  const guard = new Promise<{ ok: boolean; code: string; ms: number }>((r) => setTimeout(() => r({ ok: false, code: 'HUNG', ms: Date.now() - t0 }), timeoutMs + 2_000));
  const ask = p.system
    .ref('echo', key)
    .ask(message, { timeoutMs })
    .then(
      () => ({ ok: true, ms: Date.now() - t0 }),
      (err: unknown) => ({ ok: false, code: err instanceof CodedError ? err.code : String(err), message: (err as Error).message, ms: Date.now() - t0 }),
    );
  return Promise.race([ask, guard]);
}

let pair: NodeA | undefined;
test.afterEach.always(async () => {
  await stopPair(pair);
  pair = undefined;
});

test.serial('asks in flight when the peer is killed fail UNAVAILABLE at once, not at their timeout', async (t) => {
  pair = await startPair();
  const p = pair;
  t.deepEqual(await timedAsk(p, p.keysOnB[0]!, {}, 5_000).then((r) => r.ok), true, 'B answers while alive');
  // Slow asks, in flight on B when it dies.
  const inflight = p.keysOnB.slice(0, 5).map((k) => timedAsk(p, k, { delayMs: 3_000 }, 8_000));
  await new Promise((r) => setTimeout(r, 200));
  p.b.kill('SIGKILL');
  const results = await Promise.all(inflight);
  t.log('in-flight asks at kill:', results.map((r) => `${r.code} after ${r.ms} ms`));
  for (const r of results) {
    t.false(r.ok);
    t.is(r.code, 'UNAVAILABLE', r.message);
  }
  t.true(results.every((r) => r.ms < 2_000), `failed at once (${results.map((r) => r.ms).join(', ')} ms)`);
});

test.serial('asks sent after the peer died, while it is still a member: a clear error within the timeout, none hang; after it leaves, UNAVAILABLE at once', async (t) => {
  pair = await startPair();
  const p = pair;
  t.true((await timedAsk(p, p.keysOnB[0]!, {}, 5_000)).ok);
  p.b.kill('SIGKILL');
  await p.bExited;
  await new Promise((r) => setTimeout(r, 300)); // A has noticed the broken link by now
  // Still a member (a lease would not have lapsed yet): asks must still end within their timeout.
  const TIMEOUT = 1_500;
  const afterDeath = await Promise.all(p.keysOnB.slice(0, 5).map((k) => timedAsk(p, k, {}, TIMEOUT)));
  t.log('asks after the death, B still a member:', afterDeath.map((r) => `${r.code} after ${r.ms} ms`));
  for (const r of afterDeath) {
    t.not(r.code, 'HUNG', 'no ask hangs past its timeout');
    t.true(r.code === 'UNAVAILABLE' || r.code === 'TIMEOUT', `a clear error code, got ${r.code}: ${r.message}`);
    t.true(r.ms <= TIMEOUT + 250, `within the timeout (${r.ms} ms)`);
  }
  // An ask pending when B is dropped from membership fails UNAVAILABLE right then.
  const pending = timedAsk(p, p.keysOnB[1]!, {}, 10_000);
  await new Promise((r) => setTimeout(r, 300));
  const leftAt = Date.now();
  await p.phantomB.leave();
  const dropped = await pending;
  t.log('ask pending when B left the membership:', dropped.code, 'after', Date.now() - leftAt, 'ms from the leave');
  t.is(dropped.code, 'UNAVAILABLE');
  t.true(Date.now() - leftAt < 1_000);
  // After leaving, B's actors are placed on A: asks succeed locally.
  const local = await timedAsk(p, p.keysOnB[2]!, {}, 1_000);
  t.true(local.ok, 'placement moved to the surviving node');
});
