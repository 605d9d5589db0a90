/**
 * The storage contract against a real Cassandra 5.0 (one node per test file, started from
 * Maven Central's jars by services), plus what only a networked engine has: a crash
 * between the commit and the event write, and the cluster going away and coming back.
 */
import test, { type ExecutionContext } from 'ava';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import { CodedError } from '../../runtime/errors.ts';
import { silentLogger } from '../../runtime/log.ts';
import { findFreePort, startCassandra, type RunningService } from '../../services/index.ts';
import { CassandraStore, type CassandraStoreOptions } from '../../runtime/storage/cassandra/cassandra-store.ts';
import { openStore } from '../../runtime/storage/open-store.ts';
import { StoreCodes } from '../../runtime/storage/store.ts';
import { runStoreContract, textual, type TextEvent, type TextJournal } from './contract.ts';

/** Small buckets, so that the contract's 25-event journals cross several partitions. */
const BUCKET_SIZE = 7;
const KEYSPACE = `parley_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const READ_TIMEOUT_MS = 5_000;

let dataDir = '';
let port = 0;
let node: RunningService | undefined;

function options(extra: Partial<CassandraStoreOptions> = {}): CassandraStoreOptions {
  return {
    contactPoints: [`127.0.0.1:${port}`],
    localDataCenter: 'datacenter1',
    keyspace: KEYSPACE,
    replication: { class: 'simple', replicationFactor: 1 },
    bucketSize: BUCKET_SIZE,
    readTimeoutMs: READ_TIMEOUT_MS,
    connectTimeoutMs: 2_000,
    log: silentLogger(),
    ...extra,
  };
}

test.before(async (t) => {
  // A first run installs Cassandra from Maven Central, which takes minutes, not seconds.
  t.timeout(20 * 60_000, 'installing and starting Cassandra');
  dataDir = mkdtempSync(join(tmpdir(), 'parley-cassandra-'));
  port = await findFreePort();
  node = await startCassandra({ dataDir, port });
  // Applies the schema once, so the tests' own opens find it in place instead of queuing on the lock.
  const store = await CassandraStore.open(options());
  await store.close();
});

test.after.always(async () => {
  await node?.stop({ graceMs: 0 });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

runStoreContract('cassandra', () => CassandraStore.open(options()), { reopen: () => CassandraStore.open(options()) });

// ---- The races the append protocol claims to close (see the header of cassandra-store.ts)

/** Two store objects are two processes as far as the protocol goes: nothing is shared but Cassandra. */
async function twoStores(t: ExecutionContext, faultsOfA: CassandraStoreOptions['faults'] = {}): Promise<[TextJournal, TextJournal]> {
  const a = await CassandraStore.open(options({ faults: faultsOfA }));
  const b = await CassandraStore.open(options());
  t.teardown(() => a.close());
  t.teardown(() => b.close());
  return [textual(a.journal), textual(b.journal)];
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

test('cassandra race: two activations writing at once; every acked append of either is kept, in order, and the older one stops', async (t) => {
  const pid = `race/${randomUUID()}`;
  const [a, b] = await twoStores(t);
  const epochA = await a.acquire(pid, 'a');
  const ackedA: number[] = [];
  let headA = 0;
  let fencedA = false;
  // A appends as fast as it can; B acquires in the middle of it and appends too.
  const writerA = (async () => {
    for (let i = 0; i < 60 && !fencedA; i++) {
      try {
        await a.append(pid, epochA, events(headA + 1, 2, (s) => ({ data: `a${s}` })));
        headA += 2;
        ackedA.push(headA - 1, headA);
      } catch (err) {
        t.is((err as CodedError).code, StoreCodes.FENCED);
        fencedA = true;
      }
    }
  })();
  await sleep(40);
  const epochB = await b.acquire(pid, 'b');
  const headB = await b.highestSeq(pid);
  await b.append(pid, epochB, events(headB + 1, 3, (s) => ({ data: `b${s}` })));
  await writerA;
  t.true(fencedA, 'the older activation was told it is fenced');
  const all = await a.read(pid, 0, 1_000);
  t.deepEqual(all.map((e) => e.seq), Array.from({ length: headB + 3 }, (_, i) => i + 1), 'gap-free');
  for (const seq of ackedA) t.is(all[seq - 1]!.data, `a${seq}`, `A's acked seq ${seq} is kept`);
  t.deepEqual(all.slice(headB).map((e) => e.data), [`b${headB + 1}`, `b${headB + 2}`, `b${headB + 3}`]);
  t.true(all.slice(0, headB).every((e) => e.data.startsWith('a')), "before B's head only A's events");
});

test("cassandra race: a writer paused before its write and resumed after a new owner's claim writes nothing anyone can read", async (t) => {
  const pid = `race/${randomUUID()}`;
  let pause: ReturnType<typeof gate> | undefined;
  const paused = gate();
  const [a, b] = await twoStores(t, {
    beforeWrite: async () => {
      if (!pause) return;
      paused.open();
      await pause.wait;
    },
  });
  const epochA = await a.acquire(pid, 'a');
  await a.append(pid, epochA, events(1, 5));
  pause = gate();
  // Five events, crossing a bucket (7 per bucket), held just before they are written.
  const stale = a.append(pid, epochA, events(6, 5, (s) => ({ data: `stale${s}`, key: BigInt(100_000 + s), dedupKey: `stale-${s}` })));
  await paused.wait;
  const epochB = await b.acquire(pid, 'b');
  await b.append(pid, epochB, [{ seq: 6, data: 'b6', key: 6_000n }]);
  pause.open(); // resumed long after its lease would have run out: its cells land now
  await t.throwsAsync(stale, { instanceOf: CodedError, code: StoreCodes.FENCED });
  t.deepEqual((await b.read(pid, 0, 100)).map((e) => e.data), [...events(1, 5).map((e) => e.data), 'b6'], 'nothing past B\'s head, in either bucket');
  t.is(await b.highestSeq(pid), 6);
  t.deepEqual((await b.readBefore(pid, undefined, 10)).map((e) => e.seq), [6, 5, 4, 3, 2, 1], 'no index row of the stale append is read');
  // Its dedup keys are free: the resend goes to the new owner and is stored once.
  t.deepEqual(await b.append(pid, epochB, [{ seq: 7, data: 'resent', dedupKey: 'stale-6' }]), { ok: true });
  await b.append(pid, epochB, events(8, 8));
  t.deepEqual((await b.read(pid, 0, 100)).map((e) => e.seq), Array.from({ length: 15 }, (_, i) => i + 1));
  t.false((await b.read(pid, 0, 100)).some((e) => e.data.startsWith('stale')));
});

test('cassandra race: a writer paused between its write and its check is fenced; the new owner kept what it wrote', async (t) => {
  const pid = `race/${randomUUID()}`;
  let pause: ReturnType<typeof gate> | undefined;
  const paused = gate();
  const [a, b] = await twoStores(t, {
    afterWrite: async () => {
      if (!pause) return;
      paused.open();
      await pause.wait;
    },
  });
  const epochA = await a.acquire(pid, 'a');
  await a.append(pid, epochA, events(1, 2));
  pause = gate();
  const unacked = a.append(pid, epochA, [{ seq: 3, data: 'written, never acked', dedupKey: 'req-3' }]);
  await paused.wait;
  const epochB = await b.acquire(pid, 'b');
  pause.open();
  await t.throwsAsync(unacked, { code: StoreCodes.FENCED });
  // Its outcome was unknown to A; B found it, so a resend is answered from the journal.
  t.is(await b.highestSeq(pid), 3);
  t.deepEqual(await b.append(pid, epochB, [{ seq: 4, data: 'resend', dedupKey: 'req-3' }]), {
    ok: false,
    duplicates: [{ seq: 3, data: 'written, never acked', dedupKey: 'req-3' }],
  });
  await t.throwsAsync(a.append(pid, epochA, events(4, 1)), { code: StoreCodes.FENCED });
  await b.append(pid, epochB, events(4, 1));
  t.deepEqual((await a.read(pid, 0, 10)).map((e) => e.seq), [1, 2, 3, 4]);
});

test('cassandra race: a timeout with unknown outcome; the same store settles it before it reads or appends, and never writes other events at its seqs', async (t) => {
  const pid = `race/${randomUUID()}`;
  let lose = false;
  const [a, b] = await twoStores(t, {
    afterWrite: async () => {
      if (lose) throw new Error('answer lost');
    },
  });
  const epoch = await a.acquire(pid, 'a');
  await a.append(pid, epoch, events(1, 6));
  lose = true;
  // Crosses a bucket boundary (seq 7 starts bucket 1): two partitions.
  await t.throwsAsync(a.append(pid, epoch, events(7, 3)), { code: StoreCodes.UNAVAILABLE });
  lose = false;
  t.deepEqual(await a.read(pid, 0, 100), events(1, 9), 'taken as written');
  // Other events at those seqs would mix with its cells: refused.
  await t.throwsAsync(a.append(pid, epoch, events(7, 1, () => ({ data: 'other' }))), { code: StoreCodes.SEQ_CONFLICT });
  await a.append(pid, epoch, events(10, 1));
  t.is(await b.highestSeq(pid), 10);
  // A new owner after a lost answer sees the same journal.
  lose = true;
  await t.throwsAsync(a.append(pid, epoch, events(11, 2)), { code: StoreCodes.UNAVAILABLE });
  const next = await b.acquire(pid, 'b');
  t.deepEqual((await b.read(pid, 0, 100)).map((e) => e.seq), Array.from({ length: 12 }, (_, i) => i + 1));
  await b.append(pid, next, events(13, 1));
  t.deepEqual((await b.readBefore(pid, undefined, 100)).map((e) => e.seq), Array.from({ length: 13 }, (_, i) => 13 - i));
});

test('cassandra writers: a takeover revokes the one pid it took; the old writer keeps appending to its others', async (t) => {
  const [p, q] = [`rev/${randomUUID()}`, `rev/${randomUUID()}`];
  const [a, b] = await twoStores(t);
  const [ap, aq] = [await a.acquire(p, 'a'), await a.acquire(q, 'a')];
  await a.append(p, ap, events(1, 2));
  await a.append(q, aq, events(1, 2));
  const bp = await b.acquire(p, 'b');
  await t.throwsAsync(a.append(p, ap, events(3, 1)), { code: StoreCodes.FENCED });
  await a.append(q, aq, events(3, 1));
  await b.append(p, bp, events(3, 1, () => ({ data: 'b' })));
  // Taken back: now b's epoch is the revoked one, and a writes on.
  const ap2 = await a.acquire(p, 'a');
  await t.throwsAsync(b.append(p, bp, events(4, 1)), { code: StoreCodes.FENCED });
  await a.append(p, ap2, events(4, 1));
  t.deepEqual((await b.read(p, 0, 10)).map((e) => e.data), ['e1', 'e2', 'b', 'e4']);
  t.deepEqual((await b.read(q, 0, 10)).map((e) => e.seq), [1, 2, 3]);
  // A revocation a writer has seen is removed from its row, so its checks stay small.
  await a.append(q, aq, events(4, 1));
  await waitFor(async () => (await revokedOf(p)) === 0);
});

test('cassandra writers: a revocation seen once holds for an append still on its way after the row forgot it', async (t) => {
  const [p, q] = [`late/${randomUUID()}`, `late/${randomUUID()}`];
  const paused = gate();
  const reached = gate();
  let hold = false;
  const [a, b] = await twoStores(t, {
    afterWrite: async (pid) => {
      if (hold && pid === p) {
        reached.open();
        await paused.wait;
      }
    },
  });
  const [ap, aq] = [await a.acquire(p, 'a'), await a.acquire(q, 'a')];
  await a.append(p, ap, events(1, 1));
  await b.acquire(p, 'b');
  hold = true;
  // p's append has written and waits before its check; q's check meanwhile sees p revoked, and
  // the revocation is then removed from a's row.
  const late = a.append(p, ap, events(2, 1));
  await reached.wait;
  await a.append(q, aq, events(1, 1));
  await waitFor(async () => (await revokedOf(p)) === 0);
  paused.open();
  await t.throwsAsync(late, { code: StoreCodes.FENCED });
});

test('cassandra writers: a released epoch is refused to its writer, and the next owner revokes nothing', async (t) => {
  const pid = `rel/${randomUUID()}`;
  const [a, b] = await twoStores(t);
  const epoch = await a.acquire(pid, 'a');
  await a.append(pid, epoch, events(1, 3));
  await a.release(pid, epoch);
  await t.throwsAsync(a.append(pid, epoch, events(4, 1)), { code: StoreCodes.FENCED });
  // A stale release is ignored.
  await a.release(pid, epoch - 1);
  const next = await b.acquire(pid, 'b');
  t.is(await revokedOf(pid), 0);
  await b.append(pid, next, events(4, 2));
  t.deepEqual((await a.read(pid, 0, 10)).map((e) => e.seq), [1, 2, 3, 4, 5]);
});

test('cassandra writers: one store checks many pids\' appends at once, each with its own verdict', async (t) => {
  const [a, b] = await twoStores(t);
  const pids = Array.from({ length: 20 }, () => `many/${randomUUID()}`);
  const epochs = await Promise.all(pids.map((pid) => a.acquire(pid, 'a')));
  await Promise.all(pids.map((pid, i) => a.append(pid, epochs[i]!, events(1, 1))));
  // Half are taken over; the next round of appends, all at once, splits exactly along that line.
  const taken = new Set(pids.filter((_, i) => i % 2 === 0));
  await Promise.all([...taken].map((pid) => b.acquire(pid, 'b')));
  const results = await Promise.allSettled(pids.map((pid, i) => a.append(pid, epochs[i]!, events(2, 1))));
  t.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as CodedError).code)),
    pids.map((pid) => (taken.has(pid) ? StoreCodes.FENCED : 'ok')),
  );
});

test('cassandra writers: an append cut between its events and its dedup rows is repaired by the next acquire', async (t) => {
  const pid = `cut/${randomUUID()}`;
  const [a, b] = await twoStores(t);
  const epoch = await a.acquire(pid, 'a');
  await a.append(pid, epoch, events(1, 2, (s) => ({ dedupKey: `k${s}` })));
  await a.append(pid, epoch, events(3, 3, (s) => ({ dedupKey: `k${s}` })));
  // What a writer that died mid-batch leaves: the last append's events without their dedup rows
  // (the deletion carries the writer's own timestamp, 2^52 + 2E + 1, so it wins over its rows).
  await raw(async (client) => {
    for (const key of ['k3', 'k4', 'k5']) {
      await client.execute(`DELETE FROM ${KEYSPACE}.dedup USING TIMESTAMP ? WHERE pid = ? AND dedup_key = ?`, [BigInt(2 ** 52 + 2 * epoch + 1), pid, key], { prepare: true });
    }
  });
  const next = await b.acquire(pid, 'b');
  const again = await b.append(pid, next, events(6, 2, (s) => ({ dedupKey: s === 6 ? 'k4' : 'k1' })));
  t.false(again.ok);
  t.deepEqual(again.ok ? [] : again.duplicates.map((e) => e.seq), [4, 1]);
  t.is(await b.highestSeq(pid), 5);
});

async function raw<T>(use: (client: cassandra.Client) => Promise<T>): Promise<T> {
  const client = new cassandra.Client({ contactPoints: [`127.0.0.1:${port}`], localDataCenter: 'datacenter1', encoding: { useBigIntAsLong: true } });
  try {
    return await use(client);
  } finally {
    await client.shutdown();
  }
}

/** Entries naming `pid` in any writer's revoked map. */
async function revokedOf(pid: string): Promise<number> {
  const rs = await raw((client) => client.execute(`SELECT revoked FROM ${KEYSPACE}.writers`));
  return rs.rows.filter((r) => r['revoked'] && Object.keys(r['revoked'] as object).includes(pid)).length;
}

async function waitFor(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('cassandra: openStore opens a cassandra:// URL', async (t) => {
  const store = await openStore(`cassandra://127.0.0.1:${port}/${KEYSPACE}?dc=datacenter1&consistency=LOCAL_QUORUM&replication=simple:1`, { log: silentLogger() });
  t.teardown(() => store.close());
  t.regex(store.describe, /^cassandra:\/\/127\.0\.0\.1:\d+\/parley_test_\w+\?dc=datacenter1&consistency=LOCAL_QUORUM/);
  const pid = `url/${randomUUID()}`;
  const epoch = await textual(store.journal).acquire(pid, 'n');
  await textual(store.journal).append(pid, epoch, events(1, 9));
  // The bucket size comes from the keyspace, not from the URL that left it out.
  t.deepEqual((await textual(store.journal).read(pid, 6, 10)).map((e) => e.seq), [7, 8, 9]);
  await t.throwsAsync(
    openStore(`cassandra://127.0.0.1:${port}/${KEYSPACE}?dc=datacenter1&bucket=100`, { log: silentLogger() }),
    { code: 'CONFIG' },
  );
});

// ---- The cluster goes away and comes back

test.serial('cassandra: an outage rejects with UNAVAILABLE promptly, and the same store works again after a restart', async (t) => {
  t.timeout(10 * 60_000, 'restarting Cassandra');
  const store = await CassandraStore.open(options());
  t.teardown(() => store.close());
  const pids = Array.from({ length: 8 }, () => `outage/${randomUUID()}`);
  const epochs = await Promise.all(pids.map((pid) => textual(store.journal).acquire(pid, 'node')));
  const acked = new Map<string, number[]>(pids.map((pid) => [pid, []]));
  let killedAt = 0;
  const failures: { pid: string; code: string; afterKillMs: number }[] = [];

  // One writer per pid, appending as fast as Cassandra acks, until its first failure.
  const writers = pids.map(async (pid, i) => {
    for (let seq = 1; ; seq++) {
      try {
        await textual(store.journal).append(pid, epochs[i]!, [{ seq, data: `event-${seq}`, key: BigInt(seq), dedupKey: `req-${seq}` }]);
        acked.get(pid)!.push(seq);
      } catch (err) {
        failures.push({ pid, code: (err as CodedError).code, afterKillMs: killedAt ? Date.now() - killedAt : -1 });
        return;
      }
    }
  });
  while ([...acked.values()].reduce((n, a) => n + a.length, 0) < 200) await sleep(20);
  const oldNode = node!;
  killedAt = Date.now();
  await oldNode.stop({ graceMs: 0 }); // SIGKILL, by the pid the service handle recorded
  await Promise.all(writers);
  t.is(failures.length, pids.length);
  for (const f of failures) {
    t.is(f.code, StoreCodes.UNAVAILABLE);
    t.true(f.afterKillMs >= 0 && f.afterKillMs < READ_TIMEOUT_MS + 3_000, `a write failed ${f.afterKillMs} ms after the kill`);
  }

  // Every kind of operation fails the same way, within the driver's timeouts.
  const pid = pids[0]!;
  const table = `outage${randomUUID().slice(0, 8)}`;
  const operations: [string, () => Promise<unknown>][] = [
    ['acquire', () => textual(store.journal).acquire(pid, 'node')],
    // At the next seq (a wrong one is refused here, with no request), with a key to look up.
    ['append', () => textual(store.journal).append(pid, epochs[0]!, [{ seq: acked.get(pid)!.length + 1, data: 'x', dedupKey: 'during-outage' }])],
    ['read', () => textual(store.journal).read(pid, 0, 10)],
    ['readBefore', () => textual(store.journal).readBefore(pid, undefined, 10)],
    ['highestSeq', () => textual(store.journal).highestSeq(pid)],
    ['saveSnapshot', () => textual(store.journal).saveSnapshot(pid, epochs[0]!, { seq: 1, data: 's' })],
    ['loadSnapshot', () => textual(store.journal).loadSnapshot(pid)],
    ['get', () => store.kv.get(table, 'p', 'k')],
    ['list', () => store.kv.list(table, 'p')],
    ['write', () => store.kv.write([{ op: 'put', table, partition: 'p', key: 'k', value: 'v' }])],
    ['putIfAbsent', () => store.kv.putIfAbsent(table, 'p', 'k', 'v')],
  ];
  for (const [name, run] of operations) {
    const started = Date.now();
    const err = await t.throwsAsync(run(), { instanceOf: CodedError }, name);
    const took = Date.now() - started;
    t.is(err?.code, StoreCodes.UNAVAILABLE, name);
    t.true(took < READ_TIMEOUT_MS + 3_000, `${name} took ${took} ms to fail`);
  }

  // Same data dir, same port: the node comes back with everything it acked.
  node = await startCassandra({ dataDir, port });
  const backAt = Date.now();
  for (;;) {
    try {
      await textual(store.journal).highestSeq(pid);
      break;
    } catch (err) {
      t.is((err as CodedError).code, StoreCodes.UNAVAILABLE);
      if (Date.now() - backAt > 60_000) throw err;
      await sleep(250);
    }
  }
  t.log(`store usable again ${Date.now() - backAt} ms after the node answered CQL; failures came ${failures.map((f) => f.afterKillMs).join(', ')} ms after the kill`);

  for (const [i, p] of pids.entries()) {
    const seqs = acked.get(p)!;
    const stored = await textual(store.journal).read(p, 0, 100_000);
    const storedSeqs = new Set(stored.map((e) => e.seq));
    t.true(seqs.every((s) => storedSeqs.has(s)), `every acked append of ${p} survived`);
    t.deepEqual(stored.map((e) => e.seq), Array.from({ length: stored.length }, (_, k) => k + 1), 'gap-free');
    // The failed append may or may not have committed; its dedup key says which, and the same
    // epoch still owns the pid and goes on.
    const next = stored.length + 1;
    const failedSeq = seqs.length + 1;
    if (stored.length >= failedSeq) {
      const again = await textual(store.journal).append(p, epochs[i]!, [{ seq: failedSeq, data: `event-${failedSeq}`, dedupKey: `req-${failedSeq}` }]);
      t.false(again.ok);
    }
    await textual(store.journal).append(p, epochs[i]!, [{ seq: next, data: 'after the outage' }]);
    t.is(await textual(store.journal).highestSeq(p), next);
  }
  t.deepEqual(await store.kv.putIfAbsent(table, 'p', 'k', 'v'), { created: true, value: 'v' });
});

function events(from: number, count: number, make: (seq: number) => Partial<TextEvent> = () => ({})): TextEvent[] {
  return Array.from({ length: count }, (_, i) => ({ seq: from + i, data: `e${from + i}`, key: BigInt(from + i) * 1000n, ...make(from + i) }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
