import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureDebianPackages } from './install.ts';
import { launch } from './launch.ts';
import { LOOPBACK, assertPortsFree } from './ports.ts';
import { redisPing } from './ready.ts';
import type { RunningService, Service, ServiceStartOptions } from './service.ts';

/** Redis from Debian's redis-server (7.0 on bookworm), in the foreground, loopback only. */

const SERVICE = 'redis';
const REDIS = '/usr/bin/redis-server';
const DEFAULT_READY_TIMEOUT_MS = 15_000;

export interface RedisStartOptions extends ServiceStartOptions {
  /** Keep an append-only file in `dataDir` so data survives a restart; default false. */
  readonly persist?: boolean;
}

/** Starts redis-server with `dataDir` as its working dir and resolves once PING gives +PONG. */
export async function startRedis(options: RedisStartOptions): Promise<RunningService> {
  const dataDir = resolve(options.dataDir);
  await assertPortsFree(SERVICE, { port: options.port });
  await ensureDebianPackages(SERVICE, [{ executable: REDIS, pkg: 'redis-server' }]);
  await mkdir(dataDir, { recursive: true });
  const persist = options.persist ?? false;
  return launch({
    service: SERVICE,
    command: REDIS,
    // Everything on the command line, so no /etc/redis/redis.conf (and its system paths) is read.
    args: [
      '--port', String(options.port),
      '--bind', LOOPBACK,
      '--protected-mode', 'yes',
      '--daemonize', 'no',
      '--dir', dataDir,
      '--logfile', '',
      '--pidfile', '',
      '--save', '',
      '--appendonly', persist ? 'yes' : 'no',
    ],
    cwd: dataDir,
    logFile: join(dataDir, 'redis.log'),
    address: `redis://${LOOPBACK}:${options.port}`,
    port: options.port,
    signal: options.signal,
    dataDir,
    probe: () => redisPing(LOOPBACK, options.port),
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    probeIntervalMs: 50,
  });
}

export const redisService: Service<RedisStartOptions> = { name: SERVICE, start: startRedis };
