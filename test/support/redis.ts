/**
 * A throwaway Redis for one test file: started (by services' `startRedis`, which installs Debian's
 * redis-server when missing) on a free loopback port the first time a test asks for its URL, so
 * test registration stays synchronous and files that need none start none.
 *
 * Example:
 *   const redis = redisOnDemand();
 *   test.after.always(() => redis.stop());
 *   runQueueContract('redis', async (name) => new RedisJobQueue({ url: await redis.url(), name }));
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startRedis, type RunningService } from '../../services/index.ts';

export interface OnDemandRedis {
  /** `redis://127.0.0.1:<port>`, starting Redis on the first call. */
  url(): Promise<string>;
  /** Stops it (if it was started) and deletes its data dir. */
  stop(): Promise<void>;
}

export function redisOnDemand(): OnDemandRedis {
  const dir = mkdtempSync(join(tmpdir(), 'parley-test-redis-'));
  let running: RunningService | undefined;
  let url: Promise<string> | undefined;
  return {
    url: () =>
      (url ??= (async () => {
        const port = await findFreePort();
        running = await startRedis({ dataDir: dir, port });
        return `redis://127.0.0.1:${port}`;
      })()),
    async stop() {
      await running?.stop({ graceMs: 0 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
