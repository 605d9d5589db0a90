/**
 * The storage contract against a real Cassandra 5.0 (one node per test file, started from
 * Maven Central's jars by services), plus what only a networked engine has: a crash
 * between the commit and the event write, and the cluster going away and coming back.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodedError } from '../../runtime/errors.ts';
import { silentLogger } from '../../runtime/log.ts';
import { findFreePort, startCassandra, type RunningService } from '../../services/index.ts';
import { CassandraStore, type CassandraStoreOptions } from '../../runtime/storage/cassandra/cassandra-store.ts';
import { openStore } from '../../runtime/storage/open-store.ts';
import { StoreCodes } from '../../runtime/storage/store.ts';
import { runStoreContract, textual } from './contract.ts';

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

// ---- Crash between the head commit and the event write

test('cassandra: an append whose writer died after the commit is rolled forward, never left as a hole', async (t) => {
  const pid = `crash/${randomUUID()}`;
  let die = false;
  const dying = await CassandraStore.open(options({ faults: { afterCommit: async () => { if (die) throw new Error('writer died'); } } }));
  t.teardown(() => dying.close());
  const epoch = await textual(dying.journal).acquire(pid, 'dying');
  await textual(dying.journal).append(pid, epoch, events(1, 3));
  die = true;
  // Committed in the head row, never written to the journal: the writer "died" in between.
  await t.throwsAsync(textual(dying.journal).append(pid, epoch, events(4, 2)), { instanceOf: CodedError, code: StoreCodes.UNAVAILABLE });

  const other = await CassandraStore.open(options());
  t.teardown(() => other.close());
  // A reader elsewhere sees a prefix, never a hole, and no event that is not there.
  t.deepEqual((await textual(other.journal).read(pid, 0, 100)).map((e) => e.seq), [1, 2, 3]);
  // The next owner acquires first, which writes the committed events before it returns.
  const next = await textual(other.journal).acquire(pid, 'next');
  t.deepEqual(await textual(other.journal).read(pid, 0, 100), events(1, 5));
  t.is(await textual(other.journal).highestSeq(pid), 5);
  await t.throwsAsync(textual(other.journal).append(pid, next, events(5, 1)), { code: StoreCodes.SEQ_CONFLICT });
  await textual(other.journal).append(pid, next, events(6, 1));
  t.deepEqual((await textual(other.journal).readBefore(pid, undefined, 100)).map((e) => e.seq), [6, 5, 4, 3, 2, 1]);
  // And the writer that died is fenced like any older owner.
  await t.throwsAsync(textual(dying.journal).append(pid, epoch, events(7, 1)), { code: StoreCodes.FENCED });
});

test('cassandra: after a failed event write the same store rolls forward before it reads or appends', async (t) => {
  const pid = `crash/${randomUUID()}`;
  let fail = false;
  const store = await CassandraStore.open(options({ faults: { afterCommit: async () => { if (fail) throw new Error('write failed'); } } }));
  t.teardown(() => store.close());
  const epoch = await textual(store.journal).acquire(pid, 'a');
  await textual(store.journal).append(pid, epoch, events(1, 6));
  fail = true;
  // Crosses a bucket boundary (seq 7 starts bucket 1), so the roll-forward writes two partitions.
  await t.throwsAsync(textual(store.journal).append(pid, epoch, events(7, 3)), { code: StoreCodes.UNAVAILABLE });
  fail = false;
  t.deepEqual(await textual(store.journal).read(pid, 0, 100), events(1, 9));
  await textual(store.journal).append(pid, epoch, events(10, 1));
  t.is(await textual(store.journal).highestSeq(pid), 10);
});

test('cassandra: highestSeq never reports a seq that read cannot return', async (t) => {
  const pid = `crash/${randomUUID()}`;
  const dying = await CassandraStore.open(options({ faults: { afterCommit: async () => { throw new Error('writer died'); } } }));
  t.teardown(() => dying.close());
  const epoch = await textual(dying.journal).acquire(pid, 'dying');
  await t.throwsAsync(textual(dying.journal).append(pid, epoch, events(1, 2)), { code: StoreCodes.UNAVAILABLE });
  const reader = await CassandraStore.open(options());
  t.teardown(() => reader.close());
  t.is(await textual(reader.journal).highestSeq(pid), 2);
  t.deepEqual(await textual(reader.journal).read(pid, 0, 10), events(1, 2));
});

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
    ['append', () => textual(store.journal).append(pid, epochs[0]!, [{ seq: 1_000_000, data: 'x' }])],
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

function events(from: number, count: number): { seq: number; data: string; key: bigint }[] {
  return Array.from({ length: count }, (_, i) => ({ seq: from + i, data: `e${from + i}`, key: BigInt(from + i) * 1000n }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
