/**
 * Journal append cost of a store engine: the latency of single appends one after another (what
 * one actor sees), then appends/s with many actors writing at once (what a node sees).
 *
 * Run: node --import tsx bench/store.bench.ts --store URL [--single 1000] [--pids 1000]
 *        [--seconds 10] [--bytes 200] [--no-dedup]
 * URL: sqlite:/tmp/bench/parley.db, or
 *      cassandra://127.0.0.1:9042/parley_bench?dc=datacenter1&consistency=LOCAL_QUORUM&replication=simple:1
 * Every run writes under fresh persistence ids, so runs can share a database.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { silentLogger } from '../runtime/log.ts';
import { openStore } from '../runtime/storage/open-store.ts';
import type { Journal, JournalEvent } from '../runtime/storage/journal.ts';

const { values } = parseArgs({
  options: {
    store: { type: 'string' },
    single: { type: 'string', default: '1000' },
    pids: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    bytes: { type: 'string', default: '200' },
    // Without dedup keys an append is one Paxos round fewer on Cassandra: shows what they cost.
    'no-dedup': { type: 'boolean', default: false },
  },
});
if (!values.store) {
  console.error('usage: node --import tsx bench/store.bench.ts --store URL [--single N] [--pids N] [--seconds S] [--bytes B]');
  process.exit(2);
}
const singleCount = Number(values.single);
const pidCount = Number(values.pids);
const seconds = Number(values.seconds);
const payload = Buffer.from('x'.repeat(Number(values.bytes)));
const dedup = !values['no-dedup'];
const run = randomUUID().slice(0, 8);

interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

function summarize(latencies: number[]): Summary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  return { count: sorted.length, p50: round(at(0.5)), p99: round(at(0.99)), p999: round(at(0.999)), max: round(sorted[sorted.length - 1] ?? 0) };
}

/** A chat-message-like event: a payload, a time-sortable key and a dedup key. */
function event(seq: number): JournalEvent {
  return { seq, data: payload, key: BigInt(Date.now()) * 4096n + BigInt(seq % 4096), ...(dedup ? { dedupKey: `client-${seq}` } : {}) };
}

async function singleAppends(journal: Journal): Promise<Summary> {
  const pid = `bench-${run}/single`;
  const epoch = await journal.acquire(pid, 'bench');
  // Warm-up: connections, prepared statements, JIT.
  for (let seq = 1; seq <= 50; seq++) await journal.append(pid, epoch, [event(seq)]);
  const latencies: number[] = [];
  for (let seq = 51; seq < 51 + singleCount; seq++) {
    const started = performance.now();
    await journal.append(pid, epoch, [event(seq)]);
    latencies.push(performance.now() - started);
  }
  return summarize(latencies);
}

async function concurrentAppends(journal: Journal): Promise<{ perSecond: number; latency: Summary; errors: number }> {
  const pids = Array.from({ length: pidCount }, (_, i) => `bench-${run}/actor-${i}`);
  const epochs: number[] = [];
  // Acquired in waves, as actors activate over time rather than all in one instant.
  for (let i = 0; i < pids.length; i += 100) epochs.push(...(await Promise.all(pids.slice(i, i + 100).map((pid) => journal.acquire(pid, 'bench')))));
  const latencies: number[] = [];
  let appended = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    pids.map(async (pid, i) => {
      for (let seq = 1; performance.now() < deadline; seq++) {
        const t0 = performance.now();
        try {
          await journal.append(pid, epochs[i]!, [event(seq)]);
          appended++;
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
          return;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { perSecond: Math.round(appended / elapsed), latency: summarize(latencies), errors };
}

const store = await openStore(values.store, { log: silentLogger() });
try {
  console.log(`store: ${store.describe}`);
  const single = await singleAppends(store.journal);
  console.log(`single appends (${single.count}, sequential, ${payload.length} B, ${dedup ? 'with' : 'without'} dedup key): p50 ${single.p50} ms, p99 ${single.p99} ms, p99.9 ${single.p999} ms, max ${single.max} ms`);
  const load = await concurrentAppends(store.journal);
  console.log(
    `${pidCount} pids appending concurrently for ${seconds} s: ${load.perSecond.toLocaleString('en-US')} appends/s ` +
      `(latency p50 ${load.latency.p50} ms, p99 ${load.latency.p99} ms, max ${load.latency.max} ms; errors ${load.errors})`,
  );
  console.log(JSON.stringify({ store: store.describe, dedup, single, concurrent: { pids: pidCount, seconds, ...load } }));
} finally {
  await store.close();
}
