/** The job queue contract on the store's key-value tables, on a real SQLite file. */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../runtime/log.ts';
import { KvJobQueue } from '../../runtime/queue/index.ts';
import { SqliteStore } from '../../runtime/storage/sqlite/sqlite-store.ts';
import { runQueueContract } from './contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'parley-kv-queue-'));
const store = new SqliteStore({ path: join(dir, 'parley.db'), log: silentLogger() });

test.after.always(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

runQueueContract('kv', async (name, { leaseMs }) => new KvJobQueue(store.kv, { name, leaseMs }));
