/**
 * Local services for tests and development: real etcd, Redis and Cassandra 5.0 as plain
 * processes on 127.0.0.1, without Docker and without systemd. Tools, not runtime: parleyd never
 * imports this folder (it lived under runtime/ until the message-path issue moved it out).
 *
 * Purpose: a test starts a private instance in a fresh temp dir on a port of its own, talks to
 * it, and stops it by pid; `bin/services.ts` (the project's launcher CLI) uses the same
 * functions for the long-lived developer instances.
 *
 * Guarantees:
 * - Installs what is missing: etcd and Redis from Debian's `etcd-server` / `redis-server`
 *   (apt-get, needs root), Cassandra as `org.apache.cassandra:cassandra-all` plus its runtime
 *   jars from Maven Central via `mvn` into `~/.cache/parley/cassandra-<version>/lib`
 *   (env `PARLEY_CASSANDRA_HOME` overrides the dir, `PARLEY_CASSANDRA_VERSION` the 5.0.x
 *   version, `PARLEY_CASSANDRA_JAVA` the JVM). Concurrent installs wait for each other: every
 *   apt-get on the machine, from any process or checkout, runs under one lock directory
 *   (`/var/lock/parley-apt.lock`), and an apt lock held outside the project is waited out
 *   (apt-get is run again for up to 10 minutes).
 * - Binds 127.0.0.1 only. Every port is checked free before the spawn (SERVICE_PORT_IN_USE).
 * - A start resolves only once the service answers its own protocol: etcd `GET /health`,
 *   Redis `PING` -> `+PONG`, Cassandra a CQL OPTIONS frame -> SUPPORTED. Otherwise it rejects
 *   with a {@link ServiceError} (SERVICE_EXITED_EARLY or SERVICE_NOT_READY, message ending in
 *   the last 30 log lines) and leaves no process behind.
 * - Data, generated config and one log file (`etcd.log`, `redis.log`, `cassandra.log`) live in
 *   the given `dataDir`; nothing is written elsewhere except Cassandra's jar cache and, while
 *   apt-get runs, its lock directory.
 * - `stop()` signals exactly the pid it started (checked against the process start time, so a
 *   reused pid is never hit), escalates to SIGKILL after `graceMs`, and resolves once it is gone.
 * - Every wait is bounded: install, readiness and stop all have timeouts.
 *
 * @example
 * ```ts
 * import { mkdtemp } from 'node:fs/promises';
 * import { tmpdir } from 'node:os';
 * import { join } from 'node:path';
 * import { findFreePort, startEtcd } from '../services/index.ts';
 *
 * const etcd = await startEtcd({ dataDir: await mkdtemp(join(tmpdir(), 'etcd-')), port: await findFreePort() });
 * try {
 *   // talk to etcd.address, e.g. http://127.0.0.1:41234
 * } finally {
 *   await etcd.stop({ graceMs: 0 }); // throwaway data: no need for a clean shutdown
 * }
 * ```
 */

export { startCassandra, installCassandra, cassandraService, cassandraHome, cassandraVersion, CASSANDRA_DEFAULT_VERSION } from './cassandra-service.ts';
export type { CassandraStartOptions, CassandraInstallOptions, CassandraInstallation } from './cassandra-service.ts';
export { startEtcd, etcdService } from './etcd-service.ts';
export type { EtcdStartOptions } from './etcd-service.ts';
export { startRedis, redisService } from './redis-service.ts';
export type { RedisStartOptions } from './redis-service.ts';
export { ServiceError, ServiceErrorCodes, isServiceError } from './errors.ts';
export type { ServiceErrorCode } from './errors.ts';
export { findFreePort, LOOPBACK } from './ports.ts';
export { isRunning, stopProcess, tailFile } from './process.ts';
export { readState, writeState } from './state-file.ts';
export type { ServiceState } from './state-file.ts';
export type { RunningService, Service, ServiceProcessRecord, ServiceStartOptions, StopOptions } from './service.ts';
