/**
 * A throwaway single-node etcd for tests that also need to crash and restart it on the same
 * data: wraps `startEtcd` from services (which installs Debian's etcd-server when
 * missing and waits for GET /health). Client port `port`, peer port `port + 1`; give each test
 * file its own port from 24000-24999 so files can run in parallel.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type RunningService } from '../../services/index.ts';

export interface TestEtcd {
  /** `http://127.0.0.1:<port>` */
  readonly address: string;
  readonly dataDir: string;
  pid(): number | undefined;
  /** SIGKILL, as a crash would; the data stays. */
  kill(): Promise<void>;
  /** Kills it if running, then starts it again on the same data dir and ports. */
  restart(): Promise<void>;
  /** Stops etcd and deletes its data dir. */
  stop(): Promise<void>;
}

export async function startTestEtcd(port: number): Promise<TestEtcd> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-etcd-'));
  // Same peer port on every start: the member's stored peer URL must keep matching.
  const launch = () => startEtcd({ dataDir, port, peerPort: port + 1 });
  let running: RunningService | undefined = await launch();
  const address = running.address;
  const kill = async () => {
    const r = running;
    running = undefined;
    await r?.stop({ graceMs: 0 });
  };
  return {
    address,
    dataDir,
    pid: () => running?.pid,
    kill,
    restart: async () => {
      await kill();
      running = await launch();
    },
    stop: async () => {
      await kill();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
