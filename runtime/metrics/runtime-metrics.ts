import type { ActorSystem } from '../actor/actor-system.ts';
import type { JournalEvent, Snapshot, Journal } from '../storage/journal.ts';
import type { KeyValueStore, KeyValueWrite } from '../storage/key-value.ts';
import type { Store } from '../storage/store.ts';
import type { HistogramCell, NodeMetrics } from './node-metrics.ts';

/** Seconds; from a local SQLite read (tens of µs) to a Cassandra write under load. */
export const STORE_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** What the runtime can report about itself; each part is optional (a single node has no transport). */
export interface RuntimeSources {
  readonly system: ActorSystem;
  /** Open client connections (WebSockets) on this node. */
  readonly connections: () => number;
  /** The most bytes one socket held unsent since the previous call, which resets it (Gateway.takeUnsentPeak). */
  readonly unsentPeak?: () => number;
  /** Sockets closed so far because their peers did not read (Gateway.closedUnread). */
  readonly closedUnread?: () => number;
}

/**
 * The kernel's figures, by actor kind and peer only (never by actor key, an unbounded label
 * set):
 * `parley_connections`, `parley_actors_active{kind}`, `parley_mailbox_depth{kind}` (queued now,
 * summed), `parley_mailbox_depth_peak{kind}` (deepest mailbox of the kind since the last scrape),
 * `parley_socket_unsent_bytes_peak` and `parley_sockets_closed_unread_total` (when the gateway's
 * figures are given), and, with registerPeerQueueMetrics, `parley_grpc_queue_depth{peer}`.
 */
export function registerRuntimeMetrics(metrics: NodeMetrics, s: RuntimeSources): void {
  metrics.gauge('parley_connections', 'Open client connections (WebSocket) on this node.', [], () => [[{}, s.connections()]]);
  // One walk over the activations serves the three actor gauges of one scrape: the first one
  // (collected first, in registration order) walks, the other two read what it found.
  let stats: ReturnType<ActorSystem['stats']> | undefined;
  const read = (): ReturnType<ActorSystem['stats']> => (stats ??= s.system.stats());
  metrics.gauge('parley_actors_active', 'Live actor activations on this node, by kind.', ['kind'], () => {
    stats = s.system.stats();
    return [...stats].map(([kind, x]) => [{ kind }, x.active] as const);
  });
  metrics.gauge('parley_mailbox_depth', 'Messages waiting in the mailboxes of this kind now, summed.', ['kind'], () => [...read()].map(([kind, x]) => [{ kind }, x.queued] as const));
  metrics.gauge('parley_mailbox_depth_peak', 'Deepest single mailbox of this kind since the previous scrape (read and reset by each scrape).', ['kind'], () => {
    return [...read()].map(([kind, x]) => [{ kind }, x.peak] as const);
  });
  const { unsentPeak, closedUnread } = s;
  if (unsentPeak) {
    metrics.gauge('parley_socket_unsent_bytes_peak', 'Most bytes one client socket held unsent in this process after a write, since the previous scrape (read and reset by each scrape).', [], () => [[{}, unsentPeak()]]);
  }
  if (closedUnread) metrics.counterReading('parley_sockets_closed_unread_total', 'Client sockets closed because their peers did not read (unsent bytes past the bound).', closedUnread);
}

/** `parley_grpc_queue_depth{peer}`: envelopes waiting for each peer (a cluster node's transport). */
export function registerPeerQueueMetrics(metrics: NodeMetrics, queueDepths: () => Iterable<readonly [peer: string, depth: number]>): void {
  metrics.gauge('parley_grpc_queue_depth', 'Envelopes queued for a peer node on the gRPC transport.', ['peer'], () => [...queueDepths()].map(([peer, n]) => [{ peer }, n] as const));
}

/**
 * The store with every call timed into `parley_store_op_seconds{op}` (one histogram cell per
 * operation, bound once: no allocation per call beyond the promise the call makes anyway).
 */
export function instrumentStore(store: Store, metrics: NodeMetrics): Store {
  const h = metrics.histogram('parley_store_op_seconds', 'Store call latency by operation, seconds.', STORE_BOUNDS, 'op');
  const timed = <T>(cell: HistogramCell, p: Promise<T>, t0: number): Promise<T> =>
    p.finally(() => cell.observe((performance.now() - t0) / 1000));
  const c = (op: string): HistogramCell => h.child(op);
  const [get, list, write, putIfAbsent] = [c('kv_get'), c('kv_list'), c('kv_write'), c('kv_put_if_absent')];
  const [acquire, append, read, readBefore, highestSeq, saveSnapshot, loadSnapshot] = [
    c('journal_acquire'), c('journal_append'), c('journal_read'), c('journal_read_before'), c('journal_highest_seq'), c('journal_save_snapshot'), c('journal_load_snapshot'),
  ];
  const kv = store.kv;
  const j = store.journal;
  const tkv: KeyValueStore = {
    get: (t: string, p: string, k: string) => timed(get, kv.get(t, p, k), performance.now()),
    list: (t: string, p: string, limit?: number) => timed(list, kv.list(t, p, limit), performance.now()),
    write: (w: readonly KeyValueWrite[]) => timed(write, kv.write(w), performance.now()),
    putIfAbsent: (t: string, p: string, k: string, v: string) => timed(putIfAbsent, kv.putIfAbsent(t, p, k, v), performance.now()),
  };
  const tj: Journal = {
    acquire: (pid: string, owner: string) => timed(acquire, j.acquire(pid, owner), performance.now()),
    release: (pid: string, epoch: number) => j.release(pid, epoch),
    append: (pid: string, epoch: number, events: readonly JournalEvent[]) => timed(append, j.append(pid, epoch, events), performance.now()),
    read: (pid: string, after: number, limit: number) => timed(read, j.read(pid, after, limit), performance.now()),
    readBefore: (pid: string, before: bigint | undefined, limit: number) => timed(readBefore, j.readBefore(pid, before, limit), performance.now()),
    highestSeq: (pid: string) => timed(highestSeq, j.highestSeq(pid), performance.now()),
    saveSnapshot: (pid: string, epoch: number, s: Snapshot) => timed(saveSnapshot, j.saveSnapshot(pid, epoch, s), performance.now()),
    loadSnapshot: (pid: string) => timed(loadSnapshot, j.loadSnapshot(pid), performance.now()),
  };
  return {
    journal: tj,
    kv: tkv,
    get describe() {
      return store.describe;
    },
    close: () => store.close(),
  };
}
