import test from 'ava';
import { StaticCluster, StaticMembership } from '../../runtime/cluster/static-membership.ts';
import type { Member } from '../../runtime/cluster/membership.ts';

const m = (nodeId: string): Member => ({ nodeId, grpcAddress: `${nodeId}:1`, wsUrl: `ws://${nodeId}`, load: 0, startedAtMs: 1 });
const ids = (p: StaticMembership) => p.members().map((x) => x.nodeId);

test('a lone node sees itself', async (t) => {
  const p = new StaticMembership();
  t.false(p.selfHealthy());
  await p.join(m('solo'));
  t.deepEqual(ids(p), ['solo']);
  t.true(p.selfHealthy());
  await p.leave();
  t.false(p.selfHealthy());
  t.deepEqual(ids(p), []);
});

test('members of one StaticCluster see each other, loads and departures', async (t) => {
  const cluster = new StaticCluster();
  const a = new StaticMembership(cluster);
  const b = new StaticMembership(cluster);
  const seen: string[][] = [];
  a.onChange((ms) => seen.push(ms.map((x) => `${x.nodeId}:${x.load}`)));
  await a.join(m('a'));
  await b.join(m('b'));
  t.deepEqual(ids(a), ['a', 'b']);
  b.setLoad(7);
  t.is(a.members().find((x) => x.nodeId === 'b')?.load, 7);
  await b.leave();
  t.deepEqual(ids(a), ['a']);
  t.deepEqual(seen, [['a:0'], ['a:0', 'b:0'], ['a:0', 'b:7'], ['a:0']]);
  await t.throwsAsync(() => b.join(m('b')), { message: /state left/ });
});

test('simulated lease loss makes the node unhealthy and drops it for everyone', async (t) => {
  const cluster = new StaticCluster();
  const a = new StaticMembership(cluster);
  const b = new StaticMembership(cluster);
  await a.join(m('a'));
  await b.join(m('b'));
  let fired = 0;
  b.onSelfUnhealthy(() => fired++);
  b.simulateLeaseLoss();
  t.is(fired, 1);
  t.false(b.selfHealthy());
  t.deepEqual(ids(a), ['a']);
  b.simulateLeaseRegained();
  t.true(b.selfHealthy());
  t.deepEqual(ids(a), ['a', 'b']);
});
