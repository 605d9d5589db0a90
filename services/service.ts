/**
 * The shape every local service shares, so that tests and the CLI can treat etcd, Redis and
 * Cassandra alike: start one into a data dir on a port, get back where it answers and its pid,
 * stop it by that pid.
 */

/** What every start accepts. Service-specific options extend this. */
export interface ServiceStartOptions {
  /** Absolute directory that holds the data, the config and the log. Created when missing. */
  readonly dataDir: string;
  /** The client port (etcd client, Redis, Cassandra CQL). Bound on 127.0.0.1 only. */
  readonly port: number;
  /** How long to wait for the service to answer, in ms; each service has its own default. */
  readonly readyTimeoutMs?: number;
  /** Aborting kills the half-started process and rejects with SERVICE_ABORTED. */
  readonly signal?: AbortSignal;
}

export interface StopOptions {
  /**
   * How long SIGTERM may take before SIGKILL follows, in ms. 0 sends SIGKILL at once, which is
   * what throwaway test instances want (a clean Cassandra drain takes seconds).
   */
  readonly graceMs?: number;
}

/** Enough to find a started process again from another process (the CLI's state file). */
export interface ServiceProcessRecord {
  readonly name: string;
  readonly pid: number;
  /**
   * The process start time in clock ticks since boot (field 22 of /proc/<pid>/stat). A pid can be
   * reused after its process dies; pid plus start time cannot, so stop never hits a stranger.
   */
  readonly startTicks: number;
  /** How a client reaches it, e.g. `http://127.0.0.1:23790` or `127.0.0.1:26379`. */
  readonly address: string;
  /** The client port that `address` names. */
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
}

export interface RunningService extends ServiceProcessRecord {
  /** Stops this very process and resolves once its pid is gone. Calling it twice is harmless. */
  stop(options?: StopOptions): Promise<void>;
}

export interface Service<O extends ServiceStartOptions = ServiceStartOptions> {
  readonly name: string;
  /** Installs what is missing, starts the process and resolves once it answers a real request. */
  start(options: O): Promise<RunningService>;
}
