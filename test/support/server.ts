import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ParleyClient, ParleyHttp, type WebSocketFactory } from '../../client/index.ts';
import { PARLEYD_NODE_ARGS } from '../../bin/parleyd-node-args.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerHandle {
  readonly port: number;
  readonly baseUrl: string;
  readonly wsUrl: string;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  /** Lines the server logged (JSON). */
  readonly logs: string[];
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

/** Fast settings for tests: cheap password hashing; everything else as in production unless given. */
export const TEST_FLAGS: Record<string, string> = { 'scrypt-log-n': '10', 'log-level': 'info' };

/**
 * Starts a real parleyd process on 127.0.0.1 with a fresh data dir (or the given one) and waits
 * until it serves. Port 0 lets the OS choose, so test files can run in parallel.
 */
export async function startServer(
  options: {
    dataDir?: string;
    flags?: Record<string, string>;
    env?: Record<string, string>;
    /** `dist`: the compiled build `npm start` runs (build it first with `npm run build`). */
    entry?: 'source' | 'dist';
  } = {},
): Promise<ServerHandle> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'parley-test-'));
  const flags = { ...TEST_FLAGS, host: '127.0.0.1', port: '0', 'data-dir': dataDir, ...options.flags };
  const entry = options.entry === 'dist' ? [join(ROOT, 'dist/bin/parleyd.js')] : ['--import', 'tsx', join(ROOT, 'bin/parleyd.ts')];
  const args = [...PARLEYD_NODE_ARGS, ...entry, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
  const proc = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  // If the test process dies first (a crash, a timeout), take the server with it.
  const reap = (): void => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', reap);
  void exited.then(() => process.removeListener('exit', reap));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s; stderr: ${stderr}`)), 60_000);
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        logs.push(line);
        if (line.includes('"parley node serving"')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before serving; stderr: ${stderr}`));
    });
  });
  const handle: ServerHandle = {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/v1/ws`,
    dataDir,
    proc,
    logs,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  return handle;
}

let counter = 0;

export interface TestUser {
  readonly username: string;
  readonly password: string;
  readonly userId: string;
  readonly token: string;
  readonly http: ParleyHttp;
}

/** Signs up and logs in a fresh user. */
export async function newUser(server: ServerHandle, prefix = 'u'): Promise<TestUser> {
  const username = `${prefix}${process.pid}_${++counter}_${Math.floor(Math.random() * 1e6)}`.slice(0, 32);
  const password = 'password-' + counter;
  const http = new ParleyHttp(server.baseUrl);
  const { user_id } = await http.signup(username, password);
  const { token } = await http.login(username, password);
  return { username, password, userId: user_id, token, http };
}

export const NodeWebSocket = WebSocket as unknown as WebSocketFactory;

/** A connected SDK client for `user` with its deliveries collected. */
export async function connect(
  server: ServerHandle | string,
  user: TestUser,
  deviceId = 'd1',
  options: { lastInboxSeq?: number; reconnect?: boolean; autoAck?: boolean; sendRetries?: number } = {},
): Promise<{ client: ParleyClient; deliveries: import('../../client/index.ts').Delivery[]; presences: import('../../client/index.ts').Presence[] }> {
  const url = typeof server === 'string' ? server : server.wsUrl;
  const client = new ParleyClient({ servers: [url], token: user.token, deviceId, WebSocket: NodeWebSocket, reconnect: options.reconnect ?? false, ...options });
  const deliveries: import('../../client/index.ts').Delivery[] = [];
  const presences: import('../../client/index.ts').Presence[] = [];
  client.on('delivery', (d) => deliveries.push(d));
  client.on('presence', (p) => presences.push(p));
  await client.connect();
  return { client, deliveries, presences };
}

/** Polls `check` until it holds or the time is up; returns whether it held. */
export async function eventually(check: () => boolean, timeoutMs = 5_000, stepMs = 10): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}
