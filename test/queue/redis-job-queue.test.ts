/** The job queue contract on a real Redis (started here on a free port, as test/presence does). */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisJobQueue } from '../../runtime/queue/index.ts';
import { findFreePort, startRedis, type RunningService } from '../../services/index.ts';
import { runQueueContract } from './contract.ts';

let redis: RunningService | undefined;
let url: Promise<string> | undefined;
const dir = mkdtempSync(join(tmpdir(), 'parley-redis-queue-'));

/** Started by the first test that opens a queue, so ava's test registration stays synchronous. */
function redisUrl(): Promise<string> {
  url ??= (async () => {
    const port = await findFreePort();
    redis = await startRedis({ dataDir: dir, port });
    return `redis://127.0.0.1:${port}`;
  })();
  return url;
}

test.after.always(async () => {
  await redis?.stop({ graceMs: 0 });
  rmSync(dir, { recursive: true, force: true });
});

runQueueContract('redis', async (name, { leaseMs }) => new RedisJobQueue({ url: await redisUrl(), name, leaseMs }));
