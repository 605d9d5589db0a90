/** Messages between the coordinator (bench/run.ts) and its load-generator worker processes. */

export const TARGETS = ['parley', 'socketio', 'uws-raw'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface ConnSpec {
  /** Parley: a session token. */
  readonly token?: string;
  /** A stable user name (peers use it for nothing but logs). */
  readonly user: string;
}

export interface GroupSpec {
  /** Channel id (Parley), room (Socket.IO) or topic (raw uWS). */
  readonly channel: string;
  /** Indexes into the worker's `conns`; a 1:1 pair is a group of two. */
  readonly members: readonly number[];
}

export interface SetupMessage {
  readonly type: 'setup';
  readonly workerId: number;
  readonly target: TargetName;
  /** Base WebSocket URL (ws://127.0.0.1:PORT). */
  readonly url: string;
  /** Loopback source addresses to spread connections over (127.0.0.2, ...). */
  readonly sources: readonly string[];
  readonly conns: readonly ConnSpec[];
  readonly groups: readonly GroupSpec[];
  readonly connectConcurrency: number;
  /** Per connection: open + authenticate (+ join) within this, or it counts as failed. */
  readonly connectTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly textBytes: number;
  /** Parley: acknowledge deliveries every this many (0: never). */
  readonly ackEvery: number;
  /** WebSocket client: the lean one over net (raw) or the `ws` package. */
  readonly client: 'raw' | 'ws';
  /**
   * Service discovery (Parley clusters): before opening each connection, ask GET /v1/servers of
   * one of these HTTP bases (in turn) and connect to the first server of the answer (the least
   * loaded, as the SDK does). Unset: every connection goes to `url`.
   */
  readonly discovery?: readonly string[];
  /** Connections this worker starts per second at most (0: as fast as connectConcurrency allows). */
  readonly connectRate?: number;
  /**
   * Stop starting connections once more than this % of those started have failed (and at least
   * 500 have): an overwhelmed server then ends the connect phase instead of costing a timeout per
   * wave. The rest count as failed ("not attempted"). 0: never give up.
   */
  readonly giveUpPct?: number;
  /**
   * Parley groups only (`--group-chatter`): during every run, each member of each group sends
   * once a second a `read` (the highest channel_seq it has received in that group) and a
   * `typing` for that group, the members spread evenly over the second.
   */
  readonly chatter?: boolean;
}

/** Connections per server node, as the generator saw them. */
export interface NodeCounts {
  /** Sessions discovery sent to this node. */
  assigned: number;
  connected: number;
  failed: number;
}

export interface DiscoveryFigures {
  /** GET /v1/servers asked. */
  readonly asks: number;
  readonly failures: number;
  /** GETs asked again after a reset kept-alive socket. */
  readonly retries: number;
  /** Summed ask latency, ms (mean = totalMs / asks). */
  readonly totalMs: number;
  readonly maxMs: number;
}

export interface RunMessage {
  readonly type: 'run';
  readonly runId: number;
  /** Messages per second this worker offers (its share of the total). */
  readonly rate: number;
  readonly durationMs: number;
  /** Wall-clock start (Date.now() scale), so all workers start together. */
  readonly startAt: number;
  /** After the last scheduled send, wait at most this long for outstanding deliveries. */
  readonly drainMs: number;
}

export type ToWorker = SetupMessage | RunMessage | { readonly type: 'status' } | { readonly type: 'close' };

export interface ConnectReport {
  readonly connected: number;
  readonly failed: number;
  readonly failures: Record<string, number>;
  /** First connect started to last connection ready, ms. */
  readonly connectMs: number;
  readonly joinMs: number;
  /** By node id (discovery only). */
  readonly byNode?: Record<string, NodeCounts>;
  readonly discovery?: DiscoveryFigures;
}

/** Group chatter of one run (`--group-chatter`): what the members sent and what they got back. */
export interface ChatterStats {
  /** `read` frames sent (one per member per group per second). */
  readonly reads: number;
  /** `typing` frames sent. */
  readonly typing: number;
  /** Reads not sent: nothing received in that group yet (no seq to mark). */
  readonly readsSkipped: number;
  /** Member-seconds not sent at all: the socket was not open. */
  readonly notOpen: number;
  /** Slices of the second that came due more than a second late and were dropped (generator behind). */
  readonly slicesDropped: number;
  /** `read_receipt` frames received, from the run's start to the end of its drain. */
  readonly receipts: number;
  /** `typing` notices received, same window. */
  readonly typingNotices: number;
  /** Error replies without a ref (chatter frames carry ref 0), by code. */
  readonly errors: number;
  readonly errorCodes: Record<string, number>;
}

export interface RunStats {
  readonly runId: number;
  /** Messages the schedule called for. */
  readonly scheduled: number;
  /** Messages written to a socket. */
  readonly sent: number;
  /** Recipient deliveries expected (sent x (members - 1)), minus refused sends. */
  readonly expected: number;
  readonly delivered: number;
  /** Error replies and sends that found their socket closed. */
  readonly errors: number;
  readonly errorCodes: Record<string, number>;
  /** Expected deliveries that did not arrive before the drain ended. */
  readonly timeouts: number;
  /** Deliveries of messages already written off or unknown. */
  readonly late: number;
  /** Parley: send_acks received, and their latency. */
  readonly acks: number;
  readonly latency: string;
  readonly ackLatency: string;
  /** How late the generator put each message on the wire versus its schedule. */
  readonly sendLag: string;
  readonly durationMs: number;
  readonly closedDuringRun: number;
  /** With `chatter` only. */
  readonly chatter?: ChatterStats;
}

export interface StatusReport {
  readonly open: number;
  readonly closed: number;
  readonly closeCodes: Record<string, number>;
  readonly heartbeats: number;
  readonly heartbeatSkipped: number;
  /** Open and closed sessions by node id (discovery only). */
  readonly openByNode?: Record<string, number>;
  readonly closedByNode?: Record<string, number>;
  /** Sessions closed after they were up, by 5-second wall-clock bin (Date.now() / 5000, floored). */
  readonly closedByTime?: Record<string, number>;
}

export type FromWorker =
  | { readonly type: 'progress'; readonly connected: number; readonly failed: number; readonly sent: number; readonly delivered: number; readonly errors: number }
  | ({ readonly type: 'ready' } & ConnectReport)
  | { readonly type: 'runDone'; readonly stats: RunStats }
  | ({ readonly type: 'status' } & StatusReport)
  | { readonly type: 'closed' }
  | { readonly type: 'fatal'; readonly message: string };
