/**
 * Placement throughput: `ownerOf(identity, nodeIds)` and a prebuilt `HashRing` at 3, 10 and
 * 100 members. Run: node --import tsx bench/hash-ring.bench.ts
 */
import { HashRing, ownerOf } from '../runtime/cluster/hash-ring.ts';

const DURATION_MS = Number(process.env.BENCH_MS ?? 1000);
const identities = Array.from({ length: 10_000 }, (_, i) => `kind-${i % 5}/key-${i}`);

function measure(label: string, place: (identity: string) => string | undefined): void {
  // Warm up so the JIT has settled before the timed loop.
  for (const id of identities) place(id);
  let ops = 0;
  let sink = 0;
  const start = performance.now();
  while (performance.now() - start < DURATION_MS) {
    for (const id of identities) if (place(id) !== undefined) sink++;
    ops += identities.length;
  }
  const seconds = (performance.now() - start) / 1000;
  if (sink !== ops) throw new Error('placement returned undefined');
  console.log(`${label.padEnd(28)} ${Math.round(ops / seconds).toLocaleString('en-US').padStart(12)} ops/s`);
}

for (const members of [3, 10, 100]) {
  const nodeIds = Array.from({ length: members }, (_, i) => `node-${i}-${(i * 40503) >>> 0}`);
  const ring = new HashRing(nodeIds);
  measure(`ownerOf, ${members} members`, (id) => ownerOf(id, nodeIds));
  measure(`HashRing, ${members} members`, (id) => ring.ownerOf(id));
}
