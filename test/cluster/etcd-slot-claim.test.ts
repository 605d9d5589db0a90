/**
 * EtcdSlotClaim against a real etcd (Debian etcd-server 3.4), started once for this file on
 * ports 24130/24131. Every test uses its own pool prefix. Leases are granted here directly, or
 * by an EtcdMembership the claim is bound to.
 */
import test from 'ava';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { EtcdMembership } from '../../runtime/cluster/etcd-membership.ts';
import { EtcdSlotClaim, type EtcdSlotClaimOptions, type SlotGrant } from '../../runtime/cluster/etcd-slot-claim.ts';
import { SlotClaimError } from '../../runtime/cluster/slot-claim-error.ts';
import { createLogger } from '../../runtime/log.ts';
import { startTestEtcd, type TestEtcd } from '../support/etcd.ts';

const PORT = 24130;
let etcd: TestEtcd;
let client: Etcd3;
const claims: EtcdSlotClaim[] = [];
const memberships: EtcdMembership[] = [];
const logger = process.env.PARLEY_TEST_LOG ? createLogger({ level: process.env.PARLEY_TEST_LOG, name: 'etcd-slot-claim-test' }) : undefined;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test.before(async () => {
  etcd = await startTestEtcd(PORT);
  client = createEtcdClient({ hosts: etcd.address, callTimeoutMs: 3_000 });
});

test.after.always(async () => {
  for (const c of claims) c.close();
  await Promise.allSettled(memberships.map((m) => m.leave()));
  client?.close();
  await etcd?.stop();
});

async function lease(ttlSeconds = 30): Promise<string> {
  const grant = await client.leaseClient.leaseGrant({ TTL: ttlSeconds });
  return grant.ID;
}

async function revoke(id: string): Promise<void> {
  await client.leaseClient.leaseRevoke({ ID: id });
}

/** A claim with its grants and reservations recorded. */
function slotClaim(prefix: string, holder: string, extra: Partial<EtcdSlotClaimOptions> = {}) {
  const c = new EtcdSlotClaim({ client, prefix, holder, size: 8, reuseGapMs: 1_500, reserveAheadMs: 1_000, refreshIntervalMs: 200, logger, ...extra });
  claims.push(c);
  const grants: SlotGrant[] = [];
  const reserved: number[] = [];
  /** When each grant was heard: a reservation is ahead of the clock at that moment, not later on a busy machine. */
  const grantedAt: number[] = [];
  c.onClaim((g) => {
    grants.push(g);
    grantedAt.push(Date.now());
  });
  c.onReserve((ms) => reserved.push(ms));
  return { c, grants, reserved, grantedAt };
}

async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await predicate())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

async function reservationOf(prefix: string, slot: number): Promise<{ until: number; holder: string }> {
  const text = await client.get(`${prefix}/reserved/${slot}`).string();
  return JSON.parse(text!) as { until: number; holder: string };
}

test('slot claim - members claiming at once get different slots, the lowest first', async (t) => {
  const prefix = '/s1';
  const all = Array.from({ length: 8 }, (_, i) => slotClaim(prefix, `m${i}`));
  const leases = await Promise.all(all.map(() => lease()));
  await Promise.all(all.map((x, i) => x.c.attach(leases[i]!)));
  const slots = all.map((x) => x.c.slot!);
  t.deepEqual([...slots].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7], 'eight members, eight slots');
  for (const x of all) {
    t.is(x.grants.length, 1);
    t.is(x.grants[0]!.floorMs, 0, 'a never-used slot has no floor');
    t.true(x.reserved[0]! > x.grantedAt[0]!, 'the first reservation reaches ahead of the clock');
  }
  t.log('claim times (ms, 8 at once):', all.map((x) => x.grants[0]!.tookMs));
  // Size 8: the pool is full now.
  const ninth = slotClaim(prefix, 'm8');
  const err = await t.throwsAsync(() => ninth.c.attach(leases[0]!), { instanceOf: SlotClaimError });
  t.is(err?.code, 'SLOTS_EXHAUSTED');
  t.regex(err!.message, /all 8 slots .* 8 held by live members, 0 in their reuse gap/);
  await t.throwsAsync(() => ninth.c.precheck(0), { instanceOf: SlotClaimError, message: /all 8 slots/ });
});

test('slot claim - 32 members starting together all get a slot: one wins each round, the others retry', async (t) => {
  const prefix = '/s7';
  const all = Array.from({ length: 32 }, (_, i) => slotClaim(prefix, `m${i}`, { size: 40 }));
  const leases = await Promise.all(all.map(() => lease()));
  await Promise.all(all.map((x, i) => x.c.attach(leases[i]!)));
  t.deepEqual(all.map((x) => x.c.slot!).sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i));
  const took = all.map((x) => x.grants[0]!.tookMs).sort((a, b) => a - b);
  t.log(`claim times with 32 at once: p50 ${took[16]} ms, max ${took.at(-1)} ms`);
});

test('slot claim - a wanted slot held by a live member is refused with its holder; its own previous run is waited for', async (t) => {
  const prefix = '/s2';
  const a = slotClaim(prefix, 'n2', { wanted: 2 });
  const leaseA = await lease(2);
  await a.c.attach(leaseA);
  t.is(a.c.slot, 2);
  const b = slotClaim(prefix, 'n4', { wanted: 2 });
  const held = await t.throwsAsync(() => b.c.precheck(5_000), { instanceOf: SlotClaimError });
  t.is(held?.code, 'SLOT_HELD');
  t.deepEqual([held?.details.slot, held?.details.holder], [2, 'n2']);
  t.regex(held!.message, /slot 2 .* held by live member n2/);
  const viaAttach = await t.throwsAsync(() => b.c.attach(leaseA), { instanceOf: SlotClaimError });
  t.is(viaAttach?.code, 'SLOT_HELD', 'the claim transaction refuses too (the precheck is only a fast path)');

  // A restart of n2 while the old run's lease is still live (it is never renewed: 2 s TTL):
  // the precheck waits for it to lapse instead of failing.
  const again = slotClaim(prefix, 'n2', { wanted: 2 });
  const started = Date.now();
  await again.c.precheck(6_000);
  const waited = Date.now() - started;
  t.log(`a restarted n2 waited ${waited} ms for its previous run's lease`);
  t.true(waited > 200, 'it did wait');
  await again.c.attach(await lease());
  t.is(again.c.slot, 2);
  t.true(again.grants[0]!.floorMs >= (a.reserved.at(-1) ?? 0) + 1_500, 'above the previous run\'s reservation plus the gap');
  t.true(again.reserved[0]! >= again.grants[0]!.floorMs + 1_000, 'its first reservation reaches past the floor, not just to it');
});

test('slot claim - a released slot cools for the gap: automatic claims skip it, then take it above its last reservation', async (t) => {
  const prefix = '/s3';
  const a = slotClaim(prefix, 'a');
  const b = slotClaim(prefix, 'b');
  const leaseA = await lease();
  await a.c.attach(leaseA);
  await b.c.attach(await lease());
  t.deepEqual([a.c.slot, b.c.slot], [0, 1]);
  await until('a few reservations by a', () => a.reserved.length >= 3);
  a.c.close();
  await revoke(leaseA); // as a SIGKILLed member's lease lapsing
  const last = await reservationOf(prefix, 0);
  t.is(last.holder, 'a');
  t.true(last.until >= a.reserved.at(-1)!, 'etcd holds at least every reservation a was told about');

  const gap = { reuseGapMs: 4_000 }; // wide enough that the next claim surely lands inside it
  const c = slotClaim(prefix, 'c', gap);
  await c.c.attach(await lease());
  t.is(c.c.slot, 2, 'within the gap slot 0 is skipped');
  const reusableAt = last.until + gap.reuseGapMs;
  t.true(Date.now() < reusableAt, 'that was inside the gap');
  await sleep(Math.max(0, reusableAt - Date.now()) + 50);
  const d = slotClaim(prefix, 'd', gap);
  await d.c.attach(await lease());
  t.is(d.c.slot, 0, 'after the gap the lowest slot is free again');
  t.is(d.grants[0]!.floorMs, last.until + gap.reuseGapMs, 'its floor: the last reservation plus the gap');
  t.true(d.reserved[0]! > d.grants[0]!.floorMs);
});

test('slot claim - reservations follow the clock and what is in use; a request raises one at once; a lapsed lease stops them', async (t) => {
  const prefix = '/s4';
  let inUse = 0;
  const a = slotClaim(prefix, 'a', { reserveAheadMs: 2_000, refreshIntervalMs: 300, inUseUntil: () => inUse });
  const leaseA = await lease();
  await a.c.attach(leaseA);
  await until('refreshes', () => a.reserved.length >= 3);
  const now = Date.now();
  t.true(a.c.reservedUntilMs! >= now + 1_000 && a.c.reservedUntilMs! <= now + 2_000, `about 2 s ahead (${a.c.reservedUntilMs! - now} ms)`);
  for (let i = 1; i < a.reserved.length; i++) t.true(a.reserved[i]! > a.reserved[i - 1]!, 'reservations only grow');

  inUse = Date.now() + 60_000; // values ran a minute ahead (a predecessor's fast clock)
  await until('the reservation covers what is in use', () => (a.c.reservedUntilMs ?? 0) >= inUse + 2_000, 2_000);
  const asked = Date.now() + 120_000;
  const before = performance.now();
  a.c.reserve(asked);
  await until('the requested reservation', () => (a.c.reservedUntilMs ?? 0) >= asked, 2_000);
  t.log(`a requested reservation was acknowledged after ${Math.round(performance.now() - before)} ms`);
  t.is((await reservationOf(prefix, 0)).until, a.c.reservedUntilMs!);

  await revoke(leaseA);
  await sleep(900);
  const stopped = a.reserved.length;
  const kept = await reservationOf(prefix, 0);
  await sleep(900);
  t.is(a.reserved.length, stopped, 'no reservation without our held key');
  t.deepEqual(await reservationOf(prefix, 0), kept, 'and none written');
});

test('slot claim - bound to a membership: the same slot again under a replaced lease; another one if the slot was claimed meanwhile', async (t) => {
  const prefix = '/s5';
  const a = slotClaim(prefix, 'a', { size: 4 });
  const m = new EtcdMembership({ client: createEtcdClient({ hosts: etcd.address }), prefix: '/s5m', ttlSeconds: 2, logger, leaseBound: [a.c] });
  memberships.push(m);
  await m.join({ nodeId: 'a', grpcAddress: '127.0.0.1:1', wsUrl: 'ws://127.0.0.1/a', load: 0, startedAtMs: Date.now() });
  t.is(a.c.slot, 0);
  const held = async () => {
    const kv = await client.get(`${prefix}/held/0`).exec();
    return kv.kvs[0] ? String(kv.kvs[0].lease) : undefined;
  };
  const firstLease = await held();
  t.truthy(firstLease, 'held under the membership lease');

  // etcd forgets the lease (as after its expiry): the membership re-registers under a new one,
  // and the claim takes slot 0 back without a new grant.
  await revoke(firstLease!);
  await until('slot 0 held under a new lease', async () => {
    const l = await held();
    return l !== undefined && l !== firstLease;
  });
  t.is(a.c.slot, 0);
  t.is(a.grants.length, 1, 'no new claim: values go on where they were');
  const count = a.reserved.length;
  await until('reservations resume', () => a.reserved.length > count + 1, 3_000);

  // Now the slot is lost for good: its lease lapses, the gap passes, someone else claims it.
  await m.leave();
  const last = await reservationOf(prefix, 0);
  await sleep(Math.max(0, last.until + 1_500 - Date.now()) + 50);
  const b = slotClaim(prefix, 'b', { size: 4 });
  await b.c.attach(await lease());
  t.is(b.c.slot, 0);
  // a registers again (a restart of its membership under the same claim object).
  await a.c.attach(await lease());
  t.is(a.c.slot, 1, 'a new slot');
  t.is(a.grants.length, 2);
});

test('slot claim - at the limit of 1024 slots: the last one is claimed, the next claim is refused', async (t) => {
  const prefix = '/s6';
  const shared = await lease(120);
  const started = Date.now();
  // Fill 0..1022 by wanted slot (one claim each), leaving 1023 to the automatic claim.
  for (let i = 0; i < 1023; i += 64) {
    await Promise.all(
      Array.from({ length: Math.min(64, 1023 - i) }, (_, k) => {
        const x = new EtcdSlotClaim({ client, prefix, holder: `f${i + k}`, size: 1024, wanted: i + k, reuseGapMs: 10_000, reserveAheadMs: 60_000, refreshIntervalMs: 30_000 });
        claims.push(x);
        return x.attach(shared);
      }),
    );
  }
  t.log(`1023 slots claimed in ${Date.now() - started} ms`);
  const last = slotClaim(prefix, 'last', { size: 1024 });
  await last.c.attach(shared);
  t.is(last.c.slot, 1023, 'the last slot');
  const past = slotClaim(prefix, 'past', { size: 1024 });
  const err = await t.throwsAsync(() => past.c.attach(shared), { instanceOf: SlotClaimError });
  t.is(err?.code, 'SLOTS_EXHAUSTED');
  t.deepEqual([err?.details.size, err?.details.held, err?.details.cooling], [1024, 1024, 0]);
  t.throws(() => slotClaim(prefix, 'bad', { size: 1024, wanted: 1024 }), { instanceOf: RangeError });
});

test('slot claim - bound to a membership: a refused claim fails the join, and no member record is written', async (t) => {
  const prefix = '/s8';
  const holder = slotClaim(prefix, 'n1', { wanted: 1 });
  await holder.c.attach(await lease());
  const refused = slotClaim(prefix, 'n9', { wanted: 1 });
  const m = new EtcdMembership({ client: createEtcdClient({ hosts: etcd.address }), prefix: '/s8m', ttlSeconds: 2, logger, leaseBound: [refused.c] });
  memberships.push(m);
  const err = await t.throwsAsync(() => m.join({ nodeId: 'n9', grpcAddress: '127.0.0.1:1', wsUrl: 'ws://127.0.0.1/n9', load: 0, startedAtMs: Date.now() }));
  t.is((err as { code?: string }).code, 'JOIN_FAILED');
  const cause = (err as { cause?: unknown }).cause;
  t.true(cause instanceof SlotClaimError && cause.code === 'SLOT_HELD' && cause.details.holder === 'n1', 'the cause names the holder');
  t.is(await client.get('/s8m/members/n9').string(), null, 'not registered');
  t.is(refused.grants.length, 0);
});
