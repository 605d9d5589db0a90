import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import type { ServiceProcessRecord } from './service.ts';

/**
 * What a launcher started, kept on disk so that a later `down` (another process) stops exactly
 * those processes by pid and start time, and nothing else.
 */
export interface ServiceState {
  readonly services: Readonly<Record<string, ServiceProcessRecord & { readonly startedAt: string }>>;
}

function isRecord(value: unknown): value is ServiceProcessRecord & { startedAt: string } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.name === 'string' &&
    typeof v.pid === 'number' &&
    typeof v.startTicks === 'number' &&
    typeof v.address === 'string' &&
    typeof v.port === 'number' &&
    typeof v.dataDir === 'string' &&
    typeof v.logFile === 'string' &&
    typeof v.startedAt === 'string'
  );
}

export async function readState(path: string): Promise<ServiceState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { services: {} };
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ServiceError(ServiceErrorCodes.BAD_STATE, `${path} is not JSON; remove it once the processes it lists are stopped`, { cause: err });
  }
  const services = (parsed as { services?: unknown }).services;
  if (typeof services !== 'object' || services === null) {
    throw new ServiceError(ServiceErrorCodes.BAD_STATE, `${path} has no "services" object`);
  }
  const valid: Record<string, ServiceProcessRecord & { startedAt: string }> = {};
  for (const [name, record] of Object.entries(services)) {
    if (!isRecord(record)) throw new ServiceError(ServiceErrorCodes.BAD_STATE, `${path}: entry ${name} is malformed`);
    valid[name] = record;
  }
  return { services: valid };
}

/** Written to a temp file and renamed, so a crash mid-write never leaves a torn state file. */
export async function writeState(path: string, state: ServiceState): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, path);
}
