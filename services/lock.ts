import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import { isRunning, processStartTicks } from './process.ts';

/**
 * A lock between processes (two test files, or a test and the CLI, installing the same thing at
 * once; any two apt-gets on the machine), made of a directory because mkdir is atomic. The
 * owner's pid and start time live inside, so a lock left by a process that died is recognised
 * and taken over instead of waited on.
 */

const POLL_MS = 250;

interface Owner {
  readonly pid: number;
  readonly startTicks: number;
}

async function readOwner(lockDir: string): Promise<Owner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(lockDir, 'owner.json'), 'utf8')) as Partial<Owner>;
    if (typeof parsed.pid === 'number' && typeof parsed.startTicks === 'number') return { pid: parsed.pid, startTicks: parsed.startTicks };
  } catch {
    // absent or half-written: decided by the caller below
  }
  return undefined;
}

export async function withDirLock<T>(
  lockDir: string,
  options: { readonly service: string; readonly timeoutMs: number },
  fn: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const me: Owner = { pid: process.pid, startTicks: processStartTicks(process.pid) ?? 0 };
  let ownerlessSince: number | undefined;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'owner.json'), JSON.stringify(me));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readOwner(lockDir);
    if (owner !== undefined) {
      ownerlessSince = undefined;
      if (!isRunning({ pid: owner.pid, startTicks: owner.startTicks })) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
    } else {
      // A lock without an owner file is either being created right now or was left by a crash
      // between mkdir and write; a few seconds tell the two apart.
      ownerlessSince ??= Date.now();
      if (Date.now() - ownerlessSince > 5_000) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
    }
    if (Date.now() >= deadline) {
      throw new ServiceError(
        ServiceErrorCodes.INSTALL_LOCK_TIMEOUT,
        `${options.service}: ${lockDir} is still held by pid ${owner?.pid ?? '?'} after ${options.timeoutMs} ms`,
        { service: options.service },
      );
    }
    await sleep(POLL_MS);
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
