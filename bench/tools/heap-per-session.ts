/**
 * Where a target's memory per idle session goes: starts the server with an inspector, takes a
 * heap snapshot (after a full GC) before and after connecting N authenticated sessions, and
 * prints the growth per session by object type.
 *
 *   node --import tsx bench/tools/heap-per-session.ts --target parley --sessions 2000
 */
import { Command } from 'commander';
import WebSocket from 'ws';
import { killAllSync } from '../lib/children.ts';
import { WorkerPool } from '../lib/pool.ts';
import type { TargetName } from '../lib/protocol.ts';
import { sourceAddresses } from '../lib/scenarios.ts';
import { startTarget } from '../lib/targets.ts';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

async function takeSnapshot(url: string): Promise<Snapshot> {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const chunks: string[] = [];
  let id = 0;
  const call = (method: string, params: object = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      const my = ++id;
      const timer = setTimeout(() => reject(new Error(`${method} timed out`)), 300_000);
      const on = (data: Buffer): void => {
        const m = JSON.parse(data.toString()) as { id?: number };
        if (m.id === my) {
          clearTimeout(timer);
          ws.off('message', on);
          resolve();
        }
      };
      ws.on('message', on);
      ws.send(JSON.stringify({ id: my, method, params }));
    });
  await call('HeapProfiler.enable');
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const collect = (data: Buffer): void => {
    const m = JSON.parse(data.toString()) as { method?: string; params?: { chunk?: string } };
    if (m.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(m.params!.chunk!);
  };
  ws.on('message', collect);
  await call('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false });
  ws.off('message', collect);
  ws.close();
  return JSON.parse(chunks.join('')) as Snapshot;
}

/**
 * Self size and count per "type:name" (constructor for objects). Arrays, closures and contexts
 * have no useful name of their own, so they are keyed by their first retainer instead
 * ("array <- Mailbox.items", "closure <- Activation.reply").
 */
function summarize(s: Snapshot): Map<string, { size: number; count: number }> {
  const meta = s.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const stride = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const fEdges = fields.indexOf('edge_count');
  const eStride = meta.edge_fields.length;
  const eType = meta.edge_fields.indexOf('type');
  const eName = meta.edge_fields.indexOf('name_or_index');
  const eTo = meta.edge_fields.indexOf('to_node');
  const edgeTypes = meta.edge_types[0];
  const count = s.nodes.length / stride;
  const label = (n: number): string => {
    const type = types[s.nodes[n * stride + fType]!]!;
    const raw = s.strings[s.nodes[n * stride + fName]!]!;
    const name = type === 'object' || type === 'native' ? raw : type === 'closure' ? `fn ${raw || '(anonymous)'}` : `(${type})`;
    return name.length > 40 ? name.slice(0, 40) : name;
  };
  // First retainer of every node, skipping weak edges and synthetic roots.
  const retainer = new Int32Array(count).fill(-1);
  const via = new Array<string>(count);
  let e = 0;
  for (let n = 0; n < count; n++) {
    const edges = s.nodes[n * stride + fEdges]!;
    const fromType = types[s.nodes[n * stride + fType]!]!;
    for (let k = 0; k < edges; k++, e += eStride) {
      const to = s.edges[e + eTo]! / stride;
      const et = edgeTypes[s.edges[e + eType]!]!;
      if (et === 'weak' || fromType === 'synthetic' || retainer[to] !== -1) continue;
      retainer[to] = n;
      const nm = s.edges[e + eName]!;
      via[to] = et === 'element' || et === 'hidden' ? `[${et}]` : String(s.strings[nm] ?? nm);
    }
  }
  const out = new Map<string, { size: number; count: number }>();
  for (let n = 0; n < count; n++) {
    const type = types[s.nodes[n * stride + fType]!]!;
    let key: string;
    if (type === 'array' || type === 'closure' || (type === 'object' && label(n) === 'system / Context')) {
      const r = retainer[n]!;
      let owner = r >= 0 ? label(r) : '?';
      // An array held by an array (a Map's table, a context's slots): name the holder's holder.
      if (r >= 0 && types[s.nodes[r * stride + fType]!] === 'array' && retainer[r]! >= 0) owner = `${label(retainer[r]!)}.${via[r]}>`;
      key = `${type === 'object' ? 'context' : type} <- ${owner}.${via[n] ?? '?'}`;
    } else {
      key = `${type}:${label(n)}`;
    }
    const x = out.get(key) ?? { size: 0, count: 0 };
    x.size += s.nodes[n * stride + fSize]!;
    x.count++;
    out.set(key, x);
  }
  return out;
}

async function main(): Promise<void> {
  const o = new Command('heap-per-session')
    .option('--target <t>', 'parley | socketio | uws-raw', 'parley')
    .option('--sessions <n>', 'sessions to connect', (v) => Number(v), 2000)
    .option('--top <n>', 'rows to print', (v) => Number(v), 25)
    .option('--parleyd-entry <file>', 'Parley entry point (e.g. bench/.build/parleyd.mjs)')
    .parse(process.argv)
    .opts<{ target: TargetName; sessions: number; top: number; parleydEntry?: string }>();
  const t = await startTarget(o.target, {
    users: o.target === 'parley' ? o.sessions : 0,
    durability: 'os',
    inspect: true,
    ...(o.parleydEntry ? { parleydEntry: o.parleydEntry } : {}),
  });
  try {
    await new Promise((r) => setTimeout(r, 1_000));
    if (!t.inspectorUrl) throw new Error('no inspector URL from the server');
    const before = summarize(await takeSnapshot(t.inspectorUrl));
    const conns = Array.from({ length: o.sessions }, (_, i) => (t.users[i] ? { token: t.users[i]!.token, user: t.users[i]!.username } : { user: `u${i}` }));
    const { pool, connect } = await WorkerPool.start({
      target: o.target,
      url: t.wsBase,
      workers: 1,
      sources: sourceAddresses(o.sessions),
      conns,
      groups: [],
      connectConcurrency: 256,
      connectTimeoutMs: 30_000,
      heartbeatMs: 5_000,
      textBytes: 64,
      ackEvery: 32,
    });
    await new Promise((r) => setTimeout(r, 6_000));
    const after = summarize(await takeSnapshot(t.inspectorUrl));
    await pool.close();
    const n = connect.connected;
    const rows = [...after].map(([k, a]) => {
      const b = before.get(k) ?? { size: 0, count: 0 };
      return { k, bytes: (a.size - b.size) / n, count: (a.count - b.count) / n };
    });
    rows.sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((s, r) => s + r.bytes, 0);
    process.stdout.write(`${o.target}: ${n} sessions; JS heap growth ${total.toFixed(0)} bytes/session (self sizes, after full GC)\n`);
    process.stdout.write(`${'bytes/session'.padStart(14)} ${'objects/session'.padStart(16)}  type:name\n`);
    for (const r of rows.slice(0, o.top)) process.stdout.write(`${r.bytes.toFixed(1).padStart(14)} ${r.count.toFixed(2).padStart(16)}  ${r.k}\n`);
  } finally {
    await t.stop();
    WorkerPool.dropSpares();
  }
}

main()
  .then(() => {
    killAllSync();
    process.exit(0);
  })
  .catch((err: unknown) => {
    process.stderr.write(`heap-per-session: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllSync();
    process.exit(1);
  });
