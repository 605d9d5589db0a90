import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureDebianPackages } from './install.ts';
import { launch } from './launch.ts';
import { LOOPBACK, assertPortsFree, findFreePort } from './ports.ts';
import { httpGetJson } from './ready.ts';
import type { RunningService, Service, ServiceStartOptions } from './service.ts';

/** etcd from Debian's etcd-server (3.4 on bookworm), one member on loopback. */

const SERVICE = 'etcd';
const ETCD = '/usr/bin/etcd';
const DEFAULT_READY_TIMEOUT_MS = 30_000;

export interface EtcdStartOptions extends ServiceStartOptions {
  /** `port` is the client port. The peer port; default: a free port. */
  readonly peerPort?: number;
  /** Member name; default `local`. */
  readonly name?: string;
}

/** Go's name for this CPU, which ETCD_UNSUPPORTED_ARCH must match exactly. */
function goArch(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return '386';
    case 'ppc64':
      return 'ppc64le';
    default:
      return process.arch;
  }
}

/**
 * Starts etcd with its data in `dataDir`, client and peer URLs on 127.0.0.1, and resolves once
 * GET /health says `"health": "true"` (which needs a leader, so it also proves the v3 KV works).
 */
export async function startEtcd(options: EtcdStartOptions): Promise<RunningService> {
  const dataDir = resolve(options.dataDir);
  const peerPort = options.peerPort ?? (await findFreePort());
  await assertPortsFree(SERVICE, { 'client port': options.port, 'peer port': peerPort });
  await ensureDebianPackages(SERVICE, [{ executable: ETCD, pkg: 'etcd-server' }]);
  await mkdir(dataDir, { recursive: true });

  const name = options.name ?? 'local';
  const client = `http://${LOOPBACK}:${options.port}`;
  const peer = `http://${LOOPBACK}:${peerPort}`;
  return launch({
    service: SERVICE,
    command: ETCD,
    args: [
      `--name=${name}`,
      `--data-dir=${join(dataDir, 'member-data')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${name}=${peer}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    // etcd 3.4 refuses to run on arm64 and others unless this names the arch; harmless on amd64.
    env: { ...process.env, ETCD_UNSUPPORTED_ARCH: goArch() },
    cwd: dataDir,
    logFile: join(dataDir, 'etcd.log'),
    address: client,
    port: options.port,
    signal: options.signal,
    dataDir,
    probe: async () => {
      const body = await httpGetJson(`${client}/health`);
      const health = typeof body === 'object' && body !== null ? (body as { health?: unknown }).health : undefined;
      if (health !== 'true') throw new Error(`/health answered ${JSON.stringify(body)}`);
    },
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
  });
}

export const etcdService: Service<EtcdStartOptions> = { name: SERVICE, start: startEtcd };
