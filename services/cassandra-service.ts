import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { cassandraJvmArgs, cassandraPaths, cassandraYaml, logbackXml } from './cassandra-config.ts';
import { ServiceError, ServiceErrorCodes } from './errors.ts';
import { mavenCopyDependencies } from './install.ts';
import { findJava } from './java.ts';
import { launch } from './launch.ts';
import { withDirLock } from './lock.ts';
import { LOOPBACK, assertPortsFree, findFreePort } from './ports.ts';
import { cqlOptions } from './ready.ts';
import type { RunningService, Service, ServiceStartOptions } from './service.ts';

/**
 * Cassandra 5.0 without a tarball or Docker: `org.apache.cassandra:cassandra-all` and its
 * runtime dependencies come from Maven Central into a cache dir, and CassandraDaemon runs
 * straight from those jars with the flags that bin/cassandra and cassandra-env.sh would add.
 */

const SERVICE = 'cassandra';

/** The newest 5.0.x that resolved from Maven Central when this was written. */
export const CASSANDRA_DEFAULT_VERSION = '5.0.9';

/** Cassandra 5.0 runs on Java 11 and 17; 17 first because the flags used are 17's. */
const SUPPORTED_JAVA = [17, 11] as const;

const DEFAULT_INSTALL_TIMEOUT_MS = 20 * 60_000;
const DEFAULT_READY_TIMEOUT_MS = 180_000;

export interface CassandraInstallOptions {
  /** Default: env PARLEY_CASSANDRA_VERSION, else CASSANDRA_DEFAULT_VERSION. */
  readonly version?: string;
  /** Holds lib/ with the jars. Default: env PARLEY_CASSANDRA_HOME, else ~/.cache/parley/cassandra-<version>. */
  readonly home?: string;
  /** Bounds the Maven resolution plus any wait for another process installing the same home. */
  readonly installTimeoutMs?: number;
}

export interface CassandraInstallation {
  readonly version: string;
  readonly home: string;
  readonly libDir: string;
}

interface InstalledMarker {
  readonly version: string;
  readonly jars: number;
}

function envValue(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function cassandraVersion(options: CassandraInstallOptions = {}): string {
  return options.version ?? envValue('PARLEY_CASSANDRA_VERSION') ?? CASSANDRA_DEFAULT_VERSION;
}

export function cassandraHome(options: CassandraInstallOptions = {}): string {
  const explicit = options.home ?? envValue('PARLEY_CASSANDRA_HOME');
  return resolve(explicit ?? join(homedir(), '.cache', 'parley', `cassandra-${cassandraVersion(options)}`));
}

async function readMarker(home: string): Promise<InstalledMarker | undefined> {
  try {
    return JSON.parse(await readFile(join(home, 'installed.json'), 'utf8')) as InstalledMarker;
  } catch {
    return undefined;
  }
}

function isInstalled(marker: InstalledMarker | undefined, version: string, libDir: string): boolean {
  return marker?.version === version && existsSync(join(libDir, `cassandra-all-${version}.jar`));
}

/**
 * Makes sure lib/ holds cassandra-all-<version>.jar and its runtime dependencies. Idempotent and
 * safe to call from several processes at once: one resolves, the others wait for it.
 */
export async function installCassandra(options: CassandraInstallOptions = {}): Promise<CassandraInstallation> {
  const version = cassandraVersion(options);
  if (!/^5\.0\.\d+$/.test(version)) {
    throw new ServiceError(ServiceErrorCodes.BAD_CONFIG, `${SERVICE}: version ${version} is not a 5.0.x release`, { service: SERVICE });
  }
  const home = cassandraHome(options);
  const libDir = join(home, 'lib');
  const installation = { version, home, libDir };
  if (isInstalled(await readMarker(home), version, libDir)) return installation;

  const timeoutMs = options.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS;
  await mkdir(home, { recursive: true });
  return withDirLock(join(home, '.install.lock'), { service: SERVICE, timeoutMs }, async () => {
    // Someone else may have finished while we waited for the lock.
    if (isInstalled(await readMarker(home), version, libDir)) return installation;
    await mavenCopyDependencies({
      service: SERVICE,
      artifact: { groupId: 'org.apache.cassandra', artifactId: 'cassandra-all', version },
      workDir: home,
      outputDir: libDir,
      timeoutMs,
    });
    const jars = readdirSync(libDir).filter((name) => name.endsWith('.jar')).length;
    if (!existsSync(join(libDir, `cassandra-all-${version}.jar`))) {
      throw new ServiceError(ServiceErrorCodes.INSTALL_FAILED, `${SERVICE}: mvn finished but ${libDir} has no cassandra-all-${version}.jar`, {
        service: SERVICE,
      });
    }
    const marker: InstalledMarker = { version, jars };
    await writeFile(join(home, 'installed.json'), `${JSON.stringify(marker)}\n`);
    return installation;
  });
}

export interface CassandraStartOptions extends ServiceStartOptions, CassandraInstallOptions {
  /** `port` is the CQL native port. The internode (storage) port; default: a free port. */
  readonly storagePort?: number;
  /** Local-only JMX on this port (for nodetool); default: no JMX at all. */
  readonly jmxPort?: number;
  /** -Xmx; default 1g (the machine is shared with the rest of a test run). */
  readonly maxHeap?: string;
  /** -Xms; default 512m. */
  readonly initialHeap?: string;
  /** C1-only JIT for a faster start (default true); false for benchmarks. */
  readonly fastJit?: boolean;
  readonly clusterName?: string;
  /** Default 16. Only read at the node's first start. */
  readonly numTokens?: number;
  /** A java executable (11 or 17). Default: env PARLEY_CASSANDRA_JAVA, else found on the machine. */
  readonly java?: string;
}

function findJamm(libDir: string): string | undefined {
  const jar = readdirSync(libDir).find((name) => /^jamm-[\d.]+\.jar$/.test(name));
  return jar === undefined ? undefined : join(libDir, jar);
}

/**
 * Starts a single-node Cassandra on 127.0.0.1 with everything under `dataDir`, and resolves once
 * the CQL port answers an OPTIONS frame with SUPPORTED. Installs Cassandra first if needed.
 */
export async function startCassandra(options: CassandraStartOptions): Promise<RunningService> {
  const dataDir = resolve(options.dataDir);
  const storagePort = options.storagePort ?? (await findFreePort());
  await assertPortsFree(SERVICE, {
    'CQL port': options.port,
    'storage port': storagePort,
    ...(options.jmxPort === undefined ? {} : { 'JMX port': options.jmxPort }),
  });
  const installation = await installCassandra(options);
  const java = await findJava({
    service: SERVICE,
    majors: SUPPORTED_JAVA,
    explicit: options.java ?? envValue('PARLEY_CASSANDRA_JAVA'),
    installPackage: 'openjdk-17-jre-headless',
  });

  const paths = cassandraPaths(dataDir);
  await mkdir(join(dataDir, 'conf'), { recursive: true });
  await mkdir(paths.triggers, { recursive: true });
  await writeFile(
    paths.yaml,
    cassandraYaml({
      dataDir,
      nativePort: options.port,
      storagePort,
      clusterName: options.clusterName ?? 'local',
      numTokens: options.numTokens ?? 16,
    }),
  );
  await writeFile(paths.logback, logbackXml());

  const args = cassandraJvmArgs({
    dataDir,
    libDir: installation.libDir,
    jammJar: findJamm(installation.libDir),
    maxHeap: options.maxHeap ?? '1g',
    initialHeap: options.initialHeap ?? '512m',
    fastJit: options.fastJit ?? true,
    jmxPort: options.jmxPort,
  });
  return launch({
    service: SERVICE,
    command: java.executable,
    args,
    cwd: dataDir,
    // As cassandra-env.sh does: fewer glibc arenas keep the native footprint of many threads small.
    env: { ...process.env, MALLOC_ARENA_MAX: '4' },
    logFile: paths.log,
    address: `${LOOPBACK}:${options.port}`,
    port: options.port,
    signal: options.signal,
    dataDir,
    probe: () => cqlOptions(LOOPBACK, options.port),
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    probeIntervalMs: 250,
  });
}

export const cassandraService: Service<CassandraStartOptions> = { name: SERVICE, start: startCassandra };
