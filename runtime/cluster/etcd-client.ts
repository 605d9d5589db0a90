import { Etcd3, type IOptions } from 'etcd3';

export interface EtcdClientOptions {
  /** `http://host:port` endpoints. */
  readonly hosts: string | readonly string[];
  /** Deadline for each unary call. Default 5 s. */
  readonly callTimeoutMs?: number;
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<FaultHandling['global']>;

/**
 * A policy that just calls through. The membership code runs its own retry loops, so etcd3's
 * defaults (3 retries globally, a per-host circuit breaker that refuses every call for 5 s after
 * 3 failures) only get in the way: after an etcd restart the breaker would keep us from renewing
 * our lease for seconds after etcd is back.
 */
const passThrough = {
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as Policy;

/**
 * An etcd3 client tuned for cluster membership: no library-level retry or circuit breaking,
 * a deadline on every unary call (so nothing waits forever on a dead connection), fast gRPC
 * reconnects (grpc-js otherwise backs off up to 2 minutes after etcd goes away) and HTTP/2
 * pings no more often than etcd's default enforcement (5 s) allows.
 */
export function createEtcdClient(options: EtcdClientOptions): Etcd3 {
  const timeout = options.callTimeoutMs ?? 5_000;
  return new Etcd3({
    hosts: typeof options.hosts === 'string' ? options.hosts : [...options.hosts],
    faultHandling: { host: () => passThrough, global: passThrough },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 3_000,
    },
  });
}
