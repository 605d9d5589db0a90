/**
 * EtcdMembership against a real etcd (Debian etcd-server 3.4), started once for this file on
 * ports 24110/24111. Tests run serially because one of them kills and restarts etcd.
 */
import test from 'ava';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { EtcdMembership, type EtcdMembershipOptions } from '../../runtime/cluster/etcd-membership.ts';
import { ensureSharedSecret } from '../../runtime/cluster/etcd-secrets.ts';
import type { Member } from '../../runtime/cluster/membership.ts';
import { MembershipError } from '../../runtime/cluster/membership-error.ts';
import { createLogger } from '../../runtime/log.ts';
import { startTestEtcd, type TestEtcd } from '../support/etcd.ts';

const PORT = 24110;
let etcd: TestEtcd;
const clients: Etcd3[] = [];
const memberships: EtcdMembership[] = [];
const logger = process.env.PARLEY_TEST_LOG ? createLogger({ level: process.env.PARLEY_TEST_LOG, name: 'etcd-membership-test' }) : undefined;

test.before(async () => {
  etcd = await startTestEtcd(PORT);
});

test.after.always(async () => {
  await Promise.allSettled(memberships.map((m) => m.leave()));
  for (const c of clients) c.close();
  await etcd?.stop();
});

function client(): Etcd3 {
  const c = createEtcdClient({ hosts: etcd.address, callTimeoutMs: 2_000 });
  clients.push(c);
  return c;
}

function membership(prefix: string, extra: Partial<EtcdMembershipOptions> = {}): EtcdMembership {
  const m = new EtcdMembership({ client: extra.client ?? client(), prefix, ttlSeconds: 3, logger, ...extra });
  memberships.push(m);
  return m;
}

function member(nodeId: string, load = 0): Member {
  return { nodeId, grpcAddress: `127.0.0.1:${nodeId.length}000`, wsUrl: `ws://127.0.0.1/${nodeId}`, load, startedAtMs: Date.now() };
}

const ids = (m: EtcdMembership) => m.members().map((x) => x.nodeId);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - start;
}

test.serial('two members join and see each other', async (t) => {
  const a = membership('/t1');
  const b = membership('/t1');
  const seenByA: string[][] = [];
  a.onChange((ms) => seenByA.push(ms.map((m) => m.nodeId)));
  await a.join(member('a'));
  t.deepEqual(ids(a), ['a'], 'self is in the view right after join');
  t.true(a.selfHealthy());
  await b.join(member('b'));
  await until('a sees b', () => ids(a).length === 2);
  t.deepEqual(ids(a), ['a', 'b']);
  t.deepEqual(ids(b), ['a', 'b']);
  t.deepEqual(seenByA.at(-1), ['a', 'b']);
  t.is(b.members().find((m) => m.nodeId === 'a')?.wsUrl, 'ws://127.0.0.1/a');

  // Load goes out throttled; the last value always arrives.
  for (let load = 1; load <= 20; load++) a.setLoad(load);
  await until('b sees the final load', () => b.members().find((m) => m.nodeId === 'a')?.load === 20, 5_000);
  await t.throwsAsync(() => a.join(member('a')), { instanceOf: MembershipError, message: /state joined/ });
});

test.serial('a member that leaves is gone for the other promptly', async (t) => {
  const a = membership('/t2');
  const b = membership('/t2');
  await a.join(member('a'));
  await b.join(member('b'));
  await until('both see both', () => ids(a).length === 2 && ids(b).length === 2);
  const unhealthy: string[] = [];
  b.onSelfUnhealthy(() => unhealthy.push('b'));
  const left = Date.now();
  await b.leave();
  const elapsed = await until('a sees b gone', () => !ids(a).includes('b'), 2_000);
  t.log(`gone for the other ${Date.now() - left} ms after leave() started`);
  t.true(elapsed < 1_000);
  t.false(b.selfHealthy());
  t.deepEqual(b.members(), []);
  t.deepEqual(unhealthy, [], 'leaving on purpose is not reported as unhealthy');
});

test.serial('a member whose keepalives stop is gone for the other within TTL + 1 s', async (t) => {
  const a = membership('/t3');
  const bClient = client();
  const b = membership('/t3', { client: bClient });
  await a.join(member('a'));
  await b.join(member('b'));
  await until('a sees b', () => ids(a).includes('b'));
  let bUnhealthyAt = 0;
  b.onSelfUnhealthy(() => (bUnhealthyAt = Date.now()));
  const stopped = Date.now();
  // The process-equivalent dies: its connection goes away and nothing is revoked.
  bClient.close();
  await until('a sees b gone', () => !ids(a).includes('b'), 3_000 + 1_000);
  const gone = Date.now() - stopped;
  t.log(`gone for the other after ${gone} ms (TTL 3000 ms); b called itself unhealthy after ${bUnhealthyAt - stopped} ms`);
  t.true(gone <= 4_000);
  t.true(bUnhealthyAt > 0 && bUnhealthyAt - stopped < 3_000, 'b stops serving before its lease can run out');
  t.true(a.selfHealthy());
});

test.serial('etcd restart: both re-register, keep watching, and never call themselves unhealthy', async (t) => {
  // A longer TTL than etcd needs to come back, and no periodic re-read, so the watch itself is tested.
  const opts = { ttlSeconds: 15, resyncIntervalMs: 600_000 };
  const a = membership('/t4', opts);
  const b = membership('/t4', opts);
  const unhealthy: string[] = [];
  a.onSelfUnhealthy(() => unhealthy.push('a'));
  b.onSelfUnhealthy(() => unhealthy.push('b'));
  await a.join(member('a'));
  await b.join(member('b'));
  await until('both see both', () => ids(a).length === 2 && ids(b).length === 2);
  const probe = client();
  const revisionOf = async (id: string) => Number((await probe.get(`/t4/members/${id}`).exec()).kvs[0]?.mod_revision ?? -1);
  const before = { a: await revisionOf('a'), b: await revisionOf('b') };

  let sampledUnhealthy = false;
  const sampler = setInterval(() => (sampledUnhealthy ||= !a.selfHealthy() || !b.selfHealthy()), 20);
  t.teardown(() => clearInterval(sampler));
  const killedAt = Date.now();
  await etcd.kill();
  await sleep(500);
  await etcd.restart();
  t.log(`etcd down for ${Date.now() - killedAt} ms`);

  await until('both re-registered', async () => (await revisionOf('a')) > before.a && (await revisionOf('b')) > before.b, 10_000);
  t.log(`re-registered ${Date.now() - killedAt} ms after the kill`);
  t.deepEqual(ids(a), ['a', 'b']);
  t.deepEqual(ids(b), ['a', 'b']);

  // The watches work again: a change made after the restart reaches the other node.
  a.setLoad(42);
  await until('b sees a new load through its watch', () => b.members().find((m) => m.nodeId === 'a')?.load === 42, 5_000);
  const c = membership('/t4', opts);
  await c.join(member('c'));
  await until('a and b see a newcomer', () => ids(a).includes('c') && ids(b).includes('c'), 5_000);
  clearInterval(sampler);

  t.deepEqual(unhealthy, []);
  t.false(sampledUnhealthy, 'selfHealthy() stayed true throughout');
  t.true(a.selfHealthy() && b.selfHealthy());
});

test.serial('a long etcd outage: unhealthy at the margin, before the TTL ends, and healthy again after', async (t) => {
  const a = membership('/t5');
  const b = membership('/t5');
  await a.join(member('a'));
  await b.join(member('b'));
  await until('both see both', () => ids(a).length === 2 && ids(b).length === 2);
  const unhealthyAt: number[] = [];
  a.onSelfUnhealthy(() => unhealthyAt.push(Date.now()));
  b.onSelfUnhealthy(() => unhealthyAt.push(Date.now()));

  const killedAt = Date.now();
  await etcd.kill();
  await until('both unhealthy', () => unhealthyAt.length === 2, 5_000);
  for (const at of unhealthyAt) {
    const after = at - killedAt;
    t.log(`unhealthy ${after} ms after etcd died (TTL 3000 ms, margin 1800 ms, renewal every 600 ms)`);
    // The last renewal happened at most one interval (plus a short retry) before the kill.
    t.true(after >= 1_800 - 600 - 300 && after < 3_000, `unhealthy after ${after} ms`);
  }
  t.false(a.selfHealthy());
  await sleep(3_500 - (Date.now() - killedAt));
  await etcd.restart();
  await until('both healthy again', () => a.selfHealthy() && b.selfHealthy(), 10_000);
  await until('both see both again', () => ids(a).length === 2 && ids(b).length === 2, 10_000);
  t.deepEqual(ids(b), ['a', 'b']);
});

test.serial('a lease revoked behind our back is replaced and the member comes back', async (t) => {
  const a = membership('/t6');
  const b = membership('/t6');
  await a.join(member('a'));
  await b.join(member('b'));
  await until('b sees a', () => ids(b).includes('a'));
  let unhealthy = 0;
  a.onSelfUnhealthy(() => unhealthy++);
  const probe = client();
  const kv = (await probe.get('/t6/members/a').exec()).kvs[0]!;
  const bViews: string[][] = [];
  b.onChange((ms) => bViews.push(ms.map((m) => m.nodeId)));
  await probe.leaseClient.leaseRevoke({ ID: kv.lease });
  await until('b sees a gone', () => bViews.some((v) => !v.includes('a')), 2_000);
  await until('b sees a back', () => ids(b).includes('a'), 5_000);
  t.is(unhealthy, 1, 'a knew its lease was gone');
  await until('a healthy again', () => a.selfHealthy(), 2_000);
  const after = (await probe.get('/t6/members/a').exec()).kvs[0]!;
  t.not(after.lease, kv.lease);
});

test.serial('a record deleted by hand is put back', async (t) => {
  const a = membership('/t7');
  await a.join(member('a'));
  const probe = client();
  await probe.delete().key('/t7/members/a').exec();
  await until('record back', async () => (await probe.get('/t7/members/a').exec()).kvs.length === 1, 5_000);
  await until('a sees itself again', () => ids(a).includes('a'), 2_000);
  t.true(a.selfHealthy());
});

test.serial('one node id, one member: a second claimer is refused (NODE_ID_TAKEN) at precheck and at join; the id is free again once the holder is gone', async (t) => {
  const holder = membership('/t10');
  await holder.join(member('a'));
  const impostor = membership('/t10');
  const started = Date.now();
  const early = await t.throwsAsync(() => impostor.precheck('a', 1_000), { instanceOf: MembershipError });
  t.is(early?.code, 'NODE_ID_TAKEN');
  t.true(Date.now() - started >= 1_000, 'waited for a lease that might lapse');
  t.regex(early!.message, /^node id a is held by a live member \(gRPC 127\.0\.0\.1:1000, ws:\/\/127\.0\.0\.1\/a, started .+Z\) \(still, after waiting 1000 ms/);
  // A claimer that skipped the precheck (or raced it) loses in the registration's transaction.
  const racing = await t.throwsAsync(() => impostor.join({ ...member('a'), grpcAddress: '127.0.0.1:9999' }), { instanceOf: MembershipError });
  t.is(racing?.code, 'NODE_ID_TAKEN');
  t.false(impostor.selfHealthy());
  const probe = client();
  t.regex((await probe.get('/t10/members/a').string()) ?? '', /127\.0\.0\.1:1000/, "the holder's record is untouched");
  t.deepEqual(ids(holder), ['a']);

  // A holder that died (its lease lapses within the TTL): the precheck waits it out, then the id is free.
  const dyingClient = client();
  const dying = membership('/t11', { client: dyingClient });
  await dying.join(member('b'));
  dyingClient.close();
  const next = membership('/t11');
  const waitStart = Date.now();
  await next.precheck('b', 3_000 + 2_000);
  t.log(`a dead holder's id was free ${Date.now() - waitStart} ms later (TTL 3000 ms)`);
  await next.join(member('b'));
  t.true(next.selfHealthy());
});

test.serial('join fails with JOIN_FAILED when etcd is unreachable', async (t) => {
  const dead = createEtcdClient({ hosts: 'http://127.0.0.1:24119', callTimeoutMs: 1_000 });
  clients.push(dead);
  const m = new EtcdMembership({ client: dead, prefix: '/t8' });
  const err = await t.throwsAsync(() => m.join(member('a')), { instanceOf: MembershipError });
  t.is(err?.code, 'JOIN_FAILED');
  t.false(m.selfHealthy());
});

test.serial('ensureSharedSecret gives concurrent callers one value', async (t) => {
  let generated = 0;
  const gen = () => `secret-${++generated}-${Math.random()}`;
  const results = await Promise.all([client(), client(), client(), client()].map((c) => ensureSharedSecret(c, '/t9/secret', gen)));
  t.is(new Set(results).size, 1);
  t.is(generated, 4);
  t.is(await ensureSharedSecret(client(), '/t9/secret', gen), results[0]!);
});
