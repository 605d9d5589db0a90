import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startCassandra, type RunningService } from '../../services/index.ts';

export interface TestCassandra {
  readonly service: RunningService;
  readonly port: number;
  readonly dataDir: string;
  /** A store URL for a fresh keyspace of its own. */
  storeUrl(keyspace?: string): string;
  /** Stops it (SIGKILL: as abrupt as a crash) and starts it again on the same data and port. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

let n = 0;

/** A real Cassandra 5.0 for a test file, on free loopback ports, installed from Maven Central when missing. */
export async function startTestCassandra(): Promise<TestCassandra> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-cassandra-'));
  const port = await findFreePort();
  const storagePort = await findFreePort();
  const start = () => startCassandra({ dataDir, port, storagePort });
  let service = await start();
  return {
    get service() {
      return service;
    },
    port,
    dataDir,
    storeUrl(keyspace = `t${process.pid}_${++n}_${Date.now() % 100000}`) {
      return `cassandra://127.0.0.1:${port}/${keyspace}?replication=simple:1&consistency=ONE&readTimeoutMs=3000`;
    },
    async restart(downMs = 0) {
      await service.stop({ graceMs: 0 });
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      service = await start();
    },
    async stop() {
      await service.stop({ graceMs: 0 });
    },
  };
}
