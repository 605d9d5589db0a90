/**
 * Push for offline users with the push queue in Redis (--redis: a stream with a consumer group):
 * the shared end-to-end scenarios (push-scenarios.ts) that touch the queue (decide, merge, cancel,
 * retry, dead-letter with `parleyctl push dead-letters --redis`, SIGKILL with jobs pending), on a
 * real Redis started here on a free port, as test/presence does.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startRedis, type RunningService } from '../../services/index.ts';
import { runPushScenarios } from './push-scenarios.ts';

const dir = mkdtempSync(join(tmpdir(), 'parley-redis-push-'));
let redis: RunningService | undefined;
let url: Promise<string> | undefined;

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

runPushScenarios('redis queue', {
  flags: async () => ({ redis: await redisUrl() }),
  // Another database of the same Redis: another queue.
  ownQueueFlags: async () => ({ redis: `${await redisUrl()}/1` }),
  ctlArgs: async () => ['--redis', await redisUrl()],
  queueOnly: true,
});
