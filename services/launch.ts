import { stopProcess, spawnService, type SpawnServiceOptions } from './process.ts';
import { waitUntilReady, type Probe } from './ready.ts';
import type { RunningService } from './service.ts';

export interface LaunchOptions extends SpawnServiceOptions {
  readonly address: string;
  readonly port: number;
  readonly signal?: AbortSignal | undefined;
  readonly dataDir: string;
  readonly probe: Probe;
  readonly readyTimeoutMs: number;
  readonly probeIntervalMs?: number;
}

/**
 * Spawn, wait until the probe succeeds, hand back a handle. A start that fails leaves nothing
 * behind: the half-started process is killed before the error propagates, so a caller never
 * has to clean up after a start that threw.
 */
export async function launch(options: LaunchOptions): Promise<RunningService> {
  const proc = await spawnService(options);
  const record = { name: options.service, pid: proc.pid, startTicks: proc.startTicks };
  try {
    await waitUntilReady({
      service: options.service,
      process: proc,
      probe: options.probe,
      timeoutMs: options.readyTimeoutMs,
      signal: options.signal,
      ...(options.probeIntervalMs === undefined ? {} : { intervalMs: options.probeIntervalMs }),
    });
  } catch (err) {
    await stopProcess(record, { graceMs: 0, exited: proc.exited }).catch(() => undefined);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    ...record,
    address: options.address,
    port: options.port,
    dataDir: options.dataDir,
    logFile: proc.logFile,
    stop: (stopOptions) => (stopping ??= stopProcess(record, { ...stopOptions, exited: proc.exited })),
  };
}
