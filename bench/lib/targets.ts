/**
 * Starts the servers under test as child processes on 127.0.0.1 with a port of the OS's choosing:
 * parleyd (after provisioning its users with parleyctl), the Socket.IO peer and the raw uWS peer.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { spawnTracked, stopChild } from './children.ts';
import { inspectorUrlIn } from './inspector.ts';
import type { TargetName } from './protocol.ts';
import { PARLEYD_NODE_ARGS } from '../../bin/parleyd-node-args.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ProvisionedUser {
  readonly user_id: string;
  readonly username: string;
  readonly token: string;
}

export interface ProvisionFigures {
  readonly users: number;
  /** Wall time of the whole parleyctl run, process start included. */
  readonly seconds: number;
  readonly users_per_s: number;
  readonly phases: Record<string, number>;
}

export interface ServerLog {
  warn: number;
  error: number;
  /** Counts by message text, for warn and above. */
  readonly byMessage: Record<string, number>;
}

/** One server process of a target (a Parley cluster has one per node). */
export interface NodeHandle {
  readonly nodeId: string;
  readonly pid: number;
  readonly port: number;
  readonly wsBase: string;
  readonly httpBase: string;
  readonly healthUrl: string;
  readonly inspectorUrl: string | undefined;
}

/** A server process on 127.0.0.1:`port`; the inspector URL is read when asked (it may come later). */
export function nodeHandle(nodeId: string, pid: number, port: number, inspectorUrl: () => string | undefined): NodeHandle {
  return {
    nodeId,
    pid,
    port,
    wsBase: `ws://127.0.0.1:${port}`,
    httpBase: `http://127.0.0.1:${port}`,
    healthUrl: `http://127.0.0.1:${port}/healthz`,
    get inspectorUrl() {
      return inspectorUrl();
    },
  };
}

/** What a multi-node Parley target adds: etcd, the shared store, how tokens were made. */
export interface ClusterInfo {
  readonly nodes: number;
  readonly etcd_url: string;
  readonly etcd_pid: number;
  readonly prefix: string;
  readonly store: string;
  readonly secret: string;
  /** How the sessions' tokens were made and checked (see cluster.ts). */
  readonly tokens: string;
  /** Seconds from the first parleyd spawn until every node listed all nodes in GET /v1/servers. */
  readonly formed_s: number;
}

export interface TargetHandle {
  readonly name: TargetName;
  /** The first (or only) server process; `nodes` lists all of them. */
  readonly pid: number;
  readonly port: number;
  readonly wsBase: string;
  readonly httpBase: string;
  readonly healthUrl: string;
  readonly users: readonly ProvisionedUser[];
  readonly provision: ProvisionFigures | undefined;
  readonly log: ServerLog;
  readonly startedMs: number;
  /** The server's DevTools endpoint when started with `inspect` (used to force GC before reading memory). */
  readonly inspectorUrl: string | undefined;
  /** Every server process; one entry unless this is a Parley cluster. */
  readonly nodes: readonly NodeHandle[];
  /** Processes that serve the target without being it (etcd), sampled apart. */
  readonly auxPids: readonly number[];
  /** HTTP bases whose GET /v1/servers the generator asks before each connection (clusters only). */
  readonly discovery: readonly string[] | undefined;
  readonly cluster: ClusterInfo | undefined;
  stop(): Promise<void>;
}

export interface TargetOptions {
  /** Parley: users to provision before the node starts. */
  readonly users: number;
  readonly durability: 'fsync' | 'os';
  /** Parley's store URL (SQLite in the data dir when absent); users are provisioned into it. */
  readonly store?: string;
  /** Parley's Redis URL for presence. */
  readonly redis?: string;
  readonly serverFlags?: Record<string, string>;
  /** Extra Node.js arguments for the server process (e.g. --cpu-prof for diagnosis). */
  readonly serverNodeArgs?: readonly string[];
  /** Parley entry point (default bin/parleyd.ts); a .mjs/.js one (e.g. a build) runs without tsx. */
  readonly parleydEntry?: string;
  /** Start the server with --inspect=127.0.0.1:0 (loopback, random port). */
  readonly inspect?: boolean;
  readonly keepData?: boolean;
  /** Copy every server process's stdout and stderr into DIR/<node id>.log. */
  readonly logDir?: string;
}

/** Tees a server's stdout and stderr into DIR/<name>.log (diagnosis; the harness still reads them). */
export function keepLog(proc: ChildProcess, dir: string | undefined, name: string): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(join(dir, `${name}.log`));
  proc.stdout?.on('data', (d: Buffer | string) => out.write(d));
  proc.stderr?.on('data', (d: Buffer | string) => out.write(d));
  proc.once('exit', () => out.end());
}

export const NODE_ARGS = ['--import', 'tsx'];

function collectLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    if (buf.length > 1 << 20) buf = '';
  });
}

/** Waits for the line that carries the port; keeps reading (and counting warnings) afterwards. */
export function waitForPort(
  proc: ChildProcess,
  label: string,
  match: (line: string) => number | undefined,
  log: ServerLog,
  timeoutMs: number,
  onInspector: (url: string) => void,
): Promise<number> {
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    if (stderr.length < 20_000) stderr += d;
    const url = inspectorUrlIn(d);
    if (url) onInspector(url);
  });
  return new Promise<number>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`${label} did not start within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    collectLines(proc.stdout!, (line) => {
      if (!done) {
        const port = match(line);
        if (port !== undefined) {
          done = true;
          clearTimeout(timer);
          resolve(port);
          return;
        }
      }
      const m = /"level":(\d+).*?"msg":"([^"]*)"/.exec(line);
      if (m && Number(m[1]) >= 40) {
        if (Number(m[1]) >= 50) log.error++;
        else log.warn++;
        log.byMessage[m[2]!] = (log.byMessage[m[2]!] ?? 0) + 1;
      }
    });
    proc.once('exit', (code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${label} exited with ${code} before serving; stderr: ${stderr.slice(-2000)}`));
    });
  });
}

export async function runParleyctl(
  dataDir: string,
  count: number,
  extra: { store?: string; secretFile?: string } = {},
): Promise<{ users: ProvisionedUser[]; figures: ProvisionFigures }> {
  const out = join(dataDir, 'users.jsonl');
  const t0 = performance.now();
  const more = [...(extra.store ? ['--store', extra.store] : []), ...(extra.secretFile ? ['--secret-file', extra.secretFile] : [])];
  // A store that outlives the run (Cassandra) still holds the usernames of earlier runs.
  const prefix = extra.store && !extra.store.startsWith('sqlite:') ? `b${randomBytes(4).toString('hex')}_` : 'bench';
  const proc = spawnTracked(
    process.execPath,
    [...NODE_ARGS, join(ROOT, 'bin/parleyctl.ts'), 'users', 'provision', '--data-dir', dataDir, '--count', String(count), '--prefix', prefix, '--out', out, '--quiet', ...more],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    'parleyctl',
  );
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  if (code !== 0) throw new Error(`parleyctl users provision failed (${code}): ${stderr.slice(-2000)}`);
  const seconds = (performance.now() - t0) / 1000;
  const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as { created: number; phases: Record<string, number> };
  const users = readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as ProvisionedUser);
  if (users.length !== count) throw new Error(`parleyctl made ${users.length} users, wanted ${count}`);
  return {
    users,
    figures: { users: summary.created, seconds: Math.round(seconds * 100) / 100, users_per_s: Math.round(summary.created / seconds), phases: summary.phases },
  };
}

export async function startTarget(name: TargetName, o: TargetOptions): Promise<TargetHandle> {
  const log: ServerLog = { warn: 0, error: 0, byMessage: {} };
  let dataDir: string | undefined;
  let users: ProvisionedUser[] = [];
  let provision: ProvisionFigures | undefined;
  let proc: ChildProcess;
  let port: number;
  let inspectorUrl: string | undefined;
  const onInspector = (url: string): void => {
    inspectorUrl = url;
  };
  const nodeArgs = [...(o.serverNodeArgs ?? []), ...(o.inspect ? ['--inspect=127.0.0.1:0'] : [])];
  const t0 = performance.now();
  try {
    if (name === 'parley') {
      const entry = o.parleydEntry ? resolvePath(ROOT, o.parleydEntry) : join(ROOT, 'bin/parleyd.ts');
      dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
      if (o.users > 0) ({ users, figures: provision } = await runParleyctl(dataDir, o.users, o.store ? { store: o.store } : {}));
      const flags: Record<string, string> = {
        host: '127.0.0.1',
        port: '0',
        'data-dir': dataDir,
        'log-level': 'info',
        durability: o.durability,
        'send-rate': '10000000',
        'send-burst': '10000000',
        ...(o.store ? { store: o.store } : {}),
        ...(o.redis ? { redis: o.redis } : {}),
        ...o.serverFlags,
      };
      proc = spawnTracked(
        process.execPath,
        [
          ...PARLEYD_NODE_ARGS,
          ...nodeArgs,
          ...(entry.endsWith('.ts') ? NODE_ARGS : []),
          entry,
          ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]),
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
        'parleyd',
        true,
      );
      keepLog(proc, o.logDir, 'n1');
      port = await waitForPort(
        proc,
        'parleyd',
        (line) => (line.includes('"parley node serving"') ? (JSON.parse(line) as { port: number }).port : undefined),
        log,
        60_000,
        onInspector,
      );
    } else {
      const script = join(ROOT, 'bench/peers', name, 'server.ts');
      proc = spawnTracked(process.execPath, [...nodeArgs, ...NODE_ARGS, script, '--host', '127.0.0.1', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }, name);
      port = await waitForPort(proc, name, (line) => (line.includes('"serving"') ? (JSON.parse(line) as { port: number }).port : undefined), log, 60_000, onInspector);
    }
  } catch (err) {
    if (dataDir && !o.keepData) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const p = proc;
  const node = nodeHandle(name === 'parley' ? 'n1' : name, p.pid!, port, () => inspectorUrl);
  return {
    name,
    pid: p.pid!,
    port,
    wsBase: node.wsBase,
    httpBase: node.httpBase,
    healthUrl: node.healthUrl,
    users,
    provision,
    log,
    startedMs: Math.round(performance.now() - t0),
    get inspectorUrl() {
      return inspectorUrl;
    },
    nodes: [node],
    auxPids: [],
    discovery: undefined,
    cluster: undefined,
    async stop() {
      await stopChild(p, 25_000);
      if (dataDir && !o.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Creates Parley channels over the HTTP API (POST /v1/dms, POST /v1/channels), many at once. */
export async function createParleyChannels(
  t: TargetHandle,
  specs: readonly { kind: 'dm' | 'group'; members: readonly number[] }[],
  onProgress?: (done: number) => void,
): Promise<string[]> {
  const ids = new Array<string>(specs.length);
  let next = 0;
  let done = 0;
  const one = async (i: number): Promise<void> => {
    const s = specs[i]!;
    const owner = t.users[s.members[0]!]!;
    const body =
      s.kind === 'dm'
        ? { path: '/v1/dms', json: { user_id: t.users[s.members[1]!]!.user_id } }
        : { path: '/v1/channels', json: { name: `bench-${i}`, member_ids: s.members.slice(1).map((m) => t.users[m]!.user_id) } };
    for (let attempt = 1; attempt <= 3; attempt++) {
      const res = await fetch(t.httpBase + body.path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
        body: JSON.stringify(body.json),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.status < 300) {
        ids[i] = (JSON.parse(text) as { channel_id: string }).channel_id;
        break;
      }
      if (attempt >= 3 || res.status < 500) throw new Error(`creating channel ${i} failed: HTTP ${res.status} ${text.slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
    onProgress?.(++done);
  };
  await Promise.all(
    Array.from({ length: Math.min(32, specs.length) }, async () => {
      while (next < specs.length) await one(next++);
    }),
  );
  return ids;
}
