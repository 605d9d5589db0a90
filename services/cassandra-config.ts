import { join } from 'node:path';

/**
 * The files and JVM flags of a single-node Cassandra 5.0 that starts fast on a small machine and
 * is reachable on loopback only. Pure functions: nothing here touches the disk.
 */

export interface CassandraLayout {
  readonly dataDir: string;
  readonly nativePort: number;
  readonly storagePort: number;
  readonly clusterName: string;
  readonly numTokens: number;
}

export function cassandraPaths(dataDir: string): {
  readonly yaml: string;
  readonly logback: string;
  readonly log: string;
  readonly triggers: string;
} {
  return {
    yaml: join(dataDir, 'conf', 'cassandra.yaml'),
    logback: join(dataDir, 'conf', 'logback.xml'),
    log: join(dataDir, 'cassandra.log'),
    triggers: join(dataDir, 'triggers'),
  };
}

/**
 * Evenly spaced Murmur3 tokens. Giving them up front skips token allocation, and a single node
 * owns the whole ring whichever tokens it holds.
 */
export function evenMurmur3Tokens(count: number): string[] {
  const span = 2n ** 64n;
  const min = -(2n ** 63n);
  return Array.from({ length: count }, (_, i) => (min + (span * BigInt(i)) / BigInt(count)).toString());
}

function quote(value: string): string {
  return JSON.stringify(value);
}

export function cassandraYaml(layout: CassandraLayout): string {
  const d = layout.dataDir;
  return `# Written by services/cassandra-config.ts at every start; edits are lost.
cluster_name: ${quote(layout.clusterName)}
num_tokens: ${layout.numTokens}
initial_token: ${quote(evenMurmur3Tokens(layout.numTokens).join(','))}
auto_bootstrap: false
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
# A fresh 5.0-only cluster: no 4.x nodes will ever join, so use 5.0's own formats.
storage_compatibility_mode: NONE

authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer

data_file_directories:
  - ${quote(join(d, 'data'))}
local_system_data_file_directory: ${quote(join(d, 'system'))}
commitlog_directory: ${quote(join(d, 'commitlog'))}
saved_caches_directory: ${quote(join(d, 'saved_caches'))}
hints_directory: ${quote(join(d, 'hints'))}
cdc_raw_directory: ${quote(join(d, 'cdc_raw'))}

# A single node is only as durable as its commit log: sync before acking (batch), so a kill -9
# loses nothing acknowledged. Production clusters may relax this behind RF 3 and LOCAL_QUORUM.
commitlog_sync: batch

seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: ${quote(`127.0.0.1:${layout.storagePort}`)}

# Loopback only, for gossip/storage and for clients alike.
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: ${layout.storagePort}
start_native_transport: true
native_transport_port: ${layout.nativePort}

# Tests create and drop keyspaces freely; snapshots of dropped data would only fill the disk.
auto_snapshot: false
snapshot_on_duplicate_row_detection: false
# Keeps the (1 GiB) heap share of memtables modest.
memtable_heap_space: 128MiB
memtable_offheap_space: 128MiB
`;
}

/** Console only: the process's stdout and stderr already go to one log file in the data dir. */
export function logbackXml(): string {
  return `<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
`;
}

/**
 * Module flags from apache/cassandra conf/jvm17-server.options (5.0): Cassandra reaches into JDK
 * internals and fails at start-up without them.
 */
const JVM17_MODULE_FLAGS: readonly string[] = [
  '-Djdk.attach.allowAttachSelf=true',
  '--add-exports', 'java.base/jdk.internal.misc=ALL-UNNAMED',
  '--add-exports', 'java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED',
  '--add-exports', 'java.rmi/sun.rmi.registry=ALL-UNNAMED',
  '--add-exports', 'java.rmi/sun.rmi.server=ALL-UNNAMED',
  '--add-exports', 'java.sql/java.sql=ALL-UNNAMED',
  '--add-exports', 'java.base/java.lang.ref=ALL-UNNAMED',
  '--add-exports', 'jdk.unsupported/sun.misc=ALL-UNNAMED',
  '--add-exports', 'jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED',
  '--add-exports', 'jdk.attach/sun.tools.attach=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang.module=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.loader=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.ref=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.reflect=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.math=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.module=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.util.jar=ALL-UNNAMED',
  '--add-opens', 'jdk.management/com.sun.management.internal=ALL-UNNAMED',
  '--add-opens', 'java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens', 'java.base/java.io=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang.reflect=ALL-UNNAMED',
  '--add-opens', 'jdk.compiler/com.sun.tools.javac=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang=ALL-UNNAMED',
  '--add-opens', 'java.base/java.util=ALL-UNNAMED',
];

export interface CassandraJvmOptions {
  readonly dataDir: string;
  readonly libDir: string;
  /** The jamm jar in libDir, used as a java agent; undefined if the version ships none. */
  readonly jammJar: string | undefined;
  readonly maxHeap: string;
  readonly initialHeap: string;
  /**
   * C1 only (-XX:TieredStopAtLevel=1): measured here to cut a cold start from ~11 s to ~6 s on
   * 2 cores, at the cost of peak throughput. Right for tests, wrong for benchmarks.
   */
  readonly fastJit: boolean;
  /** Local-only JMX (bound to loopback by Cassandra) on this port, or none when undefined. */
  readonly jmxPort: number | undefined;
}

export function cassandraJvmArgs(options: CassandraJvmOptions): string[] {
  const paths = cassandraPaths(options.dataDir);
  const args = [
    `-Xms${options.initialHeap}`,
    `-Xmx${options.maxHeap}`,
    // From jvm17-server.options' G1 section.
    '-XX:+UseG1GC',
    '-XX:+ParallelRefProcEnabled',
    '-XX:MaxTenuringThreshold=1',
    '-XX:G1RSetUpdatingPauseTimePercent=5',
    '-XX:MaxGCPauseMillis=300',
    // From jvm-server.options.
    '-ea',
    '-da:net.openhft...',
    '-XX:+UseThreadPriorities',
    '-Xss256k',
    '-XX:+UseTLAB',
    '-XX:+ResizeTLAB',
    '-XX:+PerfDisableSharedMem',
    '-Djava.net.preferIPv4Stack=true',
    '-XX:+ExitOnOutOfMemoryError',
    ...JVM17_MODULE_FLAGS,
    '-Dio.netty.tryReflectionSetAccessible=true',
    '-Dio.netty.allocator.useCacheForAllThreads=true',
    '-Dio.netty.allocator.maxOrder=11',
    // cassandra-env.sh adds the jamm agent so memtable sizes are measured, not guessed.
    ...(options.jammJar === undefined ? [] : [`-javaagent:${options.jammJar}`]),
    `-Dcassandra.config=file://${paths.yaml}`,
    '-Dcassandra-foreground=yes',
    `-Dcassandra.storagedir=${options.dataDir}`,
    `-Dcassandra.logdir=${join(options.dataDir, 'logs')}`,
    `-Dcassandra.triggers_dir=${paths.triggers}`,
    `-Dlogback.configurationFile=${paths.logback}`,
    // Start-up speed for a lone node: no gossip settling, no ring delay, no superuser delay.
    '-Dcassandra.skip_wait_for_gossip_to_settle=0',
    '-Dcassandra.ring_delay_ms=100',
    '-Dcassandra.superuser_setup_delay_ms=0',
    // Without this, 5.0 spends ~3 s at start-up measuring memtable row overhead; 181 is
    // the value it measured itself on this JVM.
    '-Dcassandra.memtable.row_overhead_size=181',
  ];
  if (options.fastJit) args.push('-XX:TieredStopAtLevel=1');
  if (options.jmxPort !== undefined) {
    args.push(
      `-Dcassandra.jmx.local.port=${options.jmxPort}`,
      // The RMI server shares the registry's port instead of taking a random one.
      `-Dcom.sun.management.jmxremote.rmi.port=${options.jmxPort}`,
      '-Dcom.sun.management.jmxremote.authenticate=false',
      '-Djava.rmi.server.hostname=127.0.0.1',
    );
  }
  args.push('-cp', `${join(options.libDir, '*')}`, 'org.apache.cassandra.service.CassandraDaemon');
  return args;
}
