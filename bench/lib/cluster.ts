/**
 * A Parley cluster on this box as one benchmark target, the way the project's own tests and
 * `npm run cluster:dev` build one (test/support/cluster.ts, bin/cluster-dev.ts):
 *
 * - one private etcd on free loopback ports, started with services (startEtcd), in a
 *   temp dir, killed by pid on the way out (and by a watchdog if the harness dies);
 * - K parleyd processes (node ids n1..nK, node numbers 1..K), each with its own data dir and a
 *   gRPC port of the OS's choosing, all with `--etcd`, one `--cluster-prefix`, and ONE shared
 *   SQLite file (`--store sqlite:<dir>/shared/parley.db`, the one-box cluster mode);
 * - one signing secret for all of them through `--secret-file` (so provisioning can sign tokens
 *   before any node runs);
 * - users provisioned once, before the nodes start, by `parleyctl users provision` into the shared
 *   store with the same secret file; their tokens are used as parleyctl made them, and proved
 *   with a real hello on a real node (an extra probe user) before any measurement.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import WebSocket from 'ws';
import { findFreePort, startEtcd, type RunningService } from '../../services/index.ts';
import { spawnTracked, stopChild, trackPid, untrackPid } from './children.ts';
import { encodeHello, newScan, scanServerFrame, ServerBody } from './parley-wire.ts';
import { keepLog, NODE_ARGS, nodeHandle, ROOT, runParleyctl, waitForPort, type NodeHandle, type ProvisionedUser, type ServerLog, type TargetHandle, type TargetOptions } from './targets.ts';
import { PARLEYD_NODE_ARGS } from '../../bin/parleyd-node-args.ts';
import type { ChildProcess } from 'node:child_process';

export const CLUSTER_PREFIX = '/parley-bench';
/** parleyd processes booting at once (tsx compiles on start; the box has 2 cores). */
const START_CONCURRENCY = 2;

/** Sends hello with `token` to a node; resolves with the welcome's node id, or rejects with the refusal. */
export function helloProbe(wsBase: string, token: string, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase}/v1/ws`, { perMessageDeflate: false });
    const scan = newScan();
    const timer = setTimeout(() => finish(new Error(`no answer to hello within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    const finish = (err: Error | undefined, nodeId?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        ws.close(1000);
      } catch {
        ws.terminate();
      }
      if (err) reject(err);
      else resolve(nodeId ?? '');
    };
    ws.on('open', () => ws.send(encodeHello(token, 'bench-probe')));
    ws.on('message', (data: Buffer) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      scanServerFrame(buf, scan);
      if (scan.body === ServerBody.welcome) {
        // The welcome's last string field is the node id; read it loosely for the log.
        const m = /(n\d+)$/.exec(buf.toString('latin1'));
        finish(undefined, m?.[1]);
      } else if (scan.body === ServerBody.error) finish(new Error(`hello refused: ${scan.errorCode || 'error'}`));
    });
    ws.on('error', (err) => finish(err));
    ws.on('close', (code) => finish(new Error(`closed with ${code} before welcome`)));
  });
}

async function getJson(url: string, timeoutMs = 5_000): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return res.json();
}

export interface ClusterOptions extends TargetOptions {
  readonly nodes: number;
  readonly onProgress?: (text: string) => void;
}

/**
 * Starts etcd, provisions users into the shared store, starts K nodes, waits until every node
 * sees all K, and proves one token on a node. Everything is stopped again if any step fails.
 */
export async function startParleyCluster(o: ClusterOptions): Promise<TargetHandle> {
  const t0 = performance.now();
  const base = mkdtempSync(join(tmpdir(), 'parley-bench-cluster-'));
  const sharedDir = join(base, 'shared');
  mkdirSync(sharedDir, { recursive: true });
  const dbPath = join(sharedDir, 'parley.db');
  const store = o.store ?? `sqlite:${dbPath}`;
  const secret = randomBytes(48).toString('base64url');
  const secretFile = join(base, 'secret');
  writeFileSync(secretFile, secret + '\n', { mode: 0o600 });
  const log: ServerLog = { warn: 0, error: 0, byMessage: {} };
  const procs: ChildProcess[] = [];
  let etcd: RunningService | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.all(procs.map((p) => stopChild(p, 15_000)));
    if (etcd) {
      await etcd.stop({ graceMs: 2_000 }).catch(() => undefined);
      untrackPid(etcd.pid);
    }
    if (!o.keepData) rmSync(base, { recursive: true, force: true });
  };
  try {
    // 1. etcd
    o.onProgress?.('etcd');
    const etcdPort = await findFreePort();
    const etcdPeerPort = await findFreePort();
    etcd = await startEtcd({ dataDir: join(base, 'etcd'), port: etcdPort, peerPort: etcdPeerPort });
    trackPid(etcd.pid, 'etcd');
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;

    // 2. users (+1 probe user) into the shared store, signed with the shared secret file
    let users: ProvisionedUser[] = [];
    let provision: TargetHandle['provision'];
    let tokens = 'no users provisioned';
    if (o.users > 0) {
      o.onProgress?.(`provisioning ${o.users} users`);
      const ctlDir = join(base, 'parleyctl');
      mkdirSync(ctlDir, { recursive: true });
      ({ users, figures: provision } = await runParleyctl(ctlDir, o.users + 1, { store, secretFile }));
      tokens = 'tokens made by parleyctl users provision with the shared secret file';
    }

    // 3. nodes, START_CONCURRENCY at a time
    const entry = o.parleydEntry ? resolvePath(ROOT, o.parleydEntry) : join(ROOT, 'bin/parleyd.ts');
    const nodeArgs = [...(o.serverNodeArgs ?? []), ...(o.inspect ? ['--inspect=127.0.0.1:0'] : [])];
    const nodes = new Array<NodeHandle>(o.nodes);
    let next = 0;
    let up = 0;
    const startOne = async (i: number): Promise<void> => {
      const nodeId = `n${i + 1}`;
      const flags: Record<string, string> = {
        host: '127.0.0.1',
        port: '0',
        'grpc-port': '0',
        'data-dir': join(base, nodeId),
        'node-id': nodeId,
        'node-number': String(i + 1),
        etcd: etcdUrl,
        'cluster-prefix': CLUSTER_PREFIX,
        store,
        ...(o.redis ? { redis: o.redis } : {}),
        'secret-file': secretFile,
        'log-level': 'info',
        durability: o.durability,
        'send-rate': '10000000',
        'send-burst': '10000000',
        ...o.serverFlags,
      };
      const proc = spawnTracked(
        process.execPath,
        [...PARLEYD_NODE_ARGS, ...nodeArgs, ...(entry.endsWith('.ts') ? NODE_ARGS : []), entry, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
        `parleyd-${nodeId}`,
        true,
      );
      procs.push(proc);
      keepLog(proc, o.logDir, nodeId);
      let inspectorUrl: string | undefined;
      const port = await waitForPort(
        proc,
        `parleyd ${nodeId}`,
        (line) => (line.includes('"parley node serving"') ? (JSON.parse(line) as { port: number }).port : undefined),
        log,
        120_000,
        (url) => (inspectorUrl = url),
      );
      nodes[i] = nodeHandle(nodeId, proc.pid!, port, () => inspectorUrl);
      o.onProgress?.(`${++up}/${o.nodes} nodes serving`);
    };
    const spawnT0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(START_CONCURRENCY, o.nodes) }, async () => {
        while (next < o.nodes) await startOne(next++);
      }),
    );

    // 4. every node lists every node (membership settled), bounded
    const deadline = performance.now() + 60_000;
    for (let i = 0; ; i++) {
      const counts = await Promise.all(
        nodes.map((n) =>
          getJson(`${n.httpBase}/v1/servers`)
            .then((j) => (j as { servers: unknown[] }).servers.length)
            .catch(() => 0),
        ),
      );
      if (counts.every((c) => c === o.nodes)) break;
      if (performance.now() > deadline || i > 600) throw new Error(`cluster did not form within 60 s: nodes list ${counts.join(', ')} of ${o.nodes} members`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const formedS = Math.round((performance.now() - spawnT0) / 100) / 10;

    // 5. one real hello with the probe user's token
    if (users.length > 0) {
      const probe = users.pop()!;
      try {
        await helloProbe(nodes[nodes.length - 1]!.wsBase, probe.token);
      } catch (err) {
        throw new Error(`a provisioned token does not open a session on the cluster (${err instanceof Error ? err.message : String(err)}); tokens: ${tokens}`);
      }
      tokens += '; checked by a hello on a node before measuring';
    }
    if (provision) provision = { ...provision, users: users.length };

    const first = nodes[0]!;
    return {
      name: 'parley',
      pid: first.pid,
      port: first.port,
      wsBase: first.wsBase,
      httpBase: first.httpBase,
      healthUrl: first.healthUrl,
      users,
      provision,
      log,
      startedMs: Math.round(performance.now() - t0),
      get inspectorUrl() {
        return first.inspectorUrl;
      },
      nodes,
      auxPids: [etcd.pid],
      discovery: nodes.map((n) => n.httpBase),
      cluster: {
        nodes: o.nodes,
        etcd_url: etcdUrl,
        etcd_pid: etcd.pid,
        prefix: CLUSTER_PREFIX,
        store: o.store ? `${o.store.split(':')[0]}, shared by every node` : 'sqlite, one file shared by every node (one-box cluster mode)',
        secret: '--secret-file, one file for every node and for parleyctl',
        tokens,
        formed_s: formedS,
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
