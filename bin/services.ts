/**
 * The project's service launcher: real etcd, Redis and Cassandra 5.0 on loopback, no Docker.
 *
 *   node --import tsx bin/services.ts up [etcd|redis|cassandra ...]    install if missing, start, print addresses
 *   node --import tsx bin/services.ts down [etcd|redis|cassandra ...]  stop what `up` started (by pid)
 *   node --import tsx bin/services.ts status                           show what runs
 *
 * No names means all three. `up` prints one line per service on stdout (`etcd http://127.0.0.1:23790`);
 * progress and errors go to stderr. Exit code 0 on success, 1 if any service failed, 2 on bad usage.
 *
 * Environment (all optional):
 *   PARLEY_SERVICES_DIR            base dir for data, logs and state.json (default <project>/.services)
 *   PARLEY_ETCD_PORT               etcd client port (default 23790)
 *   PARLEY_ETCD_PEER_PORT          etcd peer port (default 23800)
 *   PARLEY_REDIS_PORT              Redis port (default 26379)
 *   PARLEY_CASSANDRA_PORT          Cassandra CQL native port (default 29042)
 *   PARLEY_CASSANDRA_STORAGE_PORT  Cassandra internode port (default 27000)
 *   PARLEY_CASSANDRA_JMX_PORT      Cassandra local-only JMX port for nodetool (default 27199; 0 = no JMX)
 *   PARLEY_CASSANDRA_HEAP          Cassandra -Xmx (default 1g)
 *   PARLEY_CASSANDRA_FULL_JIT      1 = full C2 JIT for benchmarks (default: C1 only, faster start)
 *   PARLEY_CASSANDRA_VERSION       5.0.x version from Maven Central (default 5.0.9)
 *   PARLEY_CASSANDRA_HOME          jar cache dir (default ~/.cache/parley/cassandra-<version>)
 *   PARLEY_CASSANDRA_JAVA          java executable, 11 or 17 (default: found on the machine)
 *
 * Data, generated config and logs live in <base>/<service>/ and survive `down`; delete the dir to reset.
 * nodetool, through the local JMX port (the tool needs JDK-internal access too):
 *   java --add-exports java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
 *     --add-exports java.base/jdk.internal.ref=ALL-UNNAMED --add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
 *     --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED \
 *     -cp "$HOME/.cache/parley/cassandra-5.0.9/lib/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p 27199 status
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ServiceError,
  ServiceErrorCodes,
  isRunning,
  readState,
  startCassandra,
  startEtcd,
  startRedis,
  stopProcess,
  writeState,
  type RunningService,
  type ServiceProcessRecord,
  type ServiceState,
} from '../services/index.ts';

const SERVICE_NAMES = ['etcd', 'redis', 'cassandra'] as const;
type ServiceName = (typeof SERVICE_NAMES)[number];

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// A clean Cassandra shutdown drains memtables; give it time before SIGKILL.
const DOWN_GRACE_MS = 60_000;

interface Config {
  readonly baseDir: string;
  readonly statePath: string;
}

function envPort(name: string, fallback: number, allowZero = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65_535) {
    throw new ServiceError(ServiceErrorCodes.BAD_CONFIG, `${name}=${raw} is not a port number`);
  }
  return port;
}

function config(): Config {
  const baseDir = resolve(process.env.PARLEY_SERVICES_DIR || join(PROJECT_ROOT, '.services'));
  return { baseDir, statePath: join(baseDir, 'state.json') };
}

function starter(name: ServiceName, cfg: Config, signal: AbortSignal): () => Promise<RunningService> {
  const dataDir = join(cfg.baseDir, name);
  switch (name) {
    case 'etcd':
      return () =>
        startEtcd({ dataDir, port: envPort('PARLEY_ETCD_PORT', 23790), peerPort: envPort('PARLEY_ETCD_PEER_PORT', 23800), signal });
    case 'redis':
      return () => startRedis({ dataDir, port: envPort('PARLEY_REDIS_PORT', 26379), signal });
    case 'cassandra': {
      const jmxPort = envPort('PARLEY_CASSANDRA_JMX_PORT', 27199, true);
      return () =>
        startCassandra({
          dataDir,
          port: envPort('PARLEY_CASSANDRA_PORT', 29042),
          storagePort: envPort('PARLEY_CASSANDRA_STORAGE_PORT', 27000),
          ...(jmxPort === 0 ? {} : { jmxPort }),
          maxHeap: process.env.PARLEY_CASSANDRA_HEAP || '1g',
          fastJit: process.env.PARLEY_CASSANDRA_FULL_JIT !== '1',
          clusterName: 'parley-dev',
          signal,
        });
    }
  }
}

function parseNames(args: readonly string[]): ServiceName[] {
  if (args.length === 0) return [...SERVICE_NAMES];
  const names: ServiceName[] = [];
  for (const arg of args) {
    const name = SERVICE_NAMES.find((n) => n === arg);
    if (name === undefined) throw new UsageError(`unknown service "${arg}" (known: ${SERVICE_NAMES.join(', ')})`);
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

class UsageError extends Error {}

function log(line: string): void {
  process.stderr.write(`services: ${line}\n`);
}

/** Serialises read-modify-write of the state file between the parallel starts of one `up`. */
function stateUpdater(path: string): (change: (state: ServiceState) => ServiceState) => Promise<void> {
  let queue: Promise<void> = Promise.resolve();
  return (change) => {
    queue = queue.then(async () => writeState(path, change(await readState(path))));
    return queue;
  };
}

function withRecord(state: ServiceState, record: ServiceProcessRecord): ServiceState {
  return { services: { ...state.services, [record.name]: { ...record, startedAt: new Date().toISOString() } } };
}

function without(state: ServiceState, name: string): ServiceState {
  const services = { ...state.services };
  delete services[name];
  return { services };
}

async function up(names: readonly ServiceName[], cfg: Config): Promise<number> {
  const update = stateUpdater(cfg.statePath);
  const state = await readState(cfg.statePath);
  const abort = new AbortController();
  const onSignal = (): void => {
    log('interrupted: killing services still starting');
    abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results = await Promise.all(
    names.map(async (name): Promise<{ name: ServiceName; address?: string; error?: unknown }> => {
      const known = state.services[name];
      if (known !== undefined) {
        if (isRunning(known)) {
          log(`${name} already runs (pid ${known.pid})`);
          return { name, address: known.address };
        }
        log(`${name}: recorded pid ${known.pid} is gone; starting anew`);
        await update((s) => without(s, name));
      }
      const t0 = Date.now();
      log(`${name}: starting (data in ${join(cfg.baseDir, name)})`);
      try {
        const running = await starter(name, cfg, abort.signal)();
        const { stop: _stop, ...record } = running;
        await update((s) => withRecord(s, record));
        log(`${name}: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s, pid ${running.pid}, log ${running.logFile}`);
        return { name, address: running.address };
      } catch (error) {
        return { name, error };
      }
    }),
  );
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  let failed = 0;
  for (const result of results) {
    if (result.address !== undefined) {
      process.stdout.write(`${result.name} ${result.address}\n`);
    } else {
      failed += 1;
      const err = result.error;
      const code = err instanceof ServiceError ? err.code : 'INTERNAL';
      log(`${result.name} FAILED [${code}] ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return failed === 0 ? 0 : 1;
}

async function down(names: readonly ServiceName[], cfg: Config): Promise<number> {
  const state = await readState(cfg.statePath);
  const update = stateUpdater(cfg.statePath);
  let failed = 0;
  // Sequential and in reverse start order, so a client service goes before what it may depend on.
  for (const name of [...names].reverse()) {
    const record = state.services[name];
    if (record === undefined) {
      log(`${name}: not started by this launcher`);
      continue;
    }
    try {
      if (isRunning(record)) {
        log(`${name}: stopping pid ${record.pid}`);
        await stopProcess(record, { graceMs: DOWN_GRACE_MS });
        log(`${name}: stopped`);
      } else {
        log(`${name}: pid ${record.pid} was already gone`);
      }
      await update((s) => without(s, name));
    } catch (err) {
      failed += 1;
      log(`${name} FAILED to stop: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return failed === 0 ? 0 : 1;
}

async function status(cfg: Config): Promise<number> {
  const state = await readState(cfg.statePath);
  const records = Object.values(state.services);
  if (records.length === 0) {
    log(`nothing started (state: ${cfg.statePath})`);
    return 0;
  }
  for (const record of records) {
    const running = isRunning(record);
    process.stdout.write(`${record.name} ${record.address} pid=${record.pid} ${running ? 'running' : 'NOT RUNNING'} log=${record.logFile}\n`);
  }
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  const cfg = config();
  switch (command) {
    case 'up':
      return up(parseNames(rest), cfg);
    case 'down':
      return down(parseNames(rest), cfg);
    case 'status':
      if (rest.length > 0) throw new UsageError('status takes no arguments');
      return status(cfg);
    default:
      throw new UsageError(command === undefined ? 'missing command' : `unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      log(`${err.message}\nusage: node --import tsx bin/services.ts up|down [etcd|redis|cassandra ...] | status`);
      process.exitCode = 2;
      return;
    }
    const code = err instanceof ServiceError ? err.code : 'INTERNAL';
    log(`[${code}] ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
