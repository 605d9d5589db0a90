/**
 * Message-id node numbers claimed from etcd, on real parleyd processes:
 * - three members started without --node-number get three different numbers (GET /healthz);
 * - a fourth asking for a number a live member holds exits non-zero, naming that member;
 * - a SIGKILLed member's number is not reused by a node joining within the reuse gap, and is
 *   reused after it;
 * - a member restarted at once with its own --node-number waits for its previous run's lease and
 *   takes the number back, its ids above the previous run's reservation plus the gap;
 * - at the limit (all 1024 numbers held) a joining node exits non-zero with a clear error;
 *   past it, --node-number 1024 is refused as bad config.
 * Also measured: how long a node's claim takes at start (logged by each node).
 */
import test from 'ava';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { EtcdSlotClaim } from '../../runtime/cluster/etcd-slot-claim.ts';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { newUser, startServer } from '../support/server.ts';
import { dumpLogs, percentiles, placement, sleep, waitForView } from './support.ts';

/** bin/node-assembly.ts: where node-number claims live, and the reuse gap it uses. */
const NUMBERS_PREFIX = '/parley-test/node-numbers';
const REUSE_GAP_MS = 10_000;
const AUTO = { 'node-number': undefined };

let cluster: TestCluster;
let etcd: Etcd3;

test.before(async () => {
  cluster = await startCluster(3, AUTO);
  etcd = createEtcdClient({ hosts: cluster.etcdUrl });
  await waitForView(cluster.nodes, ['n1', 'n2', 'n3']);
});

test.after.always(async () => {
  dumpLogs(cluster, 'node-numbers');
  etcd?.close();
  await cluster?.stop();
});

async function numberOf(node: ClusterNode): Promise<number> {
  const body = (await (await fetch(`${node.baseUrl}/healthz`)).json()) as { node_id: string; node_number: unknown };
  if (body.node_id !== node.nodeId || typeof body.node_number !== 'number' || !Number.isInteger(body.node_number)) throw new Error(`unexpected /healthz ${JSON.stringify(body)}`);
  return body.node_number;
}

/** The node's own log line for its claim: its number and how long the claim took. */
function claimOf(node: ClusterNode): { node_number: number; claim_ms: number } {
  const line = node.logs.find((l) => l.includes('"message-id node number claimed"'));
  if (!line) throw new Error(`${node.nodeId} logged no claim`);
  return JSON.parse(line) as { node_number: number; claim_ms: number };
}

async function reservationOf(number: number): Promise<{ until: number; holder: string }> {
  const text = await etcd.get(`${NUMBERS_PREFIX}/reserved/${number}`).string();
  if (text === null) throw new Error(`no reservation for node number ${number}`);
  return JSON.parse(text) as { until: number; holder: string };
}

test.serial('three members without --node-number get three different numbers; a fourth asking for a held one is refused, naming the holder', async (t) => {
  const numbers = await Promise.all(cluster.nodes.map(numberOf));
  t.log('node numbers from /healthz:', Object.fromEntries(cluster.nodes.map((n, i) => [n.nodeId, numbers[i]])));
  t.is(new Set(numbers).size, 3, 'three different numbers');
  t.deepEqual([...numbers].sort((a, b) => a - b), [0, 1, 2], 'the lowest free ones');
  t.deepEqual(cluster.nodes.map((n) => claimOf(n).node_number), numbers, '/healthz shows the number each node claimed');

  const n2 = cluster.node('n2');
  const held = await numberOf(n2);
  const err = await t.throwsAsync(() => cluster.addNode(4, { 'node-number': String(held) }));
  t.log(err?.message);
  t.regex(err!.message, /exited with [1-9]/, 'exits non-zero');
  t.regex(err!.message, new RegExp(`--node-number ${held} is held by live node n2`), 'names the number and the node holding it');
  t.is(await numberOf(n2), held, 'the holder keeps its number');
});

test.serial('a SIGKILLed member\'s number is not reused within the reuse gap, and is after it', async (t) => {
  t.timeout(120_000);
  const n3 = cluster.node('n3');
  const dead = await numberOf(n3);
  await n3.kill();
  const killedAt = Date.now();
  // Its lease lapses (TTL 3 s): the number is no longer held, only cooling.
  for (let i = 0; i < 200 && (await etcd.get(`${NUMBERS_PREFIX}/held/${dead}`).string()) !== null; i++) await sleep(50);
  t.is(await etcd.get(`${NUMBERS_PREFIX}/held/${dead}`).string(), null, 'the held key went with the lease');
  const last = await reservationOf(dead);
  t.is(last.holder, 'n3');
  const reusableAt = last.until + REUSE_GAP_MS;
  t.log(`n3 (number ${dead}) killed; its lease lapsed ${Date.now() - killedAt} ms later; its last reservation reached +${last.until - killedAt} ms, so the number is free from +${reusableAt - killedAt} ms`);

  const n5 = await cluster.addNode(5, AUTO);
  const within = await numberOf(n5);
  t.true(Date.now() < reusableAt, 'n5 joined within the gap');
  t.not(within, dead, 'not the dead node\'s number');
  t.is(within, 3, 'the lowest free one instead');

  await sleep(Math.max(0, reusableAt - Date.now()) + 200);
  const n6 = await cluster.addNode(6, AUTO);
  t.is(await numberOf(n6), dead, 'after the gap the number is reused');
  const floor = (JSON.parse(n6.logs.find((l) => l.includes('"message-id node number claimed"'))!) as { floor_ms: number }).floor_ms;
  t.is(floor, reusableAt, 'its ids start above the previous reservation plus the gap');
  t.log(`n5 got ${within} at +${claimAtMs(n5) - killedAt} ms, n6 got ${dead} at +${claimAtMs(n6) - killedAt} ms`);

  const claims = ['n1', 'n2', 'n5', 'n6'].map((id) => claimOf(cluster.node(id)).claim_ms);
  // n3's claim too: it is still in its log.
  claims.push(claimOf(n3).claim_ms);
  const p = percentiles(claims);
  t.log(`claim at start (list + transaction in etcd, inside the registration): p50 ${p.p50} ms, max ${p.max} ms over ${p.n} starts`, claims);
});

function claimAtMs(node: ClusterNode): number {
  return (JSON.parse(node.logs.find((l) => l.includes('"message-id node number claimed"'))!) as { time: number }).time;
}

test.serial('a member restarted at once with its own --node-number waits for its old lease, takes the number back, and stamps ids above the old reservation', async (t) => {
  t.timeout(120_000);
  const old = cluster.node('n1');
  const number = await numberOf(old);
  await old.kill();
  const killedAt = Date.now();
  const n1 = await cluster.addNode(1, { 'node-number': String(number) });
  const claim = JSON.parse(n1.logs.find((l) => l.includes('"message-id node number claimed"'))!) as { node_number: number; floor_ms: number; time: number };
  t.log(`n1 restarted with --node-number ${number}: serving ${claim.time - killedAt} ms after the kill (its old lease had to lapse), ids start above +${claim.floor_ms - killedAt} ms`);
  t.true(n1.logs.some((l) => l.includes('waiting for its lease to lapse')), 'it waited for its previous run');
  t.is(await numberOf(n1), number);
  t.true(claim.floor_ms > claim.time, 'the number was still in its gap: ids start ahead of the clock');

  const alive = cluster.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  const ids = alive.map((n) => n.nodeId);
  await waitForView(alive, ids);
  let sent: { message_id: string } | undefined;
  for (let i = 0; i < 40 && !sent; i++) {
    const a = await newUser(n1, 'ra');
    const b = await newUser(n1, 'rb');
    const { channel_id } = await a.http.openDm(b.userId);
    if (placement('channel', channel_id, ids) === 'n1') sent = await a.http.postMessage(channel_id, 'r-1', 'hello');
  }
  if (!sent) throw new Error('no DM placed on n1');
  const id = BigInt(sent.message_id);
  t.is(Number((id >> 12n) & 1023n), number, 'the id carries the number');
  const stamped = Number((id >> 22n) + 1_704_067_200_000n);
  t.true(stamped > claim.floor_ms, `stamped above the floor (${stamped - claim.floor_ms} ms above)`);
});

test.serial('at the limit: with all 1024 numbers held a joining node exits with a clear error; past it, 1024 is bad config', async (t) => {
  t.timeout(120_000);
  const live = new Set(await Promise.all(cluster.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null).map(numberOf)));
  const grant = await etcd.leaseClient.leaseGrant({ TTL: 60 });
  const fillers: EtcdSlotClaim[] = [];
  try {
    const free = Array.from({ length: 1024 }, (_, i) => i).filter((i) => !live.has(i));
    for (let i = 0; i < free.length; i += 64) {
      await Promise.all(
        free.slice(i, i + 64).map((wanted) => {
          const c = new EtcdSlotClaim({ client: etcd, prefix: NUMBERS_PREFIX, holder: 'filler', size: 1024, wanted, reuseGapMs: REUSE_GAP_MS, reserveAheadMs: 60_000, refreshIntervalMs: 30_000 });
          fillers.push(c);
          return c.attach(grant.ID);
        }),
      );
    }
    t.is(live.size + fillers.length, 1024, 'every number is held');
    const err = await t.throwsAsync(() => cluster.addNode(7, AUTO));
    t.log(err?.message);
    t.regex(err!.message, /exited with [1-9]/);
    t.regex(err!.message, /no message-id node number is free in cluster \/parley-test: all 1024 are held by live nodes \(1024\)/);
  } finally {
    for (const c of fillers) c.close();
    await etcd.leaseClient.leaseRevoke({ ID: grant.ID });
  }
  const bad = await t.throwsAsync(() => startServer({ flags: { 'node-number': '1024' } }));
  t.regex(bad!.message, /--node-number must be at most 1023, got 1024/);
});
