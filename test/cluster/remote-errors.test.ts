/**
 * A remote error keeps what it is across nodes: two nodes (an ActorSystem, a ClusterRouter and a
 * GrpcTransport each, on 127.0.0.1, members of one StaticCluster), and an actor kind whose handler
 * refuses, fails with a coded fault, or throws. Asked from the other node, the caller gets exactly
 * what it gets when the actor lives on its own node: a refusal as a Rejection with its code, a
 * fault as a fault (not `expected`) with its code. Before, every remote error came back as a
 * Rejection, so "you may not" and "it broke" looked alike.
 */
import test from 'ava';
import { ActorSystem } from '../../runtime/actor/index.ts';
import { ClusterRouter, HashRing, StaticCluster, StaticMembership } from '../../runtime/cluster/index.ts';
import { CodedError, Rejection } from '../../runtime/errors.ts';
import { silentLogger } from '../../runtime/log.ts';
import { GrpcTransport } from '../../runtime/transport/index.ts';

const SECRET = 'remote-errors-test-secret-0123456789abcdef';

type Probe = { readonly do: 'refuse' | 'fault' | 'throw' | 'ok' };

interface Node {
  readonly id: string;
  readonly system: ActorSystem;
  readonly transport: GrpcTransport;
}

function probeKind(nodeId: string) {
  return {
    name: 'probe',
    create: () => ({
      receive: (m: Probe) => {
        switch (m.do) {
          case 'refuse':
            throw new Rejection('FORBIDDEN', `not allowed on ${nodeId}`);
          case 'fault':
            throw new CodedError('STORE_BROKEN', `the disk of ${nodeId} is gone`);
          case 'throw':
            throw new Error(`a bug on ${nodeId}`);
          case 'ok':
            return nodeId;
        }
      },
    }),
  };
}

async function startNodes(): Promise<Node[]> {
  const log = silentLogger();
  const cluster = new StaticCluster();
  const nodes: Node[] = [];
  for (const id of ['A', 'B']) {
    const system = new ActorSystem({ log });
    system.register(probeKind(id));
    const transport = new GrpcTransport({ nodeId: id, listenAddress: '127.0.0.1:0', clusterSecret: SECRET, logger: log });
    await transport.start();
    const membership = new StaticMembership(cluster);
    system.setRemoteRouter(new ClusterRouter({ nodeId: id, system, membership, transport, log }));
    await membership.join({ nodeId: id, grpcAddress: transport.address, wsUrl: 'ws://127.0.0.1:1/', load: 0, startedAtMs: Date.now() });
    nodes.push({ id, system, transport });
  }
  return nodes;
}

/** How an ask ended, in the terms a caller branches on. */
async function outcome(system: ActorSystem, key: string, m: Probe): Promise<{ refusal: boolean; expected: boolean; code: string; message: string } | { value: unknown }> {
  try {
    return { value: await system.ref<Probe>('probe', key).ask(m, { timeoutMs: 5_000 }) };
  } catch (err) {
    if (!(err instanceof CodedError)) throw new Error(`not a CodedError: ${String(err)}`);
    return { refusal: err instanceof Rejection, expected: err.expected, code: err.code, message: err.message };
  }
}

let nodes: Node[] = [];
test.before(async () => {
  nodes = await startNodes();
});
test.after.always(async () => {
  for (const n of nodes) {
    await n.system.shutdown();
    await n.transport.stop();
  }
});

function keysOwnedBy(owner: string): string[] {
  const ring = new HashRing(['A', 'B']);
  return Array.from({ length: 100 }, (_, i) => `k${i}`).filter((k) => ring.ownerOf(`probe/${k}`) === owner);
}

test('remote errors - a refusal on another node arrives as a refusal with its code, as it does locally', async (t) => {
  const [a] = nodes as [Node, Node];
  const [remoteKey] = keysOwnedBy('B');
  const [localKey] = keysOwnedBy('A');
  t.deepEqual(await outcome(a.system, remoteKey!, { do: 'ok' }), { value: 'B' }, 'the key is served by B');
  const remote = await outcome(a.system, remoteKey!, { do: 'refuse' });
  const local = await outcome(a.system, localKey!, { do: 'refuse' });
  t.deepEqual(remote, { refusal: true, expected: true, code: 'FORBIDDEN', message: 'not allowed on B' });
  t.deepEqual(local, { refusal: true, expected: true, code: 'FORBIDDEN', message: 'not allowed on A' });
});

test('remote errors - a coded fault on another node arrives as a fault with its code, not as a refusal', async (t) => {
  const [a] = nodes as [Node, Node];
  const [remoteKey] = keysOwnedBy('B');
  const [localKey] = keysOwnedBy('A');
  const remote = await outcome(a.system, remoteKey!, { do: 'fault' });
  const local = await outcome(a.system, localKey!, { do: 'fault' });
  t.deepEqual(remote, { refusal: false, expected: false, code: 'STORE_BROKEN', message: 'the disk of B is gone' });
  t.deepEqual(local, { refusal: false, expected: false, code: 'STORE_BROKEN', message: 'the disk of A is gone' });
});

test('remote errors - an uncoded throw on another node is ACTOR_FAILED, a fault, on both sides alike', async (t) => {
  const [a] = nodes as [Node, Node];
  const remoteKey = keysOwnedBy('B')[1]!;
  const localKey = keysOwnedBy('A')[1]!;
  const remote = await outcome(a.system, remoteKey, { do: 'throw' });
  const local = await outcome(a.system, localKey, { do: 'throw' });
  t.like(remote, { refusal: false, expected: false, code: 'ACTOR_FAILED' });
  t.like(local, { refusal: false, expected: false, code: 'ACTOR_FAILED' });
  // The failed actor was rebuilt on B and serves again.
  t.deepEqual(await outcome(a.system, remoteKey, { do: 'ok' }), { value: 'B' });
});

test('remote errors - a refusal made by the remote runtime itself (no such actor kind) stays what it was there', async (t) => {
  const [a, b] = nodes as [Node, Node];
  const key = keysOwnedBy('B')[2]!;
  // What B's own system answers for an unknown kind, asked locally on B...
  let there: CodedError | undefined;
  try {
    await b.system.ref('nobody', key).ask({}, { timeoutMs: 2_000 });
  } catch (err) {
    there = err as CodedError;
  }
  // ...and what A gets for the same ask routed to B (the placement of `nobody/<key>` decides where).
  const ring = new HashRing(['A', 'B']);
  const remoteKey = Array.from({ length: 100 }, (_, i) => `n${i}`).find((k) => ring.ownerOf(`nobody/${k}`) === 'B')!;
  let here: CodedError | undefined;
  try {
    await a.system.ref('nobody', remoteKey).ask({}, { timeoutMs: 2_000 });
  } catch (err) {
    here = err as CodedError;
  }
  t.truthy(there && here);
  t.is(here!.code, there!.code);
  t.is(here instanceof Rejection, there instanceof Rejection);
  t.is(here!.expected, there!.expected);
});
